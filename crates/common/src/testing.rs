//! In-memory fakes of the ports, for unit tests of handlers. Not for production: they keep
//! everything in memory, record every call and can be told to fail.
//!
//! End-to-end tests use the real thing instead: moto and the fake GitHub server in `tests/`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::config::Secret;
use crate::deadline::Deadline;
use crate::domain::ami_housekeeper::{ImageFilter, MachineImage};
use crate::domain::runner::{InstanceFilter, RunnerInstance, RunnerOwner, tags};
use crate::domain::scale_up::{LaunchOutcome, LaunchRequest};
use crate::error::{AwsError, AwsErrorKind, GithubError};
use crate::ports::{
    DelayedQueue, EventBus, GithubApi, GithubOwner, GithubRunner, JitConfig, JobQueue, ListedParameter, MachineImages,
    NewParameter, OutgoingEvent, ParameterHousekeeping, ParameterLookup, ParameterStore, ParameterWriter,
    RunnerInstances, RunnerRemoval, WatchedInstances, Withdrawal,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A parameter store holding plain values.
#[derive(Default)]
pub struct MemoryParameterStore {
    values: Mutex<BTreeMap<String, String>>,
    written: Mutex<Vec<NewParameter>>,
    failure: Mutex<Option<AwsError>>,
    put_failures: Mutex<VecDeque<AwsError>>,
    modified: Mutex<BTreeMap<String, chrono::DateTime<chrono::Utc>>>,
    delete_failures: Mutex<VecDeque<AwsError>>,
    /// The name lists of every delete call.
    pub deletes: Mutex<Vec<Vec<String>>>,
    pub calls: AtomicUsize,
}

impl MemoryParameterStore {
    pub fn with(values: &[(&str, &str)]) -> Self {
        let store = Self::default();
        for (k, v) in values {
            store.put(k, v);
        }
        store
    }

    pub fn put(&self, name: &str, value: &str) {
        lock(&self.values).insert(name.to_string(), value.to_string());
    }

    pub fn value(&self, name: &str) -> Option<String> {
        lock(&self.values).get(name).cloned()
    }

    /// Every parameter written through [`ParameterWriter`].
    pub fn written(&self) -> Vec<NewParameter> {
        lock(&self.written).clone()
    }

    /// Makes every following read fail with `error` (None to heal).
    pub fn fail_with(&self, error: Option<AwsError>) {
        *lock(&self.failure) = error;
    }

    /// Makes the next writes fail, one error each.
    pub fn fail_next_puts(&self, errors: Vec<AwsError>) {
        lock(&self.put_failures).extend(errors);
    }

    /// A parameter last modified at `at` (for the housekeeper).
    pub fn put_at(&self, name: &str, value: &str, at: chrono::DateTime<chrono::Utc>) {
        self.put(name, value);
        lock(&self.modified).insert(name.to_string(), at);
    }

    /// Makes the next delete calls fail, one error each.
    pub fn fail_next_deletes(&self, errors: Vec<AwsError>) {
        lock(&self.delete_failures).extend(errors);
    }
}

#[async_trait]
impl ParameterHousekeeping for MemoryParameterStore {
    async fn list_under(&self, path: &str) -> Result<Vec<ListedParameter>, AwsError> {
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let modified = lock(&self.modified);
        Ok(lock(&self.values)
            .keys()
            .filter(|n| n.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('/')))
            .map(|n| ListedParameter { name: n.clone(), last_modified: modified.get(n).copied() })
            .collect())
    }

    async fn delete(&self, names: &[String]) -> Result<Vec<String>, AwsError> {
        lock(&self.deletes).push(names.to_vec());
        if let Some(e) = lock(&self.delete_failures).pop_front() {
            return Err(e);
        }
        let mut values = lock(&self.values);
        Ok(names.iter().filter(|n| values.remove(*n).is_none()).cloned().collect())
    }
}

#[async_trait]
impl ParameterLookup for MemoryParameterStore {
    async fn names_containing(&self, fragment: &str) -> Result<Vec<String>, AwsError> {
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        Ok(lock(&self.values).keys().filter(|n| n.contains(fragment)).cloned().collect())
    }

    async fn current_values(&self, names: &[String]) -> Result<BTreeMap<String, Secret<String>>, AwsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        let values = lock(&self.values);
        Ok(names.iter().filter_map(|n| Some((n.clone(), Secret::new(values.get(n)?.clone())))).collect())
    }
}

