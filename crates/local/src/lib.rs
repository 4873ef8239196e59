//! The four functions on one machine, through the same handler code that runs in Lambda.
//!
//! - **webhook**: an HTTP server on a local address turns each request into the Lambda function
//!   URL event (payload 2.0) the deployed function receives, and answers with its response.
//! - **dispatcher** (EventBridge mode, when the webhook has `EVENT_BUS_NAME` and the runner is
//!   given `event_queue`): the webhook publishes on the real bus; the bus rule
//!   `<prefix>-workflow_job` targets an SQS queue here instead of the dispatcher function, and a
//!   poller hands each event, as EventBridge delivers it, to the dispatcher's own handler. A
//!   failed event stays on that queue and comes back (EventBridge's retry policy). Without
//!   `event_queue` there is nothing to carry events from the bus, so jobs are routed directly.
//! - **scale-up**: one poller per runner queue of the webhook's matcher config, behaving like
//!   Lambda's SQS event source mapping with `ReportBatchItemFailures` and a reserved concurrency
//!   of one: batches of up to `batch_size`, the successful messages deleted, the failed ones left
//!   to come back after the queue's visibility timeout. The queue's delivery delay is SQS's own.
//! - **scale-down**: every `scale_down_every`, like its EventBridge schedule.
//! - **syncer**: once at start, like the deploy trigger.
//! - **pool** (when given `pool`): every `pool.every` with `{"poolSize": size}`, like one of its
//!   Scheduler schedules; [`Local::pause_pool`] stops the schedule (the evening).
//! - **warm-pool** (when given its environment, with a `WARM_POOL_CONFIG`): every
//!   `warm_pool_every`, like its schedule; [`Local::pause_warm_pool`] stops it.
//! - **job-retry** (when scale-up's `JOB_RETRY_CONFIG` is on): a poller on the retry queue,
//!   like its event source mapping.
//! - **ssm-housekeeper** (when configured, as by default): at start and every
//!   `ssm_housekeeper_every`, like its schedule.
//! - **redelivery** (when configured, as by default): every `redelivery_every`, like its
//!   schedule: the App's failed deliveries to the webhook are redelivered.
//!
//! Each function reads its own configuration from its own variables (the ones Terraform sets)
//! and its own invocation deadline (its Lambda timeout). Where the AWS calls go is `sdk`:
//! moto and the fake GitHub for `make demo` (see `tests::demo`), or real AWS and a real GitHub
//! App with `ghr-local`.

use common::config::FromEnv;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine;
use common::deadline::Deadline;
use common::telemetry::{MetricSink, Metrics};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A function's environment variables.
pub type Vars = BTreeMap<String, String>;

/// Each function's environment, as Terraform sets it on the deployed functions.
#[derive(Debug, Clone, Default)]
pub struct Environments {
    pub webhook: Vars,
    pub scale_up: Vars,
    pub scale_down: Vars,
    /// The dispatcher's (EventBridge mode only).
    pub dispatcher: Vars,
    /// The pool's (scale-up's and its own); used with [`Options::pool`].
    pub pool: Vars,
    /// Job retry's (used when scale-up's `JOB_RETRY_CONFIG` is on).
    pub job_retry: Vars,
    /// None: no warm pool (`warm_pool.size` 0).
    pub warm_pool: Option<Vars>,
    /// None: no SSM housekeeper (`runners_ssm_housekeeper.enabled = false`).
    pub ssm_housekeeper: Option<Vars>,
    /// None: no webhook redelivery (`enable_webhook_redelivery = false`).
    pub redelivery: Option<Vars>,
    /// None: no syncer (`enable_runner_binaries_syncer = false`).
    pub syncer: Option<Vars>,
}

