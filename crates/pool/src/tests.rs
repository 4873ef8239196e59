//! The pool with in-memory ports: top-up from empty, partial pools, busy runners, the maximum,
//! unreadable GitHub or EC2, and the hold that keeps scale-down off the pool's runners.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::deadline::Deadline;
use common::domain::runner::{GithubRunner, RunnerInstance, RunnerOwner, tags};
use common::error::{AwsError, AwsErrorKind, GithubError};
use common::telemetry::{MemorySink, Metrics};
use common::testing::{ManualClock, MemoryGithub, MemoryParameterStore, MemoryRunnerInstances};
use serde_json::json;

use super::*;

struct World {
    pool: Pool,
    ec2: Arc<MemoryRunnerInstances>,
    github: MemoryGithub,
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
        ("RUNNER_OWNER", "acme"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap();
    let ec2 = Arc::new(MemoryRunnerInstances::new("ci"));
    let github = MemoryGithub::default();
    github.add_group("Default", 1);
    let ssm = Arc::new(MemoryParameterStore::default());
    let metrics = Metrics::new(&config.telemetry(), Arc::new(MemorySink::default()));
    let scale_up =
        ScaleUp::new(config.scale_up.clone(), Arc::new(github.clone()), ec2.clone(), ssm.clone(), ssm, metrics.clone());
    let pool = Pool::new(config, scale_up, Arc::new(ManualClock::at(Utc::now())), metrics);
    World { pool, ec2, github }
}

fn org() -> RunnerOwner {
    RunnerOwner::Org("acme".into())
}

/// A live runner instance of acme, launched `minutes_ago`.
fn add_instance(w: &World, id: &str, minutes_ago: i64) {
    let tags = [
        (tags::ENVIRONMENT, "ci"),
        (tags::APPLICATION, tags::APPLICATION_VALUE),
        (tags::TYPE, "Org"),
        (tags::OWNER, "acme"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    w.ec2.add(RunnerInstance {
        image_id: None,
        id: id.into(),
        launch_time: Some(Utc::now() - chrono::TimeDelta::minutes(minutes_ago)),
        state: "running".into(),
        tags,
    });
}

fn add_runner(w: &World, id: u64, instance: &str, busy: bool) {
    w.github.add_runner(
        &org(),
        GithubRunner {
            id,
            name: instance.into(),
            status: "online".into(),
            busy,
            labels: vec![],
            custom_labels: vec![],
        },
    );
}

async fn run(w: &World, size: usize) -> Result<PoolSummary, PoolError> {
    w.pool.handle(&json!({"poolSize": size, "type": "ec2"}), Deadline::after(Duration::from_secs(50))).await
}

fn pool_tagged(w: &World) -> Vec<String> {
    let mut ids: Vec<String> =
        w.ec2.instances().into_iter().filter(|i| i.tag(tags::POOL_HOLD_UNTIL).is_some()).map(|i| i.id).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn tops_up_an_empty_pool_through_scale_ups_launch_path() {
    let w = world(&[]);
    let summary = run(&w, 3).await.unwrap();
    assert_eq!((summary.available, summary.requested, summary.created.len()), (0, 3, 3));
    let launches = w.ec2.launches();
    assert_eq!(launches.len(), 1, "one fleet");
    assert!(launches[0].tags.contains(&(tags::CREATED_BY.to_string(), tags::CREATED_BY_POOL.to_string())));
    assert_eq!(w.github.count("create_jit_config"), 3);
    assert_eq!(w.github.count("job_status"), 0, "no job behind a pool runner");
    assert_eq!(pool_tagged(&w).len(), 3, "the new runners are held against scale-down");
}

#[tokio::test]
async fn a_partial_pool_gets_only_what_it_lacks() {
    let w = world(&[]);
    add_instance(&w, "i-idle", 30);
    add_runner(&w, 1, "i-idle", false);
    add_instance(&w, "i-booting", 1);
    add_instance(&w, "i-busy", 30);
    add_runner(&w, 2, "i-busy", true);
    let summary = run(&w, 3).await.unwrap();
    assert_eq!((summary.idle, summary.booting, summary.busy), (1, 1, 1));
    assert_eq!(summary.created.len(), 1);
    let held = pool_tagged(&w);
    assert!(held.contains(&"i-idle".to_string()) && held.contains(&"i-booting".to_string()));
    assert!(!held.contains(&"i-busy".to_string()), "a busy runner is not the pool's");
}

#[tokio::test]
async fn busy_runners_count_when_asked() {
    let w = world(&[("INCLUDE_BUSY_RUNNERS", "true")]);
    add_instance(&w, "i-busy", 30);
    add_runner(&w, 2, "i-busy", true);
    let summary = run(&w, 1).await.unwrap();
    assert_eq!((summary.available, summary.created.len()), (1, 0));
}

#[tokio::test]
async fn never_past_the_maximum() {
    let w = world(&[("RUNNERS_MAXIMUM_COUNT", "10")]);
    add_instance(&w, "i-busy", 30);
    add_runner(&w, 2, "i-busy", true);
    let summary = run(&w, 40).await.unwrap();
    assert_eq!(summary.requested, 9);
    assert_eq!(w.ec2.live().len(), 10);
    // The next run finds the pool short but the maximum reached: nothing more.
    let again = run(&w, 40).await.unwrap();
    assert_eq!((again.requested, again.created.len()), (0, 0));
    assert_eq!(w.ec2.live().len(), 10);
}

#[tokio::test]
async fn nothing_is_launched_when_github_or_ec2_cannot_be_read() {
    let w = world(&[]);
    w.github.fail(
        "list_runners",
        vec![GithubError::Status { endpoint: "GET runners".into(), status: 502, message: "bad gateway".into() }],
    );
    assert!(matches!(run(&w, 3).await, Err(PoolError::Github(_))));
    assert!(w.ec2.launches().is_empty());

    let w = world(&[]);
    w.ec2.fail_listing(Some(AwsError::new("ec2:DescribeInstances", AwsErrorKind::Client, None, "denied")));
    assert!(matches!(run(&w, 3).await, Err(PoolError::Ec2(_))));
    assert!(w.ec2.launches().is_empty());

    let w = world(&[]);
    assert!(matches!(
        w.pool.handle(&json!({"size": 3}), Deadline::after(Duration::from_secs(5))).await,
        Err(PoolError::Event(_))
    ));
}
