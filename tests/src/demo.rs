//! `make demo`: the whole system on one machine.
//!
//! moto stands in for AWS and the fake GitHub for GitHub; both start and stop with the demo.
//! The world is set up the way Terraform sets up AWS (the App's SSM parameters, the webhook
//! secret and matcher config, the runner configuration, the build queue with its delay and
//! visibility timeout, the launch template, the runner bucket), and the four functions run
//! through [`local::Local`]: the same handler code and the same variables as in Lambda, the
//! webhook behind a real HTTP endpoint. By default in EventBridge mode, upstream's default: the
//! webhook publishes on moto's bus `<prefix>-runners`, whose rule `<prefix>-workflow_job`
//! delivers queued jobs to the dispatcher (through an SQS queue standing in for the Lambda
//! target), which routes them to the build queue. `--direct`: the webhook queues jobs itself.
//!
//! The instance side is simulated the way `start-runner.sh` and GitHub behave: each instance
//! scale-up launches in moto boots, finds the runner in S3, reads its configuration and its token
//! parameter from SSM (then deletes it), registers in the fake GitHub (JIT config, or
//! `config.sh` arguments with a registration token) and comes online; GitHub hands queued jobs
//! to idle online runners with matching labels; the job hooks tag the instance; ephemeral
//! instances terminate themselves after their job, reusable runners stay until scale-down
//! removes them. Real GitHub payloads, signed with the webhook secret, are posted to the
//! endpoint. The demo prints a timeline and a summary and succeeds only if every job ran and
//! every runner was removed.

#![allow(clippy::print_stdout)] // the demo prints its timeline

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::{Credentials, Region};
use aws_sdk_ec2::types::{Filter, Tag};
use aws_sdk_sqs::types::QueueAttributeName;
use common::domain::runner::tags;
use common::domain::scale_down::{JOB_COMPLETED_TAG, JOB_STARTED_TAG};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::apps::TestApp;
use crate::aws::Aws;
use crate::aws_proxy::AwsProxy;
use crate::fake_github::{AssetContent, FakeGithub, Scope};
use crate::fixtures;
use crate::moto::{Moto, REGION, unique};
use crate::stack::RunnerStack;

/// The labels the demo's runners register with.
pub const RUNNER_LABELS: &[&str] = &["self-hosted", "linux", "x64", "demo"];
/// Job label sets the demo cycles through; all match the runner configuration (exact match).
const JOB_LABELS: &[&[&str]] =
    &[&["self-hosted", "linux", "x64", "demo"], &["self-hosted", "demo"], &["linux", "x64", "demo"]];
/// A job no runner configuration matches: the webhook does not queue it.
const UNMATCHED_LABELS: &[&str] = &["self-hosted", "gpu"];
const OWNER: &str = "acme";
/// Calls Lambda's event source mapping (and the stand-in for EventBridge's delivery to the
/// dispatcher) make, not the functions.
const ESM_CALLS: &[&str] = &["sqs:ReceiveMessage", "sqs:DeleteMessageBatch", "sqs:DeleteMessage"];
const REPO: &str = "web";

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Jobs in the burst.
    pub jobs: usize,
    /// Ephemeral runners with JIT configs (one job per instance) instead of reusable runners.
    pub ephemeral: bool,
    /// Organization runners (default) or repository runners.
    pub org: bool,
    /// `runners_maximum_count`.
    pub max_runners: usize,
    /// How long each job runs.
    pub job_seconds: f64,
    /// How long an instance takes from launch to running its start script.
    pub boot_seconds: f64,
    /// `delay_webhook_event`: the build queue's delivery delay.
    pub delay_seconds: u32,
    /// `minimum_running_time_in_minutes` for reusable runners.
    pub minimum_running_minutes: u32,
    /// Time between scale-down runs.
    pub scale_down_every: Duration,
    /// Print the timeline and progress (the `make demo` output).
    pub verbose: bool,
    /// Give up after this long.
    pub timeout: Duration,
    /// Direct mode (the webhook queues jobs) instead of EventBridge mode (bus → dispatcher).
    pub direct: bool,
    /// A pool of this many idle runners, topped up every 5 s before and during the burst
    /// (0: no pool).
    pub pool: usize,
    /// The webhook endpoint is down for this long from the start of the burst (0: never); the
    /// redelivery function (every 10 s here) recovers the failed deliveries.
    pub outage_seconds: u64,
    /// A warm pool of this many prepared, stopped instances (0: none), topped up every 2 s.
    pub warm_pool: usize,
    /// How long a stopped instance takes from `StartInstances` to running its start script
    /// (a fresh one takes `boot_seconds`).
    pub start_seconds: f64,
}

/// The instance side's model of EC2 for `--warm-pool`, at 1/20 of real time: a fresh instance
/// boots, installs and starts its runner in about 100 s (`DEMO_FRESH_BOOT_SECONDS` 5 s here);
/// a prepared, stopped instance starts and runs its start script in about 15 s
/// (`DEMO_WARM_START_SECONDS` 0.75 s here). docs/performance.md gives the sources.
pub const DEMO_TIME_SCALE: f64 = 20.0;
pub const DEMO_FRESH_BOOT_SECONDS: f64 = 100.0 / DEMO_TIME_SCALE;
pub const DEMO_WARM_START_SECONDS: f64 = 15.0 / DEMO_TIME_SCALE;

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            jobs: 10,
            ephemeral: false,
            org: true,
            max_runners: 5,
            job_seconds: 3.0,
            boot_seconds: 1.0,
            delay_seconds: 2,
            minimum_running_minutes: 1,
            scale_down_every: Duration::from_secs(5),
            verbose: true,
            timeout: Duration::from_secs(600),
            direct: false,
            pool: 0,
            outage_seconds: 0,
            warm_pool: 0,
            start_seconds: DEMO_WARM_START_SECONDS,
        }
    }
}

