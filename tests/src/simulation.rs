//! The instance side of reusable runners, simulated around scale-down runs: a pool of runner
//! instances in moto with registered runners in the fake GitHub, and jobs handed to them at
//! random moments relative to each scale-down run, in simulated time (scale-down reads the
//! clock file the simulation advances by one schedule interval per round).
//!
//! A job goes through what GitHub and the runner really do:
//! 1. **assigned**: GitHub's broker hands the job to an idle runner that has every label it
//!    asks for (most jobs ask for the runners' custom label; `read_only_share` of them only for
//!    read-only ones, which a withdrawn runner still has). The REST API does not know
//!    yet: a DELETE of the runner still answers 204 (upstream #5085's window). These moments
//!    are real time around the run, so the race with its DELETE is real.
//! 2. **started** `δ` later: the runner starts the job. GitHub now refuses to delete it (422),
//!    but its reported `busy` flag lags. A job whose runner was deregistered in between is
//!    **lost on deregistration**: its runner's credentials are gone, so on GitHub it most
//!    likely fails. It still runs on the instance.
//! 3. **marked** 0-120 s (simulated) later: "Set up job" done, the job-started hook writes the
//!    `ghr:job_started` tag (a delay under a second is written at once, in real time).
//! 4. **completed** after its duration (simulated): the hook writes `ghr:job_completed`.
//!
//! A job is **killed** when its instance is terminated while it runs, whether or not its runner
//! was still registered.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, Tag};
use chrono::{DateTime, Utc};
use common::domain::runner::{RunnerOwner, tags};
use common::domain::scale_down::{JOB_COMPLETED_TAG, JOB_STARTED_TAG};
use tokio::time::Instant;

use crate::aws::Aws;
use crate::fake_github::{FakeGithub, Scope};
use crate::stack::RunnerStack;

/// What happened over the rounds.
#[derive(Debug, Default, Clone)]
pub struct SimulationReport {
    pub rounds: usize,
    pub jobs: usize,
    pub completed: usize,
    /// Jobs whose instance was terminated under them: (job id, instance id).
    pub killed: Vec<(u64, String)>,
    /// Runners scale-down deregistered (first phase of a removal).
    pub removals: usize,
    /// Instances terminated with no job on them.
    pub idle_removed: usize,
    /// Jobs GitHub handed out in the window where a DELETE still succeeds, whose runner the
    /// scale-down run deregistered before they started: lost on GitHub.
    pub lost_on_deregistration: usize,
    /// Jobs that ask only for read-only labels (`self-hosted`, OS, architecture): a withdrawn
    /// runner (custom labels removed) can still be handed one.
    pub read_only_jobs: usize,
    /// Of the jobs lost on deregistration, those that ask only for read-only labels.
    pub lost_read_only: usize,
    /// Simulated instance-minutes between a runner's deregistration and its instance's
    /// termination, summed over the terminated instances.
    pub drain_instance_minutes: f64,
}

impl SimulationReport {
    /// Jobs lost on deregistration per 1,000 removals.
    pub fn lost_per_1000_removals(&self) -> f64 {
        if self.removals == 0 { 0.0 } else { self.lost_on_deregistration as f64 * 1000.0 / self.removals as f64 }
    }

    /// Jobs lost on deregistration that asked for a custom label of the runners.
    pub fn lost_with_custom_labels(&self) -> usize {
        self.lost_on_deregistration - self.lost_read_only
    }

    /// The extra instance time a removal costs: from deregistration to termination.
    pub fn extra_instance_minutes_per_removal(&self) -> f64 {
        if self.idle_removed == 0 { 0.0 } else { self.drain_instance_minutes / self.idle_removed as f64 }
    }
}

/// A job that started on an instance and has not completed.
struct RunningJob {
    job: u64,
    instance: String,
    /// The `ghr:job_started` value (unix ms, simulated).
    stamp: String,
    marker_due: Option<DateTime<Utc>>,
    ends_at: DateTime<Utc>,
}

pub struct BusySimulation {
    pub aws: Arc<Aws>,
    pub github: Arc<FakeGithub>,
    pub stack: RunnerStack,
    pub owner: String,
    pub pool: usize,
    /// Jobs handed out per round.
    pub jobs_per_round: (usize, usize),
    /// Assignment offset from the scale-down run's start, in real seconds.
    pub assign_window: (f64, f64),
    /// Time from assignment to start (δ), in real seconds.
    pub start_delay: (f64, f64),
    /// Time from the start to the job-started hook ("Set up job"), simulated seconds.
    pub hook_delay: (f64, f64),
    /// Job duration, simulated seconds.
    pub job_duration: (f64, f64),
    /// How long GitHub's reported `busy` lags, in real seconds (within the round).
    pub busy_lag: (f64, f64),
    /// The scale-down schedule: simulated time between runs.
    pub interval: chrono::Duration,
    /// The runners' custom label (`runner_extra_labels`), asked for by most jobs.
    pub custom_label: String,
    /// The share of jobs that ask only for read-only labels.
    pub read_only_share: f64,
    clock_file: PathBuf,
    now: DateTime<Utc>,
    running: Vec<RunningJob>,
    rng: fastrand::Rng,
    report: SimulationReport,
}

