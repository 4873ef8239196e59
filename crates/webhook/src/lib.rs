//! The webhook function: GitHub `workflow_job` deliveries in, job messages on runner queues out.
//!
//! - **Trigger**: API Gateway (REST, or HTTP API payload 1.0/2.0) or a Lambda function URL,
//!   `POST /webhook`.
//! - **Reads at cold start**: the webhook secret and the runner matcher config from SSM (one
//!   GetParameters call), kept for the container's life.
//! - **Per delivery**: verifies `X-Hub-Signature-256` over the exact bytes GitHub sent, then
//!   - **direct mode** (`EVENT_BUS_NAME` unset): accepts only `workflow_job` + `queued` whose
//!     labels match a runner configuration, and sends the upstream job message to that
//!     configuration's SQS queue(s) (`common::dispatch`, shared with the dispatcher);
//!   - **EventBridge mode** (`EVENT_BUS_NAME` set, upstream's default): publishes the delivery
//!     (event types in `ACCEPT_EVENTS`, all when empty) on the bus, `Source = github`,
//!     `DetailType` = the event, `Detail` = the raw body; a delivery over EventBridge's 256 KB
//!     entry limit is answered 400 and an `error.<event>` notice published instead.
//!
//!   Answers well within GitHub's 10 s deadline; never answers 2xx for a job that should have
//!   been queued (or an event that should have been published) and was not.
//! - **Environment**: `PARAMETER_GITHUB_APP_WEBHOOK_SECRET`, `PARAMETER_RUNNER_MATCHER_CONFIG_PATH`
//!   (`:`-joined chunks), `PARAMETER_RUNNER_MATCHER_VERSION`, `REPOSITORY_ALLOW_LIST`,
//!   `QUEUE_SELECTION_STRATEGY`, `EVENT_BUS_NAME`, `ACCEPT_EVENTS`, `ENVIRONMENT`, `LOG_LEVEL`,
//!   `POWERTOOLS_METRICS_NAMESPACE`.
//! - **IAM**: `ssm:GetParameters` on those parameters (and `kms:Decrypt`); `sqs:SendMessage` on
//!   the runner queues (direct) or `events:PutEvents` on the bus (EventBridge).
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
//! | EventBridge: event type not in `ACCEPT_EVENTS` | 202 |
//! | EventBridge: entry over 256 KB | 400 |
//! | EventBridge: PutEvents failed, refused the entry or timed out | 500 |
//! | EventBridge: published | 201 |

pub mod config;
pub mod event;

use common::config::FromEnv;
use std::sync::Arc;
use std::time::Duration;

use common::config::Secret;
use common::deadline::Deadline;
use common::dispatch::{Dispatch, DispatchError, JobRouting, RoutingError, dispatch};
use common::domain::webhook::{RunnerMatcherConfig, WorkflowJobEvent};
use common::error::AwsError;
use common::github::signature;
use common::ports::{EventBus, JobQueue, OutgoingEvent, ParameterStore};
use common::telemetry::Metrics;
use common::telemetry::metrics::{WEBHOOK_ACCEPTED, WEBHOOK_RECEIVED, WEBHOOK_REJECTED};

pub use config::Config;
pub use event::{HttpRequest, HttpResponse, parse_event};

/// EventBridge's limit for one entry; direct mode only logs larger deliveries (SQS takes 256 KiB
/// too, but the job message is small).
const EVENT_SIZE_LIMIT: usize = 256 * 1024;

/// What the webhook does with an accepted delivery.
pub enum Mode {
    /// Route `workflow_job` deliveries to the runner queues itself.
    Direct(JobRouting),
    /// Publish deliveries on the bus (`accept_events` of them, all when empty); the dispatcher
    /// routes them.
    EventBridge { bus: String, accept_events: Vec<String> },
}

/// What the webhook needs per delivery, loaded once per container.
pub struct Settings {
    pub secret: Secret<Vec<u8>>,
    pub mode: Mode,
}

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot read the webhook parameters: {0}")]
    Parameters(#[from] AwsError),
    #[error("{0}")]
    Invalid(String),
}

impl From<RoutingError> for InitError {
    fn from(e: RoutingError) -> Self {
        match e {
            RoutingError::Parameters(e) => InitError::Parameters(e),
            RoutingError::Invalid(e) => InitError::Invalid(e),
        }
    }
}

