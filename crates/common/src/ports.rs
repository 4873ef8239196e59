//! Ports: the small capability traits the functions use to reach AWS and GitHub.
//!
//! They speak domain types only; the adapters in `aws` and `github` are the only code that knows
//! the SDK and wire formats, and `testing` holds in-memory fakes for unit tests.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::config::Secret;
use crate::deadline::Deadline;
use crate::domain::ami_housekeeper::{ImageFilter, MachineImage};
use crate::domain::runner::{InstanceFilter, RunnerInstance, RunnerOwner};
use crate::domain::scale_up::{LaunchOutcome, LaunchRequest};
use crate::domain::termination::WatchedInstance;
use crate::error::{AwsError, GithubError};

/// Parameters read as they are now, never cached: the image ids the AMI housekeeper keeps.
#[async_trait]
pub trait ParameterLookup: Send + Sync {
    /// Names of the parameters whose name contains `fragment` (every page).
    async fn names_containing(&self, fragment: &str) -> Result<Vec<String>, AwsError>;
    /// The values of the named parameters that exist; missing names are absent.
    async fn current_values(&self, names: &[String]) -> Result<BTreeMap<String, Secret<String>>, AwsError>;
}

/// Instances described whatever their state, with their type (the termination watcher).
#[async_trait]
pub trait WatchedInstances: Send + Sync {
    /// The instances with these ids that EC2 knows (terminated ones stay described for about an
    /// hour); unknown ids are absent.
    async fn describe(&self, instance_ids: &[String]) -> Result<Vec<WatchedInstance>, AwsError>;
}

/// This account's machine images and the launch templates that name them (AMI housekeeper).
#[async_trait]
pub trait MachineImages: Send + Sync {
    /// The account's own images matching the filters, at most `max_items` (else every page).
    async fn list_own(&self, filters: &[ImageFilter], max_items: Option<usize>) -> Result<Vec<MachineImage>, AwsError>;
    /// The image of the `$Default` and `$Latest` versions of the named launch templates (of every
    /// template of the account with `None`); a named template that does not exist has none.
    /// A value may be a `resolve:ssm:` reference.
    async fn launch_template_images(&self, names: Option<&[String]>) -> Result<Vec<String>, AwsError>;
    async fn deregister(&self, image_id: &str) -> Result<(), AwsError>;
    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), AwsError>;
}

/// SSM Parameter Store, read side.
#[async_trait]
pub trait ParameterStore: Send + Sync {
    /// The decrypted values of `names`, cached for the container's life. Fails, naming them,
    /// when any does not exist.
    async fn get_parameters(&self, names: &[String]) -> Result<BTreeMap<String, Secret<String>>, AwsError>;

    /// One parameter read now (not cached); `None` when it does not exist.
    async fn get_parameter_fresh(&self, name: &str) -> Result<Option<Secret<String>>, AwsError>;
}

/// A parameter to write.
#[derive(Debug, Clone)]
pub struct NewParameter {
    pub name: String,
    pub value: Secret<String>,
    /// SecureString (encrypted) or String.
    pub secure: bool,
    /// Tags of a new parameter (not sent when overwriting: SSM refuses both at once).
    pub tags: Vec<(String, String)>,
    /// Replace an existing value. Per-instance token parameters never do (a second write for
    /// the same instance is an error); the runner-group cache does (Terraform creates it with a
    /// placeholder so that `terraform destroy` removes it).
    pub overwrite: bool,
}

/// SSM Parameter Store, write side.
#[async_trait]
pub trait ParameterWriter: Send + Sync {
    /// Writes (overwrites) a parameter; the tier follows the value's size (decisions.md #6).
    async fn put_parameter(&self, parameter: &NewParameter) -> Result<(), AwsError>;
}

/// A parameter as listed, without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedParameter {
    pub name: String,
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// SSM Parameter Store, housekeeping side (the SSM housekeeper).
#[async_trait]
pub trait ParameterHousekeeping: Send + Sync {
    /// The parameters directly under `path` (not recursive), every page, values not read.
    async fn list_under(&self, path: &str) -> Result<Vec<ListedParameter>, AwsError>;
    /// Deletes up to 10 parameters in one call; returns the names SSM did not know (already
    /// gone), which count as deleted.
    async fn delete(&self, names: &[String]) -> Result<Vec<String>, AwsError>;
}