impl Environments {
    /// One environment for all four functions: the variables of the process (`ghr-local`).
    /// The functions' variable names do not clash, so the union of what Terraform sets on each
    /// deployed function configures all of them; the syncer runs when `S3_BUCKET_NAME` is set.
    pub fn from_process() -> Self {
        let all: Vars = std::env::vars().collect();
        let syncer = all.contains_key("S3_BUCKET_NAME").then(|| all.clone());
        let ssm_housekeeper = all.contains_key("SSM_CLEANUP_CONFIG").then(|| all.clone());
        let redelivery = all.contains_key("REDELIVERY_CHECKPOINT_PARAMETER").then(|| all.clone());
        let warm_pool = all
            .get("WARM_POOL_CONFIG")
            .is_some_and(|v| matches!(common::domain::warm_pool::WarmPoolConfig::parse(v), Ok(Some(_))))
            .then(|| all.clone());
        Self {
            webhook: all.clone(),
            scale_up: all.clone(),
            scale_down: all.clone(),
            dispatcher: all.clone(),
            pool: all.clone(),
            job_retry: all,
            warm_pool,
            syncer,
            ssm_housekeeper,
            redelivery,
        }
    }
}

/// How the functions are run.
#[derive(Clone)]
pub struct Options {
    /// Where the webhook listens (port 0: any free port).
    pub listen: SocketAddr,
    /// The event source mapping's batch size (Terraform `lambda_event_source_mapping_batch_size`).
    pub batch_size: i32,
    /// The functions' timeouts (their invocation deadlines).
    pub webhook_timeout: Duration,
    pub dispatcher_timeout: Duration,
    pub scale_up_timeout: Duration,
    pub scale_down_timeout: Duration,
    pub syncer_timeout: Duration,
    /// Time between scale-down runs.
    pub scale_down_every: Duration,
    /// Where the EMF metric lines go.
    pub metrics: Arc<dyn MetricSink>,
    /// EventBridge mode: the SQS queue the bus rule `<prefix>-workflow_job` delivers to, polled
    /// in place of EventBridge invoking the dispatcher function.
    pub event_queue: Option<String>,
    /// The pool's schedule: its size, and the time between runs.
    pub pool: Option<(usize, Duration)>,
    pub pool_timeout: Duration,
    /// Time between warm-pool runs (its schedule), and its timeout.
    pub warm_pool_every: Duration,
    pub warm_pool_timeout: Duration,
    pub job_retry_timeout: Duration,
    pub ssm_housekeeper_every: Duration,
    pub ssm_housekeeper_timeout: Duration,
    pub redelivery_every: Duration,
    pub redelivery_timeout: Duration,
}

impl Options {
    /// Terraform's defaults for timeouts and batch size, scale-down every 5 minutes.
    pub fn new(listen: SocketAddr, metrics: Arc<dyn MetricSink>) -> Self {
        Self {
            listen,
            batch_size: 10,
            webhook_timeout: Duration::from_secs(10),
            dispatcher_timeout: Duration::from_secs(10),
            scale_up_timeout: Duration::from_secs(30),
            scale_down_timeout: Duration::from_secs(60),
            syncer_timeout: Duration::from_secs(300),
            scale_down_every: Duration::from_secs(300),
            metrics,
            event_queue: None,
            pool: None,
            pool_timeout: Duration::from_secs(60),
            warm_pool_every: Duration::from_secs(120),
            warm_pool_timeout: Duration::from_secs(60),
            job_retry_timeout: Duration::from_secs(30),
            ssm_housekeeper_every: Duration::from_secs(24 * 3600),
            ssm_housekeeper_timeout: Duration::from_secs(60),
            redelivery_every: Duration::from_secs(300),
            redelivery_timeout: Duration::from_secs(120),
        }
    }
}