/// Machine images and launch templates in memory; images are matched by `name` filters with a
/// trailing `*` only (other filters are recorded, not applied).
#[derive(Default)]
pub struct MemoryMachineImages {
    pub images: Mutex<Vec<MachineImage>>,
    /// Launch template name → the images of its default and latest versions.
    pub templates: Mutex<BTreeMap<String, Vec<String>>>,
    pub deregistered: Mutex<Vec<String>>,
    pub snapshots_deleted: Mutex<Vec<String>>,
    pub filters_seen: Mutex<Vec<Vec<ImageFilter>>>,
    template_failure: Mutex<Option<AwsError>>,
    deregister_failures: Mutex<BTreeMap<String, AwsError>>,
}

impl MemoryMachineImages {
    pub fn add(&self, image: MachineImage) {
        lock(&self.images).push(image);
    }

    pub fn template(&self, name: &str, images: &[&str]) {
        lock(&self.templates).insert(name.into(), images.iter().map(|i| i.to_string()).collect());
    }

    pub fn fail_templates(&self, error: Option<AwsError>) {
        *lock(&self.template_failure) = error;
    }

    pub fn fail_deregister(&self, image_id: &str, error: AwsError) {
        lock(&self.deregister_failures).insert(image_id.into(), error);
    }
}

#[async_trait]
impl MachineImages for MemoryMachineImages {
    async fn list_own(&self, filters: &[ImageFilter], max_items: Option<usize>) -> Result<Vec<MachineImage>, AwsError> {
        lock(&self.filters_seen).push(filters.to_vec());
        let matches = |image: &MachineImage| {
            filters.iter().filter(|f| f.name == "name").all(|f| {
                let name = image.name.as_deref().unwrap_or("");
                f.values.iter().any(|v| match v.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == v,
                })
            })
        };
        let mut found: Vec<MachineImage> = lock(&self.images).iter().filter(|i| matches(i)).cloned().collect();
        found.truncate(max_items.unwrap_or(usize::MAX));
        Ok(found)
    }

    async fn launch_template_images(&self, names: Option<&[String]>) -> Result<Vec<String>, AwsError> {
        if let Some(e) = lock(&self.template_failure).clone() {
            return Err(e);
        }
        Ok(lock(&self.templates)
            .iter()
            .filter(|(name, _)| names.is_none_or(|wanted| wanted.contains(name)))
            .flat_map(|(_, images)| images.clone())
            .collect())
    }

    async fn deregister(&self, image_id: &str) -> Result<(), AwsError> {
        if let Some(e) = lock(&self.deregister_failures).get(image_id).cloned() {
            return Err(e);
        }
        lock(&self.images).retain(|i| i.id != image_id);
        lock(&self.deregistered).push(image_id.into());
        Ok(())
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), AwsError> {
        lock(&self.snapshots_deleted).push(snapshot_id.into());
        Ok(())
    }
}

#[async_trait]
impl ParameterStore for MemoryParameterStore {
    async fn get_parameters(&self, names: &[String]) -> Result<BTreeMap<String, Secret<String>>, AwsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        let values = lock(&self.values);
        let missing: Vec<&str> = names.iter().filter(|n| !values.contains_key(*n)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(AwsError::new(
                "ssm:GetParameters",
                AwsErrorKind::NotFound,
                Some("ParameterNotFound".into()),
                format!("parameters not found: {}", missing.join(", ")),
            ));
        }
        Ok(names.iter().map(|n| (n.clone(), Secret::new(values[n].clone()))).collect())
    }

    async fn get_parameter_fresh(&self, name: &str) -> Result<Option<Secret<String>>, AwsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        Ok(lock(&self.values).get(name).map(|v| Secret::new(v.clone())))
    }
}

#[async_trait]
impl ParameterWriter for MemoryParameterStore {
    async fn put_parameter(&self, parameter: &NewParameter) -> Result<(), AwsError> {
        if let Some(e) = lock(&self.put_failures).pop_front() {
            return Err(e);
        }
        let mut values = lock(&self.values);
        if values.contains_key(&parameter.name) && !parameter.overwrite {
            // As SSM answers a PutParameter without Overwrite for an existing name.
            return Err(AwsError::new(
                "ssm:PutParameter",
                crate::error::AwsErrorKind::Client,
                Some("ParameterAlreadyExists".into()),
                "The parameter already exists.",
            ));
        }
        values.insert(parameter.name.clone(), parameter.value.expose().clone());
        drop(values);
        lock(&self.written).push(parameter.clone());
        Ok(())
    }
}

/// A clock the test sets.
pub struct ManualClock(Mutex<chrono::DateTime<chrono::Utc>>);

impl ManualClock {
    pub fn at(t: chrono::DateTime<chrono::Utc>) -> Self {
        Self(Mutex::new(t))
    }

