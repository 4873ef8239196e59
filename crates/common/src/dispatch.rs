//! A queued workflow job to its runner queues: the one implementation the direct-mode webhook
//! and the EventBridge dispatcher share (repository allow list, label matching, the job
//! message, the sends).

use std::sync::Arc;

use crate::deadline::Deadline;
use crate::domain::webhook::{
    QueueSelectionStrategy, QueuedJobMessage, RunnerMatcherConfig, Unrouted, WorkflowJobEvent, parse_matcher_config,
    repository_allowed, route_job,
};
use crate::error::AwsError;
use crate::ports::{JobQueue, ParameterStore};

/// What routing needs, loaded once per container.
#[derive(Debug, Clone)]
pub struct JobRouting {
    pub matchers: Vec<RunnerMatcherConfig>,
    /// `owner/repo` names allowed to use the runners; empty allows all.
    pub repository_allow_list: Vec<String>,
    pub strategy: QueueSelectionStrategy,
}

impl JobRouting {
    /// Reads the matcher configuration chunks (`PARAMETER_RUNNER_MATCHER_CONFIG_PATH`, in
    /// order) from SSM with one call.
    pub async fn load(
        store: &dyn ParameterStore,
        matcher_parameters: &[String],
        repository_allow_list: Vec<String>,
        strategy: QueueSelectionStrategy,
    ) -> Result<Self, RoutingError> {
        let values = store.get_parameters(matcher_parameters).await?;
        Self::from_values(&values, matcher_parameters, repository_allow_list, strategy)
    }

    /// From parameter values already read (the webhook reads its secret in the same call): the
    /// chunks named by `matcher_parameters`, concatenated in order.
    pub fn from_values(
        values: &std::collections::BTreeMap<String, crate::config::Secret<String>>,
        matcher_parameters: &[String],
        repository_allow_list: Vec<String>,
        strategy: QueueSelectionStrategy,
    ) -> Result<Self, RoutingError> {
        let chunks: Vec<&str> =
            matcher_parameters.iter().map(|n| values.get(n).map_or("", |v| v.expose().as_str())).collect();
        let matchers = parse_matcher_config(&chunks).map_err(RoutingError::Invalid)?;
        Ok(Self { matchers, repository_allow_list, strategy })
    }
}

/// Why routing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("cannot read the runner matcher config: {0}")]
    Parameters(#[from] AwsError),
    #[error("{0}")]
    Invalid(String),
}

/// What became of a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Dispatch {
    /// The repository is not in the allow list.
    Unauthorized,
    /// The action is not `queued`.
    NotQueued,
    /// No runner configuration accepts the job's labels.
    NoMatch,
    /// Runner configurations accept its labels, but none its dynamic (`ghr-`) labels: each
    /// one's reason.
    DynamicLabelsRefused(Vec<String>),
    /// Sent to these queues.
    Queued { queues: Vec<String>, queue_ms: f64 },
}

impl Dispatch {
    /// The reason label of metrics and log lines.
    pub fn reason(&self) -> &'static str {
        match self {
            Dispatch::Unauthorized => "unauthorized_repository",
            Dispatch::NotQueued => "not_queued",
            Dispatch::NoMatch => "no_matching_runner",
            Dispatch::DynamicLabelsRefused(_) => "dynamic_labels_refused",
            Dispatch::Queued { .. } => "queued",
        }
    }

    /// Why the runner configurations refused the job's dynamic labels (empty otherwise).
    pub fn refusals(&self) -> &[String] {
        match self {
            Dispatch::DynamicLabelsRefused(reasons) => reasons,
            _ => &[],
        }
    }
}

/// A job that should have been queued and was not: the caller makes its sender retry.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("sending the job to {queue} failed: {error}")]
    Queue { queue: String, error: AwsError },
    #[error("sending the job to its queues did not finish before the deadline")]
    Timeout,
}

/// Routes `job` and sends its message to the chosen queue(s), all at once.
pub async fn dispatch(
    job: &WorkflowJobEvent,
    routing: &JobRouting,
    queue: &Arc<dyn JobQueue>,
    deadline: Deadline,
) -> Result<Dispatch, DispatchError> {
    if !repository_allowed(&routing.repository_allow_list, &job.repository.full_name) {
        return Ok(Dispatch::Unauthorized);
    }
    if job.action != "queued" {
        return Ok(Dispatch::NotQueued);
    }
    let route = match route_job(&job.workflow_job.labels, &routing.matchers, routing.strategy, |n| fastrand::usize(..n))
    {
        Ok(route) => route,
        Err(Unrouted::NoMatch) => return Ok(Dispatch::NoMatch),
        Err(Unrouted::DynamicLabelsRefused(reasons)) => return Ok(Dispatch::DynamicLabelsRefused(reasons)),
    };
    let queues: Vec<String> = route.targets.iter().map(|t| t.id.clone()).collect();
    let sends = route.targets.iter().map(|target| {
        let message = QueuedJobMessage::for_job(job, &target.id, route.labels.clone());
        let body = serde_json::to_string(&message).unwrap_or_default();
        let group = target.fifo.then(|| job.workflow_job.id.to_string());
        let queue = queue.clone();
        let url = target.id.clone();
        async move {
            queue.send(&url, &body, group.as_deref()).await.map_err(|error| DispatchError::Queue { queue: url, error })
        }
    });
    let sending = std::time::Instant::now();
    let results = tokio::time::timeout(deadline.remaining(), futures::future::join_all(sends))
        .await
        .map_err(|_| DispatchError::Timeout)?;
    if let Some(e) = results.into_iter().find_map(Result::err) {
        return Err(e);
    }
    Ok(Dispatch::Queued { queues, queue_ms: sending.elapsed().as_secs_f64() * 1000.0 })
}