/// What the functions did, for whoever watches (the demo's timeline).
#[derive(Debug, Clone)]
pub enum Event {
    /// The webhook answered a delivery.
    Webhook { delivery: String, event: String, status: u16, body: String },
    /// The dispatcher handled an event from the bus: its answer (`jobId`, `decision`, `queues`),
    /// or its error (the event comes back).
    Dispatcher(Result<Value, String>),
    /// Scale-up handled a batch: the message bodies, and the ids of those returned for retry.
    ScaleUp { queue: String, bodies: Vec<String>, retried: usize },
    /// One scale-down run and its answer.
    ScaleDown(Value),
    /// The syncer's answer, or its error.
    Syncer(Result<Value, String>),
    /// A pool run's summary, or its error.
    Pool(Result<Value, String>),
    /// A warm-pool run's summary, or its error.
    WarmPool(Result<Value, String>),
    /// Job retry handled a batch: the message bodies, and how many come back.
    JobRetry { bodies: Vec<String>, retried: usize },
    /// An SSM housekeeper run's summary, or its error.
    SsmHousekeeper(Result<Value, String>),
    /// A redelivery run's summary (per App: redelivered, given up, left, probe).
    Redelivery(Value),
}

/// The running functions.
pub struct Local {
    /// The webhook's URL (`http://<address>/webhook`).
    pub webhook_url: String,
    scale_down: Arc<scale_down::ScaleDown>,
    scale_down_timeout: Duration,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pool_paused: Arc<std::sync::atomic::AtomicBool>,
    warm_pool_paused: Arc<std::sync::atomic::AtomicBool>,
}

fn lookup(vars: &Vars) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| vars.get(name).cloned()
}