/// A job queue (SQS), send side.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends `body` to the queue at `queue_url`. FIFO queues need `fifo_group`, which is also
    /// used as the deduplication id so that a redelivered webhook is not queued twice.
    async fn send(&self, queue_url: &str, body: &str, fifo_group: Option<&str>) -> Result<(), AwsError>;
}

/// A queue that takes messages delivered later (SQS `DelaySeconds`): the job-retry queue.
#[async_trait]
pub trait DelayedQueue: Send + Sync {
    /// Sends `body` to the standard queue at `queue_url`, delivered after `delay_seconds`
    /// (SQS takes at most 900).
    async fn send_delayed(&self, queue_url: &str, body: &str, delay_seconds: u32) -> Result<(), AwsError>;
}

/// One event to publish on an EventBridge bus.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingEvent<'a> {
    pub bus: &'a str,
    pub source: &'a str,
    pub detail_type: &'a str,
    /// A JSON document (EventBridge refuses anything else).
    pub detail: &'a str,
}

impl OutgoingEvent<'_> {
    /// The entry's size as EventBridge counts it against its 256 KB limit (source, detail type
    /// and detail, in UTF-8 bytes; the bus name and time are not part of it).
    pub fn size(&self) -> usize {
        self.source.len() + self.detail_type.len() + self.detail.len()
    }
}

/// EventBridge, publish side.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes one event; an entry EventBridge did not take is an error.
    async fn put_event(&self, event: &OutgoingEvent<'_>) -> Result<(), AwsError>;
}

/// EC2, for runner instances.
#[async_trait]
pub trait RunnerInstances: Send + Sync {
    /// Every instance matching the filter (all pages).
    async fn list(&self, filter: &InstanceFilter) -> Result<Vec<RunnerInstance>, AwsError>;
    /// Launches instances (CreateFleet `instant`, or RunInstances for dedicated hosts).
    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, AwsError>;
    async fn tag(&self, instance_ids: &[String], tags: &[(String, String)]) -> Result<(), AwsError>;
    async fn untag(&self, instance_ids: &[String], keys: &[String]) -> Result<(), AwsError>;
    async fn terminate(&self, instance_ids: &[String]) -> Result<(), AwsError>;
    /// The image of the `$Default` version of a launch template (AWS resolves a `resolve:ssm:`
    /// reference; where it does not, the reference is returned as it stands).
    async fn template_image(&self, launch_template: &str) -> Result<Option<String>, AwsError>;
    /// Stops instances (a runner going back to the warm pool).
    async fn stop(&self, instance_ids: &[String]) -> Result<(), AwsError>;
    /// Starts stopped instances (the warm pool). One failed instance fails the call.
    async fn start(&self, instance_ids: &[String]) -> Result<(), AwsError>;
    /// The instances with these ids, in any state and environment (to confirm one is gone).
    async fn find(&self, instance_ids: &[String]) -> Result<Vec<RunnerInstance>, AwsError>;
    /// The device name of the `$Default` version's first EBS mapping (where a job's
    /// `ghr-ec2-ebs-*` settings go).
    async fn template_block_device(&self, launch_template: &str) -> Result<Option<String>, AwsError>;
}

pub use crate::domain::runner::GithubRunner;

/// A just-in-time runner configuration.
#[derive(Debug, Clone)]
pub struct JitConfig {
    pub runner_id: u64,
    pub encoded: Secret<String>,
}

/// What deleting a runner did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerRemoval {
    /// 204.
    Deleted,
    /// 404: it was already gone.
    NotFound,
    /// 422: GitHub says it is running a job.
    Busy,
}

/// What removing a runner's custom labels did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawal {
    /// 200: GitHub hands it no job that asks for one of them any more.
    Withdrawn,
    /// 404: the runner is gone.
    NotFound,
}

