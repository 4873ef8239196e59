//! The termination watcher (upstream `termination-watcher`): spot interruption and termination
//! metrics, and the runners of terminating instances deregistered from GitHub.
//!
//! One binary; Terraform deploys it as three functions, told apart by what invokes them:
//! - `<prefix>-spot-termination-notification`: the rules `<prefix>-spot-notify` (spot
//!   interruption warning) and, with deregistration, `<prefix>-instance-termination` (state
//!   change to `shutting-down`, whatever the cause);
//! - `<prefix>-spot-termination-handler`: the rule `<prefix>-spot-termination` (CloudTrail
//!   `BidEvictedEvent`, the reclaim itself);
//! - `<prefix>-deregister-retry`: the SQS queue `<prefix>-deregister-retry`.
//!
//! Per event: the instances are described (events carry no tags) and those matching
//! `TAG_FILTERS` are logged with their type, launch time and running time, counted
//! (`SpotInterruptionWarning` / `SpotTermination` by instance type, when enabled), and, with
//! `ENABLE_RUNNER_DEREGISTRATION`, their runner is deleted from GitHub: the runner id from the
//! `ghr:github_runner_id` tag, else the runner whose name contains the instance id. GitHub
//! refuses (422) while the runner still runs a job; the deregistration then waits on the retry
//! queue (its delivery delay, 5 minutes) and is tried again, up to [`MAX_RETRIES`] times.
//!
//! Departures from upstream: an error reading EC2 or sending to the retry queue fails the
//! invocation (EventBridge's asynchronous retries try again) instead of being logged and
//! dropped; every configured App can deregister (upstream: the primary one); a busy runner is
//! not retried for ever.
//!
//! **Job rescue** (beyond upstream, `JOB_RESCUE_CONFIG`): a spot warning for an instance whose
//! job markers say a job runs (and whose job-started hook tagged its run, `ghr:job_run`) puts a
//! rescue on the retry queue. After the queue's delay the run's latest attempt is read: the job
//! still running → looked at again later (up to [`MAX_RESCUE_CHECKS`] times); failed or
//! cancelled within `maxAttempts` → re-run (`POST .../actions/jobs/{id}/rerun`), and the re-run
//! job's message sent at once, with `capacityType: on-demand`, to the configuration's build queue
//! (or its fallback's): its runner is not another spot instance. The webhook's own delivery of
//! the re-run job then finds that instance (`ghr:launched_for_job`) and launches nothing.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use common::config::FromEnv;
use common::deadline::Deadline;
use common::domain::runner::{RunnerInstance, RunnerOwner, tags};
use common::domain::scale_down::job_in_flight;
use common::domain::termination::{
    DeregisterRetry, JobRescue, NoticeKind, RescueStep, RetryMessage, WatchedInstance, job_run, matches_tag_filters,
    parse_event, rerun_of, rescue_step,
};
use common::domain::webhook::QueuedJobMessage;
use common::error::{AwsError, GithubError};
use common::ports::{DelayedQueue, GithubApi, JobQueue, RunnerRemoval, WatchedInstances};
use common::telemetry::Metrics;
use common::telemetry::metrics::{
    JOBS_NOT_RESCUED, JOBS_RESCUED, SPOT_INTERRUPTION_WARNING, SPOT_TERMINATION, TERMINATED_RUNNERS_BUSY,
    TERMINATED_RUNNERS_DEREGISTERED, TERMINATED_RUNNERS_NOT_DEREGISTERED,
};
use serde_json::{Value, json};

pub use config::Config;

/// Retries of a deregistration GitHub keeps refusing (busy): with the queue's 5-minute delay,
/// an hour. A job on an instance that is gone fails well before; GitHub then lets it go.
pub const MAX_RETRIES: u32 = 12;
/// Looks at a rescued job still running, one queue delay (5 minutes) apart: a job outlives its
/// reclaimed instance only until GitHub notices the runner is gone.
pub const MAX_RESCUE_CHECKS: u32 = 6;
/// Kept for the answer and the log lines.
const ANSWER_RESERVE: Duration = Duration::from_secs(2);