fn between(rng: &mut fastrand::Rng, (lo, hi): (f64, f64)) -> f64 {
    lo + rng.f64() * (hi - lo)
}

fn seconds(s: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((s * 1000.0) as i64)
}

impl BusySimulation {
    /// `clock_file` is the scale-down function's clock (`GHR_TEST_CLOCK_FILE`).
    pub fn new(
        aws: Arc<Aws>,
        github: Arc<FakeGithub>,
        stack: RunnerStack,
        owner: &str,
        clock_file: PathBuf,
        seed: u64,
    ) -> Self {
        let now = Utc::now();
        Self {
            aws,
            github,
            stack,
            owner: owner.to_string(),
            pool: 24,
            jobs_per_round: (10, 14),
            assign_window: (-0.8, 0.3),
            start_delay: (0.2, 1.2),
            hook_delay: (0.0, 120.0),
            job_duration: (30.0, 400.0),
            busy_lag: (0.0, 2.0),
            interval: chrono::Duration::minutes(5),
            custom_label: "sim-large".into(),
            read_only_share: 0.1,
            clock_file,
            now,
            running: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
            report: SimulationReport::default(),
        }
    }

    pub fn report(&self) -> SimulationReport {
        self.report.clone()
    }

    fn write_clock(&self) {
        std::fs::write(&self.clock_file, self.now.to_rfc3339()).expect("write the clock file");
    }

