//! Handler tests with in-memory ports and a manual clock.

use common::config::FromEnv;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::deadline::Deadline;
use common::domain::runner::{GithubRunner, RunnerInstance, RunnerOwner, tags};
use common::domain::scale_down::{JOB_COMPLETED_TAG, JOB_STARTED_TAG};
use common::error::{AwsError, AwsErrorKind, GithubError};
use common::ports::RunnerInstances;
use common::telemetry::{MemorySink, Metrics};
use common::testing::{ManualClock, MemoryGithub, MemoryRunnerInstances};

use super::*;

const T0: i64 = 1_800_000_000;

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + minutes * 60, 0).unwrap()
}

struct World {
    scale_down: ScaleDown,
    ec2: Arc<MemoryRunnerInstances>,
    github: MemoryGithub,
    clock: Arc<ManualClock>,
    metrics: Arc<MemorySink>,
}

fn world(extra: &[(&str, &str)], options: Options) -> World {
    let mut vars: HashMap<String, String> = [
        ("ENVIRONMENT", "ci"),
        ("SCALE_DOWN_CONFIG", "[]"),
        ("PARAMETER_GITHUB_APP_ID_NAME", "/a"),
        ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", "/k"),
        ("RUNNER_NAME_PREFIX", "ci-"),
        ("RUNNER_JOB_START_GRACE_SECONDS", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(&|k| vars.get(k).cloned()).unwrap();
    let ec2 = Arc::new(MemoryRunnerInstances::new("ci"));
    let github = MemoryGithub::default();
    let clock = Arc::new(ManualClock::at(at(60)));
    let metrics = Arc::new(MemorySink::default());
    let scale_down = ScaleDown::new(
        config.clone(),
        Arc::new(github.clone()),
        ec2.clone(),
        clock.clone(),
        Metrics::new(&config.telemetry, metrics.clone()),
        options,
    );
    World { scale_down, ec2, github, clock, metrics }
}

fn acme() -> RunnerOwner {
    RunnerOwner::Org("acme".into())
}

impl World {
    /// A runner instance of `owner` launched at minute `launched`, registered unless `runner`
    /// is None (then `(id, busy)`).
    fn add(&self, id: &str, owner: &RunnerOwner, launched: i64, runner: Option<(u64, bool)>, extra: &[(&str, &str)]) {
        let mut t: std::collections::BTreeMap<String, String> = [
            (tags::ENVIRONMENT, "ci"),
            (tags::APPLICATION, "github-action-runner"),
            (tags::TYPE, owner.runner_type().as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        t.insert(tags::OWNER.into(), owner.tag_value());
        for (k, v) in extra {
            t.insert(k.to_string(), v.to_string());
        }
        self.ec2.add(RunnerInstance {
            image_id: None,
            id: id.into(),
            launch_time: Some(at(launched)),
            state: "running".into(),
            tags: t,
        });
        if let Some((runner_id, busy)) = runner {
            self.github.add_runner(
                owner,
                GithubRunner {
                    id: runner_id,
                    name: format!("ci-{id}"),
                    status: "online".into(),
                    busy,
                    labels: vec![],
                    custom_labels: vec![],
                },
            );
        }
    }

    /// Gives the runner of `id` custom labels, as `runner_extra_labels` do.
    fn label(&self, owner: &RunnerOwner, id: &str, runner_id: u64, custom: &[&str]) {
        let mut labels: Vec<String> = ["self-hosted", "linux", "x64"].iter().map(|l| l.to_string()).collect();
        labels.extend(custom.iter().map(|l| l.to_string()));
        let runner = GithubRunner {
            id: runner_id,
            name: format!("ci-{id}"),
            status: "online".into(),
            busy: false,
            labels,
            custom_labels: custom.iter().map(|l| l.to_string()).collect(),
        };
        self.github.replace_runner(owner, runner);
    }

    async fn run(&self) -> Summary {
        self.scale_down.run_once(Deadline::after(Duration::from_secs(50))).await
    }

    fn live(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.ec2.live().into_iter().map(|i| i.id).collect();
        ids.sort();
        ids
    }
}

#[tokio::test]
async fn idle_runners_past_the_minimum_running_time_are_removed() {
    let w = world(&[], Options::default());
    w.add("i-old", &acme(), 0, Some((1, false)), &[]);
    w.add("i-young", &acme(), 58, Some((2, false)), &[]);
    let s = w.run().await;
    // Two phases: deregistered now, terminated on the next run (the hold is 0 here).
    assert_eq!(s.deregistered, vec!["i-old"]);
    assert!(!s.terminated.contains_key("idle"));
    assert_eq!(w.github.runners(&acme()).len(), 1, "the runner is deregistered first");
    let tagged = w.ec2.instances().into_iter().find(|i| i.id == "i-old").unwrap();
    assert_eq!(tagged.deregistered_at(), Some(at(60)));
    let s = w.run().await;
    assert_eq!(s.terminated.get("idle"), Some(&vec!["i-old".to_string()]));
    assert_eq!(w.live(), vec!["i-young"]);
    // Later the young one is old enough.
    w.clock.set(at(70));
    w.run().await;
    w.run().await;
    assert!(w.live().is_empty());
    assert_eq!(w.github.count("list_runners"), 4, "one list per owner per run");
    assert_eq!(w.github.count("get_runner"), 0, "no per-runner GET");
}

#[tokio::test]
async fn a_run_out_of_time_leaves_idle_runners_for_the_next_run_without_an_error() {
    let w = world(&[("RUNNER_JOB_START_GRACE_SECONDS", "5")], Options::default());
    for i in 0..3 {
        w.add(&format!("i-{i}"), &acme(), 0, Some((i + 1, false)), &[]);
    }
    // Less than the termination margin: nothing is started.
    let s = w.scale_down.run_once(Deadline::after(Duration::from_secs(9))).await;
    assert_eq!(s.deferred.len(), 3, "{s:?}");
    assert_eq!(s.errors, 0);
    assert_eq!(w.github.count("delete_runner"), 0, "no runner deregistered without time to terminate it");
    assert_eq!(w.live().len(), 3);
    let metrics = w.metrics.lines.lock().unwrap().join("\n");
    assert!(metrics.contains(r#""Reason":"deferred""#) && metrics.contains(r#""RunnersSkipped":3.0"#), "{metrics}");

    // GitHub's write pace would pass the deadline: deferred, not failed, the runner untouched.
    w.github.fail(
        "delete_runner",
        vec![GithubError::Deadline { endpoint: "DELETE runner".into(), message: "pace".into() }],
    );
    let s = w.run().await;
    assert_eq!(s.errors, 0, "{s:?}");
    assert_eq!(s.deferred.len(), 3, "the first deferral stops this run's deregistrations");
    assert_eq!(w.github.runners(&acme()).len(), 3);

    // The next run with time deregisters them, and the one after (past the hold) terminates them.
    let s = w.run().await;
    assert_eq!(s.deregistered.len(), 3, "{s:?}");
    w.clock.advance(chrono::Duration::seconds(5));
    let s = w.run().await;
    assert_eq!(s.terminated.get("idle").map(Vec::len), Some(3), "{s:?}");
    assert!(w.live().is_empty());
}

#[tokio::test]
async fn busy_runners_are_kept_by_flag_by_422_and_by_marker() {
    let w = world(&[], Options::default());
    w.add("i-flag", &acme(), 0, Some((1, true)), &[]);
    w.add("i-refused", &acme(), 0, Some((2, false)), &[]);
    w.github.busy_on_delete(2);
    let started = (T0 + 59 * 60).to_string();
    w.add("i-marker", &acme(), 0, Some((3, false)), &[(JOB_STARTED_TAG, &started)]);
    let done = (T0 + 30 * 60).to_string();
    w.add(
        "i-done",
        &acme(),
        0,
        Some((4, false)),
        &[(JOB_STARTED_TAG, &done), (JOB_COMPLETED_TAG, &(T0 + 40 * 60).to_string())],
    );
    let s = w.run().await;
    assert_eq!(s.deregistered, vec!["i-done"]);
    let mut busy = s.skipped_busy.clone();
    busy.sort();
    assert_eq!(busy, vec!["i-flag", "i-marker", "i-refused"]);
    assert_eq!(w.github.count("delete_runner"), 2, "no DELETE for runners known busy");
    let s = w.run().await;
    assert_eq!(s.terminated.get("idle"), Some(&vec!["i-done".to_string()]));
    assert_eq!(w.live(), vec!["i-flag", "i-marker", "i-refused"]);
}

#[tokio::test]
async fn a_job_whose_hook_comes_late_keeps_its_deregistered_instance() {
    // GitHub handed `i-late` a job just before its deregistration; "Set up job" takes 100 s,
    // then the hook writes the marker. The hold (180 s) outlasts it: the instance is kept until
    // the job completes; `i-idle` goes once the hold has passed.
    let w = world(&[("RUNNER_JOB_START_GRACE_SECONDS", "180")], Options::default());
    w.add("i-late", &acme(), 0, Some((1, false)), &[]);
    w.add("i-idle", &acme(), 0, Some((2, false)), &[]);
    let s = w.run().await;
    assert_eq!(s.deregistered.len(), 2);
    w.clock.advance(chrono::Duration::seconds(60));
    let s = w.run().await;
    assert_eq!(s.draining.len(), 2, "within the hold: {s:?}");
    let hook_at = at(60) + chrono::Duration::seconds(100);
    let started = hook_at.timestamp_millis().to_string();
    w.ec2.tag(&["i-late".to_string()], &[(JOB_STARTED_TAG.to_string(), started.clone())]).await.unwrap();
    w.clock.advance(chrono::Duration::seconds(130));
    let s = w.run().await;
    assert_eq!(s.terminated.get("idle"), Some(&vec!["i-idle".to_string()]));
    assert_eq!(s.skipped_busy, vec!["i-late"]);
    assert_eq!(w.live(), vec!["i-late"]);
    // The job completes: the next run terminates it.
    w.ec2.tag(&["i-late".to_string()], &[(JOB_COMPLETED_TAG.to_string(), started)]).await.unwrap();
    let s = w.run().await;
    assert_eq!(s.terminated.get("idle"), Some(&vec!["i-late".to_string()]));
    // Without two-phase removal (the negative control) the same situation kills the job.
    let w = world(&[("RUNNER_JOB_START_GRACE_SECONDS", "180")], Options { two_phase: false, withdraw: false });
    w.add("i-late", &acme(), 0, Some((1, false)), &[]);
    w.run().await;
    assert!(w.live().is_empty());
}

#[tokio::test]
async fn idle_config_keeps_runners_across_owners() {
    let config = r#"[{"cron":"* * * * * *","timeZone":"UTC","idleCount":3,"evictionStrategy":"oldest_first"}]"#;
    let w = world(&[("SCALE_DOWN_CONFIG", config)], Options::default());
    let other = RunnerOwner::Org("zeta".into());
    w.add("i-a1", &acme(), 1, Some((1, false)), &[]);
    w.add("i-a2", &acme(), 2, Some((2, false)), &[]);
    w.add("i-z1", &other, 1, Some((3, false)), &[]);
    w.add("i-z2", &other, 2, Some((4, false)), &[]);
    let s = w.run().await;
    assert_eq!(s.idle_kept, 3, "one count shared by the owners");
    // acme is handled first and keeps both; zeta keeps its newest.
    assert_eq!(s.deregistered, vec!["i-z1"]);
    let s = w.run().await;
    assert_eq!(s.idle_kept, 3, "a draining instance takes no idle slot");
    assert_eq!(w.live(), vec!["i-a1", "i-a2", "i-z2"]);
}

#[tokio::test]
async fn orphans_are_tagged_then_terminated_after_a_last_chance() {
    let w = world(&[], Options::default());
    w.add("i-never", &acme(), 0, None, &[]);
    w.add("i-booting", &acme(), 58, None, &[]);
    w.add("i-bypass", &acme(), 0, None, &[(tags::BYPASS_REMOVAL, "true")]);
    let s = w.run().await;
    assert_eq!(s.marked_orphan, vec!["i-never"]);
    assert_eq!(w.live().len(), 3, "nothing terminated on the first run");
    // A runner that registered late (with its id tag) is no orphan: the tag is cleared.
    w.add("i-late", &acme(), 0, None, &[(tags::ORPHAN, "true"), (tags::GITHUB_RUNNER_ID, "77")]);
    w.github.add_runner(
        &acme(),
        GithubRunner {
            id: 77,
            name: "ci-i-late".into(),
            status: "online".into(),
            busy: false,
            labels: vec![],
            custom_labels: vec![],
        },
    );
    // An orphan whose id tag points at a runner GitHub no longer has: confirmed.
    w.add("i-gone", &acme(), 0, None, &[(tags::ORPHAN, "true"), (tags::GITHUB_RUNNER_ID, "78")]);
    let s = w.run().await;
    let mut orphans = s.terminated.get("orphan").cloned().unwrap_or_default();
    orphans.sort();
    assert_eq!(orphans, vec!["i-gone", "i-never"]);
    assert_eq!(s.orphans_cleared, vec!["i-late"]);
    assert!(w.live().contains(&"i-bypass".to_string()));
}

#[tokio::test]
async fn an_owner_error_stops_only_that_owner() {
    let w = world(&[], Options::default());
    let broken = RunnerOwner::Org("broken".into());
    w.add("i-a", &acme(), 0, Some((1, false)), &[]);
    w.add("i-b", &broken, 0, Some((2, false)), &[]);
    w.add("i-b-orphan", &broken, 0, None, &[(tags::ORPHAN, "true")]);
    w.github
        .fail_installation(&broken, GithubError::RateLimited { endpoint: "x".into(), status: 403, retry_after: None });
    let s = w.run().await;
    assert_eq!(s.deregistered, vec!["i-a"], "the other owner is handled");
    w.run().await;
    assert_eq!(w.live(), vec!["i-b", "i-b-orphan"], "unknown is never idle");
    assert_eq!(s.errors, 1);
    let mut unknown = s.skipped_unknown.clone();
    unknown.sort();
    assert_eq!(unknown, vec!["i-b", "i-b-orphan"]);
    // A failure while listing runners, or while deregistering, stops that owner too.
    let w = world(&[], Options::default());
    w.add("i-a", &acme(), 0, Some((1, false)), &[]);
    w.add("i-b", &acme(), 1, Some((2, false)), &[]);
    w.github
        .fail("delete_runner", vec![GithubError::Status { endpoint: "x".into(), status: 502, message: String::new() }]);
    let s = w.run().await;
    assert_eq!(w.live().len(), 2, "the first deletion failed: no more removals for the owner");
    assert_eq!(s.errors, 1);
    let w = world(&[], Options::default());
    w.add("i-a", &acme(), 0, Some((1, false)), &[]);
    w.github.fail("list_runners", vec![GithubError::Transport { endpoint: "x".into(), message: "timeout".into() }]);
    w.run().await;
    assert_eq!(w.live(), vec!["i-a"]);
}

#[tokio::test]
async fn ec2_failures_leave_everything_for_the_next_run() {
    let w = world(&[], Options::default());
    w.add("i-a", &acme(), 0, Some((1, false)), &[]);
    w.ec2.fail_listing(Some(AwsError::new("ec2:DescribeInstances", AwsErrorKind::Client, None, "denied")));
    let s = w.run().await;
    assert_eq!((s.errors, s.seen), (1, 0));
    assert_eq!(w.github.count("delete_runner"), 0);
    w.ec2.fail_listing(None);
    let s = w.run().await;
    assert_eq!(s.deregistered, vec!["i-a"]);
    // Terminate fails after deregistration: the next run terminates the draining instance.
    w.ec2.fail_terminating(Some(AwsError::new(
        "ec2:TerminateInstances",
        AwsErrorKind::Throttled,
        Some("RequestLimitExceeded".into()),
        "slow",
    )));
    let s = w.run().await;
    assert_eq!(s.errors, 1);
    assert_eq!(w.live(), vec!["i-a"]);
    w.ec2.fail_terminating(None);
    let s = w.run().await;
    assert_eq!(s.terminated.get("idle"), Some(&vec!["i-a".to_string()]));
    assert!(w.live().is_empty());
}

#[tokio::test]
async fn ghost_runners_of_terminated_instances_are_deregistered() {
    let w = world(&[], Options::default());
    w.add("i-00000000000000001", &acme(), 0, None, &[]);
    w.ec2.terminate(&["i-00000000000000001".to_string()]).await.unwrap();
    let offline = |id, name: &str| GithubRunner {
        id,
        name: name.into(),
        status: "offline".into(),
        busy: false,
        labels: vec![],
        custom_labels: vec![],
    };
    w.github.add_runner(&acme(), offline(10, "ci-i-00000000000000001"));
    // Unknown to EC2 (terminated over an hour ago, or another region's runner still booting):
    // removed only when still offline a boot time later.
    w.github.add_runner(&acme(), offline(11, "ci-i-0000000000000abcd"));
    w.github.add_runner(&acme(), offline(13, "ci-i-0000000000000beef"));
    w.add("i-00000000000000003", &acme(), 0, Some((12, false)), &[]);
    let s = w.run().await;
    assert_eq!(s.ghosts_removed, vec![10]);
    let names: Vec<String> = w.github.runners(&acme()).into_iter().map(|r| r.name).collect();
    assert!(names.contains(&"ci-i-0000000000000abcd".to_string()));
    let metrics = w.metrics.lines.lock().unwrap().join("\n");
    assert!(metrics.contains(r#""Reason":"ghost""#) && metrics.contains(r#""RunnersTerminated":1.0"#), "{metrics}");
    // One came online (its instance booted elsewhere); the other is still offline past the
    // boot time (5 minutes): a ghost.
    w.github.set_runner_status(&acme(), 13, "online");
    w.clock.advance(chrono::Duration::minutes(3));
    assert!(w.run().await.ghosts_removed.is_empty(), "not yet a boot time");
    w.github.set_runner_status(&acme(), 13, "offline");
    w.clock.advance(chrono::Duration::minutes(3));
    let s = w.run().await;
    assert_eq!(s.ghosts_removed, vec![11], "13 was online in between: its count starts over");
}

#[tokio::test]
async fn idle_runners_with_custom_labels_are_withdrawn_then_deregistered_after_the_wait() {
    // Issue 12 item 10: GitHub stops handing the runner jobs (its custom labels go) before it is
    // deregistered, and the deregistration waits for a job handed out just before to start.
    let w = world(&[("RUNNER_WITHDRAWAL_WAIT_SECONDS", "1")], Options::default());
    w.add("i-old", &acme(), 0, Some((1, false)), &[]);
    w.label(&acme(), "i-old", 1, &["gpu"]);
    w.add("i-plain", &acme(), 0, Some((2, false)), &[]);
    let started = std::time::Instant::now();
    let s = w.run().await;
    assert!(started.elapsed() >= Duration::from_secs(1), "deregistered after the wait");
    assert_eq!(s.withdrawn, vec!["i-old"]);
    let mut deregistered = s.deregistered.clone();
    deregistered.sort();
    assert_eq!(deregistered, vec!["i-old", "i-plain"], "{s:?}");
    let calls: Vec<(String, String)> = w
        .github
        .calls()
        .into_iter()
        .filter(|c| c.operation != "list_runners")
        .map(|c| (c.operation.to_string(), c.detail))
        .collect();
    let position = |op: &str, id: &str| calls.iter().position(|(o, d)| o == op && d == id);
    assert!(position("remove_custom_labels", "1").unwrap() < position("delete_runner", "1").unwrap(), "{calls:?}");
    assert_eq!(position("remove_custom_labels", "2"), None, "nothing to withdraw without custom labels: {calls:?}");
    let tagged = w.ec2.instances().into_iter().find(|i| i.id == "i-old").unwrap();
    assert_eq!(tagged.withdrawn_at(), Some(at(60)));
    assert!(tagged.is_draining());
}

#[tokio::test]
async fn a_withdrawn_runner_that_took_a_job_is_kept_then_removed_without_an_idle_slot() {
    let config = r#"[{"cron":"* * * * * *","timeZone":"UTC","idleCount":1,"evictionStrategy":"oldest_first"}]"#;
    let w = world(&[("RUNNER_WITHDRAWAL_WAIT_SECONDS", "1"), ("SCALE_DOWN_CONFIG", config)], Options::default());
    w.add("i-new", &acme(), 10, Some((1, false)), &[]);
    w.label(&acme(), "i-new", 1, &["gpu"]);
    w.add("i-old", &acme(), 0, Some((2, false)), &[]);
    w.label(&acme(), "i-old", 2, &["gpu"]);
    // A job handed to i-old just before its withdrawal has started: GitHub refuses the DELETE.
    w.github.busy_on_delete(2);
    let s = w.run().await;
    assert_eq!(s.idle_kept, 1);
    assert_eq!(s.withdrawn, vec!["i-old"]);
    assert!(s.deregistered.is_empty(), "{s:?}");
    assert_eq!(s.skipped_busy, vec!["i-old"]);
    assert_eq!(w.live(), vec!["i-new", "i-old"]);
    let runner = w.github.runners(&acme()).into_iter().find(|r| r.id == 2).unwrap();
    assert!(runner.custom_labels.is_empty(), "withdrawn: {runner:?}");

    // Its job done, i-old is idle again and, i-new gone, the only idle runner: it still takes
    // no idle slot (its labels are gone) and is deregistered without a new withdrawal or wait.
    w.github.not_busy_on_delete(2);
    w.ec2.terminate(&["i-new".to_string()]).await.unwrap();
    w.github.replace_runner(
        &acme(),
        GithubRunner { status: "offline".into(), ..w.github.runners(&acme()).into_iter().find(|r| r.id == 1).unwrap() },
    );
    w.clock.set(at(70));
    let labels_calls = w.github.count("remove_custom_labels");
    let started = std::time::Instant::now();
    let s = w.run().await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(s.idle_kept, 0);
    assert_eq!(s.deregistered, vec!["i-old"], "{s:?}");
    assert_eq!(w.github.count("remove_custom_labels"), labels_calls);
    assert!(w.github.runners(&acme()).iter().all(|r| r.id != 2));
}

#[tokio::test]
async fn a_failed_withdrawal_leaves_the_runner_registered() {
    let w = world(&[("RUNNER_WITHDRAWAL_WAIT_SECONDS", "1")], Options::default());
    w.add("i-a", &acme(), 0, Some((1, false)), &[]);
    w.label(&acme(), "i-a", 1, &["gpu"]);
    w.add("i-b", &acme(), 1, Some((2, false)), &[]);
    w.label(&acme(), "i-b", 2, &["gpu"]);
    w.github.fail(
        "remove_custom_labels",
        vec![GithubError::Status { endpoint: "x".into(), status: 502, message: String::new() }],
    );
    let s = w.run().await;
    assert_eq!(s.errors, 1);
    assert!(s.withdrawn.is_empty() && s.deregistered.is_empty(), "{s:?}");
    assert_eq!(s.skipped_unknown.len(), 2, "unknown: no more removals for the owner: {s:?}");
    assert_eq!(w.github.count("delete_runner"), 0);
    assert_eq!(w.github.runners(&acme()).len(), 2);
}

#[tokio::test]
async fn idle_runners_from_the_warm_pool_go_back_to_it_while_it_has_room() {
    let w = world(&[("WARM_POOL_CONFIG", r#"{"size":2,"maxAgeHours":24}"#)], Options::default());
    let claimed = [("ghr:warm", "claimed"), ("ghr:warm_claimed_at", "1"), (tags::LAUNCHED_FOR_JOB, "7")];
    w.add("i-warm-a", &acme(), 10, Some((1, false)), &claimed);
    w.add("i-warm-b", &acme(), 20, Some((2, false)), &claimed);
    w.add("i-fresh", &acme(), 0, Some((3, false)), &[]);
    // The pool holds one ready instance: room for one more.
    w.ec2.add(RunnerInstance {
        image_id: None,
        id: "i-ready".into(),
        launch_time: Some(at(30)),
        state: "stopped".into(),
        tags: [(tags::ENVIRONMENT, "ci"), (tags::APPLICATION, "github-action-runner"), ("ghr:warm", "ready")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    });
    let first = w.run().await;
    assert_eq!(first.deregistered.len(), 3, "{first:?}");
    w.clock.set(at(61));
    let s = w.run().await;
    // The youngest of the two that came from the pool goes back; the others are terminated.
    assert_eq!(s.returned_to_pool, vec!["i-warm-b"], "{s:?}");
    let mut terminated = s.terminated.get("idle").cloned().unwrap_or_default();
    terminated.sort();
    assert_eq!(terminated, vec!["i-fresh", "i-warm-a"]);
    let back = w.ec2.instances().into_iter().find(|i| i.id == "i-warm-b").unwrap();
    assert_eq!(back.state, "stopped");
    assert_eq!(back.tag("ghr:warm"), Some("ready"));
    assert!(back.tag("ghr:warm_returned_at").is_some());
    for gone in [
        tags::OWNER,
        tags::TYPE,
        tags::GITHUB_RUNNER_ID,
        tags::LAUNCHED_FOR_JOB,
        tags::DEREGISTERED_AT,
        "ghr:warm_claimed_at",
    ] {
        assert_eq!(back.tag(gone), None, "{gone}: {back:?}");
    }
    assert_eq!(w.metrics.sum("WarmPoolReturned"), 1.0);
}

#[tokio::test]
async fn a_runner_that_cannot_be_stopped_is_terminated_instead() {
    let w = world(&[("WARM_POOL_CONFIG", r#"{"size":2}"#)], Options::default());
    w.add("i-warm", &acme(), 10, Some((1, false)), &[("ghr:warm", "claimed")]);
    w.run().await;
    w.ec2.fail_stopping(Some(AwsError::new("ec2:StopInstances", AwsErrorKind::Client, None, "denied")));
    w.clock.set(at(61));
    let s = w.run().await;
    assert!(s.returned_to_pool.is_empty());
    assert_eq!(s.terminated.get("idle").cloned().unwrap_or_default(), vec!["i-warm"]);
}

#[tokio::test]
async fn the_runner_of_a_warm_instance_claimed_seconds_ago_is_not_a_ghost() {
    let w = world(&[("WARM_POOL_CONFIG", r#"{"size":2}"#)], Options::default());
    let claimed_at = at(60).timestamp().to_string();
    // Claimed, registered (offline), not started yet.
    w.add(
        "i-00000000000000c1",
        &acme(),
        0,
        None,
        &[("ghr:warm", "claimed"), ("ghr:warm_claimed_at", claimed_at.as_str())],
    );
    w.ec2.stop(&["i-00000000000000c1".to_string()]).await.unwrap();
    let runner = |id: u64, name: &str| GithubRunner {
        id,
        name: name.into(),
        status: "offline".into(),
        busy: false,
        labels: vec![],
        custom_labels: vec![],
    };
    w.github.add_runner(&acme(), runner(9, "ci-i-00000000000000c1"));
    // A stopped instance that is no claim: its offline runner is a ghost.
    w.add("i-00000000000000d2", &acme(), 0, None, &[]);
    w.ec2.stop(&["i-00000000000000d2".to_string()]).await.unwrap();
    w.github.add_runner(&acme(), runner(10, "ci-i-00000000000000d2"));
    // A live runner of the owner, so that scale-down visits it.
    w.add("i-live", &acme(), 59, Some((11, false)), &[]);
    w.clock.set(at(61));
    let s = w.run().await;
    assert_eq!(s.ghosts_removed, vec![10], "{s:?}");
    // Past the claim's start limit, it is abandoned: its runner goes.
    w.clock.set(at(75));
    let s = w.run().await;
    assert_eq!(s.ghosts_removed, vec![9], "{s:?}");
}