/// What happened.
#[derive(Debug, Default, Clone)]
pub struct DemoSummary {
    pub jobs_sent: usize,
    pub jobs_queued: usize,
    pub jobs_completed: usize,
    pub unmatched_ignored: usize,
    /// EventBridge mode: jobs the dispatcher sent to a runner queue.
    pub jobs_dispatched: usize,
    /// Runners the pool launched, and jobs that started on one.
    pub pool_runners: usize,
    pub jobs_on_pool_runners: usize,
    pub pool_runs: usize,
    /// Deliveries that failed (the endpoint down) and redeliveries requested.
    pub deliveries_failed: usize,
    pub redelivered: usize,
    /// Seconds from the endpoint's recovery to the last job taken by a runner.
    pub recovery_to_last_started: Option<f64>,
    pub runners_launched: usize,
    pub runners_online: usize,
    pub runners_removed: usize,
    /// Runner instances still alive at the end, and runners still registered.
    pub instances_left: usize,
    pub runners_left: usize,
    /// Seconds from a job's delivery to a runner taking it, and from launch to runner online.
    pub queued_to_started: Vec<f64>,
    pub launch_to_online: Vec<f64>,
    /// Warm pool: instances prepared (stopped, ready), jobs that started on one, and for those
    /// jobs queued → started (`queued_to_started` has every job), and start → runner online.
    pub warm_prepared: usize,
    pub jobs_on_warm_instances: usize,
    pub warm_queued_to_started: Vec<f64>,
    pub fresh_queued_to_started: Vec<f64>,
    pub start_to_online: Vec<f64>,
    pub warm_pool_runs: usize,
    pub github_calls: BTreeMap<String, usize>,
    pub aws_calls: BTreeMap<String, usize>,
    pub scale_up_batches: usize,
    pub messages_retried: usize,
    pub scale_down_runs: usize,
    pub wall_seconds: f64,
    pub timed_out: bool,
}

impl DemoSummary {
    /// Every queued job ran, every runner is gone, nothing timed out.
    pub fn ok(&self) -> bool {
        !self.timed_out
            && self.jobs_queued > 0
            && self.jobs_completed == self.jobs_queued
            && self.instances_left == 0
            && self.runners_left == 0
    }