    /// The live (pending or running) instances of the stack: id → (state, tags). A terminated
    /// one is simply absent.
    async fn instances(&self) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
        let mut out = BTreeMap::new();
        let mut next = None;
        loop {
            let page = self
                .aws
                .ec2
                .describe_instances()
                .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
                .filters(Filter::builder().name("instance-state-name").values("pending").values("running").build())
                .set_next_token(next)
                .send()
                .await
                .expect("describe instances");
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                let (Some(id), Some(state)) = (i.instance_id(), i.state().and_then(|s| s.name())) else { continue };
                let tags =
                    i.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
                out.insert(id.to_string(), (state.as_str().to_string(), tags));
            }
            next = page.next_token().map(str::to_string);
            if next.is_none() {
                return out;
            }
        }
    }

    async fn tag(&self, instance: &str, key: &str, value: &str) {
        let _ = self
            .aws
            .ec2
            .create_tags()
            .resources(instance)
            .tags(Tag::builder().key(key).value(value).build())
            .send()
            .await;
    }

    /// Keeps `pool` live, registered runner instances (draining ones do not count).
    async fn top_up(&mut self) {
        let instances = self.instances().await;
        let live = instances
            .values()
            .filter(|(s, t)| (s == "running" || s == "pending") && !t.contains_key(tags::DEREGISTERED_AT))
            .count();
        if live < self.pool {
            let owner = RunnerOwner::Org(self.owner.clone());
            for id in self.stack.launch_instances(&self.aws, &owner, self.pool - live).await {
                let runner = self.github.add_runner(Scope::org(&self.owner), &id, true, false);
                self.github.set_custom_labels(runner, &[&self.custom_label]);
            }
        }
    }

    /// What happened to the running jobs up to now (simulated): late markers written, jobs
    /// completed; a job whose instance is gone was killed.
    async fn advance_jobs(&mut self) {
        let instances = self.instances().await;
        let alive = |id: &str| instances.get(id).is_some_and(|(s, _)| s == "running" || s == "pending");
        let mut still = Vec::new();
        for mut job in std::mem::take(&mut self.running) {
            if !alive(&job.instance) {
                self.report.killed.push((job.job, job.instance.clone()));
                continue;
            }
            if job.marker_due.is_some_and(|t| t <= self.now) {
                self.tag(&job.instance, JOB_STARTED_TAG, &job.stamp).await;
                job.marker_due = None;
            }
            if job.ends_at <= self.now {
                if job.marker_due.take().is_some() {
                    self.tag(&job.instance, JOB_STARTED_TAG, &job.stamp).await;
                }
                self.tag(&job.instance, JOB_COMPLETED_TAG, &job.stamp).await;
                self.github.finish_job(job.job, Duration::ZERO);
                self.report.completed += 1;
            } else {
                still.push(job);
            }
        }
        self.running = still;
    }

    /// One round: the jobs since the last run move on, new jobs are handed out around one
    /// scale-down run (`scale_down` is awaited at the round's reference time, with the clock
    /// file at the round's simulated time), then simulated time moves on by one interval.
    pub async fn round<F, Fut>(&mut self, scale_down: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        self.write_clock();
        self.advance_jobs().await;
        self.top_up().await;
        let instances = self.instances().await;
        let mut idle: Vec<(String, u64)> = self
            .github
            .runners()
            .into_iter()
            .filter(|r| {
                r.job.is_none()
                    && !r.busy_actual
                    && instances.get(&r.name).is_some_and(|(s, t)| {
                        (s == "running" || s == "pending") && !t.contains_key(tags::DEREGISTERED_AT)
                    })
            })
            .map(|r| (r.name.clone(), r.id))
            .collect();
        self.rng.shuffle(&mut idle);
        let jobs = self.rng.usize(self.jobs_per_round.0..=self.jobs_per_round.1).min(idle.len());
        let reference = Instant::now() + Duration::from_millis(900);
        let mut tasks = Vec::new();
        for (instance, runner_id) in idle.into_iter().take(jobs) {
            let offset = between(&mut self.rng, self.assign_window);
            let delay = between(&mut self.rng, self.start_delay);
            let lag = between(&mut self.rng, self.busy_lag);
            let hook = between(&mut self.rng, self.hook_delay);
            let duration = between(&mut self.rng, self.job_duration);
            let read_only = self.rng.f64() < self.read_only_share;
            let labels: Vec<String> = if read_only {
                vec!["self-hosted".into(), "linux".into()]
            } else {
                vec!["self-hosted".into(), "linux".into(), self.custom_label.clone()]
            };
            let job = self.github.add_job(&self.owner, "app", &labels.iter().map(String::as_str).collect::<Vec<_>>());
            let (github, aws) = (self.github.clone(), self.aws.clone());
            let shift = Duration::from_secs_f64(offset.abs().min(0.85));
            let assign_at = if offset >= 0.0 { reference + shift } else { reference - shift };
            let start_sim = self.now + seconds(offset + delay);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(assign_at).await;
                // The broker only hands a job to a registered runner with every label it asks
                // for (a withdrawn runner has lost its custom ones).
                if !github.can_take(runner_id, &labels.iter().map(String::as_str).collect::<Vec<_>>()) {
                    return None;
                }
                tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                let registered_at_start = github.assign_job(job, runner_id, Duration::from_secs_f64(lag)).is_ok();
                let stamp = start_sim.timestamp_millis().to_string();
                let marker_due = if hook < 1.0 {
                    let _ = aws
                        .ec2
                        .create_tags()
                        .resources(&instance)
                        .tags(Tag::builder().key(JOB_STARTED_TAG).value(&stamp).build())
                        .send()
                        .await;
                    None
                } else {
                    Some(start_sim + seconds(hook))
                };
                let running =
                    RunningJob { job, instance, stamp, marker_due, ends_at: start_sim + seconds(hook + duration) };
                Some((running, registered_at_start, read_only))
            }));
        }
        tokio::time::sleep_until(reference).await;
        scale_down().await;
        for task in tasks {
            if let Ok(Some((running, registered_at_start, read_only))) = task.await {
                self.report.jobs += 1;
                self.report.read_only_jobs += usize::from(read_only);
                if !registered_at_start {
                    self.report.lost_on_deregistration += 1;
                    self.report.lost_read_only += usize::from(read_only);
                }
                self.running.push(running);
            }
        }
        // What the run did. Two-phase: it tagged the runners it deregistered, and terminated
        // draining instances of earlier runs. Without: it terminated what it deregistered.
        let after = self.instances().await;
        let busy: HashSet<&String> = self.running.iter().map(|j| &j.instance).collect();
        for (id, (_, tags_before)) in &instances {
            let was_draining = tags_before.contains_key(tags::DEREGISTERED_AT);
            match after.get(id) {
                // Still live: newly tagged, it was deregistered by this run (first phase).
                Some((_, tags_after)) => {
                    if !was_draining && tags_after.contains_key(tags::DEREGISTERED_AT) {
                        self.report.removals += 1;
                    }
                }
                // Terminated by this run.
                None => {
                    if !was_draining {
                        // Without two-phase removal: deregistered and terminated at once.
                        self.report.removals += 1;
                    }
                    if !busy.contains(id) {
                        self.report.idle_removed += 1;
                        if let Some(at) = tags_before.get(tags::DEREGISTERED_AT).and_then(|v| v.parse::<i64>().ok()) {
                            self.report.drain_instance_minutes += (self.now.timestamp() - at) as f64 / 60.0;
                        }
                    }
                }
            }
        }
        self.report.rounds += 1;
        self.now += self.interval;
    }

    /// Runs the remaining jobs to their end (no more scale-down runs): every job ends completed
    /// or killed.
    pub async fn finish(&mut self) {
        for _ in 0..10 {
            if self.running.is_empty() {
                return;
            }
            self.now += self.interval;
            self.advance_jobs().await;
        }
    }
}