/// What deregistering one instance's runner did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deregistration {
    Deregistered {
        runner_id: u64,
    },
    /// GitHub lists no runner for the instance (never registered, or already removed).
    NoRunner,
    /// GitHub refused: the runner still runs a job.
    Busy {
        runner_id: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot describe the instances: {0}")]
    Ec2(#[from] AwsError),
    #[error("cannot send the deregistration retry: {0}")]
    Queue(AwsError),
}

/// The queues the watcher sends to: the retry queue, and (job rescue) build queues, whose
/// messages must not wait for their queue's delay.
pub trait Queues: JobQueue + DelayedQueue {}
impl<T: JobQueue + DelayedQueue> Queues for T {}

pub struct Watcher {
    config: Config,
    ec2: Arc<dyn WatchedInstances>,
    /// Present with deregistration or job rescue.
    github: Option<Arc<dyn GithubApi>>,
    queue: Arc<dyn Queues>,
    metrics: Metrics,
}

impl Watcher {
    pub fn new(
        config: Config,
        ec2: Arc<dyn WatchedInstances>,
        github: Option<Arc<dyn GithubApi>>,
        queue: Arc<dyn Queues>,
        metrics: Metrics,
    ) -> Self {
        Self { config, ec2, github, queue, metrics }
    }

    /// One EventBridge event. Fails (for EventBridge to invoke again) only when EC2 cannot be
    /// read or a busy runner's retry cannot be queued.
    pub async fn on_event(&self, event: &Value, deadline: Deadline) -> Result<Value, WatchError> {
        let Some(notice) = parse_event(event) else {
            tracing::warn!(detail_type = ?event.get("detail-type"), "not an event the termination watcher handles: ignored");
            return Ok(json!({"ignored": true}));
        };
        let work = deadline.less(ANSWER_RESERVE);
        let found = common::aws::with_retries(work, &[], || self.ec2.describe(&notice.instance_ids)).await?;
        let mut answer = json!({"kind": format!("{:?}", notice.kind), "watched": [], "notOurs": [], "rescue": [], "deregistered": [], "busy": [], "noRunner": [], "failed": []});
        for id in notice.instance_ids.iter().filter(|id| !found.iter().any(|w| &w.instance.id == *id)) {
            tracing::info!(instance = %id, "instance unknown to EC2: not ours to watch");
            push(&mut answer, "notOurs", id);
        }
        for watched in &found {
            let instance = &watched.instance;
            if !matches_tag_filters(&instance.tags, &self.config.tag_filters) {
                tracing::debug!(instance = %instance.id, "instance outside the tag filters: ignored");
                push(&mut answer, "notOurs", &instance.id);
                continue;
            }
            push(&mut answer, "watched", &instance.id);
            self.log_and_count(watched, notice.kind, notice.time);
            if notice.kind == NoticeKind::SpotInterruptionWarning && self.rescue_later(instance, work).await? {
                push(&mut answer, "rescue", &instance.id);
            }
            if !self.config.deregistration {
                continue;
            }
            let Some(owner) = instance.owner() else {
                tracing::warn!(instance = %instance.id, "no ghr:Owner/ghr:Type tags: its runner cannot be found");
                push(&mut answer, "noRunner", &instance.id);
                continue;
            };
            let hint = instance.github_runner_id().unwrap_or(0);
            match self.deregister(&owner, &instance.id, hint, work).await {
                Ok(Deregistration::Deregistered { .. }) => push(&mut answer, "deregistered", &instance.id),
                Ok(Deregistration::NoRunner) => push(&mut answer, "noRunner", &instance.id),
                Ok(Deregistration::Busy { runner_id }) => {
                    let retry = DeregisterRetry {
                        instance_id: instance.id.clone(),
                        owner: owner.tag_value(),
                        runner_type: owner.runner_type().as_str().to_string(),
                        runner_id,
                        retry_count: 0,
                    };
                    self.retry_later(&retry, work).await?;
                    push(&mut answer, "busy", &instance.id);
                }
                Err(e) => {
                    // The instance is going away: this event will not come again, and
                    // scale-down removes the offline runner (a ghost) on one of its runs.
                    tracing::error!(instance = %instance.id, owner = %owner, error = %e, "deregistering the runner failed; scale-down removes it as a ghost");
                    self.metrics.count(&TERMINATED_RUNNERS_NOT_DEREGISTERED, 1, &[]);
                    push(&mut answer, "failed", &instance.id);
                }
            }
        }
        Ok(answer)
    }

    fn log_and_count(&self, watched: &WatchedInstance, kind: NoticeKind, time: Option<chrono::DateTime<chrono::Utc>>) {
        let instance = &watched.instance;
        let instance_type = watched.instance_type.as_deref().unwrap_or("unknown");
        let running_seconds = match (time, instance.launch_time) {
            (Some(t), Some(launched)) => Some((t - launched).num_seconds()),
            _ => None,
        };
        tracing::info!(
            instance = %instance.id,
            kind = ?kind,
            instance_type,
            name = instance.tag("Name").unwrap_or(""),
            environment = instance.tag(tags::ENVIRONMENT).unwrap_or(""),
            state = %instance.state,
            launch_time = ?instance.launch_time,
            running_seconds = ?running_seconds,
            tags = ?instance.tags,
            "runner instance terminating"
        );
        let metric = match kind {
            NoticeKind::SpotInterruptionWarning if self.config.spot_warning_metric => Some(&SPOT_INTERRUPTION_WARNING),
            NoticeKind::SpotTermination if self.config.spot_termination_metric => Some(&SPOT_TERMINATION),
            _ => None,
        };
        if let Some(metric) = metric {
            self.metrics.count(metric, 1, &[("InstanceType", instance_type)]);
        }
    }

    /// Deletes the instance's runner: by the id when known (and still listed), else the runner
    /// whose name contains the instance id.
    pub async fn deregister(
        &self,
        owner: &RunnerOwner,
        instance_id: &str,
        runner_id: u64,
        deadline: Deadline,
    ) -> Result<Deregistration, GithubError> {
        let Some(github) = &self.github else { return Ok(Deregistration::NoRunner) };
        let app = github.choose_app();
        let installation = github.for_owner(app, owner, None, deadline).await?;
        let runner_id = match runner_id {
            0 => match installation.list_runners().await?.into_iter().find(|r| r.name.contains(instance_id)) {
                Some(r) => r.id,
                None => return Ok(Deregistration::NoRunner),
            },
            id => id,
        };
        match installation.delete_runner(runner_id).await? {
            RunnerRemoval::Deleted => {
                tracing::info!(instance = %instance_id, owner = %owner, runner_id, "runner deregistered");
                self.metrics.count(&TERMINATED_RUNNERS_DEREGISTERED, 1, &[]);
                Ok(Deregistration::Deregistered { runner_id })
            }
            RunnerRemoval::NotFound => Ok(Deregistration::NoRunner),
            RunnerRemoval::Busy => Ok(Deregistration::Busy { runner_id }),
        }
    }

    async fn retry_later(&self, retry: &DeregisterRetry, deadline: Deadline) -> Result<(), WatchError> {
        let Some(url) = &self.config.retry_queue_url else {
            tracing::warn!(instance = %retry.instance_id, "the runner is busy and no retry queue is configured: scale-down removes it once offline");
            self.metrics.count(&TERMINATED_RUNNERS_NOT_DEREGISTERED, 1, &[]);
            return Ok(());
        };
        let body = serde_json::to_string(retry).unwrap_or_default();
        common::aws::with_retries(deadline, &[], || self.queue.send(url, &body, None))
            .await
            .map_err(WatchError::Queue)?;
        tracing::info!(instance = %retry.instance_id, retry = retry.retry_count, "the runner is still running a job: deregistration tried again later");
        self.metrics.count(&TERMINATED_RUNNERS_BUSY, 1, &[]);
        Ok(())
    }

    /// A batch of the retry queue. A message whose deregistration failed is reported back
    /// (SQS tries it again, then the dead-letter queue keeps it).
    pub async fn on_retries(&self, event: &SqsEvent, deadline: Deadline) -> SqsBatchResponse {
        let work = deadline.less(ANSWER_RESERVE);
        let mut response = SqsBatchResponse::default();
        for record in &event.records {
            let id = record.message_id.clone().unwrap_or_default();
            let done = match record.body.as_deref().and_then(|b| serde_json::from_str::<RetryMessage>(b).ok()) {
                Some(RetryMessage::Rescue(rescue)) => self.rescue_once(&rescue, work).await,
                Some(RetryMessage::Deregister(retry)) => self.retry_once(&retry, work).await,
                None => {
                    tracing::error!(message = %id, "not a deregistration retry nor a job rescue message: dropped");
                    self.metrics.count(&TERMINATED_RUNNERS_NOT_DEREGISTERED, 1, &[]);
                    continue;
                }
            };
            if !done {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Job rescue: a spot warning for an instance running a job puts a rescue on the retry
    /// queue. Whether it did; an error only when the queue cannot take it.
    async fn rescue_later(&self, instance: &RunnerInstance, deadline: Deadline) -> Result<bool, WatchError> {
        let Some(rescue) = &self.config.job_rescue else { return Ok(false) };
        if !job_in_flight(instance, chrono::Utc::now()) {
            return Ok(false);
        }
        let not_rescued = |reason: &str, why: &str| {
            tracing::warn!(instance = %instance.id, reason, "a job runs on the interrupted instance but cannot be rescued: {why}");
            self.metrics.count(&JOBS_NOT_RESCUED, 1, &[("Reason", reason)]);
            Ok(false)
        };
        let Some((repository_owner, repository_name, run_id)) = job_run(instance) else {
            return not_rescued("no_job_run", "no ghr:job_run tag (a runner image without this job-started hook)");
        };
        let environment = instance.tag(tags::ENVIRONMENT).unwrap_or_default();
        let Some(queue_url) = rescue.queues.get(environment) else {
            return not_rescued("no_queue", "JOB_RESCUE_CONFIG names no build queue for its environment");
        };
        let (Some(owner), Some(url)) = (instance.owner(), &self.config.retry_queue_url) else {
            return not_rescued("no_owner", "no ghr:Owner/ghr:Type tags, or no retry queue");
        };
        let message = JobRescue {
            instance_id: instance.id.clone(),
            owner: owner.tag_value(),
            runner_type: owner.runner_type().as_str().to_string(),
            repository_owner,
            repository_name,
            run_id,
            queue_url: queue_url.clone(),
            checks: 0,
        };
        let body = serde_json::to_string(&message).unwrap_or_default();
        common::aws::with_retries(deadline, &[], || self.queue.send(url, &body, None))
            .await
            .map_err(WatchError::Queue)?;
        tracing::info!(instance = %instance.id, run_id, repository = %format!("{}/{}", message.repository_owner, message.repository_name), "a job runs on the interrupted spot instance: its rescue waits on the retry queue");
        Ok(true)
    }

    /// One look at a rescued job's run. Whether the message is done with (re-run, nothing to
    /// do, given up, or queued again); a GitHub error that may pass hands it back to SQS.
    async fn rescue_once(&self, rescue: &JobRescue, deadline: Deadline) -> bool {
        let not_rescued = |reason: &str| {
            self.metrics.count(&JOBS_NOT_RESCUED, 1, &[("Reason", reason)]);
            true
        };
        let (Some(github), Some(config)) = (&self.github, &self.config.job_rescue) else {
            tracing::error!(instance = %rescue.instance_id, "a job rescue message, but job rescue is not configured: dropped");
            return not_rescued("not_configured");
        };
        let Some(owner) = RunnerOwner::from_tags(&rescue.runner_type, &rescue.owner) else {
            tracing::error!(instance = %rescue.instance_id, owner = %rescue.owner, "unknown owner in a rescue message: dropped");
            return not_rescued("no_owner");
        };
        let (repo_owner, repo, run_id) = (&rescue.repository_owner, &rescue.repository_name, rescue.run_id);
        let app = github.choose_app();
        let installation = match github.for_owner(app, &owner, None, deadline).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(instance = %rescue.instance_id, owner = %owner, error = %e, "cannot reach the owner's installation: the rescue is tried again");
                return false;
            }
        };
        let jobs = match installation.run_jobs(repo_owner, repo, run_id).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(instance = %rescue.instance_id, run_id, error = %e, "cannot read the run's jobs: the rescue is tried again");
                return false;
            }
        };
        match rescue_step(&jobs, &rescue.instance_id, config.max_attempts) {
            RescueStep::Wait if rescue.checks + 1 >= MAX_RESCUE_CHECKS => {
                tracing::error!(instance = %rescue.instance_id, run_id, checks = rescue.checks + 1, "the interrupted job still runs: rescue given up");
                not_rescued("still_running")
            }
            RescueStep::Wait => {
                let next = JobRescue { checks: rescue.checks + 1, ..rescue.clone() };
                let (Some(url), Ok(body)) = (&self.config.retry_queue_url, serde_json::to_string(&next)) else {
                    return not_rescued("no_retry_queue");
                };
                tracing::info!(instance = %rescue.instance_id, run_id, checks = next.checks, "the interrupted job has not ended yet: looked at again later");
                match self.queue.send(url, &body, None).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(instance = %rescue.instance_id, error = %e, "cannot queue the next look: this one is tried again");
                        false
                    }
                }
            }
            RescueStep::Done(reason) => {
                tracing::info!(instance = %rescue.instance_id, run_id, reason, "no job to rescue");
                if reason == "attempts_exhausted" { not_rescued(reason) } else { true }
            }
            RescueStep::Rerun { job_id, name, run_attempt } => {
                if let Err(e) = installation.rerun_job(repo_owner, repo, job_id).await {
                    use common::error::Retryable;
                    tracing::warn!(instance = %rescue.instance_id, job_id, error = %e, retryable = e.is_retryable(), "re-running the interrupted job failed (the App needs Actions: write)");
                    return if e.is_retryable() { false } else { not_rescued("rerun_refused") };
                }
                self.metrics.count(&JOBS_RESCUED, 1, &[]);
                // The re-run is requested: whatever happens next, this message is done (a
                // second re-run is never asked for). Its runner: on-demand, if we can say so
                // before the webhook's delivery of the re-run job launches one.
                let rerun = installation.run_jobs(repo_owner, repo, run_id).await.ok();
                match rerun.as_deref().and_then(|jobs| rerun_of(jobs, &name, run_attempt)) {
                    Some(job) => self.launch_on_demand(rescue, &owner, job, deadline).await,
                    None => {
                        tracing::warn!(instance = %rescue.instance_id, job_id, "the re-run job is not listed yet: the webhook's delivery of it launches its runner")
                    }
                }
                tracing::info!(instance = %rescue.instance_id, run_id, job_id, "the interrupted job was re-run");
                true
            }
        }
    }

    /// Sends the re-run job's message, on-demand, to the rescue's build queue, without the
    /// queue's delay (standard queues), so that it is handled before the webhook's delivery.
    async fn launch_on_demand(
        &self,
        rescue: &JobRescue,
        owner: &RunnerOwner,
        job: &common::domain::termination::RunJob,
        deadline: Deadline,
    ) {
        let message = QueuedJobMessage {
            id: job.id,
            repository_name: rescue.repository_name.clone(),
            repository_owner: rescue.repository_owner.clone(),
            event_type: "workflow_job".into(),
            installation_id: 0,
            queue_id: rescue.queue_url.clone(),
            repo_owner_type: match owner {
                RunnerOwner::Org(_) => "Organization".into(),
                RunnerOwner::Repo { .. } => "User".into(),
            },
            labels: job.labels.clone(),
            retry_counter: None,
            capacity_type: Some("on-demand".into()),
        };
        let body = serde_json::to_string(&message).unwrap_or_default();
        let url = &rescue.queue_url;
        let group = job.id.to_string();
        let sent = if url.ends_with(".fifo") {
            common::aws::with_retries(deadline, &[], || self.queue.send(url, &body, Some(&group))).await
        } else {
            common::aws::with_retries(deadline, &[], || self.queue.send_delayed(url, &body, 0)).await
        };
        match sent {
            Ok(()) => tracing::info!(job_id = job.id, queue = %url, "the re-run job goes to an on-demand runner"),
            Err(e) => {
                tracing::warn!(job_id = job.id, error = %e, "cannot queue the re-run job: the webhook's delivery of it launches its runner")
            }
        }
    }

    /// Whether the message is done with (deregistered, gone, given up or queued again).
    async fn retry_once(&self, retry: &DeregisterRetry, deadline: Deadline) -> bool {
        let Some(owner) = RunnerOwner::from_tags(&retry.runner_type, &retry.owner) else {
            tracing::error!(instance = %retry.instance_id, owner = %retry.owner, "unknown owner in a retry message: dropped");
            self.metrics.count(&TERMINATED_RUNNERS_NOT_DEREGISTERED, 1, &[]);
            return true;
        };
        match self.deregister(&owner, &retry.instance_id, retry.runner_id, deadline).await {
            Ok(Deregistration::Deregistered { .. } | Deregistration::NoRunner) => true,
            Ok(Deregistration::Busy { runner_id }) if retry.retry_count + 1 >= MAX_RETRIES => {
                tracing::error!(instance = %retry.instance_id, owner = %owner, runner_id, retries = retry.retry_count + 1, "the runner of a terminated instance stays busy: given up, scale-down removes it once offline");
                self.metrics.count(&TERMINATED_RUNNERS_NOT_DEREGISTERED, 1, &[]);
                true
            }
            Ok(Deregistration::Busy { runner_id }) => {
                let next = DeregisterRetry { runner_id, retry_count: retry.retry_count + 1, ..retry.clone() };
                match self.retry_later(&next, deadline).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(instance = %retry.instance_id, error = %e, "cannot queue the next retry: this one is tried again");
                        false
                    }
                }
            }
            Err(e) => {
                tracing::warn!(instance = %retry.instance_id, owner = %owner, error = %e, "deregistration failed: tried again");
                false
            }
        }
    }
}