impl Settings {
    /// Reads the secret and, in direct mode, every matcher config chunk, with one
    /// GetParameters call.
    pub async fn load(config: &Config, store: &dyn ParameterStore) -> Result<Self, InitError> {
        let mut names = vec![config.webhook_secret_parameter.clone()];
        if config.event_bus.is_none() {
            names.extend(config.matcher_config_parameters.iter().cloned());
        }
        let values = store.get_parameters(&names).await?;
        let secret = values
            .get(&config.webhook_secret_parameter)
            .map(|s| s.expose().as_bytes().to_vec())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| InitError::Invalid("the webhook secret is empty".into()))?;
        let mode = match &config.event_bus {
            Some(bus) => Mode::EventBridge { bus: bus.clone(), accept_events: config.accept_events.clone() },
            None => Mode::Direct(JobRouting::from_values(
                &values,
                &config.matcher_config_parameters,
                config.repository_allow_list.clone(),
                config.queue_selection_strategy,
            )?),
        };
        Ok(Self { secret: Secret::new(secret), mode })
    }

    /// The runner configurations (direct mode; none in EventBridge mode, where the dispatcher
    /// has them).
    pub fn matchers(&self) -> &[RunnerMatcherConfig] {
        match &self.mode {
            Mode::Direct(routing) => &routing.matchers,
            Mode::EventBridge { .. } => &[],
        }
    }
}

/// The webhook handler.
pub struct Webhook {
    settings: Settings,
    queue: Arc<dyn JobQueue>,
    bus: Option<Arc<dyn EventBus>>,
    metrics: Metrics,
}

