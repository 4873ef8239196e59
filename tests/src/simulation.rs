//! The instance side of reusable runners, simulated around scale-down runs: a pool of runner
//! instances in moto with registered runners in the fake GitHub, and jobs handed to them at
//! random moments relative to each scale-down run.
//!
//! A job goes through what GitHub and the runner really do:
//! 1. **assigned**: GitHub's broker hands the job to an idle runner. The REST API does not know
//!    yet: a DELETE of the runner still answers 204 (upstream #5085's window).
//! 2. **started** `δ` later: the runner starts the job. GitHub now refuses to delete it (422),
//!    but its reported `busy` flag lags by 0-60 s. The runner's job-started hook writes the
//!    `ghr:job_started` tag on its instance, as the boot script's hook does.
//! 3. **completed**: the job ends, the hook writes `ghr:job_completed`, the runner is idle again.
//!
//! A job is **killed** when its instance is terminated before the job completes.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, Tag};
use common::domain::runner::RunnerOwner;
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
    /// Instances terminated with no job on them.
    pub idle_removed: usize,
    /// Jobs GitHub handed out in the window where a DELETE still succeeds, and the scale-down
    /// run deregistered the runner anyway.
    pub deregistered_under_a_job: usize,
}

pub struct BusySimulation {
    pub aws: Arc<Aws>,
    pub github: Arc<FakeGithub>,
    pub stack: RunnerStack,
    pub owner: String,
    pub pool: usize,
    /// Jobs handed out per round.
    pub jobs_per_round: (usize, usize),
    /// Assignment offset from the scale-down run's start, in seconds.
    pub assign_window: (f64, f64),
    /// Time from assignment to start (δ), in seconds.
    pub start_delay: (f64, f64),
    pub job_duration: (f64, f64),
    /// How long GitHub's reported `busy` lags, in seconds.
    pub busy_lag: (f64, f64),
    rng: fastrand::Rng,
    report: SimulationReport,
}

fn between(rng: &mut fastrand::Rng, (lo, hi): (f64, f64)) -> f64 {
    lo + rng.f64() * (hi - lo)
}

impl BusySimulation {
    pub fn new(aws: Arc<Aws>, github: Arc<FakeGithub>, stack: RunnerStack, owner: &str, seed: u64) -> Self {
        Self {
            aws,
            github,
            stack,
            owner: owner.to_string(),
            pool: 12,
            jobs_per_round: (3, 6),
            assign_window: (-2.5, 0.4),
            start_delay: (0.2, 1.2),
            job_duration: (1.5, 4.0),
            busy_lag: (0.0, 60.0),
            rng: fastrand::Rng::with_seed(seed),
            report: SimulationReport::default(),
        }
    }

    pub fn report(&self) -> SimulationReport {
        self.report.clone()
    }

