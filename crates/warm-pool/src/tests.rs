//! The warm-pool function with in-memory ports: the top-up from empty, a full pool, the
//! maximum, the retirements, and unreadable EC2.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::deadline::Deadline;
use common::domain::runner::{RunnerInstance, tags};
use common::domain::warm_pool::{HIBERNATE_TAG, WARM_TAG};
use common::error::{AwsError, AwsErrorKind};
use common::telemetry::{MemorySink, Metrics};
use common::testing::{ManualClock, MemoryGithub, MemoryParameterStore, MemoryRunnerInstances};

use super::*;

struct World {
    warm_pool: WarmPool,
    ec2: Arc<MemoryRunnerInstances>,
    metrics: Arc<MemorySink>,
}

fn world(extra: &[(&str, &str)]) -> World {
    let mut vars: HashMap<String, String> = [
        ("ENVIRONMENT", "ci"),
        ("SSM_TOKEN_PATH", "/gh/ci/runners/tokens"),
        ("SSM_CONFIG_PATH", "/gh/ci/runners/config"),
        ("PARAMETER_GITHUB_APP_ID_NAME", "/gh/ci/app/id"),
        ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", "/gh/ci/app/key"),
        ("LAUNCH_TEMPLATE_NAME", "ci-action-runner"),
        ("SUBNET_IDS", "subnet-a"),
        ("INSTANCE_TYPES", "m5.large"),
        ("SCALE_ERRORS", "[]"),
        ("RUNNER_LABELS", "self-hosted,linux"),
        ("RUNNERS_MAXIMUM_COUNT", "-1"),
        ("ENABLE_EPHEMERAL_RUNNERS", "true"),
        ("WARM_POOL_CONFIG", r#"{"size":3,"maxAgeHours":12,"hibernate":true}"#),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap();
    let ec2 = Arc::new(MemoryRunnerInstances::new("ci"));
    let ssm = Arc::new(MemoryParameterStore::default());
    let sink = Arc::new(MemorySink::default());
    let metrics = Metrics::new(&config.scale_up.telemetry, sink.clone());
    // A GitHub that is never called: the test fails if it is (no group, no App).
    let scale_up = ScaleUp::new(
        config.scale_up.clone(),
        Arc::new(MemoryGithub::default()),
        ec2.clone(),
        ssm.clone(),
        ssm,
        metrics.clone(),
    );
    let warm_pool = WarmPool::new(config, scale_up, Arc::new(ManualClock::at(now())), metrics);
    World { warm_pool, ec2, metrics: sink }
}

/// The clock: a minute after the memory EC2's first launch time.
fn now() -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp(1_700_000_060, 0).unwrap()
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(25))
}