impl Local {
    /// Reads each function's configuration, runs the syncer once, then serves the webhook and
    /// starts the queue pollers and the scale-down schedule.
    pub async fn start(
        envs: &Environments,
        sdk: &common::aws::SdkConfig,
        options: Options,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Self, String> {
        let metrics = |t: &common::telemetry::TelemetryConfig| Metrics::new(t, options.metrics.clone());
        let mut webhook_config =
            webhook::config::Config::from_lookup(&lookup(&envs.webhook)).map_err(|e| format!("webhook: {e}"))?;
        let eventbridge = webhook_config.event_bus.is_some() && options.event_queue.is_some();
        if !eventbridge && let Some(bus) = webhook_config.event_bus.take() {
            // Nothing carries events from the bus to a local dispatcher: route jobs directly,
            // with the same code (direct mode reads the matcher config Terraform sets anyway).
            tracing::warn!(
                bus,
                "EVENT_BUS_NAME is set but no event queue is given: the local runner routes jobs directly"
            );
        }
        let scale_up_config =
            scale_up::config::Config::from_lookup(&lookup(&envs.scale_up)).map_err(|e| format!("scale-up: {e}"))?;
        let scale_down_config = scale_down::config::Config::from_lookup(&lookup(&envs.scale_down))
            .map_err(|e| format!("scale-down: {e}"))?;

        if let Some(vars) = &envs.syncer {
            let config = syncer::config::Config::from_lookup(&lookup(vars)).map_err(|e| format!("syncer: {e}"))?;
            let syncer = syncer::build(&config, sdk, metrics(&config.telemetry)).map_err(|e| format!("syncer: {e}"))?;
            let outcome = syncer.run_once(Deadline::after(options.syncer_timeout)).await;
            let _ = events.send(Event::Syncer(outcome.map(|o| o.to_json()).map_err(|e| e.to_string())));
        }

        let webhook = Arc::new(
            webhook::build(&webhook_config, sdk, metrics(&webhook_config.telemetry))
                .await
                .map_err(|e| format!("webhook: {e}"))?,
        );
        let dispatcher = match (&options.event_queue, eventbridge) {
            (Some(queue), true) => {
                let config = dispatcher::config::Config::from_lookup(&lookup(&envs.dispatcher))
                    .map_err(|e| format!("dispatcher: {e}"))?;
                let dispatcher = dispatcher::build(&config, sdk, metrics(&config.telemetry))
                    .await
                    .map_err(|e| format!("dispatcher: {e}"))?;
                Some((Arc::new(dispatcher), queue.clone()))
            }
            _ => None,
        };
        let scale_up = Arc::new(
            scale_up::build(&scale_up_config, sdk, metrics(&scale_up_config.telemetry))
                .await
                .map_err(|e| format!("scale-up: {e}"))?,
        );
        let scale_down = Arc::new(
            scale_down::build(&scale_down_config, sdk, metrics(&scale_down_config.telemetry))
                .await
                .map_err(|e| format!("scale-down: {e}"))?,
        );

        let pool = match options.pool {
            Some(_) => {
                let config =
                    pool::config::Config::from_lookup(&lookup(&envs.pool)).map_err(|e| format!("pool: {e}"))?;
                Some(Arc::new(
                    pool::build(&config, sdk, metrics(&config.telemetry())).await.map_err(|e| format!("pool: {e}"))?,
                ))
            }
            None => None,
        };
        let warm_pool = match &envs.warm_pool {
            Some(vars) => {
                let config =
                    warm_pool::config::Config::from_lookup(&lookup(vars)).map_err(|e| format!("warm-pool: {e}"))?;
                Some(Arc::new(warm_pool::build(&config, sdk, metrics(&config.scale_up.telemetry)).await))
            }
            None => None,
        };
        let job_retry = match &scale_up_config.job_retry {
            Some(retry) => {
                let config = job_retry::config::Config::from_lookup(&lookup(&envs.job_retry))
                    .map_err(|e| format!("job-retry: {e}"))?;
                let handler = job_retry::build(&config, sdk, metrics(&config.telemetry))
                    .await
                    .map_err(|e| format!("job-retry: {e}"))?;
                Some((Arc::new(handler), retry.queue_url.clone()))
            }
            None => None,
        };
        let housekeeper = match &envs.ssm_housekeeper {
            Some(vars) => {
                let config = ssm_housekeeper::config::Config::from_lookup(&lookup(vars))
                    .map_err(|e| format!("ssm-housekeeper: {e}"))?;
                Some(Arc::new(ssm_housekeeper::build(&config, sdk, metrics(&config.telemetry))))
            }
            None => None,
        };

        let redelivery = match &envs.redelivery {
            Some(vars) => {
                let config =
                    redelivery::config::Config::from_lookup(&lookup(vars)).map_err(|e| format!("redelivery: {e}"))?;
                let handler = redelivery::build(&config, sdk, metrics(&config.telemetry))
                    .await
                    .map_err(|e| format!("redelivery: {e}"))?;
                Some(Arc::new(handler))
            }
            None => None,
        };

        let (shutdown, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let pool_paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let warm_pool_paused = Arc::new(std::sync::atomic::AtomicBool::new(false));

        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        tasks.push(tokio::spawn(serve_webhook(
            listener,
            webhook.clone(),
            options.webhook_timeout,
            events.clone(),
            stopped.clone(),
        )));

        let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let matchers = match &dispatcher {
            Some((dispatcher, _)) => &dispatcher.routing().matchers[..],
            None => webhook.settings().matchers(),
        };
        let mut queues: Vec<(String, String)> = matchers.iter().map(|m| (m.id.clone(), m.arn.clone())).collect();
        queues.dedup();
        if let Some((dispatcher, url)) = dispatcher {
            let rule = RuleTarget { sqs: sqs.clone(), url, timeout: options.dispatcher_timeout };
            tasks.push(tokio::spawn(rule.run(dispatcher, events.clone(), stopped.clone())));
        }
        for (url, arn) in queues {
            let poller = Poller {
                sqs: sqs.clone(),
                url,
                arn,
                region: region.clone(),
                batch_size: options.batch_size,
                timeout: options.scale_up_timeout,
            };
            tasks.push(tokio::spawn(poller.run(Consumer::ScaleUp(scale_up.clone()), events.clone(), stopped.clone())));
        }
        if let Some((handler, url)) = job_retry {
            let poller = Poller {
                sqs: sqs.clone(),
                arn: format!("arn:aws:sqs:{region}:000000000000:{}", url.rsplit('/').next().unwrap_or_default()),
                url,
                region: region.clone(),
                batch_size: 10,
                timeout: options.job_retry_timeout,
            };
            tasks.push(tokio::spawn(poller.run(Consumer::JobRetry(handler), events.clone(), stopped.clone())));
        }
        if let (Some(pool), Some((size, every))) = (pool, options.pool) {
            let timeout = options.pool_timeout;
            let pool_events = events.clone();
            let paused = pool_paused.clone();
            tasks.push(tokio::spawn(every_tick(every, stopped.clone(), move || {
                let pool = pool.clone();
                let pool_events = pool_events.clone();
                let paused = paused.clone();
                async move {
                    if paused.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let outcome =
                        pool.handle(&json!({"poolSize": size, "type": "ec2"}), Deadline::after(timeout)).await;
                    let _ = pool_events.send(Event::Pool(outcome.map(|s| s.to_json()).map_err(|e| e.to_string())));
                }
            })));
        }
        if let Some(warm_pool) = warm_pool {
            let timeout = options.warm_pool_timeout;
            let warm_events = events.clone();
            let paused = warm_pool_paused.clone();
            let run = move |warm_pool: Arc<warm_pool::WarmPool>| {
                let (events, paused) = (warm_events.clone(), paused.clone());
                async move {
                    if paused.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let outcome = warm_pool.handle(Deadline::after(timeout)).await;
                    let _ = events.send(Event::WarmPool(outcome.map(|s| s.to_json()).map_err(|e| e.to_string())));
                }
            };
            // The first top-up at start, as after a deployment.
            run(warm_pool.clone()).await;
            tasks.push(tokio::spawn(every_tick(options.warm_pool_every, stopped.clone(), move || {
                run(warm_pool.clone())
            })));
        }
        if let Some(housekeeper) = housekeeper {
            let timeout = options.ssm_housekeeper_timeout;
            let run = move |housekeeper: Arc<ssm_housekeeper::SsmHousekeeper>, events: mpsc::UnboundedSender<Event>| async move {
                let outcome = housekeeper.run_once(Deadline::after(timeout)).await;
                if let Ok(summary) = &outcome {
                    housekeeper.report(summary);
                }
                let _ = events.send(Event::SsmHousekeeper(outcome.map(|s| s.to_json()).map_err(|e| e.to_string())));
            };
            run(housekeeper.clone(), events.clone()).await;
            let housekeeper_events = events.clone();
            tasks.push(tokio::spawn(every_tick(options.ssm_housekeeper_every, stopped.clone(), move || {
                run(housekeeper.clone(), housekeeper_events.clone())
            })));
        }

        if let Some(redelivery) = redelivery {
            let timeout = options.redelivery_timeout;
            let redelivery_events = events.clone();
            tasks.push(tokio::spawn(every_tick(options.redelivery_every, stopped.clone(), move || {
                let (redelivery, events) = (redelivery.clone(), redelivery_events.clone());
                async move {
                    let summary = redelivery.run_once(Deadline::after(timeout)).await;
                    redelivery.report(&summary);
                    let _ = events.send(Event::Redelivery(summary.to_json()));
                }
            })));
        }

        let every = options.scale_down_every;
        let timeout = options.scale_down_timeout;
        let runner = scale_down.clone();
        let schedule_events = events.clone();
        let mut schedule_stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        let summary = runner.run_once(Deadline::after(timeout)).await;
                        let _ = schedule_events.send(Event::ScaleDown(scale_down::summary_json(&summary)));
                    }
                    _ = schedule_stopped.changed() => return,
                }
            }
        }));

        Ok(Self {
            webhook_url: format!("http://{address}/webhook"),
            scale_down,
            scale_down_timeout: timeout,
            shutdown,
            tasks,
            pool_paused,
            warm_pool_paused,
        })
    }

    /// Stops the warm pool's schedule (before the pool is emptied).
    pub fn pause_warm_pool(&self) {
        self.warm_pool_paused.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops the pool's schedule (as when its schedules stop firing in the evening).
    pub fn pause_pool(&self) {
        self.pool_paused.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs scale-down once now, outside its schedule.
    pub async fn scale_down_now(&self) -> Value {
        scale_down::summary_json(&self.scale_down.run_once(Deadline::after(self.scale_down_timeout)).await)
    }

    /// Stops serving and polling; work in progress is abandoned (as when Lambda stops).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Runs `run` every `every` (the first time after one period) until stopped, like a schedule.
async fn every_tick<F, Fut>(every: Duration, mut stopped: watch::Receiver<bool>, run: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => run().await,
            _ = stopped.changed() => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The webhook endpoint
// ---------------------------------------------------------------------------------------------

async fn serve_webhook(
    listener: tokio::net::TcpListener,
    webhook: Arc<webhook::Webhook>,
    timeout: Duration,
    events: mpsc::UnboundedSender<Event>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let webhook = webhook.clone();
        let events = events.clone();
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let webhook = webhook.clone();
            let events = events.clone();
            async move { Ok::<_, Infallible>(answer(request, &webhook, timeout, &events).await) }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// One delivery, through the function's own event handling (a function URL event).
async fn answer(
    request: http::Request<Incoming>,
    webhook: &webhook::Webhook,
    timeout: Duration,
    events: &mpsc::UnboundedSender<Event>,
) -> http::Response<Full<bytes::Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_ascii_lowercase(), Value::String(v.to_string()))))
        .collect();
    let header = |name: &str| headers.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    let (delivery, event_name) = (header("x-github-delivery"), header("x-github-event"));
    let path = parts.uri.path().to_string();
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or_default(),
        "headers": headers,
        "requestContext": {"http": {"method": parts.method.as_str(), "path": path, "sourceIp": "127.0.0.1"}},
        "body": base64::engine::general_purpose::STANDARD.encode(&body),
        "isBase64Encoded": true,
    });
    let response = webhook.handle_event(&event, Deadline::after(timeout)).await;
    let status = response["statusCode"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(500);
    let text = response["body"].as_str().unwrap_or_default().to_string();
    let _ = events.send(Event::Webhook { delivery, event: event_name, status, body: text.clone() });
    http::Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(bytes::Bytes::from(text)))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The bus rule's delivery to the dispatcher