    pub fn set(&self, t: chrono::DateTime<chrono::Utc>) {
        *lock(&self.0) = t;
    }

    pub fn advance(&self, d: chrono::Duration) {
        let mut t = lock(&self.0);
        *t += d;
    }
}

impl crate::clock::Clock for ManualClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *lock(&self.0)
    }
}

/// One message sent to a [`MemoryJobQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub queue_url: String,
    pub body: String,
    pub fifo_group: Option<String>,
}

/// A queue that records what was sent.
#[derive(Default)]
pub struct MemoryJobQueue {
    pub sent: Mutex<Vec<SentMessage>>,
    /// Delayed sends: the message and its delay in seconds.
    pub delayed: Mutex<Vec<(SentMessage, u32)>>,
    failure: Mutex<Option<AwsError>>,
}

impl MemoryJobQueue {
    pub fn fail_with(&self, error: Option<AwsError>) {
        *lock(&self.failure) = error;
    }

    pub fn messages(&self) -> Vec<SentMessage> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl JobQueue for MemoryJobQueue {
    async fn send(&self, queue_url: &str, body: &str, fifo_group: Option<&str>) -> Result<(), AwsError> {
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        lock(&self.sent).push(SentMessage {
            queue_url: queue_url.to_string(),
            body: body.to_string(),
            fifo_group: fifo_group.map(str::to_string),
        });
        Ok(())
    }
}

#[async_trait]
impl DelayedQueue for MemoryJobQueue {
    async fn send_delayed(&self, queue_url: &str, body: &str, delay_seconds: u32) -> Result<(), AwsError> {
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        let message = SentMessage { queue_url: queue_url.to_string(), body: body.to_string(), fifo_group: None };
        lock(&self.delayed).push((message, delay_seconds));
        Ok(())
    }
}

/// One event published on a [`MemoryEventBus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedEvent {
    pub bus: String,
    pub source: String,
    pub detail_type: String,
    pub detail: String,
}

/// An event bus that records what was published.
#[derive(Default)]
pub struct MemoryEventBus {
    published: Mutex<Vec<PublishedEvent>>,
    failure: Mutex<Option<AwsError>>,
}

impl MemoryEventBus {
    pub fn fail_with(&self, error: Option<AwsError>) {
        *lock(&self.failure) = error;
    }

    pub fn events(&self) -> Vec<PublishedEvent> {
        lock(&self.published).clone()
    }
}

#[async_trait]
impl EventBus for MemoryEventBus {
    async fn put_event(&self, event: &OutgoingEvent<'_>) -> Result<(), AwsError> {
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        lock(&self.published).push(PublishedEvent {
            bus: event.bus.to_string(),
            source: event.source.to_string(),
            detail_type: event.detail_type.to_string(),
            detail: event.detail.to_string(),
        });
        Ok(())
    }
}

/// How the next launch answers.
#[derive(Debug, Clone)]
pub enum ScriptedLaunch {
    /// Launch at most `fulfil` instances and report `errors`.
    Partial { fulfil: usize, errors: Vec<crate::domain::scale_up::FleetError> },
    /// The call itself fails.
    Fail(AwsError),
}

/// One CreateTags call: the instances and the tags.
pub type TagCall = (Vec<String>, Vec<(String, String)>);

/// EC2 in memory: launched instances get the request's tags plus the environment tag the launch
/// template would add.
pub struct MemoryRunnerInstances {
    pub environment: String,
    instances: Mutex<Vec<RunnerInstance>>,
    launches: Mutex<Vec<LaunchRequest>>,
    script: Mutex<VecDeque<ScriptedLaunch>>,
    list_failure: Mutex<Option<AwsError>>,
    terminate_failure: Mutex<Option<AwsError>>,
    start_failure: Mutex<Option<AwsError>>,
    stop_failure: Mutex<Option<AwsError>>,
    template_image: Mutex<Option<String>>,
    terminated: Mutex<Vec<String>>,
    started: Mutex<Vec<Vec<String>>>,
    tagged: Mutex<Vec<TagCall>>,
    next: AtomicUsize,
}

impl MemoryRunnerInstances {
    pub fn new(environment: &str) -> Self {
        Self {
            environment: environment.to_string(),
            instances: Mutex::new(Vec::new()),
            launches: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            list_failure: Mutex::new(None),
            terminate_failure: Mutex::new(None),
            start_failure: Mutex::new(None),
            stop_failure: Mutex::new(None),
            template_image: Mutex::new(Some("ami-template".into())),
            terminated: Mutex::new(Vec::new()),
            started: Mutex::new(Vec::new()),
            tagged: Mutex::new(Vec::new()),
            next: AtomicUsize::new(1),
        }
    }

