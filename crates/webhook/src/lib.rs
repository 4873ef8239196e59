//! The webhook function: GitHub `workflow_job` deliveries in, job messages on runner queues out.
//!
//! - **Trigger**: API Gateway (REST, or HTTP API payload 1.0/2.0) or a Lambda function URL,
//!   `POST /webhook`.
//! - **Reads at cold start**: the webhook secret and the runner matcher config from SSM (one
//!   GetParameters call), kept for the container's life.
//! - **Per delivery**: verifies `X-Hub-Signature-256` over the exact bytes GitHub sent, accepts
//!   only `workflow_job` + `queued` whose labels match a runner configuration, and sends the
//!   upstream job message to that configuration's SQS queue(s). Answers well within GitHub's
//!   10 s deadline; never answers 2xx for a job that should have been queued and was not.
//! - **Environment**: `PARAMETER_GITHUB_APP_WEBHOOK_SECRET`, `PARAMETER_RUNNER_MATCHER_CONFIG_PATH`
//!   (`:`-joined chunks), `PARAMETER_RUNNER_MATCHER_VERSION`, `REPOSITORY_ALLOW_LIST`,
//!   `QUEUE_SELECTION_STRATEGY`, `ENVIRONMENT`, `LOG_LEVEL`, `POWERTOOLS_METRICS_NAMESPACE`.
//! - **IAM**: `ssm:GetParameters` on those parameters (and `kms:Decrypt`), `sqs:SendMessage` on
//!   the runner queues.
//!
//! Answers (upstream §1.1, with decisions.md #1):
//!
//! | case | status |
//! |---|---|
//! | not POST | 405 |
//! | signature missing, malformed or wrong | 401 |
//! | event other than `workflow_job` (ping, check_run...) | 202 |
//! | body not valid JSON / missing fields | 400 |
//! | repository not in the allow list | 403 |
//! | action other than `queued` | 201 |
//! | no runner configuration accepts the labels | 202 |
//! | SQS failed or timed out | 500 (GitHub shows a failed delivery to redeliver) |
//! | queued | 201 |

pub mod config;
pub mod event;

use common::config::FromEnv;
use std::sync::Arc;
use std::time::Duration;

use common::config::Secret;
use common::deadline::Deadline;
use common::domain::webhook::{
    QueueSelectionStrategy, QueuedJobMessage, RunnerMatcherConfig, WorkflowJobEvent, parse_matcher_config,
    repository_allowed, route_job,
};
use common::error::AwsError;
use common::github::signature;
use common::ports::{JobQueue, ParameterStore};
use common::telemetry::Metrics;
use common::telemetry::metrics::{WEBHOOK_ACCEPTED, WEBHOOK_RECEIVED, WEBHOOK_REJECTED};

pub use config::Config;
pub use event::{HttpRequest, HttpResponse, parse_event};

/// Deliveries larger than this are logged (EventBridge would refuse them; SQS takes 256 KiB).
const LARGE_BODY: usize = 256 * 1024;

/// What the webhook needs per delivery, loaded once per container.
pub struct Settings {
    pub secret: Secret<Vec<u8>>,
    pub matchers: Vec<RunnerMatcherConfig>,
    pub repository_allow_list: Vec<String>,
    pub strategy: QueueSelectionStrategy,
}

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot read the webhook parameters: {0}")]
    Parameters(#[from] AwsError),
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Reads the secret and every matcher config chunk with one GetParameters call.
    pub async fn load(config: &Config, store: &dyn ParameterStore) -> Result<Self, InitError> {
        let mut names = vec![config.webhook_secret_parameter.clone()];
        names.extend(config.matcher_config_parameters.iter().cloned());
        let values = store.get_parameters(&names).await?;
        let secret = values
            .get(&config.webhook_secret_parameter)
            .map(|s| s.expose().as_bytes().to_vec())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| InitError::Invalid("the webhook secret is empty".into()))?;
        let chunks: Vec<&str> = config
            .matcher_config_parameters
            .iter()
            .map(|n| values.get(n).map_or("", |v| v.expose().as_str()))
            .collect();
        let matchers = parse_matcher_config(&chunks).map_err(InitError::Invalid)?;
        Ok(Self {
            secret: Secret::new(secret),
            matchers,
            repository_allow_list: config.repository_allow_list.clone(),
            strategy: config.queue_selection_strategy,
        })
    }
}

