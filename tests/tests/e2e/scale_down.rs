//! Scale-down through its built binary against moto (behind the fault proxy) and the fake GitHub,
//! in simulated time (the test-only clock file), and the busy-runner simulation.

use common::config::FromEnv;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, Tag};
use chrono::{DateTime, Datelike, Utc};
use common::domain::runner::RunnerOwner;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::aws_proxy::{AwsFault, AwsProxy};
use tests::fake_github::{FakeGithub, Fault, Scope};
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::simulation::BusySimulation;
use tests::stack::RunnerStack;

use crate::support::binary;

struct World {
    aws: Arc<Aws>,
    stack: RunnerStack,
    github: Arc<FakeGithub>,
    proxy: AwsProxy,
    clock_file: std::path::PathBuf,
    app: TestApp,
}

impl World {
    async fn new() -> Self {
        let moto = Moto::shared();
        moto.warm_ec2().await;
        let aws = Arc::new(Aws::new(moto).await);
        let github = Arc::new(FakeGithub::start().await);
        let app = TestApp::new(1, 77);
        github.add_app(app.id, app.public_pem.as_bytes());
        for org in ["acme", "broken"] {
            github.add_installation(app.id, org, "Organization");
        }
        let stack = RunnerStack::create(&aws, &unique("sd"), std::slice::from_ref(&app)).await;
        let proxy = AwsProxy::start(&moto.endpoint).await;
        let clock_file = std::env::temp_dir().join(format!("{}-clock", stack.prefix));
        let w = Self { aws, stack, github, proxy, clock_file, app };
        w.set_clock(Utc::now());
        w
    }

    fn set_clock(&self, t: DateTime<Utc>) {
        std::fs::write(&self.clock_file, t.to_rfc3339()).expect("write the clock file");
    }

    /// Simulated time: `minutes` from now.
    fn clock_in(&self, minutes: i64) {
        self.set_clock(Utc::now() + chrono::Duration::minutes(minutes));
    }

    async fn function(&self, overrides: &[(&str, &str)]) -> LambdaFunction {
        let mut env = self.stack.scale_down_env(&self.github.url, &self.clock_file.to_string_lossy(), overrides);
        env.extend(Moto::shared().lambda_env());
        env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        env.push(("AWS_ENDPOINT_URL".into(), self.proxy.url.clone()));
        LambdaFunction::spawn(
            &binary("scale-down"),
            &format!("{}-scale-down", self.stack.prefix),
            &env,
            Duration::from_secs(60),
        )
        .await
    }

    /// Runner instances of `org` with registered, idle, online runners.
    async fn runners(&self, org: &str, count: usize) -> Vec<String> {
        let ids = self.stack.launch_instances(&self.aws, &RunnerOwner::Org(org.into()), count).await;
        for id in &ids {
            self.github.add_runner(Scope::org(org), id, true, false);
        }
        ids
    }

    async fn states(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut next = None;
        loop {
            let page = self
                .aws
                .ec2
                .describe_instances()
                .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
                .set_next_token(next)
                .send()
                .await
                .unwrap();
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                out.insert(
                    i.instance_id().unwrap().to_string(),
                    i.state().unwrap().name().unwrap().as_str().to_string(),
                );
            }
            next = page.next_token().map(str::to_string);
            if next.is_none() {
                return out;
            }
        }
    }

    async fn live(&self) -> Vec<String> {
        self.states().await.into_iter().filter(|(_, s)| s == "running" || s == "pending").map(|(i, _)| i).collect()
    }

    async fn instance_tags(&self, id: &str) -> std::collections::BTreeMap<String, String> {
        let out = self.aws.ec2.describe_instances().instance_ids(id).send().await.unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .flat_map(|i| i.tags())
            .map(|t| (t.key().unwrap_or("").to_string(), t.value().unwrap_or("").to_string()))
            .collect()
    }

    async fn tag(&self, id: &str, key: &str, value: &str) {
        self.aws
            .ec2
            .create_tags()
            .resources(id)
            .tags(Tag::builder().key(key).value(value).build())
            .send()
            .await
            .unwrap();
    }
}