    pub fn render(&self) -> String {
        let pct = |v: &[f64], p: f64| crate::percentile(v, p).map_or("n/a".into(), |x| format!("{x:.1} s"));
        let gh: usize = self.github_calls.values().sum();
        // The event source mapping's polling is Lambda's, not the functions'.
        let esm = |k: &str| ESM_CALLS.contains(&k);
        let aws: usize = self.aws_calls.iter().filter(|(k, _)| !esm(k)).map(|(_, v)| v).sum();
        let polling: usize = self.aws_calls.iter().filter(|(k, _)| esm(k)).map(|(_, v)| v).sum();
        // Runners: fresh instances, and warm ones started for a job.
        let runners = self.runners_launched + self.jobs_on_warm_instances;
        let per = |n: usize| if runners == 0 { 0.0 } else { n as f64 / runners as f64 };
        let mut out = String::new();
        out.push_str("\n== Summary ==\n");
        out.push_str(&format!(
            "jobs: {} sent, {} queued, {} completed, {} not matching any runner configuration (ignored)\n",
            self.jobs_sent, self.jobs_queued, self.jobs_completed, self.unmatched_ignored
        ));
        if self.pool_runs > 0 {
            out.push_str(&format!(
                "pool: {} runs, {} runners launched by the pool, {} jobs started on a pool runner\n",
                self.pool_runs, self.pool_runners, self.jobs_on_pool_runners
            ));
        }
        if self.warm_pool_runs > 0 {
            out.push_str(&format!(
                "warm pool: {} runs, {} instances prepared and stopped, {} jobs started on a warm instance\n",
                self.warm_pool_runs, self.warm_prepared, self.jobs_on_warm_instances
            ));
            out.push_str(&format!(
                "queued → job started: warm p50 {}, p95 {} | fresh p50 {}, p95 {} | StartInstances → runner online: p50 {}\n",
                pct(&self.warm_queued_to_started, 0.5),
                pct(&self.warm_queued_to_started, 0.95),
                pct(&self.fresh_queued_to_started, 0.5),
                pct(&self.fresh_queued_to_started, 0.95),
                pct(&self.start_to_online, 0.5),
            ));
        }
        if self.deliveries_failed > 0 {
            out.push_str(&format!(
                "outage: {} deliveries failed, {} redelivered; endpoint back → last job on a runner: {}\n",
                self.deliveries_failed,
                self.redelivered,
                self.recovery_to_last_started.map_or("n/a".into(), |s| format!("{s:.1} s"))
            ));
        }
        if self.jobs_dispatched > 0 {
            out.push_str(&format!(
                "EventBridge: {} jobs published by the webhook and routed by the dispatcher\n",
                self.jobs_dispatched
            ));
        }
        out.push_str(&format!(
            "runners: {} launched{}, {} online, {} removed; left: {} instances, {} registered runners\n",
            self.runners_launched,
            if self.jobs_on_warm_instances > 0 {
                format!(" (and {} warm instances started)", self.jobs_on_warm_instances)
            } else {
                String::new()
            },
            self.runners_online,
            self.runners_removed,
            self.instances_left,
            self.runners_left
        ));
        out.push_str(&format!(
            "queued → runner online with the job: p50 {}, p95 {} | instance launch → runner online: p50 {}, p95 {}\n",
            pct(&self.queued_to_started, 0.5),
            pct(&self.queued_to_started, 0.95),
            pct(&self.launch_to_online, 0.5),
            pct(&self.launch_to_online, 0.95)
        ));
        out.push_str(&format!(
            "functions: {} scale-up batches ({} messages returned for retry), {} scale-down runs; wall time {:.1} s\n",
            self.scale_up_batches, self.messages_retried, self.scale_down_runs, self.wall_seconds
        ));
        out.push_str(&format!(
            "API calls by the functions: GitHub {gh} ({:.2} per runner), AWS {aws} ({:.2} per runner)\n",
            per(gh),
            per(aws)
        ));
        for (k, v) in self.github_calls.iter().chain(self.aws_calls.iter().filter(|(k, _)| !esm(k))) {
            out.push_str(&format!("  {v:>5}  {k}\n"));
        }
        out.push_str(&format!("(and {polling} SQS calls by the event source mapping and the bus rule's delivery, Lambda's and EventBridge's own)\n"));
        out.push_str(if self.ok() {
            "\nOK: every job ran and every runner was removed.\n"
        } else if self.timed_out {
            "\nFAILED: timed out before every job ran and every runner was removed.\n"
        } else {
            "\nFAILED: not every job ran, or runners are left.\n"
        });
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The shared state of the simulation and the timeline
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct JobTrack {
    queued_at: Option<Instant>,
    started_at: Option<Instant>,
    done: bool,
}

#[derive(Default)]
struct InstanceTrack {
    launched_at: Option<Instant>,
    /// Launched by the pool (`ghr:created_by = pool-lambda`).
    pool: bool,
    online_at: Option<Instant>,
    runner_id: Option<u64>,
    removed: bool,
    /// Launched for the warm pool (prepared, then stopped until claimed).
    warm: bool,
    /// When the instance started again for a job (a warm claim).
    started_at: Option<Instant>,
}

struct World {
    started: Instant,
    verbose: bool,
    aws: Aws,
    github: Arc<FakeGithub>,
    stack: RunnerStack,
    options: DemoOptions,
    bucket: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<u64, JobTrack>,
    instances: BTreeMap<String, InstanceTrack>,
    summary: DemoSummary,
}

impl World {
    fn say(&self, line: impl AsRef<str>) {
        if self.verbose {
            println!("[{:>6.1}s] {}", self.started.elapsed().as_secs_f64(), line.as_ref());
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    fn scope(&self) -> Scope {
        if self.options.org { Scope::org(OWNER) } else { Scope::repo(OWNER, REPO) }
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

    async fn live_instances(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut next = None;
        loop {
            let Ok(page) = self
                .aws
                .ec2
                .describe_instances()
                .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
                .filters(Filter::builder().name("instance-state-name").values("pending").values("running").build())
                .set_next_token(next)
                .send()
                .await
            else {
                return out;
            };
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                let kind = i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default();
                let lifecycle = i.instance_lifecycle().map(|l| l.as_str().to_string()).unwrap_or("on-demand".into());
                let pool = i
                    .tags()
                    .iter()
                    .any(|t| t.key() == Some(tags::CREATED_BY) && t.value() == Some(tags::CREATED_BY_POOL));
                let warm = i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(common::domain::warm_pool::WARM_TAG))
                    .and_then(|t| t.value());
                let by = match (pool, warm) {
                    (true, _) => ", for the pool",
                    (false, Some("claimed")) => ", for the warm pool, claimed",
                    (false, Some(_)) => ", for the warm pool",
                    (false, None) => "",
                };
                out.push((i.instance_id().unwrap_or_default().to_string(), format!("{lifecycle} {kind}{by}")));
            }
            next = page.next_token().map(str::to_string);
            if next.is_none() {
                return out;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The instance side: boot, register, run jobs, leave
// ---------------------------------------------------------------------------------------------

/// Watches moto for instances scale-up (or the warm pool) launched and boots each once; a
/// prepared warm instance that runs again was claimed and started by scale-up.
async fn watch_instances(world: Arc<World>) {
    loop {
        for (id, kind) in world.live_instances().await {
            enum Seen {
                New { warm: bool },
                Claimed,
                Known,
            }
            let seen = {
                let mut s = world.state();
                match s.instances.get_mut(&id) {
                    // Prepared, then claimed and started by scale-up (its tag says so).
                    Some(track) if track.warm && track.started_at.is_none() && kind.ends_with("claimed") => {
                        track.started_at = Some(Instant::now());
                        Seen::Claimed
                    }
                    Some(_) => Seen::Known,
                    None => {
                        let pool = kind.ends_with("for the pool");
                        let warm = kind.contains("for the warm pool");
                        s.instances.insert(
                            id.clone(),
                            InstanceTrack { launched_at: Some(Instant::now()), pool, warm, ..Default::default() },
                        );
                        if !warm {
                            s.summary.runners_launched += 1;
                        }
                        if pool {
                            s.summary.pool_runners += 1;
                        }
                        Seen::New { warm }
                    }
                }
            };
            match seen {
                Seen::New { warm: true } => {
                    world.say(format!("instance {id} launched ({kind}): preparing"));
                    tokio::spawn(prepare(world.clone(), id));
                }
                Seen::New { warm: false } => {
                    world.say(format!("instance {id} launched ({kind})"));
                    tokio::spawn(boot(world.clone(), id));
                }
                Seen::Claimed => {
                    world.say(format!("instance {id} (warm) started by scale-up for a job"));
                    tokio::spawn(resume(world.clone(), id));
                }
                Seen::Known => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What `start-runner.sh` does in prepare mode: after the boot (the runner installed), tag the
/// instance ready and stop it. No registration.
async fn prepare(world: Arc<World>, instance: String) {
    tokio::time::sleep(Duration::from_secs_f64(world.options.boot_seconds)).await;
    world.tag(&instance, common::domain::warm_pool::WARM_TAG, "ready").await;
    let _ = world.aws.ec2.stop_instances().instance_ids(&instance).send().await;
    world.state().summary.warm_prepared += 1;
    world.say(format!("instance {instance} prepared: tagged ready and stopped (warm pool)"));
}

/// A prepared instance started by scale-up: EC2's start, then the unit runs start-runner.sh.
async fn resume(world: Arc<World>, instance: String) {
    tokio::time::sleep(Duration::from_secs_f64(world.options.start_seconds)).await;
    start_runner(world, instance).await;
}

/// A fresh instance: EC2's launch and boot (the user data), then start-runner.sh.
async fn boot(world: Arc<World>, instance: String) {
    tokio::time::sleep(Duration::from_secs_f64(world.options.boot_seconds)).await;
    start_runner(world, instance).await;
}

/// What `start-runner.sh` does, against moto and the fake GitHub.
async fn start_runner(world: Arc<World>, instance: String) {
    // install-runner.sh: the runner tarball from the syncer's bucket.
    let installed =
        world.aws.s3.head_object().bucket(&world.bucket).key("actions-runner-linux.tar.gz").send().await.is_ok();
    if !installed {
        world.say(format!("instance {instance}: no runner tarball in S3; it would download it from GitHub"));
    }
    // The runner configuration under the instance's ghr:ssm_config_path.
    let config_path = world.stack.config_path();
    let settings: BTreeMap<String, String> =
        match world.aws.ssm.get_parameters_by_path().path(&config_path).send().await {
            Ok(out) => out
                .parameters()
                .iter()
                .filter_map(|p| Some((p.name()?.rsplit('/').next()?.to_string(), p.value()?.to_string())))
                .collect(),
            Err(_) => BTreeMap::new(),
        };
    let token_name = format!("{}/{instance}", settings.get("token_path").cloned().unwrap_or_default());
    // Wait for scale-up's token parameter, read it, delete it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut polls = 0u32;
    let value = loop {
        if let Ok(out) = world.aws.ssm.get_parameter().name(&token_name).with_decryption(true).send().await
            && let Some(v) = out.parameter().and_then(|p| p.value())
        {
            break Some(v.to_string());
        }
        polls += 1;
        // Scale-up terminates instances beyond the maximum before writing their token.
        let gone = polls.is_multiple_of(8) && !world.live_instances().await.iter().any(|(i, _)| *i == instance);
        if Instant::now() > deadline || gone {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let Some(value) = value else {
        // Terminated by scale-up (beyond the maximum) or never configured: start-runner.sh gives
        // up and terminates the instance.
        world.say(format!("instance {instance}: no runner configuration; the instance is terminated"));
        let _ = world.aws.ec2.terminate_instances().instance_ids(&instance).send().await;
        return;
    };
    let _ = world.aws.ssm.delete_parameter().name(&token_name).send().await;

    let jit = settings.get("enable_jit_config").is_some_and(|v| v == "true")
        && settings.get("agent_mode").is_some_and(|v| v == "ephemeral");
    let registered = if jit {
        world.github.start_jit_runner(&value).map(|id| (id, "JIT config"))
    } else {
        let args = shell_words(&value);
        let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        let labels: Vec<String> =
            arg("--labels").unwrap_or_default().split(',').filter(|l| !l.is_empty()).map(str::to_string).collect();
        let ephemeral = args.iter().any(|a| a == "--ephemeral");
        world
            .github
            .register_with_token(&arg("--token").unwrap_or_default(), &instance, &labels, ephemeral)
            .map(|id| (id, "registration token"))
    };
    match registered {
        Ok((runner_id, how)) => {
            if !jit {
                world.tag(&instance, tags::GITHUB_RUNNER_ID, &runner_id.to_string()).await;
            }
            let (launched, restarted) = {
                let mut s = world.state();
                s.summary.runners_online += 1;
                let track = s.instances.entry(instance.clone()).or_default();
                track.online_at = Some(Instant::now());
                track.runner_id = Some(runner_id);
                (track.launched_at, track.started_at)
            };
            match (restarted, launched) {
                (Some(started), _) => world.state().summary.start_to_online.push(started.elapsed().as_secs_f64()),
                (None, Some(l)) => world.state().summary.launch_to_online.push(l.elapsed().as_secs_f64()),
                (None, None) => {}
            }
            world.say(format!("runner {instance} online (registered with a {how})"));
        }
        Err(e) => {
            world.say(format!("instance {instance}: registration failed ({e}); it terminates itself"));
            let _ = world.aws.ec2.terminate_instances().instance_ids(&instance).send().await;
        }
    }
}

/// GitHub's side: hands each queued job to an idle online runner whose labels cover the job's.
async fn dispatch_jobs(world: Arc<World>) {
    loop {
        let queued: Vec<(u64, Vec<String>)> = world
            .github
            .jobs()
            .into_iter()
            .filter(|j| j.status == "queued")
            .map(|j| (j.id, j.labels.iter().map(|l| l.to_lowercase()).collect()))
            .collect();
        let scope = world.scope();
        let mut runners: Vec<_> =
            world.github.runners().into_iter().filter(|r| r.online && !r.busy_actual && r.scope == scope).collect();
        runners.sort_by_key(|r| r.id);
        for (job, labels) in queued {
            let found = runners.iter().position(|r| {
                let have: Vec<String> = r.labels.iter().map(|l| l.to_lowercase()).collect();
                labels.iter().all(|l| have.contains(l))
            });
            let Some(i) = found else { continue };
            let runner = runners.remove(i);
            if world.github.assign_job(job, runner.id, Duration::ZERO).is_err() {
                continue;
            }
            tokio::spawn(run_job(world.clone(), job, runner.name.clone(), runner.ephemeral));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One job on one runner, with the job hooks the boot script installs.
async fn run_job(world: Arc<World>, job: u64, instance: String, ephemeral: bool) {
    // As job-marker.sh writes them: the start in milliseconds, the completion naming it.
    let started = chrono::Utc::now().timestamp_millis().to_string();
    world.tag(&instance, JOB_STARTED_TAG, &started).await;
    let (queued_at, on_pool, on_warm) = {
        let mut s = world.state();
        let on_pool = s.instances.get(&instance).is_some_and(|i| i.pool);
        let on_warm = s.instances.get(&instance).is_some_and(|i| i.warm);
        if on_pool {
            s.summary.jobs_on_pool_runners += 1;
        }
        if on_warm {
            s.summary.jobs_on_warm_instances += 1;
        }
        let track = s.jobs.entry(job).or_default();
        track.started_at = Some(Instant::now());
        (track.queued_at, on_pool, on_warm)
    };
    if let Some(q) = queued_at {
        let waited = q.elapsed().as_secs_f64();
        let mut s = world.state();
        s.summary.queued_to_started.push(waited);
        if on_warm {
            s.summary.warm_queued_to_started.push(waited);
        } else {
            s.summary.fresh_queued_to_started.push(waited);
        }
    }
    let on = if on_pool {
        " (a pool runner)"
    } else if on_warm {
        " (a warm pool instance)"
    } else {
        ""
    };
    world.say(format!("job {job} started on runner {instance}{on}"));
    tokio::time::sleep(Duration::from_secs_f64(world.options.job_seconds)).await;
    world.tag(&instance, JOB_COMPLETED_TAG, &started).await;
    world.github.finish_job(job, Duration::ZERO);
    {
        let mut s = world.state();
        s.jobs.entry(job).or_default().done = true;
        s.summary.jobs_completed += 1;
    }
    world.say(format!("job {job} done"));
    if ephemeral {
        // The runner deregistered itself after its one job; start-runner.sh ends by terminating
        // the instance.
        let _ = world.aws.ec2.terminate_instances().instance_ids(&instance).send().await;
        mark_removed(&world, &instance, "ephemeral: deregistered after its job, instance terminated itself");
    }
}

fn mark_removed(world: &World, instance: &str, how: &str) {
    let first = {
        let mut s = world.state();
        let track = s.instances.entry(instance.to_string()).or_default();
        let first = !track.removed;
        track.removed = true;
        if first {
            s.summary.runners_removed += 1;
        }
        first
    };
    if first {
        world.say(format!("runner {instance} removed ({how})"));
    }
}

/// POSIX shell words, as `eval set --` splits scale-up's `config.sh` arguments.
pub fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

// ---------------------------------------------------------------------------------------------
// Setting up the world and running the demo
// ---------------------------------------------------------------------------------------------

/// SDK configuration for the functions: through the counting proxy to moto, with the timeouts
/// and retries the functions use in Lambda.
async fn functions_sdk(proxy: &AwsProxy) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&proxy.url)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// EventBridge mode as Terraform deploys it: the bus, the rule for queued jobs, and (standing
/// in for the dispatcher function, which the local runner feeds) an SQS queue as its target.
/// Returns the target queue's URL.
async fn create_bus(moto: &Moto, aws: &Aws, prefix: &str, bus: &str) -> Result<String, String> {
    let events = aws_sdk_eventbridge::Client::new(&moto.sdk_config().await);
    events.create_event_bus().name(bus).send().await.map_err(|e| format!("event bus: {e:?}"))?;
    let target = aws.create_queue(&format!("{prefix}-dispatcher-events"), false).await;
    let rule = format!("{prefix}-workflow_job");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(json!({"detail-type": ["workflow_job"], "detail": {"action": ["queued"]}}).to_string())
        .send()
        .await
        .map_err(|e| format!("rule: {e:?}"))?;
    let target_arn = format!("arn:aws:sqs:{REGION}:{}:{prefix}-dispatcher-events", crate::moto::ACCOUNT);
    let target_rule = aws_sdk_eventbridge::types::Target::builder()
        .id("dispatcher")
        .arn(target_arn)
        .build()
        .map_err(|e| format!("target: {e:?}"))?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(target_rule)
        .send()
        .await
        .map_err(|e| format!("target: {e:?}"))?;
    Ok(target)
}

fn vars(pairs: Vec<(String, String)>) -> local::Vars {
    pairs.into_iter().collect()
}

/// Runs the demo.
pub async fn run(options: DemoOptions) -> Result<DemoSummary, String> {
    let started = Instant::now();
    let verbose = options.verbose;
    let say = |line: &str| {
        if verbose {
            println!("{line}");
        }
    };
    say("Starting moto (AWS) and the fake GitHub...");
    let moto = Moto::shared();
    moto.warm_ec2().await;
    let aws = Aws::new(moto).await;
    let github = Arc::new(FakeGithub::start().await);
    let app = TestApp::new(1, 31337);
    github.add_app(app.id, app.public_pem.as_bytes());
    let installation = github.add_installation(app.id, OWNER, "Organization");
    github.add_release(
        "v2.330.0",
        vec![("actions-runner-linux-x64-2.330.0.tar.gz", AssetContent::Generated { size: 4 << 20, seed: 7 })],
        true,
    );

    // What Terraform creates.
    let stack = RunnerStack::create(&aws, &unique("demo"), std::slice::from_ref(&app)).await;
    let queue_arn = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("queue attributes: {e:?}"))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    aws.sqs
        .set_queue_attributes()
        .queue_url(&stack.queue_url)
        .attributes(QueueAttributeName::DelaySeconds, options.delay_seconds.to_string())
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .map_err(|e| format!("queue attributes: {e:?}"))?;
    let matcher_parameter = format!("{}/webhook/runner-matcher-config", stack.ssm_root);
    let matchers = json!([{
        "id": stack.queue_url, "arn": queue_arn, "fifo": false, "key": format!("{}-queued-builds", stack.prefix),
        "computeProvider": "ec2",
        "matcherConfig": {"labelMatchers": [RUNNER_LABELS], "exactMatch": true, "bidirectionalLabelMatch": false, "priority": 999}
    }]);
    aws.put_parameter(&matcher_parameter, &matchers.to_string(), false).await;
    let checkpoints = format!("{}/webhook/redelivery-checkpoints", stack.ssm_root);
    aws.put_parameter(&checkpoints, "{}", false).await;
    let bus = format!("{}-runners", stack.prefix);
    let event_queue = if options.direct { None } else { Some(create_bus(moto, &aws, &stack.prefix, &bus).await?) };
    let jit = options.ephemeral;
    let run_as = "ec2-user";
    for (name, value) in [
        ("run_as", run_as),
        ("agent_mode", if options.ephemeral { "ephemeral" } else { "persistent" }),
        ("disable_default_labels", "false"),
        ("enable_jit_config", if jit { "true" } else { "false" }),
        ("enable_cloudwatch", "false"),
        ("token_path", &stack.token_path()),
    ] {
        aws.put_parameter(&format!("{}/{name}", stack.config_path()), value, false).await;
    }
    let bucket = format!("{}-dist", stack.prefix);
    aws.s3
        .create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .map_err(|e| format!("bucket: {e:?}"))?;
    say(&format!(
        "Created what Terraform would: SSM parameters under {}, queue {}-queued-builds (delay {} s), launch template {}, bucket {bucket}{}",
        stack.ssm_root,
        stack.prefix,
        options.delay_seconds,
        stack.launch_template,
        if options.direct {
            String::from(" (direct mode: the webhook queues jobs)")
        } else {
            format!(", event bus {bus} with the rule {}-workflow_job for the dispatcher", stack.prefix)
        }
    ));

    // The functions' environments, as Terraform sets them.
    let api = github.url.clone();
    let labels = RUNNER_LABELS.join(",");
    let max = options.max_runners.to_string();
    let org = if options.org { "true" } else { "false" };
    let (ephemeral, jit_config, queued_check) =
        if options.ephemeral { ("true", "true", "false") } else { ("false", "false", "true") };
    let warm_config = if options.warm_pool > 0 {
        json!({"size": options.warm_pool, "maxAgeHours": 24, "hibernate": false}).to_string()
    } else {
        "{}".to_string()
    };
    let scale_up = vars(stack.scale_up_env(
        &api,
        &[
            ("RUNNER_LABELS", &labels),
            ("RUNNERS_MAXIMUM_COUNT", &max),
            ("ENABLE_ORGANIZATION_RUNNERS", org),
            ("ENABLE_EPHEMERAL_RUNNERS", ephemeral),
            ("ENABLE_JIT_CONFIG", jit_config),
            ("ENABLE_JOB_QUEUED_CHECK", queued_check),
            ("WARM_POOL_CONFIG", &warm_config),
        ],
    ));
    // The warm-pool function launches through scale-up's code: scale-up's variables, and the
    // time an instance has to prepare.
    let warm_pool_vars = (options.warm_pool > 0).then(|| {
        let mut v = scale_up.clone();
        v.insert("RUNNER_BOOT_TIME_IN_MINUTES".into(), "1".into());
        v
    });
    let minimum = options.minimum_running_minutes.to_string();
    let scale_down = vars(stack.scale_down_env(
        &api,
        "",
        &[
            ("MINIMUM_RUNNING_TIME_IN_MINUTES", &minimum),
            ("RUNNER_BOOT_TIME_IN_MINUTES", "1"),
            ("RUNNER_JOB_START_GRACE_SECONDS", "2"),
            (common::config::test_overrides::CLOCK_FILE, ""),
        ],
    ));
    let common_vars = |extra: &[(&str, &str)]| -> local::Vars {
        let mut v: local::Vars = [
            ("ENVIRONMENT", stack.prefix.as_str()),
            ("LOG_LEVEL", "info"),
            ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        v
    };
    let routing = [
        ("PARAMETER_RUNNER_MATCHER_CONFIG_PATH", matcher_parameter.as_str()),
        ("REPOSITORY_ALLOW_LIST", "[]"),
        ("QUEUE_SELECTION_STRATEGY", "first"),
    ];
    let mut webhook = common_vars(&routing);
    webhook.insert("PARAMETER_GITHUB_APP_WEBHOOK_SECRET".into(), stack.webhook_secret_parameter.clone());
    if !options.direct {
        webhook.insert("EVENT_BUS_NAME".into(), bus.clone());
        webhook.insert("ACCEPT_EVENTS".into(), r#"["workflow_job"]"#.into());
    }
    let dispatcher = common_vars(&routing);
    // The pool launches through scale-up's code: scale-up's variables, and its own.
    let mut pool_vars = scale_up.clone();
    pool_vars.extend(
        [
            ("RUNNER_OWNER", OWNER),
            ("INCLUDE_BUSY_RUNNERS", "false"),
            ("RUNNER_BOOT_TIME_IN_MINUTES", "1"),
            ("POOL_HOLD_MINUTES", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let cleanup = json!({"tokenPath": stack.token_path(), "minimumDaysOld": 1, "dryRun": false}).to_string();
    let ssm_housekeeper = common_vars(&[("SSM_CLEANUP_CONFIG", &cleanup), ("RUNNER_BOOT_TIME_IN_MINUTES", "1")]);
    let syncer = common_vars(&[
        ("S3_BUCKET_NAME", &bucket),
        ("S3_OBJECT_KEY", "actions-runner-linux.tar.gz"),
        ("S3_SSE_ALGORITHM", "AES256"),
        ("GITHUB_RUNNER_OS", "linux"),
        ("GITHUB_RUNNER_ARCHITECTURE", "x64"),
        (common::config::test_overrides::GITHUB_API_URL, &api),
    ]);
    let redelivery = common_vars(&[
        ("PARAMETER_GITHUB_APP_ID_NAME", &stack.app_id_parameters),
        ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", &stack.app_key_parameters),
        ("REDELIVERY_CHECKPOINT_PARAMETER", &checkpoints),
        ("REDELIVERY_WINDOW_MINUTES", "60"),
        ("REDELIVERY_MAX_ATTEMPTS", "5"),
        (common::config::test_overrides::GITHUB_API_URL, &api),
    ]);
    let envs = local::Environments {
        webhook,
        scale_up,
        scale_down,
        dispatcher,
        pool: pool_vars,
        job_retry: local::Vars::new(),
        warm_pool: warm_pool_vars,
        syncer: Some(syncer),
        ssm_housekeeper: Some(ssm_housekeeper),
        redelivery: Some(redelivery),
    };

    // The functions, their AWS calls counted on the way to moto.
    let proxy = AwsProxy::start(&moto.endpoint).await;
    let sdk = functions_sdk(&proxy).await;
    let logs = crate::moto::project_root().join("target").join(format!("{}-functions.log", stack.prefix));
    let metrics_file = crate::moto::project_root().join("target").join(format!("{}-metrics.log", stack.prefix));
    let _ = local::log_to_file(&logs, "info");
    let sink = Arc::new(local::FileSink::create(&metrics_file).map_err(|e| e.to_string())?);
    let mut local_options = local::Options::new(([127, 0, 0, 1], 0).into(), sink);
    local_options.scale_down_every = options.scale_down_every;
    local_options.event_queue = event_queue;
    if options.pool > 0 {
        local_options.pool = Some((options.pool, Duration::from_secs(5)));
    }
    // The schedule of a deployment is 5 minutes; the demo's, 10 s.
    local_options.redelivery_every = Duration::from_secs(10);
    // A deployment's warm pool top-up runs every 2 minutes; the demo's every 2 s.
    local_options.warm_pool_every = Duration::from_secs(2);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();

    let world = Arc::new(World {
        started,
        verbose,
        aws,
        github: github.clone(),
        stack,
        options: options.clone(),
        bucket,
        state: Mutex::new(State::default()),
    });
    world.say("Syncing the runner binary to S3 and starting the functions...");
    let functions = local::Local::start(&envs, &sdk, local_options, events_tx).await?;
    world.say(format!("webhook listening on {}", functions.webhook_url));
    world.say(format!("function logs: {}; metrics: {}", logs.display(), metrics_file.display()));

    // Function outcomes onto the timeline.
    let watcher = world.clone();
    let event_task = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                local::Event::Syncer(Ok(v)) => watcher.say(format!("syncer: {} {}", v["result"], v["asset"])),
                local::Event::Syncer(Err(e)) => watcher.say(format!("syncer failed: {e}")),
                local::Event::Webhook { status, body, .. } => {
                    watcher.say(format!("webhook answered {status}: {body}"));
                }
                local::Event::Dispatcher(Ok(v)) => {
                    match v["decision"].as_str() {
                        Some("queued") => watcher.state().summary.jobs_dispatched += 1,
                        Some("no_matching_runner") => watcher.state().summary.unmatched_ignored += 1,
                        _ => {}
                    }
                    watcher.say(format!("dispatcher: job {} {} {}", v["jobId"], v["decision"], v["queues"]));
                }
                local::Event::Dispatcher(Err(e)) => {
                    watcher.say(format!("dispatcher failed (the event comes back): {e}"))
                }
                local::Event::Pool(Ok(v)) => {
                    watcher.state().summary.pool_runs += 1;
                    let created = v["created"].as_array().map_or(0, Vec::len);
                    if created > 0 || v["failures"].as_array().is_some_and(|f| !f.is_empty()) {
                        watcher.say(format!(
                            "pool: size {}, {} idle, {} booting, {} busy: launched {created}",
                            v["size"], v["idle"], v["booting"], v["busy"]
                        ));
                    }
                }
                local::Event::Pool(Err(e)) => watcher.say(format!("pool run failed (nothing launched): {e}")),
                local::Event::WarmPool(Ok(v)) => {
                    watcher.state().summary.warm_pool_runs += 1;
                    let launched = v["launched"].as_array().map_or(0, Vec::len);
                    let retired = v["retired"].as_array().map_or(0, Vec::len);
                    if launched > 0 || retired > 0 {
                        watcher.say(format!(
                            "warm-pool: size {}, {} ready, {} preparing: launched {launched}, retired {retired}",
                            v["size"], v["ready"], v["preparing"]
                        ));
                    }
                }
                local::Event::WarmPool(Err(e)) => watcher.say(format!("warm-pool run failed (nothing launched): {e}")),
                local::Event::JobRetry { bodies, retried } => {
                    watcher.say(format!("job-retry: {} checks, {retried} returned", bodies.len()))
                }
                local::Event::SsmHousekeeper(Ok(v)) => watcher
                    .say(format!("ssm-housekeeper: {} token parameters listed, deleted {}", v["listed"], v["deleted"])),
                local::Event::SsmHousekeeper(Err(e)) => watcher.say(format!("ssm-housekeeper failed: {e}")),
                local::Event::Redelivery(v) => {
                    for app in v["apps"].as_array().into_iter().flatten() {
                        let redelivered = app["redelivered"].as_array().map_or(0, Vec::len);
                        watcher.state().summary.redelivered += redelivered;
                        if redelivered > 0 || !app["probe"].is_null() || !app["error"].is_null() {
                            watcher.say(format!(
                                "redelivery: {} failed deliveries seen, {redelivered} redelivered, {} left (probe: {}){}",
                                app["failedSeen"],
                                app["left"],
                                app["probe"].as_str().unwrap_or("none"),
                                app["error"].as_str().map(|e| format!(", error: {e}")).unwrap_or_default()
                            ));
                        }
                    }
                }
                local::Event::ScaleUp { bodies, retried, .. } => {
                    let jobs: Vec<String> = bodies
                        .iter()
                        .filter_map(|b| serde_json::from_str::<Value>(b).ok().and_then(|v| v["id"].as_u64()))
                        .map(|id| id.to_string())
                        .collect();
                    {
                        let mut s = watcher.state();
                        s.summary.scale_up_batches += 1;
                        s.summary.messages_retried += retried;
                    }
                    watcher.say(format!(
                        "scale-up: batch of {} (jobs {}){}",
                        bodies.len(),
                        jobs.join(", "),
                        if retried > 0 {
                            format!(", {retried} returned to the queue for retry")
                        } else {
                            String::new()
                        }
                    ));
                }
                local::Event::ScaleDown(v) => {
                    watcher.state().summary.scale_down_runs += 1;
                    let idle: Vec<String> = v["terminated"]["idle"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|i| i.as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    for id in &idle {
                        mark_removed(
                            &watcher,
                            id,
                            "scale-down: idle past its minimum running time, deregistered, terminated",
                        );
                    }
                    let orphans = v["terminated"]["orphan"].as_array().map_or(0, Vec::len);
                    if orphans > 0 || v["errors"].as_u64().unwrap_or(0) > 0 {
                        watcher.say(format!("scale-down: {v}"));
                    }
                }
            }
        }
    });
    let instances_task = tokio::spawn(watch_instances(world.clone()));
    let dispatch_task = tokio::spawn(dispatch_jobs(world.clone()));

    // A pool warms up first: its runners come online idle, before any job is queued.
    if options.pool > 0 {
        world.say(format!("pool of {}: waiting for its runners to come online", options.pool));
        let warm_by = Instant::now() + Duration::from_secs(120);
        loop {
            let idle = world.github.runners().into_iter().filter(|r| r.online && !r.busy_actual).count();
            if idle >= options.pool || Instant::now() > warm_by {
                world.say(format!("pool warm: {idle} idle runners waiting"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // A warm pool is prepared first: its instances boot once, get ready and stop.
    if options.warm_pool > 0 {
        world.say(format!("warm pool of {}: waiting for its instances to be prepared and stopped", options.warm_pool));
        let ready_by = Instant::now() + Duration::from_secs(120);
        loop {
            let prepared = world.state().summary.warm_prepared;
            if prepared >= options.warm_pool || Instant::now() > ready_by {
                world.say(format!("warm pool ready: {prepared} stopped instances waiting"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // The burst of deliveries: real payloads, signed and sent by the fake GitHub to the App's
    // webhook, each attempt in the App's delivery log. During an outage the endpoint is
    // unreachable (nothing listens where GitHub sends).
    let outage_ends = Instant::now() + Duration::from_secs(options.outage_seconds);
    let hook_url = if options.outage_seconds > 0 {
        world.say(format!("the webhook endpoint goes down for {} s", options.outage_seconds));
        "http://127.0.0.1:9/".to_string()
    } else {
        functions.webhook_url.clone()
    };
    world.github.set_app_hook(app.id, &hook_url, &world.stack.webhook_secret);
    let mut sends: Vec<(u64, Vec<&str>)> = Vec::new();
    for i in 0..options.jobs {
        sends.push((0, JOB_LABELS[i % JOB_LABELS.len()].to_vec()));
    }
    sends.insert(sends.len().min(1), (0, UNMATCHED_LABELS.to_vec()));
    let repo = REPO;
    for (_, labels) in &sends {
        let job = world.github.add_job(OWNER, repo, labels);
        let matched = labels.as_slice() != UNMATCHED_LABELS;
        let body = fixtures::workflow_job("queued", job, labels, OWNER, repo, installation);
        world.say(format!("GitHub: job {job} queued, runs-on [{}]; delivering workflow_job", labels.join(", ")));
        let attempt = world.github.deliver(app.id, "workflow_job", &body).await;
        let status = attempt.status_code;
        let mut s = world.state();
        s.summary.jobs_sent += 1;
        if status == 0 || status >= 500 {
            // Lost without redelivery: the job must still run.
            s.summary.deliveries_failed += 1;
            if matched {
                s.summary.jobs_queued += 1;
                s.jobs.insert(job, JobTrack { queued_at: Some(Instant::now()), ..Default::default() });
            }
            drop(s);
            world.say(format!("GitHub: the delivery for job {job} failed ({})", attempt.status));
            continue;
        }
        // Direct mode: the webhook answers 201 when it queued the job (upstream), 202 when it
        // accepted but ignored it. EventBridge mode: 201 once published; the dispatcher decides.
        if matched && status == 201 {
            s.summary.jobs_queued += 1;
            s.jobs.insert(job, JobTrack { queued_at: Some(Instant::now()), ..Default::default() });
        } else if !matched && options.direct && status == 202 {
            s.summary.unmatched_ignored += 1;
        } else if !matched && status != 201 {
            world.say(format!("webhook answered {status} for job {job}"));
        }
    }

    let mut recovered_at = None;
    if options.outage_seconds > 0 {
        tokio::time::sleep(outage_ends.saturating_duration_since(Instant::now())).await;
        world.github.set_app_hook(app.id, &functions.webhook_url, &world.stack.webhook_secret);
        recovered_at = Some(Instant::now());
        world.say("the webhook endpoint is back; the next redelivery run recovers the failed deliveries");
    }

    // Until every queued job ran and every runner is gone.
    let deadline = started + options.timeout;
    let mut last_progress = Instant::now();
    let mut pool_paused = false;
    let mut warm_pool_emptied = false;
    let timed_out = loop {
        let live = world.live_instances().await;
        let registered = world.github.runners().into_iter().filter(|r| r.scope == world.scope()).count();
        let (queued, completed) = {
            let s = world.state();
            (s.summary.jobs_queued, s.summary.jobs_completed)
        };
        // Instances gone by scale-down's orphan path (or any other) count as removed too; a
        // warm instance never started for a job is not a runner (stopped, it is not live).
        let known: Vec<String> = world
            .state()
            .instances
            .iter()
            .filter(|(_, t)| !(t.warm && t.started_at.is_none()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in known {
            if !live.iter().any(|(i, _)| *i == id) {
                mark_removed(&world, &id, "instance terminated");
            }
        }
        if completed == queued && live.is_empty() && registered == 0 {
            break false;
        }
        if options.warm_pool > 0 && completed == queued && !warm_pool_emptied {
            // Evening: the warm pool's schedule stops and its waiting instances are terminated
            // (`warm_pool.size = 0`).
            functions.pause_warm_pool();
            warm_pool_emptied = true;
            let waiting: Vec<String> = world
                .state()
                .instances
                .iter()
                .filter(|(_, t)| t.warm && t.started_at.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            if !waiting.is_empty() {
                let _ = world.aws.ec2.terminate_instances().set_instance_ids(Some(waiting.clone())).send().await;
            }
            world.say(format!(
                "every job done: the warm pool's schedule stops and its {} waiting instances are terminated",
                waiting.len()
            ));
        }
        if options.pool > 0 && completed == queued && !pool_paused {
            // Evening: the pool's schedules stop; once their hold has passed, scale-down's rules
            // apply to the idle pool runners.
            functions.pause_pool();
            pool_paused = true;
            world.say(
                "every job done: the pool's schedule stops; its idle runners go once the pool's hold (1 min) passes",
            );
        }
        if Instant::now() > deadline {
            break true;
        }
        if verbose && last_progress.elapsed() > Duration::from_secs(5) {
            last_progress = Instant::now();
            world.say(format!(
                "… jobs done {completed}/{queued}, runner instances alive {}, runners registered {registered}",
                live.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    instances_task.abort();
    dispatch_task.abort();
    functions.stop().await;
    event_task.abort();
    let mut summary = {
        let s = world.state();
        s.summary.clone()
    };
    summary.timed_out = timed_out;
    if let Some(recovered) = recovered_at {
        let s = world.state();
        summary.recovery_to_last_started = s
            .jobs
            .values()
            .filter_map(|j| j.started_at)
            .max()
            .map(|last| last.saturating_duration_since(recovered).as_secs_f64());
    }
    summary.instances_left = world.live_instances().await.len();
    summary.runners_left = world.github.runners().into_iter().filter(|r| r.scope == world.scope()).count();
    summary.wall_seconds = started.elapsed().as_secs_f64();
    summary.github_calls = world.github.request_counts().into_iter().map(|(k, v)| (format!("GitHub {k}"), v)).collect();
    summary.aws_calls = proxy.counts();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn shell_words_undo_scale_ups_quoting() {
        let args = common::domain::scale_up::RegistrationArgs {
            web_url: "https://github.com",
            owner: &common::domain::runner::RunnerOwner::Org("acme".into()),
            token: "T0K",
            labels: &["self-hosted".into(), "my label".into(), "it's;fine".into()],
            disable_update: false,
            runner_group: "Default",
            ephemeral: true,
        }
        .render();
        assert_eq!(
            shell_words(&args),
            vec![
                "--url",
                "https://github.com/acme",
                "--token",
                "T0K",
                "--labels",
                "self-hosted,my label,it's;fine",
                "--runnergroup",
                "Default",
                "--ephemeral"
            ]
        );
    }
}