/// The result of one delivery, for the response, the log line and the metrics.
#[derive(Default)]
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
    /// An outcome about `job`, to be completed.
    fn about(job: &WorkflowJobEvent) -> Self {
        Self {
            status: 0,
            message: String::new(),
            rejected: None,
            action: Some(job.action.clone()),
            repository: Some(job.repository.full_name.clone()),
            job_id: Some(job.workflow_job.id),
            queues: Vec::new(),
            queue_ms: 0.0,
        }
    }

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
        Self { settings, queue, bus: None, metrics }
    }

    /// The bus client EventBridge mode publishes with.
    pub fn with_event_bus(mut self, bus: Arc<dyn EventBus>) -> Self {
        self.bus = Some(bus);
        self
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
        let event_type = request.header("x-github-event").unwrap_or("");
        match &self.settings.mode {
            Mode::Direct(routing) => self.route_directly(request, event_type, routing, deadline).await,
            Mode::EventBridge { bus, accept_events } => {
                self.publish(request, event_type, bus, accept_events, deadline).await
            }
        }
    }

    async fn route_directly(
        &self,
        request: &HttpRequest,
        event_type: &str,
        routing: &JobRouting,
        deadline: Deadline,
    ) -> Outcome {
        if request.body.len() > EVENT_SIZE_LIMIT {
            tracing::warn!(bytes = request.body.len(), "delivery body is larger than 256 KiB");
        }
        if event_type != "workflow_job" {
            let shown = if event_type.is_empty() { "(none)" } else { event_type };
            return Outcome::rejected(202, "unsupported_event", format!("Unsupported event type: {shown}"));
        }
        let job: WorkflowJobEvent = match serde_json::from_slice(&request.body) {
            Ok(job) => job,
            Err(e) => return Outcome::rejected(400, "malformed", format!("Malformed workflow_job payload: {e}")),
        };
        let mut outcome = Outcome::about(&job);
        let result = dispatch(&job, routing, &self.queue, deadline).await;
        let (status, message) = match &result {
            Ok(Dispatch::Unauthorized) => {
                (403, format!("Received event from unauthorized repository {}", job.repository.full_name))
            }
            Ok(Dispatch::NotQueued) => (201, "Workflow job not queued, not dispatching to queue.".into()),
            Ok(Dispatch::NoMatch) => (
                202,
                format!(
                    "Received event contains runner labels '{}' from '{}' that are not accepted.",
                    job.workflow_job.labels.join(","),
                    job.repository.full_name
                ),
            ),
            Ok(Dispatch::DynamicLabelsRefused(reasons)) => {
                tracing::warn!(reasons = ?reasons, "no runner configuration takes the job's dynamic labels");
                (
                    202,
                    format!(
                        "Received event contains dynamic labels from '{}' that no runner configuration accepts: {}",
                        job.repository.full_name,
                        reasons.join(" | ")
                    ),
                )
            }
            Ok(Dispatch::Queued { queues, queue_ms }) => {
                outcome.queues = queues.clone();
                outcome.queue_ms = *queue_ms;
                (
                    201,
                    format!(
                        "Successfully queued job for {} to the queue(s) {}",
                        job.repository.full_name,
                        queues.join(", ")
                    ),
                )
            }
            Err(DispatchError::Timeout) => (500, "Queueing the job timed out; redeliver this delivery.".into()),
            Err(e @ DispatchError::Queue { .. }) => {
                tracing::error!(error = %e, "sending the job to its runner queue failed");
                (500, "The job could not be queued; redeliver this delivery.".into())
            }
        };
        outcome.status = status;
        outcome.message = message;
        outcome.rejected = match result {
            Ok(Dispatch::Queued { .. }) => None,
            Ok(other) => Some(other.reason()),
            Err(_) => Some("queue_error"),
        };
        outcome
    }

    /// EventBridge mode (upstream `eventBridgeWebhook`): every accepted event type goes on the
    /// bus as `Source = github`, `DetailType` = the event header, `Detail` = the raw body; the
    /// dispatcher's rule picks the queued jobs. Never 2xx for an event that was not published.
    async fn publish(
        &self,
        request: &HttpRequest,
        event_type: &str,
        bus: &str,
        accept_events: &[String],
        deadline: Deadline,
    ) -> Outcome {
        if !accept_events.is_empty() && !accept_events.iter().any(|e| e == event_type) {
            let shown = if event_type.is_empty() { "(none)" } else { event_type };
            return Outcome::rejected(202, "unsupported_event", format!("Unsupported event type: {shown}"));
        }
        if event_type.is_empty() {
            return Outcome::rejected(400, "malformed", "The delivery has no X-GitHub-Event header");
        }
        let mut outcome = Outcome::default();
        if event_type == "workflow_job" {
            // Parsed for the log line only; the dispatcher validates it.
            match serde_json::from_slice::<WorkflowJobEvent>(&request.body) {
                Ok(job) => outcome = Outcome::about(&job),
                Err(e) => {
                    return Outcome::rejected(400, "malformed", format!("Malformed workflow_job payload: {e}"));
                }
            }
        }
        let Ok(detail) = std::str::from_utf8(&request.body) else {
            return Outcome::rejected(400, "malformed", "The delivery body is not UTF-8 JSON");
        };
        let Some(events) = &self.bus else {
            return Outcome::rejected(500, "publish_error", "No event bus client configured");
        };
        let event = OutgoingEvent { bus, source: "github", detail_type: event_type, detail };
        let publishing = std::time::Instant::now();
        if event.size() > EVENT_SIZE_LIMIT {
            // As upstream: an error event on the bus tells what was dropped, GitHub gets a 400.
            let error =
                serde_json::json!({"error": "Body size exceeded 256KB", "size": request.body.len()}).to_string();
            let detail_type = format!("error.{event_type}");
            let notice = OutgoingEvent { bus, source: "runners.webhook", detail_type: &detail_type, detail: &error };
            if let Err(e) = common::aws::within(deadline, "events:PutEvents", events.put_event(&notice)).await {
                tracing::warn!(error = %e, "publishing the oversized-body notice failed");
            }
            let mut rejected = Outcome::rejected(400, "body_too_large", "Body size exceeded 256KB");
            rejected.action = outcome.action;
            rejected.repository = outcome.repository;
            rejected.job_id = outcome.job_id;
            return rejected;
        }
        let result = common::aws::within(deadline, "events:PutEvents", events.put_event(&event)).await;
        outcome.queue_ms = publishing.elapsed().as_secs_f64() * 1000.0;
        outcome.queues = vec![bus.to_string()];
        match result {
            Ok(()) => {
                outcome.status = 201;
                outcome.message = "Event sent successfully to the EventBridge.".into();
            }
            Err(e) => {
                tracing::error!(error = %e, "publishing the delivery on the event bus failed");
                outcome.status = 500;
                outcome.rejected = Some("publish_error");
                outcome.message = "The event could not be published; redeliver this delivery.".into();
            }
        }
        outcome
    }
}

/// The webhook with real AWS clients, as Lambda runs it: its parameters loaded from SSM, jobs
/// sent to SQS. `run()` and the local runner (`crates/local`) both build it here.
pub async fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> Result<Webhook, InitError> {
    let store = common::aws::ssm::SsmParameterStore::new(sdk);
    let settings = Settings::load(config, &store).await?;
    let queue = Arc::new(common::aws::sqs::SqsJobQueue::new(sdk));
    let eventbridge = matches!(settings.mode, Mode::EventBridge { .. });
    let webhook = Webhook::new(settings, queue, metrics);
    Ok(if eventbridge {
        webhook.with_event_bus(Arc::new(common::aws::events::EventBridgeBus::new(sdk)))
    } else {
        webhook
    })
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
        event_bus = config.event_bus.as_deref().unwrap_or(""),
        accept_events = ?config.accept_events,
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
        configurations = webhook.settings.matchers().len(),
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
