//! The job-retry function (upstream `jobRetryCheck`, §1.8): a launched job whose runner never
//! took it goes back to its build queue.
//!
//! - **Trigger**: SQS `<prefix>-job-retry`, where scale-up sends each launched job's message
//!   with a delay (`JOB_RETRY_CONFIG`: `delayInSeconds × delayBackoff^retryCounter`, at most
//!   900 s, up to `maxAttempts` times), with `ReportBatchItemFailures`.
//! - **Per message**: the job's status from GitHub through the owner's installation. Still
//!   `queued` → the message goes back to the build queue (`JOB_QUEUE_SCALE_UP_URL`) with
//!   `retryCounter + 1` and the metric `RetryJob`; scale-up then checks the job again before
//!   launching (a job that started meanwhile gets no second runner). Started, finished or gone
//!   → done. A malformed message is acknowledged (it can never succeed).
//! - **Unknown is never "started"**: when GitHub cannot be asked, or the build queue refuses
//!   the message, the message goes back to the retry queue (a departure from upstream, which
//!   drops it) and is checked again after the queue's visibility timeout.
//! - **Environment**: `JOB_QUEUE_SCALE_UP_URL`, `ENABLE_ORGANIZATION_RUNNERS`,
//!   `ENABLE_METRIC_JOB_RETRY`, the App parameters, `GHES_URL`, `ENVIRONMENT`, ...
//! - **IAM**: `sqs:ReceiveMessage`/`DeleteMessage` on the retry queue, `sqs:SendMessage` on the
//!   build queue, `ssm:GetParameters` on the App parameters (and `kms:Decrypt`).

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use common::config::FromEnv;
use common::deadline::Deadline;
use common::domain::runner::RunnerOwner;
use common::domain::webhook::QueuedJobMessage;
use common::ports::{GithubApi, JobQueue};
use common::telemetry::Metrics;
use common::telemetry::metrics::RETRY_JOB;
use futures::StreamExt;

pub use config::Config;

/// Messages checked at once.
const CONCURRENCY: usize = 8;

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The job was still queued: back on the build queue with this `retryCounter`.
    Requeued { retry_counter: u32 },
    /// The job no longer waits (its status, or `not_found`): nothing to do.
    NotQueued { status: String },
    /// Not a job message: acknowledged.
    Malformed,
    /// GitHub or SQS failed: back to the retry queue.
    Retry { reason: &'static str, detail: String },
}

pub struct JobRetry {
    config: Config,
    github: Arc<dyn GithubApi>,
    queue: Arc<dyn JobQueue>,
    metrics: Metrics,
}

impl JobRetry {
    pub fn new(config: Config, github: Arc<dyn GithubApi>, queue: Arc<dyn JobQueue>, metrics: Metrics) -> Self {
        Self { config, github, queue, metrics }
    }