fn instance(id: &str, state: &str, warm: Option<&str>, minutes_ago: i64) -> RunnerInstance {
    let mut t: std::collections::BTreeMap<String, String> =
        [(tags::ENVIRONMENT, "ci"), (tags::APPLICATION, tags::APPLICATION_VALUE)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    if let Some(w) = warm {
        t.insert(WARM_TAG.into(), w.into());
    } else {
        t.insert(tags::TYPE.into(), "Org".into());
        t.insert(tags::OWNER.into(), "acme".into());
    }
    RunnerInstance {
        image_id: None,
        id: id.into(),
        launch_time: Some(now() - TimeDelta::minutes(minutes_ago)),
        state: state.into(),
        tags: t,
    }
}

#[tokio::test]
async fn an_empty_pool_is_launched_in_prepare_mode_without_an_owner() {
    let w = world(&[]);
    let s = w.warm_pool.handle(deadline()).await.unwrap();
    assert_eq!((s.size, s.ready, s.preparing, s.requested, s.launched.len()), (3, 0, 0, 3, 3), "{s:?}");
    let launches = w.ec2.launches();
    assert_eq!(launches.len(), 1, "one fleet");
    assert_eq!(
        launches[0].capacity_type,
        common::domain::scale_up::CapacityType::OnDemand,
        "EC2 stops no one-time spot instance"
    );
    let tag = |k: &str| launches[0].tags.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(tag(WARM_TAG), Some("preparing"));
    assert_eq!(tag(HIBERNATE_TAG), Some("true"));
    assert_eq!(tag(tags::CREATED_BY), Some("warm-pool-lambda"));
    assert_eq!(tag(tags::OWNER), None, "no owner until claimed");
    assert_eq!(tag(tags::TYPE), None);
    assert_eq!(tag("ghr:runner_labels"), Some("self-hosted,linux"));
    assert_eq!(w.metrics.sum("WarmPoolLaunched"), 3.0);
    // The next run counts them as preparing and launches nothing.
    let again = w.warm_pool.handle(deadline()).await.unwrap();
    assert_eq!((again.preparing, again.requested), (3, 0), "{again:?}");
    assert_eq!(w.ec2.launches().len(), 1);
}

#[tokio::test]
async fn retires_expired_and_failed_instances_and_replaces_them() {
    let w = world(&[]);
    w.ec2.add(instance("i-ready", "stopped", Some("ready"), 60));
    w.ec2.add(instance("i-expired", "stopped", Some("ready"), 13 * 60));
    w.ec2.add(instance("i-stuck", "running", Some("preparing"), 20));
    w.ec2.add(instance("i-runner", "running", None, 20));
    let s = w.warm_pool.handle(deadline()).await.unwrap();
    assert_eq!(s.ready, 1);
    assert_eq!(s.retired, vec![("i-expired".to_string(), "expired"), ("i-stuck".to_string(), "preparation_failed")]);
    let mut terminated = w.ec2.terminated();
    terminated.sort();
    assert_eq!(terminated, vec!["i-expired", "i-stuck"], "never the runner");
    assert_eq!(s.launched.len(), 2, "back to 3: {s:?}");
    assert_eq!(w.metrics.sum_with("WarmPoolRetired", &[("Reason", "expired")]), 1.0);
    assert_eq!(w.metrics.sum("WarmPoolReady"), 1.0);
}

#[tokio::test]
async fn the_top_up_never_passes_the_maximum() {
    let w = world(&[("RUNNERS_MAXIMUM_COUNT", "4")]);
    for i in 0..3 {
        w.ec2.add(instance(&format!("i-runner-{i}"), "running", None, 20));
    }
    let s = w.warm_pool.handle(deadline()).await.unwrap();
    assert_eq!((s.running, s.requested, s.launched.len()), (3, 1, 1), "{s:?}");
    // Full now: the instance preparing runs.
    let s = w.warm_pool.handle(deadline()).await.unwrap();
    assert_eq!((s.running, s.preparing, s.requested), (4, 1, 0), "{s:?}");
    assert_eq!(w.ec2.live().len(), 4);
}

#[tokio::test]
async fn a_new_image_in_the_template_rotates_the_ready_instances() {
    let w = world(&[]);
    let mut old = instance("i-old-image", "stopped", Some("ready"), 30);
    old.image_id = Some("ami-template".into());
    w.ec2.add(old);
    let s = w.warm_pool.handle(deadline()).await.unwrap();
    assert!(s.retired.is_empty(), "{s:?}");
    w.ec2.set_template_image(Some("ami-patched"));
    let s = w.warm_pool.handle(deadline()).await.unwrap();
    assert_eq!(s.retired, vec![("i-old-image".to_string(), "image_changed")], "{s:?}");
    assert_eq!(w.metrics.sum_with("WarmPoolRetired", &[("Reason", "image_changed")]), 1.0);
    assert_eq!(s.launched.len(), 1, "replaced: {s:?}");
    let replacement = w.ec2.instances().into_iter().find(|i| i.id == s.launched[0]).unwrap();
    assert_eq!(replacement.image_id.as_deref(), Some("ami-patched"));
}

#[tokio::test]
async fn unreadable_ec2_launches_and_terminates_nothing() {
    let w = world(&[]);
    w.ec2.add(instance("i-expired", "stopped", Some("ready"), 13 * 60));
    w.ec2.fail_listing(Some(AwsError::new("ec2:DescribeInstances", AwsErrorKind::Client, None, "denied")));
    assert!(w.warm_pool.handle(deadline()).await.is_err());
    assert!(w.ec2.launches().is_empty());
    assert!(w.ec2.terminated().is_empty());
}