// ---------------------------------------------------------------------------------------------

/// Stands in for EventBridge invoking the dispatcher: the rule delivers to an SQS queue, each
/// message body is the event as EventBridge delivers it to a target.
struct RuleTarget {
    sqs: aws_sdk_sqs::Client,
    url: String,
    timeout: Duration,
}

impl RuleTarget {
    async fn run(
        self,
        dispatcher: Arc<dispatcher::Dispatcher>,
        events: mpsc::UnboundedSender<Event>,
        mut stopped: watch::Receiver<bool>,
    ) {
        loop {
            let received = tokio::select! {
                r = self.sqs.receive_message().queue_url(&self.url).max_number_of_messages(10).wait_time_seconds(1).send() => r,
                _ = stopped.changed() => return,
            };
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(queue = %self.url, error = %common::aws::aws_error("sqs:ReceiveMessage", e), "polling the bus rule's queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // One asynchronous invocation per event, as EventBridge invokes a Lambda target.
            for message in messages {
                let outcome = match serde_json::from_str::<Value>(message.body().unwrap_or_default()) {
                    Ok(event) => {
                        dispatcher.handle(&event, Deadline::after(self.timeout)).await.map_err(|e| e.to_string())
                    }
                    Err(e) => Err(format!("the rule's message is not an event: {e}")),
                };
                if outcome.is_ok()
                    && let Err(e) = self
                        .sqs
                        .delete_message()
                        .queue_url(&self.url)
                        .receipt_handle(message.receipt_handle().unwrap_or_default())
                        .send()
                        .await
                {
                    tracing::warn!(queue = %self.url, error = %common::aws::aws_error("sqs:DeleteMessage", e), "deleting a dispatched event failed; it comes back");
                }
                let _ = events.send(Event::Dispatcher(outcome));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The SQS event source mapping
// ---------------------------------------------------------------------------------------------

struct Poller {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
    region: String,
    batch_size: i32,
    timeout: Duration,
}

/// What an event source mapping feeds.
enum Consumer {
    ScaleUp(Arc<scale_up::ScaleUp>),
    JobRetry(Arc<job_retry::JobRetry>),
}

impl Poller {
    async fn run(self, consumer: Consumer, events: mpsc::UnboundedSender<Event>, mut stopped: watch::Receiver<bool>) {
        loop {
            let received = tokio::select! {
                r = self
                    .sqs
                    .receive_message()
                    .queue_url(&self.url)
                    .max_number_of_messages(self.batch_size)
                    .wait_time_seconds(1)
                    .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                    .send() => r,
                _ = stopped.changed() => return,
            };
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(queue = %self.url, error = %common::aws::aws_error("sqs:ReceiveMessage", e), "polling the runner queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let event = self.event(&messages);
            let response = match &consumer {
                Consumer::ScaleUp(scale_up) => scale_up.handle(&event, Deadline::after(self.timeout)).await,
                Consumer::JobRetry(job_retry) => job_retry.handle(&event, Deadline::after(self.timeout)).await,
            };
            let failed: std::collections::HashSet<String> =
                response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
            // Successful messages are deleted; failed ones come back after the visibility timeout.
            let done: Vec<aws_sdk_sqs::types::DeleteMessageBatchRequestEntry> = messages
                .iter()
                .filter(|m| m.message_id().is_some_and(|id| !failed.contains(id)))
                .filter_map(|m| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(m.message_id().unwrap_or_default())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            if !done.is_empty()
                && let Err(e) =
                    self.sqs.delete_message_batch().queue_url(&self.url).set_entries(Some(done)).send().await
            {
                tracing::warn!(queue = %self.url, error = %common::aws::aws_error("sqs:DeleteMessageBatch", e), "deleting handled messages failed; they come back");
            }
            let bodies = messages.iter().filter_map(|m| m.body().map(str::to_string)).collect();
            let _ = events.send(match consumer {
                Consumer::ScaleUp(_) => Event::ScaleUp { queue: self.url.clone(), bodies, retried: failed.len() },
                Consumer::JobRetry(_) => Event::JobRetry { bodies, retried: failed.len() },
            });
        }
    }

    /// The SQS event Lambda would deliver for these messages.
    fn event(&self, messages: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
        serde_json::from_value(sqs_event_json(messages, &self.arn, &self.region)).unwrap_or_default()
    }
}

/// The event Lambda's SQS event source mapping delivers for `messages` received from the queue
/// `queue_arn`: one record per message, with its system attributes.
pub fn sqs_event_json(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), Value::String(v.clone()))).collect())
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "md5OfBody": m.md5_of_body(),
                "attributes": attributes,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

// ---------------------------------------------------------------------------------------------
// Logs and metrics
// ---------------------------------------------------------------------------------------------

/// Sends the functions' JSON logs to `path` (the terminal is for the timeline), at `LOG_LEVEL`.
pub fn log_to_file(path: &std::path::Path, level: &str) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let level = common::telemetry::tracing_level(level);
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "warn,common={level},webhook={level},dispatcher={level},pool={level},warm_pool={level},job_retry={level},ssm_housekeeper={level},scale_up={level},scale_down={level},syncer={level},local={level}"
    ));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .json()
        .flatten_event(true)
        .try_init();
    Ok(())
}

/// EMF lines appended to a file.
pub struct FileSink(std::sync::Mutex<std::fs::File>);

impl FileSink {
    pub fn create(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self(std::sync::Mutex::new(std::fs::File::create(path)?)))
    }
}

impl MetricSink for FileSink {
    fn write_line(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut f) = self.0.lock() {
            let _ = writeln!(f, "{line}");
        }
    }
}
