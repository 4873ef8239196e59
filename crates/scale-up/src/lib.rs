//! The scale-up function: queued jobs in, EC2 instances with registered runners out.
//!
//! - **Trigger**: SQS (the runner configuration's build queue), batches of up to 10, with
//!   `ReportBatchItemFailures`.
//! - **Per batch**: messages are grouped by owner (organization, or `owner/repo`). For each
//!   owner: one installation token (cached across invocations), the optional job-queued check,
//!   the maximum runner count, **one** `CreateFleet` per dynamic label set, most batches having
//!   one (spot, with on-demand failover for the configured error codes; a set's `ghr-ec2-*`
//!   labels as fleet overrides), a JIT config (or `config.sh` arguments with a registration
//!   token) per instance, with the job's `ghr-` labels, stored as SecureString
//!   `<SSM_TOKEN_PATH>/<instance-id>`.
//! - **Answer**: `batchItemFailures` names exactly the messages whose runner was not created and
//!   that should come back (decisions.md #13). A message is acknowledged without a runner only
//!   for a reason that needs none: malformed, duplicate in the batch, an instance already
//!   launched for the job (`ghr:launched_for_job`: a redelivered or twice-delivered event),
//!   dynamic labels that can never launch (malformed, or a request EC2 refuses),
//!   job no longer queued, user-owned repository with organization runners, over the maximum
//!   for reusable runners (an existing runner will take it). Every message gets one log line
//!   saying which.
//! - **The maximum under concurrency**: after launching, an invocation lists the owner's
//!   instances again (waiting until EC2 lists its own), ranks them (`beyond_maximum`), and
//!   terminates its own instances ranked beyond `RUNNERS_MAXIMUM_COUNT` before any of them is
//!   registered; their jobs go back to SQS. The count settles at or below the maximum; it can
//!   exceed it only for the seconds between a launch and that recount (see ARCHITECTURE.md).
//!   Each `CreateFleet` carries a `ClientToken`, so a retried call cannot launch twice.
//! - **Environment**: upstream §1.4/§1.5 names, see [`Config`].
//! - **IAM**: `ec2:CreateFleet`, `ec2:RunInstances`, `ec2:DescribeInstances`,
//!   `ec2:DescribeLaunchTemplateVersions` (the device of `ghr-ec2-ebs-*` labels), `ec2:CreateTags`,
//!   `ec2:TerminateInstances` (tag-conditioned), `iam:PassRole` (runner role), `ssm:PutParameter`
//!   / `ssm:AddTagsToResource` on the token and runner-group paths, `ssm:GetParameter(s)` on the
//!   App and config parameters.

pub mod config;
mod launch;

use common::config::FromEnv;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use common::config::Secret;
use common::deadline::Deadline;
use common::domain::dynamic_labels::{Ec2Overrides, group_key, parse_ec2_overrides, runner_labels};
use common::domain::runner::{InstanceFilter, RunnerOwner, runner_name, tags};
use common::domain::scale_up::{RegistrationArgs, beyond_maximum, runners_to_create};
use common::domain::warm_pool::{CLAIMED_AT_TAG, WARM_TAG, WarmState, claim_order, claim_placeholder};
use common::domain::webhook::QueuedJobMessage;
use common::error::{GithubError, Retryable};
use common::ports::{
    DelayedQueue, GithubApi, GithubOwner, NewParameter, ParameterStore, ParameterWriter, RunnerInstances, RunnerRemoval,
};
use common::telemetry::Metrics;
use common::telemetry::metrics::{
    GITHUB_APP_RATE_LIMIT_REMAINING, GITHUB_RATE_LIMIT_HITS, JOBS_RECEIVED, JOBS_RETRIED, JOBS_SKIPPED,
    MALFORMED_MESSAGES, RUNNERS_CREATED, RUNNERS_FAILED, RUNNERS_REQUESTED, WARM_POOL_CLAIMS, WARM_POOL_FALLBACKS,
};
use futures::StreamExt;