    /// Scripts the next launches, in order; unscripted launches fulfil everything.
    pub fn script(&self, launches: Vec<ScriptedLaunch>) {
        lock(&self.script).extend(launches);
    }

    pub fn fail_listing(&self, error: Option<AwsError>) {
        *lock(&self.list_failure) = error;
    }

    pub fn fail_terminating(&self, error: Option<AwsError>) {
        *lock(&self.terminate_failure) = error;
    }

    /// The launch template's image from now on (`ami-template` at first, the image of
    /// instances launched without an override).
    pub fn set_template_image(&self, image: Option<&str>) {
        *lock(&self.template_image) = image.map(str::to_string);
    }

    /// Makes every `stop` call fail with `error`.
    pub fn fail_stopping(&self, error: Option<AwsError>) {
        *lock(&self.stop_failure) = error;
    }

    /// Makes every `start` call fail with `error` (EC2 answers for the whole call).
    pub fn fail_starting(&self, error: Option<AwsError>) {
        *lock(&self.start_failure) = error;
    }

    /// The instance ids of each `start` call, in order.
    pub fn started(&self) -> Vec<Vec<String>> {
        lock(&self.started).clone()
    }

    /// Adds an existing instance.
    pub fn add(&self, instance: RunnerInstance) {
        lock(&self.instances).push(instance);
    }

    pub fn instances(&self) -> Vec<RunnerInstance> {
        lock(&self.instances).clone()
    }

    pub fn live(&self) -> Vec<RunnerInstance> {
        lock(&self.instances).iter().filter(|i| i.state == "running" || i.state == "pending").cloned().collect()
    }

    pub fn launches(&self) -> Vec<LaunchRequest> {
        lock(&self.launches).clone()
    }

    pub fn terminated(&self) -> Vec<String> {
        lock(&self.terminated).clone()
    }

    pub fn tagged(&self) -> Vec<TagCall> {
        lock(&self.tagged).clone()
    }

    fn new_instance(&self, request: &LaunchRequest) -> RunnerInstance {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let mut tags: BTreeMap<String, String> = request.tags.iter().cloned().collect();
        tags.insert(tags::ENVIRONMENT.into(), self.environment.clone());
        RunnerInstance {
            image_id: request.image_id.clone().or_else(|| lock(&self.template_image).clone()),
            id: format!("i-{n:017x}"),
            launch_time: chrono::DateTime::from_timestamp(1_700_000_000 + n as i64, 0),
            state: "pending".into(),
            tags,
        }
    }
}

fn matches(instance: &RunnerInstance, f: &InstanceFilter) -> bool {
    f.states.contains(&instance.state)
        && instance.tag(tags::ENVIRONMENT) == Some(f.environment.as_str())
        && instance.tag(tags::APPLICATION) == Some(tags::APPLICATION_VALUE)
        && f.owner.as_ref().is_none_or(|o| {
            instance.tag(tags::TYPE) == Some(o.runner_type().as_str())
                && instance.tag(tags::OWNER) == Some(o.tag_value().as_str())
        })
        && (!f.orphan_only || instance.is_orphan())
        && (!f.warm_only || instance.tag(crate::domain::warm_pool::WARM_TAG).is_some())
}

#[async_trait]
impl WatchedInstances for MemoryRunnerInstances {
    /// Every stored instance with these ids, typed `m5.large` (spot is not modelled).
    async fn describe(
        &self,
        instance_ids: &[String],
    ) -> Result<Vec<crate::domain::termination::WatchedInstance>, AwsError> {
        if let Some(e) = lock(&self.list_failure).clone() {
            return Err(e);
        }
        Ok(self
            .instances()
            .into_iter()
            .filter(|i| instance_ids.contains(&i.id))
            .map(|instance| crate::domain::termination::WatchedInstance {
                instance,
                instance_type: Some("m5.large".into()),
            })
            .collect())
    }
}