    async fn instance_states(&self) -> BTreeMap<String, String> {
        let out = self
            .aws
            .ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
            .send()
            .await
            .expect("describe instances");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| Some((i.instance_id()?.to_string(), i.state()?.name()?.as_str().to_string())))
            .collect()
    }

    /// Keeps `pool` live runner instances with registered, online runners.
    async fn top_up(&mut self) {
        let states = self.instance_states().await;
        let live = states.values().filter(|s| *s == "running" || *s == "pending").count();
        if live < self.pool {
            let owner = RunnerOwner::Org(self.owner.clone());
            for id in self.stack.launch_instances(&self.aws, &owner, self.pool - live).await {
                self.github.add_runner(Scope::org(&self.owner), &id, true, false);
            }
        }
    }

    /// One round: hand out jobs around one scale-down run (`scale_down` is awaited at the
    /// round's reference time) and follow every job to its end.
    pub async fn round<F, Fut>(&mut self, scale_down: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        self.top_up().await;
        let states = self.instance_states().await;
        let mut idle: Vec<(String, u64)> = self
            .github
            .runners()
            .into_iter()
            .filter(|r| {
                r.job.is_none()
                    && !r.busy_actual
                    && states.get(&r.name).is_some_and(|s| s == "running" || s == "pending")
            })
            .map(|r| (r.name.clone(), r.id))
            .collect();
        self.rng.shuffle(&mut idle);
        let jobs = self.rng.usize(self.jobs_per_round.0..=self.jobs_per_round.1).min(idle.len());
        let reference = Instant::now() + Duration::from_secs(3);
        let mut tasks = Vec::new();
        let busy_instances: HashSet<String> = idle.iter().take(jobs).map(|(i, _)| i.clone()).collect();
        for (instance, runner_id) in idle.into_iter().take(jobs) {
            let offset = between(&mut self.rng, self.assign_window);
            let delay = between(&mut self.rng, self.start_delay);
            let duration = between(&mut self.rng, self.job_duration);
            let lag = between(&mut self.rng, self.busy_lag);
            let job = self.github.add_job(&self.owner, "app", &["self-hosted"]);
            let (github, aws) = (self.github.clone(), self.aws.clone());
            let shift = Duration::from_secs_f64(offset.abs().min(2.9));
            let assign_at = if offset >= 0.0 { reference + shift } else { reference - shift };
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(assign_at).await;
                // The broker only hands jobs to registered runners.
                if github.runner(runner_id).is_none() {
                    return JobFate::NotAssigned;
                }
                tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                let registered_at_start = github.assign_job(job, runner_id, Duration::from_secs_f64(lag)).is_ok();
                let alive = |aws: Arc<Aws>, id: String| async move {
                    let out = aws
                        .ec2
                        .describe_instances()
                        .filters(Filter::builder().name("instance-id").values(&id).build())
                        .send()
                        .await;
                    out.ok()
                        .and_then(|o| {
                            o.reservations()
                                .first()?
                                .instances()
                                .first()?
                                .state()?
                                .name()
                                .map(|n| n.as_str().to_string())
                        })
                        .is_some_and(|s| s == "running" || s == "pending")
                };
                if !alive(aws.clone(), instance.clone()).await {
                    return JobFate::Killed(job, instance, registered_at_start);
                }
                // As job-marker.sh writes them: the start in milliseconds, the completion
                // naming the start it closes.
                let stamp = chrono::Utc::now().timestamp_millis().to_string();
                let _ = aws
                    .ec2
                    .create_tags()
                    .resources(&instance)
                    .tags(Tag::builder().key(JOB_STARTED_TAG).value(&stamp).build())
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_secs_f64(duration)).await;
                if !alive(aws.clone(), instance.clone()).await {
                    return JobFate::Killed(job, instance, registered_at_start);
                }
                let _ = aws
                    .ec2
                    .create_tags()
                    .resources(&instance)
                    .tags(Tag::builder().key(JOB_COMPLETED_TAG).value(&stamp).build())
                    .send()
                    .await;
                github.finish_job(job, Duration::from_secs_f64(lag.min(5.0)));
                JobFate::Completed
            }));
        }
        let before = self.instance_states().await;
        tokio::time::sleep_until(reference).await;
        scale_down().await;
        for task in tasks {
            self.report.jobs += 1;
            match task.await {
                Ok(JobFate::Completed) => self.report.completed += 1,
                Ok(JobFate::Killed(job, instance, registered)) => {
                    if !registered {
                        self.report.deregistered_under_a_job += 1;
                    }
                    self.report.killed.push((job, instance));
                }
                Ok(JobFate::NotAssigned) | Err(_) => self.report.jobs -= 1,
            }
        }
        let after = self.instance_states().await;
        let killed: HashSet<&String> = self.report.killed.iter().map(|(_, i)| i).collect();
        self.report.idle_removed += before
            .iter()
            .filter(|(id, s)| {
                (*s == "running" || *s == "pending") && after.get(*id).is_some_and(|a| a != "running" && a != "pending")
            })
            .filter(|(id, _)| !busy_instances.contains(*id) && !killed.contains(id))
            .count();
        self.report.rounds += 1;
    }
}

enum JobFate {
    NotAssigned,
    Completed,
    /// (job, instance, whether the runner was still registered when the job started)
    Killed(u64, String, bool),
}