/// GitHub for one owner, through one App installation, within one invocation's deadline.
#[async_trait]
pub trait GithubOwner: Send + Sync {
    fn owner(&self) -> &RunnerOwner;
    /// The App used (its GitHub App id).
    fn app_id(&self) -> u64;
    /// The status of a workflow job (`queued`, `in_progress`...), `None` when not found.
    async fn job_status(&self, repo_owner: &str, repo: &str, job_id: u64) -> Result<Option<String>, GithubError>;
    /// The id of an organization runner group by name.
    async fn runner_group_id(&self, name: &str) -> Result<Option<u64>, GithubError>;
    async fn create_jit_config(
        &self,
        name: &str,
        runner_group_id: u64,
        labels: &[String],
    ) -> Result<JitConfig, GithubError>;
    async fn registration_token(&self) -> Result<Secret<String>, GithubError>;
    /// How long GitHub's rate limit still keeps this App off runner registration (JIT configs
    /// when `jit`, else registration tokens), if it answered with one: nothing is sent there
    /// until then, so work that needs it goes back at once.
    fn registration_held(&self, _jit: bool) -> Option<std::time::Duration> {
        None
    }
    /// Every runner of the owner (all pages).
    async fn list_runners(&self) -> Result<Vec<GithubRunner>, GithubError>;
    async fn get_runner(&self, id: u64) -> Result<Option<GithubRunner>, GithubError>;
    /// Removes every custom label of a runner (`DELETE .../actions/runners/{id}/labels`), so
    /// that GitHub stops handing it jobs that ask for them; a job already handed to it still
    /// runs. The first step of removing an idle runner.
    async fn remove_custom_labels(&self, id: u64) -> Result<Withdrawal, GithubError>;
    async fn delete_runner(&self, id: u64) -> Result<RunnerRemoval, GithubError>;
    /// The jobs of a workflow run's latest attempt (all pages).
    async fn run_jobs(
        &self,
        repo_owner: &str,
        repo: &str,
        run_id: u64,
    ) -> Result<Vec<crate::domain::termination::RunJob>, GithubError>;
    /// Re-runs one job of a completed run (`POST .../actions/jobs/{id}/rerun`; the App needs
    /// Actions: write).
    async fn rerun_job(&self, repo_owner: &str, repo: &str, job_id: u64) -> Result<(), GithubError>;
}

/// GitHub through the configured Apps.
#[async_trait]
pub trait GithubApi: Send + Sync {
    /// The App to use for this invocation (index into the configured Apps).
    fn choose_app(&self) -> usize;
    fn app_id(&self, app: usize) -> u64;
    /// Requests left in the App's primary rate limit, as last seen.
    fn rate_limit_remaining(&self, app: usize) -> Option<u64>;
    /// Rate-limit answers GitHub gave the App since the last call.
    fn take_rate_limits_hit(&self, _app: usize) -> u64 {
        0
    }
    /// The web base URL (`https://github.com` or the GHES URL), for `config.sh --url`.
    fn web_url(&self) -> String;
    /// The owner's installation, ready to call (token minted or cached). `installation_hint` is
    /// the id from the webhook payload, if any.
    async fn for_owner(
        &self,
        app: usize,
        owner: &RunnerOwner,
        installation_hint: Option<u64>,
        deadline: Deadline,
    ) -> Result<Box<dyn GithubOwner + '_>, GithubError>;
}

/// Server-side encryption of an S3 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// The bucket's default.
    BucketDefault,
    /// SSE-S3 (`AES256`).
    S3,
    /// SSE-KMS with a key (or the account's `aws/s3` key).
    Kms { key_id: Option<String> },
}

/// S3, for the runner binaries: a tag lookup and multipart uploads.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The value of an object's tag; `None` when the object or the tag does not exist.
    async fn tag_value(&self, bucket: &str, key: &str, tag: &str) -> Result<Option<String>, AwsError>;
    /// Starts a multipart upload; the object gets `tags` and `encryption` when completed.
    async fn start_upload(
        &self,
        bucket: &str,
        key: &str,
        tags: &[(String, String)],
        encryption: &Encryption,
    ) -> Result<String, AwsError>;
    /// Uploads part `number` (from 1); returns its ETag.
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        data: bytes::Bytes,
    ) -> Result<String, AwsError>;
    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> Result<(), AwsError>;
    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), AwsError>;
}

/// One page of an App's webhook delivery log, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryPage {
    pub deliveries: Vec<crate::domain::redelivery::Delivery>,
    /// The cursor of the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The delivery log of each configured GitHub App, and its redelivery, with the App's JWT.
#[async_trait]
pub trait WebhookDeliveries: Send + Sync {
    /// The configured Apps (indexes `0..count`).
    fn app_count(&self) -> usize;
    fn app_id(&self, app: usize) -> u64;
    /// A page of `GET /app/hook/deliveries` (`cursor`: from the previous page).
    async fn list_deliveries(
        &self,
        app: usize,
        cursor: Option<&str>,
        per_page: u32,
        deadline: Deadline,
    ) -> Result<DeliveryPage, GithubError>;
    /// `POST /app/hook/deliveries/{id}/attempts`: GitHub sends the delivery again.
    async fn redeliver(&self, app: usize, delivery_id: u64, deadline: Deadline) -> Result<(), GithubError>;
}