#[async_trait]
impl RunnerInstances for MemoryRunnerInstances {
    async fn list(&self, filter: &InstanceFilter) -> Result<Vec<RunnerInstance>, AwsError> {
        if let Some(e) = lock(&self.list_failure).clone() {
            return Err(e);
        }
        Ok(lock(&self.instances).iter().filter(|i| matches(i, filter)).cloned().collect())
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, AwsError> {
        lock(&self.launches).push(request.clone());
        let (fulfil, errors) = match lock(&self.script).pop_front() {
            None => (request.count, Vec::new()),
            Some(ScriptedLaunch::Partial { fulfil, errors }) => (fulfil.min(request.count), errors),
            Some(ScriptedLaunch::Fail(e)) => return Err(e),
        };
        let created: Vec<RunnerInstance> = (0..fulfil).map(|_| self.new_instance(request)).collect();
        let ids = created.iter().map(|i| i.id.clone()).collect();
        lock(&self.instances).extend(created);
        Ok(LaunchOutcome { instance_ids: ids, errors })
    }

    async fn tag(&self, instance_ids: &[String], new_tags: &[(String, String)]) -> Result<(), AwsError> {
        lock(&self.tagged).push((instance_ids.to_vec(), new_tags.to_vec()));
        for i in lock(&self.instances).iter_mut().filter(|i| instance_ids.contains(&i.id)) {
            for (k, v) in new_tags {
                i.tags.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }

    async fn untag(&self, instance_ids: &[String], keys: &[String]) -> Result<(), AwsError> {
        for i in lock(&self.instances).iter_mut().filter(|i| instance_ids.contains(&i.id)) {
            for k in keys {
                i.tags.remove(k);
            }
        }
        Ok(())
    }

    async fn find(&self, instance_ids: &[String]) -> Result<Vec<RunnerInstance>, AwsError> {
        if let Some(e) = lock(&self.list_failure).clone() {
            return Err(e);
        }
        Ok(lock(&self.instances).iter().filter(|i| instance_ids.contains(&i.id)).cloned().collect())
    }

    async fn template_block_device(&self, _launch_template: &str) -> Result<Option<String>, AwsError> {
        Ok(Some("/dev/xvda".into()))
    }

    async fn template_image(&self, _launch_template: &str) -> Result<Option<String>, AwsError> {
        Ok(lock(&self.template_image).clone())
    }

    /// Running instances become `stopped` (at once).
    async fn stop(&self, instance_ids: &[String]) -> Result<(), AwsError> {
        if let Some(e) = lock(&self.stop_failure).clone() {
            return Err(e);
        }
        for i in lock(&self.instances).iter_mut().filter(|i| instance_ids.contains(&i.id)) {
            i.state = "stopped".into();
        }
        Ok(())
    }

    /// Stopped instances become `pending`; like EC2, an unknown id or one not stopped fails
    /// the whole call and starts nothing.
    async fn start(&self, instance_ids: &[String]) -> Result<(), AwsError> {
        lock(&self.started).push(instance_ids.to_vec());
        if let Some(e) = lock(&self.start_failure).clone() {
            return Err(e);
        }
        let mut instances = lock(&self.instances);
        for id in instance_ids {
            match instances.iter().find(|i| &i.id == id) {
                None => {
                    return Err(AwsError::new(
                        "ec2:StartInstances",
                        crate::error::AwsErrorKind::NotFound,
                        Some("InvalidInstanceID.NotFound".into()),
                        format!("The instance ID '{id}' does not exist"),
                    ));
                }
                Some(i) if i.state != "stopped" => {
                    return Err(AwsError::new(
                        "ec2:StartInstances",
                        crate::error::AwsErrorKind::Client,
                        Some("IncorrectInstanceState".into()),
                        format!("The instance '{id}' is not in a state from which it can be started"),
                    ));
                }
                Some(_) => {}
            }
        }
        for i in instances.iter_mut().filter(|i| instance_ids.contains(&i.id)) {
            i.state = "pending".into();
        }
        Ok(())
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), AwsError> {
        if let Some(e) = lock(&self.terminate_failure).clone() {
            return Err(e);
        }
        lock(&self.terminated).extend(instance_ids.iter().cloned());
        for i in lock(&self.instances).iter_mut().filter(|i| instance_ids.contains(&i.id)) {
            i.state = "shutting-down".into();
        }
        Ok(())
    }
}

/// One call made to [`MemoryGithub`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubCall {
    pub owner: String,
    pub operation: &'static str,
    pub detail: String,
}

#[derive(Default)]
struct GithubState {
    job_status: HashMap<u64, String>,
    groups: HashMap<String, u64>,
    runners: BTreeMap<String, Vec<GithubRunner>>,
    busy_on_delete: Vec<u64>,
    failures: HashMap<&'static str, VecDeque<GithubError>>,
    installation_failures: HashMap<String, GithubError>,
    calls: Vec<GithubCall>,
    next_runner: u64,
    /// Workflow runs' jobs, every attempt.
    runs: BTreeMap<u64, Vec<crate::domain::termination::RunJob>>,
}

/// GitHub in memory: one App, jobs with a status, runner groups, runners per owner.
#[derive(Clone, Default)]
pub struct MemoryGithub {
    state: Arc<Mutex<GithubState>>,
}

impl MemoryGithub {
    /// Adds (or replaces, by id) a job of a workflow run.
    pub fn put_run_job(&self, run_id: u64, job: crate::domain::termination::RunJob) {
        let mut s = lock(&self.state);
        let jobs = s.runs.entry(run_id).or_default();
        jobs.retain(|j| j.id != job.id);
        jobs.push(job);
    }

    pub fn run_jobs_of(&self, run_id: u64) -> Vec<crate::domain::termination::RunJob> {
        lock(&self.state).runs.get(&run_id).cloned().unwrap_or_default()
    }

    pub fn set_job_status(&self, job_id: u64, status: &str) {
        lock(&self.state).job_status.insert(job_id, status.to_string());
    }

    pub fn add_group(&self, name: &str, id: u64) {
        lock(&self.state).groups.insert(name.to_string(), id);
    }

    pub fn add_runner(&self, owner: &RunnerOwner, runner: GithubRunner) {
        lock(&self.state).runners.entry(owner.to_string()).or_default().push(runner);
    }

    /// Sets a runner's `status` (`online`/`offline`).
    pub fn set_runner_status(&self, owner: &RunnerOwner, runner_id: u64, status: &str) {
        if let Some(r) = lock(&self.state)
            .runners
            .get_mut(&owner.to_string())
            .and_then(|rs| rs.iter_mut().find(|r| r.id == runner_id))
        {
            r.status = status.to_string();
        }
    }

    pub fn runners(&self, owner: &RunnerOwner) -> Vec<GithubRunner> {
        lock(&self.state).runners.get(&owner.to_string()).cloned().unwrap_or_default()
    }

    /// DELETE of this runner answers 422.
    pub fn busy_on_delete(&self, runner_id: u64) {
        lock(&self.state).busy_on_delete.push(runner_id);
    }

    /// DELETE of this runner succeeds again (its job is done).
    pub fn not_busy_on_delete(&self, runner_id: u64) {
        lock(&self.state).busy_on_delete.retain(|id| *id != runner_id);
    }

    /// Replaces the runner with the same id (or adds it).
    pub fn replace_runner(&self, owner: &RunnerOwner, runner: GithubRunner) {
        let mut s = lock(&self.state);
        let list = s.runners.entry(owner.to_string()).or_default();
        list.retain(|r| r.id != runner.id);
        list.push(runner);
    }

    /// The next calls of `operation` fail, one error each.
    pub fn fail(&self, operation: &'static str, errors: Vec<GithubError>) {
        lock(&self.state).failures.entry(operation).or_default().extend(errors);
    }

    pub fn fail_installation(&self, owner: &RunnerOwner, error: GithubError) {
        lock(&self.state).installation_failures.insert(owner.to_string(), error);
    }

    pub fn calls(&self) -> Vec<GithubCall> {
        lock(&self.state).calls.clone()
    }

    pub fn count(&self, operation: &str) -> usize {
        lock(&self.state).calls.iter().filter(|c| c.operation == operation).count()
    }

    fn record(&self, owner: &RunnerOwner, operation: &'static str, detail: String) -> Result<(), GithubError> {
        let mut s = lock(&self.state);
        s.calls.push(GithubCall { owner: owner.to_string(), operation, detail });
        match s.failures.get_mut(operation).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The labels GitHub gives every self-hosted runner (read-only): the rest are custom.
pub fn is_read_only_label(label: &str) -> bool {
    ["self-hosted", "linux", "windows", "macos", "x64", "arm", "arm64"].contains(&label.to_lowercase().as_str())
}

struct MemoryGithubOwner {
    github: MemoryGithub,
    owner: RunnerOwner,
}

#[async_trait]
impl GithubOwner for MemoryGithubOwner {
    fn owner(&self) -> &RunnerOwner {
        &self.owner
    }

    fn app_id(&self) -> u64 {
        1
    }

    async fn run_jobs(
        &self,
        repo_owner: &str,
        repo: &str,
        run_id: u64,
    ) -> Result<Vec<crate::domain::termination::RunJob>, GithubError> {
        self.github.record(&self.owner, "run_jobs", format!("{repo_owner}/{repo}/{run_id}"))?;
        let jobs = lock(&self.github.state).runs.get(&run_id).cloned().unwrap_or_default();
        // The latest attempt of each job name.
        let latest: Vec<_> = jobs
            .iter()
            .filter(|j| !jobs.iter().any(|o| o.name == j.name && o.run_attempt > j.run_attempt))
            .cloned()
            .collect();
        Ok(latest)
    }

    async fn rerun_job(&self, repo_owner: &str, repo: &str, job_id: u64) -> Result<(), GithubError> {
        self.github.record(&self.owner, "rerun_job", format!("{repo_owner}/{repo}#{job_id}"))?;
        let mut s = lock(&self.github.state);
        s.next_runner += 1;
        let new_id = 90_000 + s.next_runner;
        for jobs in s.runs.values_mut() {
            if let Some(job) = jobs.iter().find(|j| j.id == job_id).cloned() {
                jobs.push(crate::domain::termination::RunJob {
                    id: new_id,
                    status: "queued".into(),
                    conclusion: None,
                    run_attempt: job.run_attempt + 1,
                    runner_name: None,
                    ..job
                });
                return Ok(());
            }
        }
        Err(GithubError::Status {
            endpoint: "POST /repos/{owner}/{repo}/actions/jobs/{job_id}/rerun".into(),
            status: 404,
            message: "Not Found".into(),
        })
    }

    async fn job_status(&self, repo_owner: &str, repo: &str, job_id: u64) -> Result<Option<String>, GithubError> {
        self.github.record(&self.owner, "job_status", format!("{repo_owner}/{repo}#{job_id}"))?;
        Ok(Some(lock(&self.github.state).job_status.get(&job_id).cloned().unwrap_or_else(|| "queued".into())))
    }

    async fn runner_group_id(&self, name: &str) -> Result<Option<u64>, GithubError> {
        self.github.record(&self.owner, "runner_group_id", name.to_string())?;
        Ok(lock(&self.github.state).groups.get(name).copied())
    }

    async fn create_jit_config(
        &self,
        name: &str,
        runner_group_id: u64,
        labels: &[String],
    ) -> Result<JitConfig, GithubError> {
        self.github.record(
            &self.owner,
            "create_jit_config",
            format!("{name} group={runner_group_id} labels={}", labels.join(",")),
        )?;
        let mut s = lock(&self.github.state);
        s.next_runner += 1;
        let id = s.next_runner;
        s.runners.entry(self.owner.to_string()).or_default().push(GithubRunner {
            id,
            name: name.to_string(),
            status: "offline".into(),
            busy: false,
            labels: labels.to_vec(),
            custom_labels: labels.iter().filter(|l| !is_read_only_label(l)).cloned().collect(),
        });
        Ok(JitConfig { runner_id: id, encoded: Secret::new(format!("jit-config-for-{name}")) })
    }

    async fn registration_token(&self) -> Result<Secret<String>, GithubError> {
        self.github.record(&self.owner, "registration_token", String::new())?;
        Ok(Secret::new("REGISTRATION-TOKEN".into()))
    }

    async fn list_runners(&self) -> Result<Vec<GithubRunner>, GithubError> {
        self.github.record(&self.owner, "list_runners", String::new())?;
        Ok(self.github.runners(&self.owner))
    }

    async fn get_runner(&self, id: u64) -> Result<Option<GithubRunner>, GithubError> {
        self.github.record(&self.owner, "get_runner", id.to_string())?;
        Ok(self.github.runners(&self.owner).into_iter().find(|r| r.id == id))
    }

    async fn remove_custom_labels(&self, id: u64) -> Result<Withdrawal, GithubError> {
        self.github.record(&self.owner, "remove_custom_labels", id.to_string())?;
        let mut s = lock(&self.github.state);
        match s.runners.entry(self.owner.to_string()).or_default().iter_mut().find(|r| r.id == id) {
            Some(r) => {
                r.labels.retain(|l| is_read_only_label(l));
                r.custom_labels.clear();
                Ok(Withdrawal::Withdrawn)
            }
            None => Ok(Withdrawal::NotFound),
        }
    }

    async fn delete_runner(&self, id: u64) -> Result<RunnerRemoval, GithubError> {
        self.github.record(&self.owner, "delete_runner", id.to_string())?;
        let mut s = lock(&self.github.state);
        if s.busy_on_delete.contains(&id) {
            return Ok(RunnerRemoval::Busy);
        }
        let list = s.runners.entry(self.owner.to_string()).or_default();
        let before = list.len();
        list.retain(|r| r.id != id);
        Ok(if list.len() < before { RunnerRemoval::Deleted } else { RunnerRemoval::NotFound })
    }
}

#[async_trait]
impl GithubApi for MemoryGithub {
    fn choose_app(&self) -> usize {
        0
    }

    fn app_id(&self, _app: usize) -> u64 {
        1
    }

    fn rate_limit_remaining(&self, _app: usize) -> Option<u64> {
        Some(4999)
    }

    fn web_url(&self) -> String {
        "https://github.com".into()
    }

    async fn for_owner(
        &self,
        _app: usize,
        owner: &RunnerOwner,
        _installation_hint: Option<u64>,
        _deadline: Deadline,
    ) -> Result<Box<dyn GithubOwner + '_>, GithubError> {
        let failure = {
            let mut s = lock(&self.state);
            s.calls.push(GithubCall { owner: owner.to_string(), operation: "installation", detail: String::new() });
            s.installation_failures.get(&owner.to_string()).cloned()
        };
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(Box::new(MemoryGithubOwner { github: self.clone(), owner: owner.clone() }))
    }
}

/// An App's webhook delivery log: redelivery appends an attempt, answered by the endpoint as
/// `endpoint_status` says at that moment.
pub struct MemoryDeliveries {
    pub log: Mutex<Vec<crate::domain::redelivery::Delivery>>,
    /// The status the endpoint answers redeliveries with.
    pub endpoint_status: Mutex<u16>,
    /// Errors for the next redelivery requests, in order.
    pub redeliver_errors: Mutex<Vec<GithubError>>,
    pub list_calls: Mutex<usize>,
    pub redeliver_calls: Mutex<Vec<u64>>,
    clock: Arc<dyn crate::clock::Clock>,
}

impl MemoryDeliveries {
    pub fn new(clock: Arc<dyn crate::clock::Clock>) -> Self {
        Self {
            log: Mutex::new(Vec::new()),
            endpoint_status: Mutex::new(200),
            redeliver_errors: Mutex::new(Vec::new()),
            list_calls: Mutex::new(0),
            redeliver_calls: Mutex::new(Vec::new()),
            clock,
        }
    }

    /// A first attempt of a new event, answered `status`, `ago` before the clock's now.
    pub fn deliver(&self, guid: &str, event: &str, status: u16, ago: chrono::Duration) -> u64 {
        let mut log = lock(&self.log);
        let id = log.iter().map(|d| d.id).max().unwrap_or(1000) + 1;
        log.push(crate::domain::redelivery::Delivery {
            id,
            guid: guid.into(),
            delivered_at: self.clock.now() - ago,
            redelivery: false,
            status_code: status,
            event: event.into(),
            action: Some("queued".into()),
        });
        id
    }

    pub fn set_endpoint_status(&self, status: u16) {
        *lock(&self.endpoint_status) = status;
    }

    /// The attempts of `guid`, oldest first.
    pub fn attempts(&self, guid: &str) -> Vec<crate::domain::redelivery::Delivery> {
        let mut a: Vec<_> = lock(&self.log).iter().filter(|d| d.guid == guid).cloned().collect();
        a.sort_by_key(|d| d.id);
        a
    }
}

#[async_trait]
impl crate::ports::WebhookDeliveries for MemoryDeliveries {
    fn app_count(&self) -> usize {
        1
    }

    fn app_id(&self, _app: usize) -> u64 {
        7
    }

    async fn list_deliveries(
        &self,
        _app: usize,
        cursor: Option<&str>,
        per_page: u32,
        _deadline: Deadline,
    ) -> Result<crate::ports::DeliveryPage, GithubError> {
        *lock(&self.list_calls) += 1;
        let mut log = lock(&self.log).clone();
        log.sort_by_key(|d| std::cmp::Reverse(d.id));
        let below: u64 = cursor.and_then(|c| c.parse().ok()).unwrap_or(u64::MAX);
        let page: Vec<_> = log.into_iter().filter(|d| d.id < below).take(per_page as usize + 1).collect();
        let next_cursor = (page.len() > per_page as usize).then(|| page[per_page as usize - 1].id.to_string());
        Ok(crate::ports::DeliveryPage { deliveries: page.into_iter().take(per_page as usize).collect(), next_cursor })
    }

    async fn redeliver(&self, _app: usize, delivery_id: u64, _deadline: Deadline) -> Result<(), GithubError> {
        lock(&self.redeliver_calls).push(delivery_id);
        {
            let mut errors = lock(&self.redeliver_errors);
            if !errors.is_empty() {
                return Err(errors.remove(0));
            }
        }
        let status = *lock(&self.endpoint_status);
        let mut log = lock(&self.log);
        let original = log.iter().find(|d| d.id == delivery_id).cloned().ok_or_else(|| GithubError::Status {
            endpoint: "POST /app/hook/deliveries/{id}/attempts".into(),
            status: 404,
            message: "Not Found".into(),
        })?;
        let id = log.iter().map(|d| d.id).max().unwrap_or(1000) + 1;
        log.push(crate::domain::redelivery::Delivery {
            id,
            delivered_at: self.clock.now(),
            redelivery: true,
            status_code: status,
            ..original
        });
        Ok(())
    }
}