/// The webhook handler.
pub struct Webhook {
    settings: Settings,
    queue: Arc<dyn JobQueue>,
    metrics: Metrics,
}

/// The result of one delivery, for the response, the log line and the metrics.
struct Outcome {
    status: u16,
    message: String,
    /// Why the job was not enqueued; `None` when it was.
    rejected: Option<&'static str>,
    action: Option<String>,
    repository: Option<String>,
    job_id: Option<u64>,
    queues: Vec<String>,
    /// Time spent sending to SQS.
    queue_ms: f64,
}

impl Outcome {
    fn rejected(status: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            rejected: Some(reason),
            action: None,
            repository: None,
            job_id: None,
            queues: Vec::new(),
            queue_ms: 0.0,
        }
    }
}

impl Webhook {
    pub fn new(settings: Settings, queue: Arc<dyn JobQueue>, metrics: Metrics) -> Self {
        Self { settings, queue, metrics }
    }

    /// What the webhook loaded at start (the runner configurations and their queues).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Handles one Lambda HTTP event and returns the Lambda HTTP response.
    pub async fn handle_event(&self, event: &serde_json::Value, deadline: Deadline) -> serde_json::Value {
        let response = match parse_event(event) {
            Ok(request) => self.handle(&request, deadline).await,
            Err(e) => {
                self.metrics.count(&WEBHOOK_RECEIVED, 1, &[]);
                self.metrics.count(&WEBHOOK_REJECTED, 1, &[("Reason", "malformed")]);
                tracing::warn!(status = 400, reason = "malformed", error = %e, "webhook delivery");
                HttpResponse::new(400, e.to_string())
            }
        };
        response.to_event()
    }

    /// Handles one delivery.
    pub async fn handle(&self, request: &HttpRequest, deadline: Deadline) -> HttpResponse {
        self.metrics.count(&WEBHOOK_RECEIVED, 1, &[]);
        let outcome = self.decide(request, deadline).await;
        let delivery = request.header("x-github-delivery").unwrap_or("");
        let event = request.header("x-github-event").unwrap_or("");
        let reason = outcome.rejected.unwrap_or("queued");
        macro_rules! log_line {
            ($level:ident) => {
                tracing::$level!(
                    delivery_id = delivery,
                    event,
                    hook_id = request.header("x-github-hook-id").unwrap_or(""),
                    action = outcome.action.as_deref().unwrap_or(""),
                    repository = outcome.repository.as_deref().unwrap_or(""),
                    job_id = outcome.job_id.unwrap_or(0),
                    status = outcome.status,
                    decision = reason,
                    queues = ?outcome.queues,
                    queue_ms = outcome.queue_ms,
                    "webhook delivery"
                )
            };
        }
        match outcome.status {
            500.. => log_line!(error),
            400..=499 => log_line!(warn),
            _ => log_line!(info),
        }
        match outcome.rejected {
            None => self.metrics.count(&WEBHOOK_ACCEPTED, 1, &[]),
            Some(reason) => self.metrics.count(&WEBHOOK_REJECTED, 1, &[("Reason", reason)]),
        }
        HttpResponse::new(outcome.status, outcome.message)
    }