    /// Handles one SQS batch; the answer names the messages to check again.
    pub async fn handle(&self, event: &SqsEvent, deadline: Deadline) -> SqsBatchResponse {
        let app = self.github.choose_app();
        // Owned records: a stream over borrowed ones is not `Send` for every lifetime, which
        // a spawned task needs (the local runner).
        let outcomes: Vec<(String, Outcome)> = futures::stream::iter(event.records.clone())
            .map(|record| async move {
                let id = record.message_id.clone().unwrap_or_default();
                let outcome = match record.body.as_deref().map(serde_json::from_str::<QueuedJobMessage>) {
                    Some(Ok(message)) => self.check(app, message, deadline).await,
                    _ => Outcome::Malformed,
                };
                (id, outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        for (message_id, outcome) in outcomes {
            match &outcome {
                Outcome::Requeued { retry_counter } => {
                    tracing::info!(
                        message_id,
                        retry_counter,
                        outcome = "requeued",
                        "job still queued, sent back to the build queue"
                    );
                }
                Outcome::NotQueued { status } => {
                    tracing::info!(message_id, status, outcome = "not_queued", "job no longer queued, no retry");
                }
                Outcome::Malformed => {
                    tracing::error!(
                        message_id,
                        outcome = "malformed",
                        "not a job message: acknowledged, it can never succeed"
                    );
                }
                Outcome::Retry { reason, detail } => {
                    tracing::warn!(
                        message_id,
                        reason,
                        detail,
                        outcome = "retry",
                        "job state unknown, checked again later"
                    );
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = message_id.clone();
                    response.batch_item_failures.push(failure);
                }
            }
        }
        response
    }

    async fn check(&self, app: usize, mut message: QueuedJobMessage, deadline: Deadline) -> Outcome {
        let owner = if self.config.organization_runners {
            RunnerOwner::Org(message.repository_owner.clone())
        } else {
            RunnerOwner::Repo { owner: message.repository_owner.clone(), repo: message.repository_name.clone() }
        };
        let hint = (message.installation_id != 0).then_some(message.installation_id);
        let github = match self.github.for_owner(app, &owner, hint, deadline).await {
            Ok(g) => g,
            Err(e) => return Outcome::Retry { reason: "installation", detail: e.to_string() },
        };
        let status = match github.job_status(&message.repository_owner, &message.repository_name, message.id).await {
            Ok(status) => status,
            Err(e) => return Outcome::Retry { reason: "github", detail: e.to_string() },
        };
        match status.as_deref() {
            Some("queued") => {}
            Some(other) => return Outcome::NotQueued { status: other.to_string() },
            None => return Outcome::NotQueued { status: "not_found".into() },
        }
        let retry_counter = message.retry_counter.unwrap_or(0) + 1;
        message.retry_counter = Some(retry_counter);
        let body = serde_json::to_string(&message).unwrap_or_default();
        // A FIFO build queue deduplicates by group: a new id per retry, so that this message
        // is not taken for the original.
        let group = format!("{}-retry-{retry_counter}", message.id);
        let fifo = self.config.build_queue.ends_with(".fifo").then_some(group.as_str());
        let sent =
            common::aws::within(deadline, "sqs:SendMessage", self.queue.send(&self.config.build_queue, &body, fifo))
                .await;
        if let Err(e) = sent {
            return Outcome::Retry { reason: "sqs", detail: e.to_string() };
        }
        if self.config.retry_metric {
            let count = retry_counter.to_string();
            self.metrics.count(&RETRY_JOB, 1, &[("RetryCount", &count)]);
        }
        Outcome::Requeued { retry_counter }
    }
}

/// The function with real clients, as Lambda runs it.
pub async fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> Result<JobRetry, String> {
    let store = common::aws::ssm::SsmParameterStore::new(sdk);
    let apps = common::github::app::load_apps(&store, &config.apps).await.map_err(|e| e.to_string())?;
    let github = common::github::client::GithubClient::configured(&config.github, apps)?;
    Ok(JobRetry::new(config.clone(), Arc::new(github), Arc::new(common::aws::sqs::SqsJobQueue::new(sdk)), metrics))
}

/// Every message of the batch back to the retry queue (the function could not start).
pub fn retry_all(event: &SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in event.records.iter().filter_map(|r| r.message_id.clone()) {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// Starts the function: reads its configuration, then serves SQS batches.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let sdk = common::aws::load_sdk_config(Duration::from_secs(5), 3).await;
    let metrics = Metrics::stdout(&config.telemetry);
    // The App credentials are loaded on first use: a failure sends that batch back, not the
    // container down.
    let handler: tokio::sync::OnceCell<JobRetry> = tokio::sync::OnceCell::new();
    let build = || build(&config, &sdk, metrics.clone());
    let handler = &handler;
    let build = &build;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
        let deadline = common::lambda::deadline_of(&event.context);
        match handler.get_or_try_init(build).await {
            Ok(retry) => Ok::<_, lambda_runtime::Error>(retry.handle(&event.payload, deadline).await),
            Err(e) => {
                tracing::error!(error = %e, "cannot start job retry; every message comes back");
                Ok(retry_all(&event.payload))
            }
        }
    }))
    .await
}

#[cfg(test)]
mod tests;
