//! The dispatcher function (EventBridge mode): `workflow_job` events from the runners' bus to
//! the runner queues.
//!
//! - **Trigger**: the EventBridge rule `<prefix>-workflow_job` on the bus `<prefix>-runners`
//!   (`detail-type` `workflow_job`, `detail.action` `queued`), which the webhook publishes every
//!   accepted delivery to. Invoked asynchronously: a failed invocation is retried by EventBridge
//!   (the rule's retry policy) and then lands in the rule's dead-letter queue.
//! - **Reads at cold start**: the runner matcher config from SSM (one GetParameters call).
//! - **Per event**: the repository allow list, label matching and the job message, by the same
//!   code as the direct-mode webhook (`common::dispatch`), then the sends to the chosen
//!   queue(s) (`QUEUE_SELECTION_STRATEGY`; a queue of another region is sent to in its region).
//!   A job that does not qualify (repository not allowed, not queued, no runner configuration
//!   for its labels) is logged and counted, and the event is done: retrying cannot change it.
//!   A send failure fails the invocation, so that the event is retried: nothing is dropped.
//!   An event that is not a `workflow_job` (a misconfigured rule) or whose detail is not a
//!   workflow job fails too, so that it ends in the dead-letter queue where it can be seen.
//! - **Environment**: `PARAMETER_RUNNER_MATCHER_CONFIG_PATH`, `REPOSITORY_ALLOW_LIST`,
//!   `QUEUE_SELECTION_STRATEGY`, `ENVIRONMENT`, `LOG_LEVEL`, `POWERTOOLS_METRICS_NAMESPACE`.
//! - **IAM**: `ssm:GetParameters` on the matcher parameters (and `kms:Decrypt`),
//!   `sqs:SendMessage` on the runner queues.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use common::config::FromEnv;
use common::deadline::Deadline;
use common::dispatch::{Dispatch, DispatchError, JobRouting, RoutingError, dispatch};
use common::domain::webhook::WorkflowJobEvent;
use common::ports::JobQueue;
use common::telemetry::Metrics;
use common::telemetry::metrics::{JOBS_DISPATCHED, JOBS_NOT_DISPATCHED};

pub use config::Config;

/// Why an event was not handled; the invocation fails and EventBridge retries it.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    #[error("the event's detail-type is `{0}`, not `workflow_job`: check the rule's pattern")]
    NotWorkflowJob(String),
    #[error("the event's detail is not a workflow_job payload: {0}")]
    Malformed(String),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

pub struct Dispatcher {
    routing: JobRouting,
    queue: Arc<dyn JobQueue>,
    metrics: Metrics,
}

impl Dispatcher {
    pub fn new(routing: JobRouting, queue: Arc<dyn JobQueue>, metrics: Metrics) -> Self {
        Self { routing, queue, metrics }
    }

    pub fn routing(&self) -> &JobRouting {
        &self.routing
    }

    /// Handles one EventBridge event (the envelope with `detail-type` and `detail`).
    pub async fn handle(
        &self,
        event: &serde_json::Value,
        deadline: Deadline,
    ) -> Result<serde_json::Value, DispatcherError> {
        let event_id = event.get("id").and_then(|v| v.as_str()).unwrap_or("");
        let result = self.decide(event, deadline).await;
        match &result {
            Ok((job, Dispatch::Queued { queues, queue_ms })) => {
                self.metrics.count(&JOBS_DISPATCHED, 1, &[]);
                tracing::info!(event_id, repository = %job.repository.full_name, job_id = job.workflow_job.id, queues = ?queues, queue_ms, decision = "queued", "job dispatched");
            }
            Ok((job, other)) => {
                self.metrics.count(&JOBS_NOT_DISPATCHED, 1, &[("Reason", other.reason())]);
                tracing::warn!(event_id, repository = %job.repository.full_name, job_id = job.workflow_job.id, labels = ?job.workflow_job.labels, decision = other.reason(), refusals = ?other.refusals(), "job not dispatched");
            }
            Err(e) => {
                let reason = match e {
                    DispatcherError::NotWorkflowJob(_) => "not_workflow_job",
                    DispatcherError::Malformed(_) => "malformed",
                    DispatcherError::Dispatch(_) => "queue_error",
                };
                self.metrics.count(&JOBS_NOT_DISPATCHED, 1, &[("Reason", reason)]);
                tracing::error!(event_id, error = %e, decision = reason, "event not dispatched; EventBridge retries it");
            }
        }
        let (job, dispatch) = result?;
        Ok(serde_json::json!({
            "jobId": job.workflow_job.id,
            "decision": dispatch.reason(),
            "queues": match dispatch { Dispatch::Queued { queues, .. } => queues, _ => Vec::new() },
        }))
    }

    async fn decide(
        &self,
        event: &serde_json::Value,
        deadline: Deadline,
    ) -> Result<(WorkflowJobEvent, Dispatch), DispatcherError> {
        let detail_type = event.get("detail-type").and_then(|v| v.as_str()).unwrap_or("");
        if detail_type != "workflow_job" {
            return Err(DispatcherError::NotWorkflowJob(detail_type.to_string()));
        }
        let detail = event.get("detail").cloned().unwrap_or_default();
        let job: WorkflowJobEvent =
            serde_json::from_value(detail).map_err(|e| DispatcherError::Malformed(e.to_string()))?;
        let dispatch = dispatch(&job, &self.routing, &self.queue, deadline).await?;
        Ok((job, dispatch))
    }
}

/// The dispatcher with real AWS clients, as Lambda runs it: the matcher config read from SSM,
/// jobs sent to SQS.
pub async fn build(
    config: &Config,
    sdk: &common::aws::SdkConfig,
    metrics: Metrics,
) -> Result<Dispatcher, RoutingError> {
    let store = common::aws::ssm::SsmParameterStore::new(sdk);
    let routing = JobRouting::load(
        &store,
        &config.matcher_config_parameters,
        config.repository_allow_list.clone(),
        config.queue_selection_strategy,
    )
    .await?;
    Ok(Dispatcher::new(routing, Arc::new(common::aws::sqs::SqsJobQueue::new(sdk)), metrics))
}

/// Starts the function: reads its configuration and the matcher config, then serves events.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let sdk = common::aws::load_sdk_config(Duration::from_secs(3), 3).await;
    let sdk_ready = started.elapsed();
    let dispatcher = build(&config, &sdk, Metrics::stdout(&config.telemetry))
        .await
        .inspect_err(|e| tracing::error!(error = %e, "loading the matcher config"))?;
    tracing::info!(
        configurations = dispatcher.routing.matchers.len(),
        strategy = ?config.queue_selection_strategy,
        allow_list = ?config.repository_allow_list,
        sdk_ms = sdk_ready.as_secs_f64() * 1000.0,
        parameters_ms = (started.elapsed() - sdk_ready).as_secs_f64() * 1000.0,
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "dispatcher ready"
    );
    let dispatcher = &dispatcher;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let deadline = common::lambda::deadline_of(&event.context);
            dispatcher.handle(&event.payload, deadline).await.map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}

#[cfg(test)]
mod tests;