    async fn decide(&self, request: &HttpRequest, deadline: Deadline) -> Outcome {
        if let Some(method) = &request.method
            && !method.eq_ignore_ascii_case("POST")
        {
            return Outcome::rejected(405, "method", format!("Method {method} not allowed, GitHub sends POST"));
        }
        if let Err(e) =
            signature::verify(self.settings.secret.expose(), &request.body, request.header("x-hub-signature-256"))
        {
            return Outcome::rejected(401, "signature", format!("Unable to verify signature: {e}"));
        }
        if request.body.len() > LARGE_BODY {
            tracing::warn!(bytes = request.body.len(), "delivery body is larger than 256 KiB");
        }
        let event_type = request.header("x-github-event").unwrap_or("");
        if event_type != "workflow_job" {
            let shown = if event_type.is_empty() { "(none)" } else { event_type };
            return Outcome::rejected(202, "unsupported_event", format!("Unsupported event type: {shown}"));
        }
        let job: WorkflowJobEvent = match serde_json::from_slice(&request.body) {
            Ok(job) => job,
            Err(e) => return Outcome::rejected(400, "malformed", format!("Malformed workflow_job payload: {e}")),
        };
        let mut outcome = Outcome {
            status: 0,
            message: String::new(),
            rejected: None,
            action: Some(job.action.clone()),
            repository: Some(job.repository.full_name.clone()),
            job_id: Some(job.workflow_job.id),
            queues: Vec::new(),
            queue_ms: 0.0,
        };
        let mut reject = |status, reason, message: String| {
            outcome.status = status;
            outcome.rejected = Some(reason);
            outcome.message = message;
        };
        if !repository_allowed(&self.settings.repository_allow_list, &job.repository.full_name) {
            reject(
                403,
                "unauthorized_repository",
                format!("Received event from unauthorized repository {}", job.repository.full_name),
            );
            return outcome;
        }
        if job.action != "queued" {
            reject(201, "not_queued", "Workflow job not queued, not dispatching to queue.".into());
            return outcome;
        }
        let Some(route) = route_job(&job.workflow_job.labels, &self.settings.matchers, self.settings.strategy, |n| {
            fastrand::usize(..n)
        }) else {
            reject(
                202,
                "no_matching_runner",
                format!(
                    "Received event contains runner labels '{}' from '{}' that are not accepted.",
                    job.workflow_job.labels.join(","),
                    job.repository.full_name
                ),
            );
            return outcome;
        };
        let queues: Vec<String> = route.targets.iter().map(|t| t.id.clone()).collect();
        let sends = route.targets.iter().map(|target| {
            let message = QueuedJobMessage::for_job(&job, &target.id, route.labels.clone());
            let body = serde_json::to_string(&message).unwrap_or_default();
            let group = target.fifo.then(|| job.workflow_job.id.to_string());
            let queue = self.queue.clone();
            let url = target.id.clone();
            async move { queue.send(&url, &body, group.as_deref()).await }
        });
        let sending = std::time::Instant::now();
        let all_sent = tokio::time::timeout(deadline.remaining(), futures::future::join_all(sends)).await;
        outcome.queue_ms = sending.elapsed().as_secs_f64() * 1000.0;
        outcome.queues = queues;
        match all_sent {
            Ok(results) => {
                if let Some(e) = results.into_iter().find_map(Result::err) {
                    tracing::error!(error = %e, "sending the job to its runner queue failed");
                    reject(500, "queue_error", "The job could not be queued; redeliver this delivery.".into());
                    return outcome;
                }
            }
            Err(_) => {
                reject(500, "queue_error", "Queueing the job timed out; redeliver this delivery.".into());
                return outcome;
            }
        }
        outcome.status = 201;
        outcome.message = format!(
            "Successfully queued job for {} to the queue(s) {}",
            job.repository.full_name,
            outcome.queues.join(", ")
        );
        outcome
    }
}

/// The webhook with real AWS clients, as Lambda runs it: its parameters loaded from SSM, jobs
/// sent to SQS. `run()` and the local runner (`crates/local`) both build it here.
pub async fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> Result<Webhook, InitError> {
    let store = common::aws::ssm::SsmParameterStore::new(sdk);
    let settings = Settings::load(config, &store).await?;
    let queue = Arc::new(common::aws::sqs::SqsJobQueue::new(sdk));
    Ok(Webhook::new(settings, queue, metrics))
}

/// Starts the function: reads its configuration and parameters, then serves invocations.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    tracing::info!(
        matcher_parameters = ?config.matcher_config_parameters,
        matcher_version = config.matcher_config_version.as_deref().unwrap_or(""),
        strategy = ?config.queue_selection_strategy,
        allow_list = ?config.repository_allow_list,
        "webhook configuration"
    );
    // SQS answers in milliseconds; keep well inside GitHub's 10 s deadline.
    let sdk = common::aws::load_sdk_config(Duration::from_secs(3), 2).await;
    let sdk_ready = started.elapsed();
    let webhook = build(&config, &sdk, Metrics::stdout(&config.telemetry))
        .await
        .inspect_err(|e| tracing::error!(error = %e, "loading the webhook parameters"))?;
    let parameters_ms = (started.elapsed() - sdk_ready).as_secs_f64() * 1000.0;
    tracing::info!(
        configurations = webhook.settings.matchers.len(),
        sdk_ms = sdk_ready.as_secs_f64() * 1000.0,
        parameters_ms,
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "webhook ready"
    );
    let webhook = &webhook;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let deadline = common::lambda::deadline_of(&event.context);
            Ok::<_, lambda_runtime::Error>(webhook.handle_event(&event.payload, deadline).await)
        },
    ))
    .await
}

#[cfg(test)]
mod tests;
