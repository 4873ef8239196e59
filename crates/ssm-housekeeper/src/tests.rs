use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::deadline::Deadline;
use common::domain::runner::RunnerInstance;
use common::domain::ssm_housekeeper::SsmCleanupConfig;
use common::error::{AwsError, AwsErrorKind};
use common::telemetry::{MemorySink, Metrics, TelemetryConfig};
use common::testing::{ManualClock, MemoryParameterStore, MemoryRunnerInstances};

use super::*;

const PATH: &str = "/github-action-runners/acme/runners/tokens";

struct World {
    store: Arc<MemoryParameterStore>,
    ec2: Arc<MemoryRunnerInstances>,
    housekeeper: SsmHousekeeper,
}

fn world(dry_run: bool) -> World {
    let store = Arc::new(MemoryParameterStore::default());
    let ec2 = Arc::new(MemoryRunnerInstances::new("acme"));
    let config = Config {
        cleanup: SsmCleanupConfig { token_path: Some(PATH.into()), minimum_days_old: 1, dry_run },
        boot_time_minutes: 5,
        clock_file: None,
        telemetry: telemetry(),
    };
    let housekeeper = SsmHousekeeper::new(
        config,
        store.clone(),
        ec2.clone(),
        Arc::new(ManualClock::at(Utc::now())),
        Metrics::new(&telemetry(), Arc::new(MemorySink::default())),
    );
    World { store, ec2, housekeeper }
}

fn telemetry() -> TelemetryConfig {
    TelemetryConfig { environment: "acme".into(), namespace: "GitHub Runners".into(), log_level: "info".into() }
}

fn instance(id: &str, state: &str) -> RunnerInstance {
    RunnerInstance { image_id: None, id: id.into(), launch_time: None, state: state.into(), tags: Default::default() }
}

/// Old, new, orphaned and foreign parameters, and the App's parameter next door.
fn seed(w: &World) {
    let now = Utc::now();
    let at = |age: TimeDelta| now - age;
    w.store.put_at(&format!("{PATH}/i-000000000000000a1"), "jit", at(TimeDelta::hours(30))); // expired
    w.store.put_at(&format!("{PATH}/i-000000000000000a2"), "jit", at(TimeDelta::minutes(20))); // running instance
    w.store.put_at(&format!("{PATH}/i-000000000000000a3"), "jit", at(TimeDelta::minutes(20))); // terminated
    w.store.put_at(&format!("{PATH}/i-000000000000000a4"), "jit", at(TimeDelta::minutes(20))); // unknown to EC2
    w.store.put_at(&format!("{PATH}/i-000000000000000a5"), "jit", at(TimeDelta::minutes(1))); // booting
    w.store.put_at(&format!("{PATH}/notes"), "mine", at(TimeDelta::days(40))); // foreign
    w.store.put_at("/github-action-runners/acme/app/github_app_key_base64", "key", at(TimeDelta::days(90)));
    w.ec2.add(instance("i-000000000000000a2", "running"));
    w.ec2.add(instance("i-000000000000000a3", "terminated"));
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

#[tokio::test]
async fn deletes_expired_and_orphaned_token_parameters_only() {
    let w = world(false);
    seed(&w);
    let summary = w.housekeeper.run_once(deadline()).await.unwrap();
    assert_eq!(summary.listed, 6);
    assert_eq!(summary.deleted["expired"], vec![format!("{PATH}/i-000000000000000a1")]);
    assert_eq!(
        summary.deleted["orphaned"],
        vec![format!("{PATH}/i-000000000000000a3"), format!("{PATH}/i-000000000000000a4")]
    );
    assert_eq!((summary.recent, summary.foreign), (2, 1));
    for kept in ["i-000000000000000a2", "i-000000000000000a5", "notes"] {
        assert!(w.store.value(&format!("{PATH}/{kept}")).is_some(), "{kept}");
    }
    assert!(w.store.value("/github-action-runners/acme/app/github_app_key_base64").is_some());
    assert_eq!(w.store.value(&format!("{PATH}/i-000000000000000a1")), None);
    // One DeleteParameters call for the three.
    assert_eq!(w.store.deletes.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn dry_run_deletes_nothing() {
    let w = world(true);
    seed(&w);
    let summary = w.housekeeper.run_once(deadline()).await.unwrap();
    assert_eq!(summary.deleted.values().map(Vec::len).sum::<usize>(), 3);
    assert!(w.store.deletes.lock().unwrap().is_empty());
    assert!(w.store.value(&format!("{PATH}/i-000000000000000a1")).is_some());
}

#[tokio::test]
async fn unknown_instances_are_never_gone() {
    let w = world(false);
    seed(&w);
    w.ec2.fail_listing(Some(AwsError::new("ec2:DescribeInstances", AwsErrorKind::Client, None, "denied")));
    let summary = w.housekeeper.run_once(deadline()).await.unwrap();
    assert!(summary.instances_unknown);
    assert_eq!(summary.deleted.get("orphaned"), None);
    assert_eq!(summary.deleted["expired"].len(), 1, "the age rule does not need EC2");
}

#[tokio::test]
async fn deletes_in_batches_of_ten_and_backs_off_when_throttled() {
    let w = world(false);
    let old = Utc::now() - TimeDelta::days(3);
    for n in 0..23 {
        w.store.put_at(&format!("{PATH}/i-{n:017x}"), "jit", old);
    }
    let throttled =
        || AwsError::new("ssm:DeleteParameters", AwsErrorKind::Throttled, Some("ThrottlingException".into()), "slow");
    w.store.fail_next_deletes(vec![throttled(), throttled()]);
    let summary = w.housekeeper.run_once(deadline()).await.unwrap();
    assert_eq!(summary.deleted["expired"].len(), 23);
    assert!(summary.not_deleted.is_empty());
    let calls = w.store.deletes.lock().unwrap().clone();
    assert!(calls.iter().all(|c| c.len() <= 10));
    assert_eq!(calls.len(), 5, "3 batches, the first one tried 3 times");
}

#[tokio::test]
async fn a_failed_batch_is_left_for_the_next_run() {
    let w = world(false);
    let old = Utc::now() - TimeDelta::days(3);
    for n in 0..12 {
        w.store.put_at(&format!("{PATH}/i-{n:017x}"), "jit", old);
    }
    w.store.fail_next_deletes(vec![AwsError::new("ssm:DeleteParameters", AwsErrorKind::Client, None, "denied")]);
    let summary = w.housekeeper.run_once(deadline()).await.unwrap();
    assert_eq!(summary.not_deleted.len(), 10);
    assert_eq!(summary.deleted["expired"].len(), 2);
}

#[tokio::test]
async fn a_listing_failure_fails_the_run() {
    let w = world(false);
    w.store.fail_with(Some(AwsError::new("ssm:GetParametersByPath", AwsErrorKind::Client, None, "denied")));
    assert!(w.housekeeper.run_once(deadline()).await.is_err());
}