fn scheduled_event() -> Value {
    json!({"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event", "source": "aws.events",
           "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": "eu-west-1",
           "resources": ["arn:aws:events:eu-west-1:123456789012:rule/scale-down"], "detail": {}})
}

async fn run(f: &LambdaFunction) -> Value {
    f.invoke(scheduled_event()).await.expect("scale-down answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_runners_go_after_their_minimum_running_time() {
    let w = World::new().await;
    let ids = w.runners("acme", 3).await;
    let f = w.function(&[("MINIMUM_RUNNING_TIME_IN_MINUTES", "10")]).await;
    w.clock_in(5);
    let out = run(&f).await;
    assert_eq!(w.live().await.len(), 3, "too young: {out}");
    w.clock_in(11);
    let out = run(&f).await;
    // Two phases: deregistered now, the instances drain until the next run past the hold.
    assert_eq!(out["deregistered"].as_array().map(Vec::len), Some(3), "{out}");
    for id in &ids {
        assert!(w.github.runner_by_name(id).is_none(), "deregistered before termination");
    }
    assert_eq!(w.live().await.len(), 3, "{out}");
    w.clock_in(12);
    let out = run(&f).await;
    assert!(w.live().await.is_empty(), "{out}");
    // Per run: one page of runners; one DELETE per removed runner; no per-runner GET.
    assert_eq!(w.github.count("GET", "/orgs/{org}/actions/runners"), 3);
    assert_eq!(w.github.count("GET", "/actions/runners/{id}"), 0);
    assert_eq!(w.github.count("DELETE", "/actions/runners/{id}"), 3);
    let terminated: f64 = f.metric("RunnersTerminated").iter().filter(|m| m.1["Reason"] == "idle").map(|m| m.0).sum();
    assert_eq!(terminated, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_config_with_a_time_zone_and_both_eviction_orders() {
    for (strategy, keep_newest) in [("oldest_first", true), ("newest_first", false)] {
        let w = World::new().await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.extend(w.runners("acme", 1).await);
            tokio::time::sleep(Duration::from_millis(1100)).await; // distinct launch times
        }
        let config = format!(
            r#"[{{"cron":"* * 9-17 * * 1-5","timeZone":"Europe/Amsterdam","idleCount":1,"evictionStrategy":"{strategy}"}}]"#
        );
        let f = w.function(&[("SCALE_DOWN_CONFIG", &config), ("MINIMUM_RUNNING_TIME_IN_MINUTES", "0")]).await;
        // Next Friday, 09:00 UTC (10:00 or 11:00 in Amsterdam): one idle runner is kept.
        let today = Utc::now().date_naive();
        let days = (7 + 4 - i64::from(today.weekday().num_days_from_monday())) % 7 + 7;
        let friday = (today + chrono::Duration::days(days)).and_hms_opt(9, 0, 0).unwrap().and_utc();
        w.set_clock(friday);
        run(&f).await;
        w.set_clock(friday + chrono::Duration::minutes(5));
        run(&f).await;
        let live = w.live().await;
        let expected = if keep_newest { &ids[2] } else { &ids[0] };
        assert_eq!(live, vec![expected.clone()], "{strategy}");
        // Saturday: none are kept.
        w.set_clock(friday + chrono::Duration::days(1));
        run(&f).await;
        w.set_clock(friday + chrono::Duration::days(1) + chrono::Duration::minutes(5));
        run(&f).await;
        assert!(w.live().await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_take_two_runs_bypass_is_respected_and_ghosts_are_removed() {
    let w = World::new().await;
    let owner = RunnerOwner::Org("acme".into());
    let never = w.stack.launch_instances(&w.aws, &owner, 1).await.remove(0);
    let bypass = w.stack.launch_instances(&w.aws, &owner, 1).await.remove(0);
    w.tag(&bypass, "ghr:bypass-removal", "true").await;
    // A ghost: its instance was terminated (spot interruption) but the runner stayed registered.
    let ghost = w.runners("acme", 1).await.remove(0);
    w.aws.ec2.terminate_instances().instance_ids(&ghost).send().await.unwrap();
    w.github.set_runner_online(w.github.runner_by_name(&ghost).unwrap().id, false);
    let f = w.function(&[]).await;
    w.clock_in(6);
    let first = run(&f).await;
    assert_eq!(first["markedOrphan"], 1, "{first}");
    assert!(w.live().await.contains(&never), "an orphan is only tagged on its first run");
    assert!(w.github.runner_by_name(&ghost).is_none(), "the ghost runner is deregistered");
    let second = run(&f).await;
    assert_eq!(second["terminated"]["orphan"], json!([never]), "{second}");
    assert_eq!(w.live().await, vec![bypass], "bypass-removal is never touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repo_and_org_runners_with_pagination_over_250() {
    let w = World::new().await;
    let org = w.runners("acme", 255).await;
    let repo_owner = RunnerOwner::Repo { owner: "acme".into(), repo: "web".into() };
    let repo = w.stack.launch_instances(&w.aws, &repo_owner, 2).await;
    for id in &repo {
        w.github.add_runner(Scope::repo("acme", "web"), id, true, false);
    }
    let unregistered = w.stack.launch_instances(&w.aws, &RunnerOwner::Org("acme".into()), 1).await.remove(0);
    let f = w.function(&[("MINIMUM_RUNNING_TIME_IN_MINUTES", "30")]).await;
    w.clock_in(6);
    let out = run(&f).await;
    // All 255 registered runners were found across three pages: only the unregistered
    // instance is an orphan, nothing is removed yet.
    assert_eq!(out["markedOrphan"], 1, "{out}");
    assert_eq!(w.live().await.len(), 255 + 2 + 1);
    assert_eq!(w.github.count("GET", "/orgs/{org}/actions/runners"), 3, "pages of 100");
    assert_eq!(w.github.count("GET", "/repos/{owner}/{repo}/actions/runners"), 1);
    // Later the repository runners and a page-three org runner are removed as idle (deregistered
    // in one run, terminated in the next).
    w.clock_in(31);
    let keep: Vec<&String> = org.iter().take(250).collect();
    for id in &keep {
        let runner = w.github.runner_by_name(id).unwrap();
        w.github.set_runner_online(runner.id, true);
        let job = w.github.add_job("acme", "web", &["self-hosted"]);
        w.github.assign_job(job, runner.id, Duration::ZERO).unwrap();
    }
    run(&f).await;
    w.clock_in(36);
    let out = run(&f).await;
    let live = w.live().await;
    assert!(repo.iter().all(|id| !live.contains(id)), "repo runners removed: {out}");
    assert!(org[250..].iter().all(|id| !live.contains(id)), "the idle org runners on page three are removed");
    assert!(keep.iter().all(|id| live.contains(id)), "busy runners kept");
    assert!(!live.contains(&unregistered), "the orphan went on the second run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_for_one_owner_leave_its_runners_alone() {
    let w = World::new().await;
    let acme = w.runners("acme", 2).await;
    let broken = w.runners("broken", 2).await;
    let f = w.function(&[]).await;
    for (minutes, fault) in [
        Fault::status("GET", "/orgs/broken/actions/runners", 502),
        Fault::rate_limited("GET", "/orgs/broken/actions/runners", 300),
        Fault::delay("GET", "/orgs/broken/actions/runners", Duration::from_secs(120)),
    ]
    .into_iter()
    .enumerate()
    {
        w.clock_in(6 + minutes as i64);
        w.github.clear_faults();
        w.github.inject(fault);
        let out = run(&f).await;
        let live = w.live().await;
        assert!(broken.iter().all(|id| live.contains(id)), "nothing of the failing owner is removed: {out}");
        assert!(out["errors"].as_u64().unwrap() >= 1);
        assert!(out["skippedUnknown"].as_u64().unwrap() >= 2);
    }
    let live = w.live().await;
    assert!(acme.iter().all(|id| !live.contains(id)), "the other owner is handled");
    let errors: f64 = f.metric("ScaleDownErrors").iter().map(|m| m.0).sum();
    assert!(errors >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_termination_is_retried_on_the_next_run() {
    let w = World::new().await;
    let ids = w.runners("acme", 2).await;
    let f = w.function(&[]).await;
    w.clock_in(6);
    let out = run(&f).await;
    assert_eq!(out["deregistered"].as_array().map(Vec::len), Some(2), "{out}");
    w.proxy.inject(AwsFault::ec2_throttled("ec2:TerminateInstances"));
    w.clock_in(7);
    let out = run(&f).await;
    assert_eq!(out["errors"], 1, "{out}");
    assert_eq!(w.live().await.len(), 2, "nothing lost: still there");
    w.proxy.clear();
    // Still draining: the next run terminates them.
    w.clock_in(8);
    let out = run(&f).await;
    assert_eq!(out["terminated"]["idle"].as_array().map(Vec::len), Some(2), "{out}");
    assert!(ids.iter().all(|id| w.github.runner_by_name(id).is_none()));
    assert!(w.live().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_runners_are_never_killed_while_the_busy_flag_lags() {
    // Issue 12 items 9 and 10: at least 500 jobs; GitHub's busy flag lags; some jobs are handed
    // out in the second before a run's DELETE; every job's hook comes 0-120 s (simulated) after
    // its start. Two-phase removal kills none. Runners are withdrawn (custom labels removed)
    // 2 s before their deregistration: no job that asks for a custom label is lost between its
    // assignment and its start; the 10 % that ask only for read-only labels bound the losses.
    let w = World::new().await;
    let f = w
        .function(&[
            ("MINIMUM_RUNNING_TIME_IN_MINUTES", "0"),
            ("RUNNER_BOOT_TIME_IN_MINUTES", "600"),
            ("RUNNER_JOB_START_GRACE_SECONDS", "180"),
        ])
        .await;
    let mut simulation =
        BusySimulation::new(w.aws.clone(), w.github.clone(), w.stack.clone(), "acme", w.clock_file.clone(), 7);
    while simulation.report().jobs < 500 {
        let started = std::time::Instant::now();
        simulation
            .round(|| async {
                run(&f).await;
            })
            .await;
        let r = simulation.report();
        tracing::debug!(round = r.rounds, elapsed = ?started.elapsed(), jobs = r.jobs, killed = r.killed.len(), "simulation round");
    }
    simulation.finish().await;
    let report = simulation.report();
    eprintln!(
        "busy-runner simulation, withdrawal and two-phase removal: {} jobs ({} asking only for read-only labels), {} killed, {} removals, {} lost on deregistration ({:.1} per 1,000 removals; {} of them asked for a custom label), {:.1} extra instance-minutes per removed runner; {report:?}",
        report.jobs,
        report.read_only_jobs,
        report.killed.len(),
        report.removals,
        report.lost_on_deregistration,
        report.lost_per_1000_removals(),
        report.lost_with_custom_labels(),
        report.extra_instance_minutes_per_removal()
    );
    assert!(report.jobs >= 500, "{report:?}");
    assert!(report.killed.is_empty(), "busy runners were killed: {report:?}");
    assert_eq!(report.completed, report.jobs, "every job ran to its end: {report:?}");
    assert!(report.idle_removed > 0, "idle runners are still removed: {report:?}");
    assert_eq!(report.lost_with_custom_labels(), 0, "no job that asks for a custom label is lost: {report:?}");
    assert!(report.read_only_jobs > 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_two_phase_removal_the_simulation_kills_busy_runners() {
    // The negative control: the same simulation, with scale-down deregistering without a
    // withdrawal and terminating right after (the handler in process; the Lambda always
    // withdraws and removes in two phases). It must observe kills and lost jobs that asked for
    // a custom label, or the simulation above proves nothing.
    let w = World::new().await;
    let env = w.stack.scale_down_env(
        &w.github.url,
        &w.clock_file.to_string_lossy(),
        &[("MINIMUM_RUNNING_TIME_IN_MINUTES", "0"), ("RUNNER_BOOT_TIME_IN_MINUTES", "600")],
    );
    let config =
        scale_down::Config::from_lookup(&|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
    let sdk = Moto::shared().sdk_config().await;
    let apps = vec![common::github::app::GithubApp::new(0, w.app.id, &w.app.key_base64(), None).unwrap()];
    let urls = common::github::GithubUrls::new(None, Some(&w.github.url)).unwrap();
    let github =
        common::github::client::GithubClient::new(common::github::client::ClientSettings::new(urls), apps).unwrap();
    let handler = scale_down::ScaleDown::new(
        config.clone(),
        Arc::new(github),
        Arc::new(common::aws::ec2::Ec2RunnerInstances::new(&sdk)),
        Arc::from(common::clock::from_config(config.clock_file.as_deref())),
        common::telemetry::Metrics::new(&config.telemetry, Arc::new(common::telemetry::MemorySink::default())),
        scale_down::Options { two_phase: false, withdraw: false },
    );
    let mut simulation =
        BusySimulation::new(w.aws.clone(), w.github.clone(), w.stack.clone(), "acme", w.clock_file.clone(), 7);
    // Until both harms are seen: which job a removal catches depends on timing, and one CI run
    // saw its only lost job ask for read-only labels in 25 rounds. The loop stops at the first
    // round that shows both; the bound only keeps a broken simulation from running forever.
    for _ in 0..60 {
        simulation
            .round(|| async {
                handler.run_once(common::deadline::Deadline::after(Duration::from_secs(50))).await;
            })
            .await;
        let report = simulation.report();
        if !report.killed.is_empty() && report.lost_with_custom_labels() > 0 {
            break;
        }
    }
    simulation.finish().await;
    let report = simulation.report();
    eprintln!("busy-runner simulation, two-phase removal off: {report:?}");
    assert!(!report.killed.is_empty(), "the simulation must be able to kill busy runners: {report:?}");
    assert!(report.lost_with_custom_labels() > 0, "{report:?}");
}

/// A job marker value as the runner's hooks write it: unix milliseconds.
fn marker_now() -> String {
    Utc::now().timestamp_millis().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_done_within_its_second_does_not_keep_its_runner() {
    // Issue 12 item 7: the job-completed hook writes the start it closes, so a job that started
    // and ended within one second (or millisecond) reads as done; the runner is idle.
    let w = World::new().await;
    let ids = w.runners("acme", 1).await;
    let stamp = marker_now();
    w.tag(&ids[0], "ghr:job_started", &stamp).await;
    w.tag(&ids[0], "ghr:job_completed", &stamp).await;
    let f = w.function(&[]).await;
    w.clock_in(6);
    let out = run(&f).await;
    assert_eq!(out["deregistered"], json!(ids), "{out}");
    w.clock_in(7);
    let out = run(&f).await;
    assert_eq!(out["terminated"]["idle"], json!(ids), "{out}");
    assert!(w.live().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_offline_past_the_timeout_with_a_job_marked_is_removed_as_crashed() {
    // Issue 12 item 7: the runner crashed mid-job (the completed hook never ran). GitHub lists
    // it offline; after RUNNER_OFFLINE_TIMEOUT_IN_MINUTES it is removed. One that comes back
    // online in between is kept and loses its offline mark.
    let w = World::new().await;
    let ids = w.runners("acme", 2).await;
    let (crashed, blip) = (&ids[0], &ids[1]);
    for id in &ids {
        w.tag(id, "ghr:job_started", &marker_now()).await;
        w.github.set_runner_online(w.github.runner_by_name(id).unwrap().id, false);
    }
    let f = w.function(&[("RUNNER_OFFLINE_TIMEOUT_IN_MINUTES", "10")]).await;
    w.clock_in(6);
    let first = run(&f).await;
    assert_eq!(first["markedOffline"], 2, "{first}");
    assert_eq!(w.live().await.len(), 2, "offline for the first time: kept");
    w.github.set_runner_online(w.github.runner_by_name(blip).unwrap().id, true);
    w.clock_in(12);
    let second = run(&f).await;
    assert!(second["terminated"].get("crashed").is_none(), "not yet past the timeout: {second}");
    let tags = w.instance_tags(blip).await;
    assert!(!tags.contains_key("ghr:offline_since"), "back online: the mark is cleared ({tags:?})");
    w.clock_in(18);
    let third = run(&f).await;
    assert_eq!(third["terminated"]["crashed"], json!([crashed]), "{third}");
    assert!(w.github.runner_by_name(crashed).is_none(), "the crashed runner is deregistered");
    assert_eq!(w.live().await, vec![blip.clone()], "the runner that came back runs its job on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghosts_of_instances_ec2_no_longer_lists_are_removed_a_boot_time_later() {
    // Issue 12 item 12: the instance was terminated over an hour ago, so EC2 does not know it
    // any more, and the owner has no instance left. Still offline a boot time after first seen
    // (a runner of another region would be online by then), the runner is a ghost.
    let w = World::new().await;
    let ghost = "i-0123456789abcdef0";
    w.github.add_runner(Scope::org("acme"), ghost, false, false);
    let f = w.function(&[]).await;
    // A run that sees an instance of the owner first: scale-down learns the owner.
    let ids = w.runners("acme", 1).await;
    w.clock_in(1);
    let first = run(&f).await;
    assert_eq!(first["ghostsRemoved"], 0, "first seen: not yet ({first})");
    w.aws.ec2.terminate_instances().instance_ids(&ids[0]).send().await.unwrap();
    w.github.remove_runner(w.github.runner_by_name(&ids[0]).unwrap().id);
    w.clock_in(7);
    let second = run(&f).await;
    assert_eq!(second["ghostsRemoved"], 1, "{second}");
    assert!(w.github.runner_by_name(ghost).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_instance_missing_from_the_listing_is_not_terminated() {
    // Issue 12 item 12: the second phase decides from the run's listing; an instance EC2 does
    // not list (eventual consistency) is unknown, and unknown is never idle: it is left for a
    // later run, not terminated blind.
    let w = World::new().await;
    let ids = w.runners("acme", 1).await;
    let f = w.function(&[]).await;
    w.clock_in(6);
    let out = run(&f).await;
    assert_eq!(out["deregistered"], json!(ids), "{out}");
    w.proxy.inject(AwsFault::hide_instances(&ids));
    w.clock_in(7);
    let out = run(&f).await;
    assert!(out["terminated"].get("idle").is_none(), "{out}");
    assert_eq!(w.live().await, ids, "not terminated");
    w.proxy.clear();
    w.clock_in(8);
    let out = run(&f).await;
    assert_eq!(out["terminated"]["idle"], json!(ids), "listed again: terminated ({out})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_owner_before_or_after_a_healthy_one_does_not_starve_it() {
    // Issue 12 item 13: the runner lists of `aaa` (sorted before `acme`) and `zzz` (after it)
    // hang, each attempt cut at its timeout. The healthy `acme` still gets its idle runners
    // deregistered in the run (and terminated in the next, as every removal); the hanging
    // owners' runners are left alone. Terraform's default timeout (60 s).
    let w = World::new().await;
    for org in ["aaa", "zzz"] {
        w.github.add_installation(w.app.id, org, "Organization");
    }
    let acme = w.runners("acme", 2).await;
    let hanging: Vec<String> = [w.runners("aaa", 1).await, w.runners("zzz", 1).await].concat();
    for org in ["aaa", "zzz"] {
        w.github.inject(Fault::delay("GET", &format!("/orgs/{org}/actions/runners"), Duration::from_secs(300)));
    }
    let f = w.function(&[]).await;
    w.clock_in(6);
    let out = run(&f).await;
    let ids = |v: &Value| {
        let mut ids: Vec<String> =
            v.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect();
        ids.sort();
        ids
    };
    let mut expected = acme.clone();
    expected.sort();
    assert_eq!(ids(&out["deregistered"]), expected, "the healthy owner's idle runners go in this run: {out}");
    assert!(acme.iter().all(|id| w.github.runner_by_name(id).is_none()));
    assert_eq!(out["skippedUnknown"], 2, "{out}");
    // The next run, the owners still hanging, terminates them.
    w.clock_in(11);
    let out = run(&f).await;
    assert_eq!(ids(&out["terminated"]["idle"]), expected, "{out}");
    let live = w.live().await;
    assert!(hanging.iter().all(|id| live.contains(id)), "the hanging owners are left alone: {out}");
}