fn push(answer: &mut Value, key: &str, id: &str) {
    if let Some(list) = answer.get_mut(key).and_then(Value::as_array_mut) {
        list.push(Value::String(id.to_string()));
    }
}

/// The watcher with real clients, as Lambda runs it.
pub async fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> Result<Watcher, String> {
    let github: Option<Arc<dyn GithubApi>> = match &config.apps {
        Some(names) if config.deregistration || config.job_rescue.is_some() => {
            let store = common::aws::ssm::SsmParameterStore::new(sdk);
            let apps = common::github::app::load_apps(&store, names).await.map_err(|e| e.to_string())?;
            Some(Arc::new(common::github::client::GithubClient::configured(&config.github, apps)?))
        }
        _ => None,
    };
    Ok(Watcher::new(
        config.clone(),
        Arc::new(common::aws::ec2::Ec2RunnerInstances::without_retries(sdk)),
        github,
        Arc::new(common::aws::sqs::SqsJobQueue::new(sdk)),
        metrics,
    ))
}

/// Starts the function: reads its configuration, then serves EventBridge events and retry
/// queue batches (told apart by their shape).
pub async fn run() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let sdk = common::aws::load_sdk_config(Duration::from_secs(5), 1).await;
    let metrics = Metrics::stdout(&config.telemetry);
    // Built on the first event: the App keys are read then, and a failure is retried by the
    // next invocation instead of failing the container.
    let watcher: tokio::sync::OnceCell<Watcher> = tokio::sync::OnceCell::new();
    let build = || build(&config, &sdk, metrics.clone());
    let (watcher, build) = (&watcher, &build);
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<Value>| async move {
        let deadline = common::lambda::deadline_of(&event.context);
        let watcher =
            watcher.get_or_try_init(build).await.inspect_err(|e| tracing::error!(error = %e, "cannot reach GitHub"))?;
        if event.payload.get("Records").is_some() {
            let batch: SqsEvent = serde_json::from_value(event.payload)?;
            let response = watcher.on_retries(&batch, deadline).await;
            return Ok::<_, lambda_runtime::Error>(serde_json::to_value(response)?);
        }
        let answer = watcher
            .on_event(&event.payload, deadline)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "event not handled"))?;
        Ok(answer)
    }))
    .await
}

#[cfg(test)]
mod tests;