pub use config::Config;

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// A runner instance was launched and configured for it.
    Created { instance_id: String },
    /// Back to SQS: no runner yet.
    Retry { reason: &'static str, detail: String },
    /// Acknowledged: it needs no runner.
    Skipped { reason: &'static str },
}

impl Fate {
    fn retry(reason: &'static str, detail: impl Into<String>) -> Self {
        Fate::Retry { reason, detail: detail.into() }
    }
}

/// Why a runner was not configured: the reason (a metric dimension) and the detail.
type Failure = (&'static str, String);

#[derive(Debug, Clone)]
struct Job {
    message_id: String,
    /// SQS's `ApproximateReceiveCount`: with the id, it names this delivery of the message.
    receive_count: String,
    message: QueuedJobMessage,
    /// A runner the pool asked for, not a job: no job to look up or retry.
    from_pool: bool,
    /// Its dynamic (`ghr-`) labels: jobs with the same set share a fleet request, and its
    /// runner registers with them.
    dynamic: DynamicLabels,
}

/// One runner to register: its instance, the job it was launched for, its labels.
struct Runner<'a> {
    instance_id: &'a str,
    job_id: Option<u64>,
    labels: Vec<String>,
    /// A claimed warm instance: its token parameter holds the claim, which the configuration
    /// replaces.
    warm: bool,
}

/// A job's dynamic labels and the EC2 settings they ask for.
#[derive(Debug, Clone, Default)]
struct DynamicLabels {
    labels: Vec<String>,
    overrides: Option<Ec2Overrides>,
}

impl DynamicLabels {
    /// From a message's labels; an error names the malformed `ghr-ec2-*` value. The labels are
    /// kept sorted: jobs of one set register their runners with the same list.
    fn of(labels: &[String]) -> Result<Self, String> {
        let ghr = group_key(&common::domain::labels::split_labels(labels).ghr);
        let overrides = parse_ec2_overrides(&ghr)?;
        Ok(Self { labels: ghr, overrides })
    }
}

/// The scale-up handler and its clients.
pub struct ScaleUp {
    config: Config,
    github: Arc<dyn GithubApi>,
    ec2: Arc<dyn RunnerInstances>,
    parameters: Arc<dyn ParameterStore>,
    writer: Arc<dyn ParameterWriter>,
    metrics: Metrics,
    /// Runner group ids by organization and group name, for the container's life.
    group_ids: Mutex<HashMap<(String, String), u64>>,
    /// The job-retry queue's client, when job retry is on.
    retry_queue: Option<Arc<dyn DelayedQueue>>,
}

/// `capacityType` of a job message that must run on on-demand capacity (job rescue).
const ON_DEMAND: &str = "on-demand";

/// The failure of a claimed warm instance that did not start: its job launches fresh.
const WARM_START_FAILED: &str = "warm_start_failed";

/// The reason of jobs whose dynamic labels can never launch (malformed, or refused by EC2).
const INVALID_DYNAMIC_LABELS: &str = "invalid_dynamic_labels";

/// Owners handled at once within a batch.
const OWNER_CONCURRENCY: usize = 4;
/// Runner configurations created at once (the write pacer sets the real rate).
const RUNNER_CONCURRENCY: usize = 8;
/// Job lookups at once.
const LOOKUP_CONCURRENCY: usize = 8;
/// Time kept after a write that may fail, for its cleanup (deregistering the runner, terminating
/// the instance) and the answer.
const CLEANUP_RESERVE: Duration = Duration::from_secs(3);
/// How long the recount waits for EC2 to list the instances just launched.
const RECOUNT_PATIENCE: Duration = Duration::from_secs(5);
/// An instance launched longer ago than this has passed its invocation's recount: no
/// invocation terminates it as surplus any more.
const SETTLED_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

impl ScaleUp {
    pub fn new(
        config: Config,
        github: Arc<dyn GithubApi>,
        ec2: Arc<dyn RunnerInstances>,
        parameters: Arc<dyn ParameterStore>,
        writer: Arc<dyn ParameterWriter>,
        metrics: Metrics,
    ) -> Self {
        Self {
            config,
            github,
            ec2,
            parameters,
            writer,
            metrics,
            group_ids: Mutex::new(HashMap::new()),
            retry_queue: None,
        }
    }

    /// The pool's top-up: `count` runners for `owner`, through the path jobs take (the maximum
    /// and its recount, one fleet, on-demand failover, JIT configs or registration tokens),
    /// with no job behind them. One fate per runner asked for.
    pub async fn create_pool_runners(&self, owner: &RunnerOwner, count: usize, deadline: Deadline) -> Vec<Fate> {
        let app = self.github.choose_app();
        let invocation = format!("pool-{:016x}", fastrand::u64(..));
        let jobs: Vec<Job> = (0..count)
            .map(|i| Job {
                message_id: format!("pool-{i}"),
                receive_count: "1".into(),
                message: QueuedJobMessage {
                    id: 0,
                    repository_name: String::new(),
                    repository_owner: owner.tag_value(),
                    event_type: "pool".into(),
                    installation_id: 0,
                    queue_id: String::new(),
                    repo_owner_type: "Organization".into(),
                    labels: Vec::new(),
                    retry_counter: None,
                    capacity_type: None,
                },
                from_pool: true,
                dynamic: DynamicLabels::default(),
            })
            .collect();
        let fates = self.scale_owner(app, owner.clone(), jobs, &invocation, deadline).await;
        fates.into_iter().map(|(_, fate)| fate).collect()
    }

    /// The warm pool's top-up: `count` on-demand instances launched in prepare mode (no owner,
    /// no registration: their boot script prepares them and stops them), through the launch
    /// path jobs take (one fleet, the AMI override). Returns the launched ids and
    /// why some are missing.
    pub async fn create_warm_instances(&self, count: usize, deadline: Deadline) -> (Vec<String>, Option<String>) {
        let Some(warm) = &self.config.warm_pool else {
            return (Vec::new(), Some("the configuration has no warm pool".into()));
        };
        let invocation = format!("warm-{:016x}", fastrand::u64(..));
        let deliveries: Vec<String> = (0..count).map(|i| format!("{invocation}/{i}")).collect();
        // No owner yet: the client token and the logs name the environment.
        let pool = RunnerOwner::Org(format!("{}-warm-pool", self.config.environment));
        let purpose = launch::Purpose::Warm { hibernate: warm.hibernate };
        // On-demand: EC2 cannot stop an instance of a one-time spot request (which is what an
        // `instant` fleet launches), and a stopped instance costs no compute anyway.
        let launched =
            launch::launch(self, &pool, &deliveries, &DynamicLabels::default(), true, purpose, deadline).await;
        (launched.instance_ids, launched.failure)
    }

    /// The image new instances get: `AMI_ID_SSM_PARAMETER_NAME`'s value, else the launch
    /// template's (a `resolve:ssm:` reference AWS did not resolve is read here). `None` when it
    /// cannot be known.
    pub async fn current_image(&self, deadline: Deadline) -> Result<Option<String>, String> {
        let parameter = match &self.config.ami_parameter {
            Some(name) => name.clone(),
            None => {
                let read = common::aws::within(
                    deadline,
                    "ec2:DescribeLaunchTemplateVersions",
                    self.ec2.template_image(&self.config.launch_template),
                );
                match read.await.map_err(|e| e.to_string())? {
                    Some(image) => match common::domain::ami_housekeeper::ssm_reference(&image) {
                        Some(name) => name.to_string(),
                        None => return Ok(Some(image)),
                    },
                    None => return Ok(None),
                }
            }
        };
        let read =
            common::aws::within(deadline, "ssm:GetParameter", self.parameters.get_parameter_fresh(&parameter)).await;
        Ok(read.map_err(|e| e.to_string())?.map(|v| v.expose().trim().to_string()))
    }

    /// The owner's instances that count toward the maximum: running and pending ones, and with
    /// a warm pool the stopped ones an invocation claimed and is about to start (a stopped
    /// instance carries an owner only once claimed).
    fn owner_filter(&self, owner: &RunnerOwner) -> InstanceFilter {
        let mut filter = InstanceFilter::live(&self.config.environment).owned_by(owner);
        if self.config.warm_pool.is_some() {
            filter.states.push("stopped".into());
        }
        filter
    }

    /// The EC2 port, for the pool's count.
    pub fn instances(&self) -> &Arc<dyn RunnerInstances> {
        &self.ec2
    }

    /// The GitHub port, for the pool's count.
    pub fn github(&self) -> &Arc<dyn GithubApi> {
        &self.github
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Job retry: each launched job's message is also sent, delayed, to `JOB_RETRY_CONFIG`'s
    /// queue through `queue`.
    pub fn with_retry_queue(mut self, queue: Arc<dyn DelayedQueue>) -> Self {
        self.retry_queue = Some(queue);
        self
    }

    /// Handles one SQS batch; the answer names the messages to retry.
    pub async fn handle(&self, event: &SqsEvent, deadline: Deadline) -> SqsBatchResponse {
        let fates = self.process(event, deadline).await;
        self.report(&fates);
        batch_response(fates.into_iter().filter(|(_, f)| matches!(f, Fate::Retry { .. })).map(|(id, _)| id))
    }

    /// Every message id of the batch with its fate.
    pub async fn process(&self, event: &SqsEvent, deadline: Deadline) -> Vec<(String, Fate)> {
        let mut fates: Vec<(String, Fate)> = Vec::new();
        let mut jobs = Vec::new();
        for record in &event.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            if let Some(source) = record.event_source.as_deref()
                && source != "aws:sqs"
            {
                tracing::warn!(message_id, source, "ignoring a record that does not come from SQS");
                continue;
            }
            let receive_count = record.attributes.get("ApproximateReceiveCount").cloned().unwrap_or_default();
            match record.body.as_deref().map(serde_json::from_str::<QueuedJobMessage>) {
                Some(Ok(message)) => match DynamicLabels::of(&message.labels) {
                    Ok(dynamic) => jobs.push(Job { message_id, receive_count, message, from_pool: false, dynamic }),
                    Err(e) => {
                        // Its runner could never be launched as asked: acknowledged, logged, counted.
                        tracing::error!(message_id, job_id = message.id, error = %e, "the job's dynamic labels are not valid: acknowledged, it can never succeed");
                        fates.push((message_id, Fate::Skipped { reason: INVALID_DYNAMIC_LABELS }));
                    }
                },
                Some(Err(e)) => {
                    tracing::error!(message_id, error = %e, "malformed message: acknowledged, it can never succeed");
                    fates.push((message_id, Fate::Skipped { reason: "malformed" }));
                }
                None => fates.push((message_id, Fate::Skipped { reason: "malformed" })),
            }
        }
        // Retries of earlier batches first (upstream).
        jobs.sort_by_key(|j| j.message.retry_counter.unwrap_or(0));
        let messages: HashMap<String, QueuedJobMessage> =
            jobs.iter().map(|j| (j.message_id.clone(), j.message.clone())).collect();

        let mut seen = HashSet::new();
        let mut groups: BTreeMap<RunnerOwner, Vec<Job>> = BTreeMap::new();
        for job in jobs {
            let m = &job.message;
            let skip = if m.event_type != "workflow_job" && (self.config.ephemeral || self.config.job_queued_check) {
                Some("unsupported_event")
            } else if self.config.organization_runners && m.repo_owner_type != "Organization" {
                Some("user_owned_repository")
            } else if !seen.insert((m.queue_id.clone(), m.id)) {
                Some("duplicate")
            } else {
                None
            };
            if let Some(reason) = skip {
                fates.push((job.message_id, Fate::Skipped { reason }));
                continue;
            }
            let owner = if self.config.organization_runners {
                RunnerOwner::Org(m.repository_owner.clone())
            } else {
                RunnerOwner::Repo { owner: m.repository_owner.clone(), repo: m.repository_name.clone() }
            };
            groups.entry(owner).or_default().push(job);
        }

        let app = self.github.choose_app();
        // Names this invocation in EC2 client tokens: its retries share a token, nothing else does.
        let invocation = format!("{:016x}", fastrand::u64(..));
        let invocation = invocation.as_str();
        let per_owner: Vec<Vec<(String, Fate)>> = futures::stream::iter(groups)
            .map(|(owner, jobs)| self.scale_owner(app, owner, jobs, invocation, deadline))
            .buffer_unordered(OWNER_CONCURRENCY)
            .collect()
            .await;
        fates.extend(per_owner.into_iter().flatten());
        let app_id = self.github.app_id(app).to_string();
        self.metrics.count(
            &GITHUB_RATE_LIMIT_HITS,
            self.github.take_rate_limits_hit(app) as usize,
            &[("AppId", &app_id)],
        );
        if self.config.rate_limit_metric
            && let Some(remaining) = self.github.rate_limit_remaining(app)
        {
            let app_id = self.github.app_id(app).to_string();
            self.metrics.count(&GITHUB_APP_RATE_LIMIT_REMAINING, remaining as usize, &[("AppId", &app_id)]);
        }
        self.schedule_retry_checks(&fates, &messages, deadline).await;
        fates
    }

    /// Job retry: the messages of the jobs a runner was launched for go to the retry queue,
    /// delayed, unless they were retried `maxAttempts` times. A failed send is logged, never
    /// fails the job (its runner exists), as upstream.
    async fn schedule_retry_checks(
        &self,
        fates: &[(String, Fate)],
        messages: &HashMap<String, QueuedJobMessage>,
        deadline: Deadline,
    ) {
        let (Some(retry), Some(queue)) = (&self.config.job_retry, &self.retry_queue) else {
            return;
        };
        let mut checks: Vec<(QueuedJobMessage, u32)> = Vec::new();
        for (id, fate) in fates {
            let (Fate::Created { .. }, Some(message)) = (fate, messages.get(id)) else { continue };
            if let Some(check) = retry.next_check(message.retry_counter) {
                let mut message = message.clone();
                message.retry_counter = Some(check.retry_counter);
                checks.push((message, check.delay_seconds));
            }
        }
        let sends: Vec<(u64, Result<(), common::error::AwsError>)> = futures::stream::iter(checks)
            .map(|(message, delay)| async move {
                let body = serde_json::to_string(&message).unwrap_or_default();
                let sent = common::aws::within(
                    deadline,
                    "sqs:SendMessage",
                    queue.send_delayed(&retry.queue_url, &body, delay),
                )
                .await;
                (message.id, sent)
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        for (job_id, sent) in sends {
            if let Err(e) = sent {
                tracing::warn!(job_id, error = %e, "scheduling the job's retry check failed");
            }
        }
    }

    async fn scale_owner(
        &self,
        app: usize,
        owner: RunnerOwner,
        jobs: Vec<Job>,
        invocation: &str,
        deadline: Deadline,
    ) -> Vec<(String, Fate)> {
        let all_retry = |jobs: &[Job], reason: &'static str, detail: String| -> Vec<(String, Fate)> {
            jobs.iter().map(|j| (j.message_id.clone(), Fate::retry(reason, detail.clone()))).collect()
        };
        let hint = jobs.iter().map(|j| j.message.installation_id).find(|id| *id != 0);
        let github = match self.github.for_owner(app, &owner, hint, deadline).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(owner = %owner, error = %e, retryable = e.is_retryable(), "cannot reach the owner's installation");
                return all_retry(&jobs, "installation", e.to_string());
            }
        };
        let mut fates = Vec::new();

        // 1. Only jobs still queued need a runner (fail open on errors, as upstream). A job
        // put back by job retry is always checked: it may have started since.
        let retried = |job: &Job| job.message.retry_counter.is_some_and(|c| c > 0);
        let to_check = |job: &Job| !job.from_pool && (self.config.job_queued_check || retried(job));
        let jobs = if jobs.iter().any(to_check) {
            let checks: Vec<(Job, Option<String>)> = futures::stream::iter(jobs)
                .map(|job| {
                    let github = &github;
                    async move {
                        if !to_check(&job) {
                            return (job, None);
                        }
                        let m = &job.message;
                        let status = match github.job_status(&m.repository_owner, &m.repository_name, m.id).await {
                            Ok(status) => status,
                            Err(e) => {
                                tracing::warn!(job_id = m.id, error = %e, "job lookup failed, assuming it is queued");
                                None
                            }
                        };
                        (job, status)
                    }
                })
                .buffered(LOOKUP_CONCURRENCY)
                .collect()
                .await;
            let mut queued = Vec::new();
            for (job, status) in checks {
                match status.as_deref() {
                    Some(s) if s != "queued" => fates.push((job.message_id, Fate::Skipped { reason: "not_queued" })),
                    _ => queued.push(job),
                }
            }
            queued
        } else {
            jobs
        };
        if jobs.is_empty() {
            return fates;
        }
        // GitHub told this App to keep away from runner registration: no instance is launched
        // that could not be registered, and nothing is sent to GitHub until the limit passes.
        if let Some(wait) = github.registration_held(self.config.jit) {
            tracing::warn!(owner = %owner, retry_after_s = wait.as_secs(), "runner registration is rate limited; the jobs go back at once");
            fates.extend(all_retry(
                &jobs,
                "rate_limited",
                format!("GitHub's rate limit lasts another {} s", wait.as_secs()),
            ));
            return fates;
        }

        // 2. The owner's instances: for the maximum, and for the jobs that already have one.
        let live = self.owner_filter(&owner);
        let first_delivery = |job: &Job| !job.from_pool && !retried(job);
        let current = if self.config.maximum >= 0 || jobs.iter().any(first_delivery) {
            match launch::with_retries(&self.config, deadline, || self.ec2.list(&live)).await {
                // A draining instance (its runner deregistered by scale-down) takes no job and
                // is about to go: it is not a runner any more.
                Ok(current) => Some(current.into_iter().filter(|i| !i.is_draining()).collect::<Vec<_>>()),
                Err(e) if self.config.maximum >= 0 => {
                    tracing::error!(owner = %owner, error = %e, "cannot count the owner's runners");
                    fates.extend(all_retry(&jobs, "ec2", e.to_string()));
                    return fates;
                }
                Err(e) => {
                    tracing::warn!(owner = %owner, error = %e, "cannot list the owner's runners; no duplicate check this time");
                    None
                }
            }
        } else {
            None
        };
        // A second delivery of a job's `queued` event (a webhook redelivery, SQS delivering a
        // message twice) finds the instance launched for the first: nothing more to launch. A
        // job put back by job retry is not a duplicate: its runner took another job.
        let mut jobs = jobs;
        if let Some(current) = &current {
            let launched_for: HashSet<&str> = current.iter().filter_map(|i| i.tag(tags::LAUNCHED_FOR_JOB)).collect();
            jobs.retain(|job| {
                let duplicate = first_delivery(job) && launched_for.contains(job.message.id.to_string().as_str());
                if duplicate {
                    tracing::info!(job_id = job.message.id, "an instance was already launched for this job");
                    fates.push((job.message_id.clone(), Fate::Skipped { reason: "runner_exists" }));
                }
                !duplicate
            });
            if jobs.is_empty() {
                return fates;
            }
        }
        // 3. The maximum.
        let mut settled = 0;
        let wanted = match (&current, self.config.maximum >= 0) {
            (Some(current), true) => {
                let settled_before = chrono::Utc::now() - SETTLED_AFTER;
                settled = current.iter().filter(|i| i.launch_time.is_some_and(|t| t < settled_before)).count();
                runners_to_create(jobs.len(), current.len(), self.config.maximum)
            }
            _ => jobs.len(),
        };
        let (to_launch, over) = {
            let mut jobs = jobs;
            let over = jobs.split_off(wanted);
            (jobs, over)
        };
        for job in over {
            fates.push((job.message_id, self.over_maximum(settled)));
        }
        if to_launch.is_empty() {
            return fates;
        }
        if deadline.remaining() < Duration::from_secs(3) {
            fates.extend(all_retry(&to_launch, "deadline", "too little time left to launch".into()));
            return fates;
        }

        self.metrics.count(&RUNNERS_REQUESTED, to_launch.len(), &[]);
        // 4. The warm pool first: a job it can serve gets a prepared, stopped instance.
        let (to_launch, claimed) = if self.config.warm_pool.is_some() {
            self.claim_warm(&owner, to_launch, invocation, deadline).await
        } else {
            (to_launch, Vec::new())
        };
        let (launched_fates, start_failed) =
            self.launch_and_register(github.as_ref(), &owner, to_launch, claimed, &live, invocation, deadline).await;
        fates.extend(launched_fates);
        // A claimed instance that did not start (capacity, gone): a fresh one, in this invocation.
        if !start_failed.is_empty() {
            let (fallback_fates, _) = self
                .launch_and_register(github.as_ref(), &owner, start_failed, Vec::new(), &live, invocation, deadline)
                .await;
            fates.extend(fallback_fates);
        }
        fates
    }

    /// Launches fresh instances for `jobs` (one fleet per dynamic label set), recounts the
    /// owner's instances against the maximum with `claimed` (warm instances this invocation
    /// claimed) counted as its own, and registers every runner, starting each claimed one once
    /// its configuration is written.
    /// Returns the fates, and the jobs whose claimed instance did not start (terminated, for a
    /// fresh launch).
    #[allow(clippy::too_many_arguments)]
    async fn launch_and_register(
        &self,
        github: &dyn GithubOwner,
        owner: &RunnerOwner,
        jobs: Vec<Job>,
        claimed: Vec<(Job, String)>,
        live: &InstanceFilter,
        invocation: &str,
        deadline: Deadline,
    ) -> (Vec<(String, Fate)>, Vec<Job>) {
        let mut fates = Vec::new();
        let purpose = if jobs.iter().all(|j| j.from_pool) { launch::Purpose::Pool } else { launch::Purpose::Jobs };
        // One fleet for the owner per dynamic label set (most batches have one). Job rescue's
        // messages ask for on-demand capacity: a group of their own too.
        let mut by_labels: BTreeMap<(Vec<String>, bool), Vec<Job>> = BTreeMap::new();
        for job in jobs {
            let on_demand = job.message.capacity_type.as_deref() == Some(ON_DEMAND);
            by_labels.entry((job.dynamic.labels.clone(), on_demand)).or_default().push(job);
        }
        let launches = by_labels.into_iter().map(|((_, on_demand), group)| async move {
            let deliveries: Vec<String> = group
                .iter()
                .map(|j| format!("{invocation}/{}/{}/{}", j.message_id, j.receive_count, j.message.id))
                .collect();
            let dynamic = &group[0].dynamic;
            let launched = launch::launch(self, owner, &deliveries, dynamic, on_demand, purpose, deadline).await;
            (group, launched)
        });
        let mut pairs: Vec<(Job, String)> = Vec::new();
        for (mut group, launched) in futures::future::join_all(launches).await {
            let unlaunched = group.split_off(launched.instance_ids.len().min(group.len()));
            if let Some(failure) = &launched.failure {
                for job in unlaunched {
                    let fate = if launched.refused_dynamic_labels {
                        tracing::error!(job_id = job.message.id, labels = ?job.dynamic.labels, failure = %failure, "EC2 refuses the job's dynamic labels: acknowledged, it can never succeed");
                        Fate::Skipped { reason: INVALID_DYNAMIC_LABELS }
                    } else {
                        Fate::retry("ec2", failure.clone())
                    };
                    fates.push((job.message_id, fate));
                }
            }
            pairs.extend(group.into_iter().zip(launched.instance_ids));
        }
        let warm: HashSet<String> = claimed.iter().map(|(_, id)| id.clone()).collect();
        pairs.extend(claimed);

        // Recount: terminate our own instances beyond the maximum before registering them.
        if self.config.maximum >= 0 && !pairs.is_empty() {
            let mine: Vec<String> = pairs.iter().map(|(_, id)| id.clone()).collect();
            match self.recount(live, &mine, deadline).await {
                Ok(all) => {
                    let surplus = beyond_maximum(&all, &mine, self.config.maximum);
                    if !surplus.is_empty() {
                        tracing::warn!(owner = %owner, surplus = ?surplus, "over the maximum after a concurrent launch, terminating our surplus");
                        self.terminate(&surplus, deadline).await;
                        let (gone, kept): (Vec<_>, Vec<_>) =
                            pairs.into_iter().partition(|(_, id)| surplus.contains(id));
                        pairs = kept;
                        // Back to SQS whatever the runner type: the runner this job was counted
                        // on is gone, and the instances that stay may all be busy.
                        for (job, _) in gone {
                            fates.push((
                                job.message_id,
                                Fate::retry("maximum_reached", "its instance was terminated as surplus"),
                            ));
                        }
                    }
                }
                Err(e) => tracing::warn!(owner = %owner, error = %e, "recount failed, keeping the launched instances"),
            }
        }
        if pairs.is_empty() {
            return (fates, Vec::new());
        }

        // Register the runners.
        let warm_jobs: HashMap<String, Job> =
            pairs.iter().filter(|(_, id)| warm.contains(id)).map(|(j, _)| (j.message_id.clone(), j.clone())).collect();
        let registered = self.configure_runners(github, pairs, &warm, deadline).await;

        // A claimed instance started as soon as its configuration was written (in
        // `configure_runners`); one that did not start was terminated, and its job launches fresh.
        let mut start_failed = Vec::new();
        for (message_id, fate) in registered {
            match &fate {
                Fate::Retry { reason: WARM_START_FAILED, .. } => {
                    if let Some(job) = warm_jobs.get(&message_id) {
                        start_failed.push(job.clone());
                    }
                }
                Fate::Created { instance_id } if warm.contains(instance_id) => {
                    self.metrics.count(&WARM_POOL_CLAIMS, 1, &[]);
                    fates.push((message_id, fate));
                }
                _ => fates.push((message_id, fate)),
            }
        }
        if !start_failed.is_empty() {
            self.metrics.count(&WARM_POOL_FALLBACKS, start_failed.len(), &[("Reason", "start_failed")]);
        }
        (fates, start_failed)
    }

    /// Claims a prepared, stopped instance of the warm pool for each job it can serve (no
    /// dynamic labels, no on-demand request): the instance's token parameter written without
    /// overwrite is the claim, so two invocations never claim the same instance; a claim lost
    /// to another invocation moves on to the next instance. The claimed instances are tagged
    /// with their owner. Returns the jobs left for a fresh launch and the claims.
    async fn claim_warm(
        &self,
        owner: &RunnerOwner,
        jobs: Vec<Job>,
        invocation: &str,
        deadline: Deadline,
    ) -> (Vec<Job>, Vec<(Job, String)>) {
        let Some(warm) = &self.config.warm_pool else {
            return (jobs, Vec::new());
        };
        let (eligible, mut rest): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|j| j.dynamic.labels.is_empty() && j.message.capacity_type.as_deref() != Some(ON_DEMAND));
        if eligible.is_empty() {
            return (rest, Vec::new());
        }
        let pool = InstanceFilter::warm_pool(&self.config.environment);
        let candidates = match launch::with_retries(&self.config, deadline, || self.ec2.list(&pool)).await {
            Ok(instances) => claim_order(&instances, chrono::Utc::now(), warm.max_age()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the warm pool; launching fresh instances");
                self.metrics.count(&WARM_POOL_FALLBACKS, eligible.len(), &[("Reason", "claim_failed")]);
                rest.extend(eligible);
                return (rest, Vec::new());
            }
        };
        let mut candidates = candidates.into_iter();
        let mut claimed: Vec<(Job, String)> = Vec::new();
        let mut unserved: Vec<(Job, &'static str)> = Vec::new();
        let mut broken = false;
        for job in eligible {
            if broken {
                unserved.push((job, "claim_failed"));
                continue;
            }
            let mut won = None;
            for candidate in candidates.by_ref() {
                let claimant = format!("{invocation}/{}", job.message_id);
                let placeholder = Secret::new(claim_placeholder(&claimant));
                match self.put_token(&candidate, placeholder, false, deadline).await {
                    Ok(()) => {
                        won = Some(candidate);
                        break;
                    }
                    Err(e) if e.code.as_deref() == Some("ParameterAlreadyExists") => {
                        tracing::info!(instance_id = %candidate, "another invocation claimed this warm instance first");
                    }
                    Err(e) => {
                        tracing::warn!(instance_id = %candidate, error = %e, "claiming a warm instance failed; launching fresh instances");
                        broken = true;
                        break;
                    }
                }
            }
            match won {
                Some(instance_id) => claimed.push((job, instance_id)),
                None if broken => unserved.push((job, "claim_failed")),
                None => unserved.push((job, "none_ready")),
            }
        }
        if !claimed.is_empty() {
            let ids: Vec<String> = claimed.iter().map(|(_, id)| id.clone()).collect();
            let claim_tags = [
                (WARM_TAG.to_string(), WarmState::Claimed.as_str().to_string()),
                (CLAIMED_AT_TAG.to_string(), chrono::Utc::now().timestamp().to_string()),
                (tags::TYPE.to_string(), owner.runner_type().as_str().to_string()),
                (tags::OWNER.to_string(), owner.tag_value()),
            ];
            let tagged =
                common::aws::within(deadline.less(CLEANUP_RESERVE), "ec2:CreateTags", self.ec2.tag(&ids, &claim_tags));
            if let Err(e) = tagged.await {
                // Untagged, the instance would run outside its owner's count: no claim this
                // time. The claims stay written, so nobody else takes these instances; the
                // warm-pool function replaces them once they expire.
                tracing::warn!(instances = ?ids, error = %e, "tagging claimed warm instances failed; launching fresh instances");
                unserved.extend(claimed.drain(..).map(|(job, _)| (job, "claim_failed")));
            } else {
                tracing::info!(owner = %owner, instances = ?ids, "claimed warm instances");
            }
        }
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for (job, reason) in unserved {
            *reasons.entry(reason).or_default() += 1;
            rest.push(job);
        }
        for (reason, n) in reasons {
            self.metrics.count(&WARM_POOL_FALLBACKS, n, &[("Reason", reason)]);
        }
        (rest, claimed)
    }

    /// Starts a claimed warm instance whose configuration is written. Throttling is retried;
    /// anything else (no capacity for its type, the instance gone) is not: a fresh launch serves
    /// the job sooner than a capacity that comes back in minutes.
    async fn start_warm(&self, instance_id: &str, deadline: Deadline) -> Result<(), String> {
        let ids = [instance_id.to_string()];
        let deadline = deadline.less(CLEANUP_RESERVE);
        let mut attempt = 0;
        loop {
            match common::aws::within(deadline, "ec2:StartInstances", self.ec2.start(&ids)).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let wait = common::deadline::backoff(attempt, Duration::from_millis(200), Duration::from_secs(2));
                    if e.kind == common::error::AwsErrorKind::Throttled
                        && attempt < 3
                        && deadline.allows(wait, Duration::ZERO)
                    {
                        attempt += 1;
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    tracing::warn!(instance_id, error = %e, "a claimed warm instance did not start; launching a fresh one");
                    return Err(e.to_string());
                }
            }
        }
    }

    /// The owner's live instances after our launch. EC2's reads are eventually consistent: it
    /// waits (a few seconds at most, within the deadline) until our own instances are listed,
    /// so that instances launched before ours are listed too; `beyond_maximum` counts ours
    /// whether listed or not.
    async fn recount(
        &self,
        live: &InstanceFilter,
        mine: &[String],
        deadline: Deadline,
    ) -> Result<Vec<common::domain::runner::RunnerInstance>, common::error::AwsError> {
        let started = std::time::Instant::now();
        loop {
            let mut all = launch::with_retries(&self.config, deadline, || self.ec2.list(live)).await?;
            all.retain(|i| !i.is_draining());
            let missing = mine.iter().filter(|id| !all.iter().any(|i| &i.id == *id)).count();
            let wait = Duration::from_millis(500);
            if missing == 0
                || started.elapsed() + wait > RECOUNT_PATIENCE
                || !deadline.allows(wait, Duration::from_secs(5))
            {
                if missing > 0 {
                    tracing::warn!(missing, "some of our instances are not listed yet; counting them anyway");
                }
                return Ok(all);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The fate of a job over the maximum, `settled` being the owner's instances old enough
    /// that no recount can still terminate them.
    fn over_maximum(&self, settled: usize) -> Fate {
        if self.config.ephemeral {
            Fate::retry("maximum_reached", "the maximum number of runners is reached")
        } else if settled > 0 || self.config.maximum == 0 {
            // A reusable runner will pick the job up once it is free (upstream, decisions.md #12).
            // (With a maximum of 0 no runner ever will: retrying would not help either.)
            Fate::Skipped { reason: "maximum_reached" }
        } else {
            // Every runner counted was launched seconds ago: a concurrent invocation's recount
            // may still terminate them all, so the job is not left to them yet.
            Fate::retry("maximum_reached", "the maximum is reached by runners still starting")
        }
    }

    async fn terminate(&self, ids: &[String], deadline: Deadline) {
        if let Err(e) = common::aws::within(deadline, "ec2:TerminateInstances", self.ec2.terminate(ids)).await {
            tracing::error!(instances = ?ids, error = %e, "terminating instances failed; scale-down will remove them as orphans");
        }
    }

    async fn configure_runners(
        &self,
        github: &dyn GithubOwner,
        pairs: Vec<(Job, String)>,
        warm: &HashSet<String>,
        deadline: Deadline,
    ) -> Vec<(String, Fate)> {
        enum Shared {
            Jit(u64),
            Token(Secret<String>),
        }
        let shared = if self.config.jit {
            self.runner_group_id(github, deadline).await.map(Shared::Jit)
        } else {
            github.registration_token().await.map(Shared::Token)
        };
        let shared = match shared {
            Ok(s) => s,
            Err(e) => {
                let ids: Vec<String> = pairs.iter().map(|(_, id)| id.clone()).collect();
                tracing::error!(owner = %github.owner(), error = %e, "cannot prepare runner registration, terminating the instances");
                self.terminate(&ids, deadline).await;
                return pairs
                    .into_iter()
                    .map(|(job, _)| (job.message_id, Fate::retry("github", e.to_string())))
                    .collect();
            }
        };
        let web_url = self.github.web_url();
        let results: Vec<(Job, String, Result<(), Failure>)> = futures::stream::iter(pairs)
            .map(|(job, instance_id)| {
                let shared = &shared;
                let web_url = &web_url;
                async move {
                    // Not started without the time to undo it: a runner whose registration
                    // is cut short leaves an instance that must still be terminated.
                    if deadline.less(CLEANUP_RESERVE).is_past() {
                        return (job, instance_id, Err(("deadline", "no time left".to_string())));
                    }
                    let runner = Runner {
                        instance_id: &instance_id,
                        job_id: (!job.from_pool).then_some(job.message.id),
                        labels: runner_labels(&self.config.labels, &job.dynamic.labels),
                        warm: warm.contains(&instance_id),
                    };
                    let result = match shared {
                        Shared::Jit(group) => self.configure_jit(github, *group, &runner, deadline).await,
                        Shared::Token(token) => {
                            self.configure_with_token(github, token, web_url, &runner, deadline).await
                        }
                    };
                    // A claimed warm instance starts as soon as its own configuration is
                    // written, not after the batch's: its boot reads it.
                    let result = match result {
                        Ok(()) if runner.warm => {
                            self.start_warm(&instance_id, deadline).await.map_err(|e| (WARM_START_FAILED, e))
                        }
                        other => other,
                    };
                    (job, instance_id, result)
                }
            })
            .buffer_unordered(RUNNER_CONCURRENCY)
            .collect()
            .await;
        let failed: Vec<String> = results.iter().filter(|(_, _, r)| r.is_err()).map(|(_, id, _)| id.clone()).collect();
        if !failed.is_empty() {
            self.terminate(&failed, deadline).await;
        }
        results
            .into_iter()
            .map(|(job, instance_id, result)| match result {
                Ok(()) => (job.message_id, Fate::Created { instance_id }),
                Err((reason, detail)) => (job.message_id, Fate::retry(reason, detail)),
            })
            .collect()
    }

    async fn configure_jit(
        &self,
        github: &dyn GithubOwner,
        group: u64,
        runner: &Runner<'_>,
        deadline: Deadline,
    ) -> Result<(), Failure> {
        let Runner { instance_id, job_id, labels, warm } = runner;
        let (instance_id, job_id) = (*instance_id, *job_id);
        let name = runner_name(&self.config.name_prefix, instance_id);
        let jit = match github.create_jit_config(&name, group, labels).await {
            Ok(jit) => jit,
            Err(e) if e.status() == Some(409) => {
                // The runner's name is its instance id, so the name is taken by an earlier attempt
                // of this very request, whose answer (and JIT config) a timeout lost. Remove that
                // registration and register again, rather than tear down a good instance.
                self.remove_lost_registration(github, &name).await?;
                github.create_jit_config(&name, group, labels).await.map_err(|e| ("github", e.to_string()))?
            }
            Err(e) => return Err(("github", e.to_string())),
        };
        let mut tag = vec![(tags::GITHUB_RUNNER_ID.to_string(), jit.runner_id.to_string())];
        tag.extend(job_id.map(|id| (tags::LAUNCHED_FOR_JOB.to_string(), id.to_string())));
        let ids = [instance_id.to_string()];
        if let Err(e) =
            common::aws::within(deadline.less(CLEANUP_RESERVE), "ec2:CreateTags", self.ec2.tag(&ids, &tag)).await
        {
            tracing::warn!(instance_id, error = %e, "tagging the runner id failed");
        }
        if let Err(e) = self.put_token(instance_id, jit.encoded, *warm, deadline).await {
            // The registration is useless without its config: remove it now, or scale-down
            // removes it later as a ghost.
            if let Err(d) = github.delete_runner(jit.runner_id).await {
                tracing::warn!(runner_id = jit.runner_id, error = %d, "removing the unused JIT runner failed");
            }
            return Err(("ssm", e.to_string()));
        }
        Ok(())
    }

    /// Removes the registration `name` left by an attempt whose answer was lost; only one that
    /// never came online (it can have no job).
    async fn remove_lost_registration(&self, github: &dyn GithubOwner, name: &str) -> Result<(), Failure> {
        let runners = github.list_runners().await.map_err(|e| ("github", e.to_string()))?;
        let Some(runner) = runners.iter().find(|r| r.name == name) else {
            return Ok(());
        };
        if runner.status != "offline" || runner.busy {
            return Err(("github", format!("a runner named {name} is already online")));
        }
        tracing::info!(
            runner_id = runner.id,
            name,
            "an earlier attempt registered this runner and its answer was lost; registering again"
        );
        match github.delete_runner(runner.id).await {
            Ok(RunnerRemoval::Deleted | RunnerRemoval::NotFound) => Ok(()),
            Ok(RunnerRemoval::Busy) => Err(("github", format!("the runner {name} is busy"))),
            Err(e) => Err(("github", e.to_string())),
        }
    }

    async fn configure_with_token(
        &self,
        github: &dyn GithubOwner,
        token: &Secret<String>,
        web_url: &str,
        runner: &Runner<'_>,
        deadline: Deadline,
    ) -> Result<(), Failure> {
        let Runner { instance_id, job_id, labels, warm } = runner;
        let (instance_id, job_id) = (*instance_id, *job_id);
        let args = RegistrationArgs {
            web_url,
            owner: github.owner(),
            token: token.expose(),
            labels,
            disable_update: self.config.disable_update,
            runner_group: &self.config.runner_group,
            ephemeral: self.config.ephemeral,
        }
        .render();
        self.put_token(instance_id, Secret::new(args), *warm, deadline).await.map_err(|e| ("ssm", e.to_string()))?;
        if let Some(job_id) = job_id {
            let tag = [(tags::LAUNCHED_FOR_JOB.to_string(), job_id.to_string())];
            let ids = [instance_id.to_string()];
            if let Err(e) =
                common::aws::within(deadline.less(CLEANUP_RESERVE), "ec2:CreateTags", self.ec2.tag(&ids, &tag)).await
            {
                tracing::warn!(instance_id, error = %e, "tagging the job id failed");
            }
        }
        Ok(())
    }

    /// Writes the instance's token parameter (replacing a warm instance's claim with
    /// `overwrite`); it must end early enough to leave time for the cleanup of a failure
    /// (deregistering the runner, terminating the instance) and the answer.
    async fn put_token(
        &self,
        instance_id: &str,
        value: Secret<String>,
        overwrite: bool,
        deadline: Deadline,
    ) -> Result<(), common::error::AwsError> {
        let mut tags = vec![("InstanceId".to_string(), instance_id.to_string())];
        tags.extend(self.config.parameter_tags.iter().cloned());
        let parameter = NewParameter {
            name: format!("{}/{instance_id}", self.config.token_path),
            value,
            secure: true,
            tags,
            overwrite,
        };
        common::aws::within(deadline.less(CLEANUP_RESERVE), "ssm:PutParameter", self.writer.put_parameter(&parameter))
            .await
    }

    /// The runner group id: cached in memory, then in SSM (`<SSM_CONFIG_PATH>/runner-group/<name>`),
    /// then looked up and stored.
    async fn runner_group_id(&self, github: &dyn GithubOwner, deadline: Deadline) -> Result<u64, GithubError> {
        let RunnerOwner::Org(org) = github.owner() else {
            return Ok(1);
        };
        let key = (org.clone(), self.config.runner_group.clone());
        if let Some(id) = self.group_ids.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(id);
        }
        let parameter = format!("{}/runner-group/{}", self.config.config_path, self.config.runner_group);
        let cached = common::aws::within(
            deadline.less(CLEANUP_RESERVE),
            "ssm:GetParameter",
            self.parameters.get_parameter_fresh(&parameter),
        );
        if let Ok(Some(value)) = cached.await
            && let Ok(id) = value.expose().trim().parse::<u64>()
        {
            if let Ok(mut m) = self.group_ids.lock() {
                m.insert(key, id);
            }
            return Ok(id);
        }
        let id = github.runner_group_id(&self.config.runner_group).await?.ok_or_else(|| GithubError::Status {
            endpoint: format!("GET /orgs/{org}/actions/runner-groups"),
            status: 404,
            message: format!("runner group `{}` not found", self.config.runner_group),
        })?;
        // Terraform creates this parameter with a placeholder (so that destroy removes it):
        // overwrite it.
        let cache = NewParameter {
            name: parameter,
            value: Secret::new(id.to_string()),
            secure: false,
            tags: self.config.parameter_tags.clone(),
            overwrite: true,
        };
        if let Err(e) =
            common::aws::within(deadline.less(CLEANUP_RESERVE), "ssm:PutParameter", self.writer.put_parameter(&cache))
                .await
        {
            tracing::warn!(error = %e, "caching the runner group id in SSM failed");
        }
        if let Ok(mut m) = self.group_ids.lock() {
            m.insert(key, id);
        }
        Ok(id)
    }

    /// One log line per message, and the batch's metrics.
    fn report(&self, fates: &[(String, Fate)]) {
        let mut created = 0;
        let mut retried = 0;
        let mut malformed = 0;
        let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
        let mut failed: BTreeMap<&str, usize> = BTreeMap::new();
        for (message_id, fate) in fates {
            match fate {
                Fate::Created { instance_id } => {
                    created += 1;
                    tracing::info!(message_id, instance_id, outcome = "created", "job message");
                }
                Fate::Retry { reason, detail } => {
                    retried += 1;
                    if *reason != "maximum_reached" {
                        *failed.entry(reason).or_default() += 1;
                    }
                    tracing::warn!(message_id, outcome = "retry", reason, detail, "job message");
                }
                Fate::Skipped { reason } => {
                    if *reason == "malformed" {
                        malformed += 1;
                    } else {
                        *skipped.entry(reason).or_default() += 1;
                    }
                    tracing::info!(message_id, outcome = "skipped", reason, "job message");
                }
            }
        }
        self.metrics.count(&JOBS_RECEIVED, fates.len() - malformed, &[]);
        if malformed > 0 {
            self.metrics.count(&MALFORMED_MESSAGES, malformed, &[]);
        }
        self.metrics.count(&RUNNERS_CREATED, created, &[]);
        self.metrics.count(&JOBS_RETRIED, retried, &[]);
        for (reason, n) in skipped {
            self.metrics.count(&JOBS_SKIPPED, n, &[("Reason", reason)]);
        }
        for (reason, n) in failed {
            self.metrics.count(&RUNNERS_FAILED, n, &[("Reason", reason)]);
        }
    }
}

/// Scale-up with real clients, as Lambda runs it: the App credentials read from SSM, GitHub
/// through the configured URLs, EC2 and SSM through `sdk`. `run()` and the local runner
/// (`crates/local`) both build it here.
pub async fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> Result<ScaleUp, String> {
    let store = Arc::new(common::aws::ssm::SsmParameterStore::new(sdk));
    let ec2 = Arc::new(common::aws::ec2::Ec2RunnerInstances::without_retries(sdk));
    let apps = common::github::app::load_apps(store.as_ref(), &config.apps).await.map_err(|e| e.to_string())?;
    let github = common::github::client::GithubClient::configured(&config.github, apps)?;
    let scale_up = ScaleUp::new(config.clone(), Arc::new(github), ec2, store.clone(), store, metrics);
    Ok(if config.job_retry.is_some() {
        scale_up.with_retry_queue(Arc::new(common::aws::sqs::SqsJobQueue::new(sdk)))
    } else {
        scale_up
    })
}

/// Scale-up's launch path without GitHub, for the warm-pool function: its instances register
/// only once scale-up claims them, so it needs (and is given) no App credentials.
pub async fn build_launcher(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> ScaleUp {
    let store = Arc::new(common::aws::ssm::SsmParameterStore::new(sdk));
    let ec2 = Arc::new(common::aws::ec2::Ec2RunnerInstances::without_retries(sdk));
    ScaleUp::new(config.clone(), Arc::new(NoGithub), ec2, store.clone(), store, metrics)
}

/// GitHub for a launcher that never registers a runner: every call is refused.
struct NoGithub;

#[async_trait::async_trait]
impl GithubApi for NoGithub {
    fn choose_app(&self) -> usize {
        0
    }
    fn app_id(&self, _app: usize) -> u64 {
        0
    }
    fn rate_limit_remaining(&self, _app: usize) -> Option<u64> {
        None
    }
    fn web_url(&self) -> String {
        String::new()
    }
    async fn for_owner(
        &self,
        _app: usize,
        _owner: &RunnerOwner,
        _installation_hint: Option<u64>,
        _deadline: Deadline,
    ) -> Result<Box<dyn GithubOwner + '_>, GithubError> {
        Err(GithubError::Credentials("this launcher has no GitHub App (it registers no runner)".into()))
    }
}

/// Every message of the batch back to SQS (scale-up could not start).
pub fn retry_all(event: &SqsEvent) -> SqsBatchResponse {
    batch_response(event.records.iter().filter_map(|r| r.message_id.clone()))
}

/// The answer that sends the messages `retry` back to the queue (`batchItemFailures`).
fn batch_response(retry: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = retry
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// Starts the function: reads its configuration, then serves SQS batches.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let sdk = common::aws::load_sdk_config(Duration::from_secs(5), 3).await;
    let metrics = Metrics::stdout(&config.telemetry);
    // The App credentials are loaded on first use: a failure fails that batch (retried by SQS),
    // not the container.
    let handler: tokio::sync::OnceCell<ScaleUp> = tokio::sync::OnceCell::new();
    let build = || build(&config, &sdk, metrics.clone());
    let handler = &handler;
    let build = &build;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
        let deadline = common::lambda::deadline_of(&event.context);
        match handler.get_or_try_init(build).await {
            Ok(scale_up) => Ok::<_, lambda_runtime::Error>(scale_up.handle(&event.payload, deadline).await),
            Err(e) => {
                tracing::error!(error = %e, "cannot start scale-up; every message will be retried");
                Ok(retry_all(&event.payload))
            }
        }
    }))
    .await
}

#[cfg(test)]
mod tests;
