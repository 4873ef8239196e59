//! Handler tests with in-memory ports: every path that decides a message's fate.

use common::config::FromEnv;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use common::deadline::Deadline;
use common::domain::runner::{RunnerInstance, RunnerOwner, tags};
use common::domain::scale_up::{CapacityType, FleetError, LaunchRequest};
use common::error::{AwsError, AwsErrorKind, GithubError};
use common::telemetry::{MemorySink, Metrics};
use common::testing::{MemoryGithub, MemoryParameterStore, MemoryRunnerInstances, ScriptedLaunch};
use serde_json::json;

use super::*;

struct World {
    scale_up: ScaleUp,
    ec2: Arc<MemoryRunnerInstances>,
    github: MemoryGithub,
    ssm: Arc<MemoryParameterStore>,
    metrics: Arc<MemorySink>,
}

fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("ENVIRONMENT", "ci"),
        ("SSM_TOKEN_PATH", "/gh/ci/runners/tokens"),
        ("SSM_CONFIG_PATH", "/gh/ci/runners/config"),
        ("PARAMETER_GITHUB_APP_ID_NAME", "/gh/ci/app/id"),
        ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", "/gh/ci/app/key"),
        ("LAUNCH_TEMPLATE_NAME", "ci-action-runner"),
        ("SUBNET_IDS", "subnet-a,subnet-b"),
        ("INSTANCE_TYPES", "m5.large,c5.large"),
        ("SCALE_ERRORS", r#"["InsufficientInstanceCapacity","RequestLimitExceeded"]"#),
        ("RUNNER_LABELS", "self-hosted,linux,x64"),
        ("RUNNER_NAME_PREFIX", "ci-"),
        ("RUNNERS_MAXIMUM_COUNT", "-1"),
        ("SSM_PARAMETER_STORE_TAGS", r#"[{"Key":"team","Value":"ci"}]"#),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(&|k| vars.get(k).cloned()).unwrap()
}

fn world(extra: &[(&str, &str)]) -> World {
    let config = config(extra);
    let ec2 = Arc::new(MemoryRunnerInstances::new("ci"));
    let github = MemoryGithub::default();
    github.add_group("Default", 1);
    let ssm = Arc::new(MemoryParameterStore::default());
    let metrics = Arc::new(MemorySink::default());
    let scale_up = ScaleUp::new(
        config.clone(),
        Arc::new(github.clone()),
        ec2.clone(),
        ssm.clone(),
        ssm.clone(),
        Metrics::new(&config.telemetry, metrics.clone()),
    );
    World { scale_up, ec2, github, ssm, metrics }
}

const EPHEMERAL: &[(&str, &str)] = &[("ENABLE_EPHEMERAL_RUNNERS", "true"), ("ENABLE_JOB_QUEUED_CHECK", "false")];

fn message(id: u64, owner: &str, repo: &str) -> serde_json::Value {
    json!({"id": id, "repositoryName": repo, "repositoryOwner": owner, "eventType": "workflow_job",
           "installationId": 7, "queueId": "https://sqs/q", "repoOwnerType": "Organization", "labels": ["self-hosted"]})
}

fn event(bodies: &[serde_json::Value]) -> SqsEvent {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let body = match b {
                serde_json::Value::String(raw) => raw.clone(),
                other => other.to_string(),
            };
            json!({"messageId": format!("m{i}"), "body": body, "eventSource": "aws:sqs", "receiptHandle": "r", "attributes": {}, "messageAttributes": {}})
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(25))
}

async fn run(w: &World, bodies: &[serde_json::Value]) -> HashMap<String, Fate> {
    let fates = w.scale_up.process(&event(bodies), deadline()).await;
    assert_eq!(fates.len(), bodies.len(), "every message gets exactly one fate: {fates:?}");
    fates.into_iter().collect()
}

fn created(fates: &HashMap<String, Fate>) -> usize {
    fates.values().filter(|f| matches!(f, Fate::Created { .. })).count()
}

fn retried(fates: &HashMap<String, Fate>) -> Vec<String> {
    let mut ids: Vec<String> =
        fates.iter().filter(|(_, f)| matches!(f, Fate::Retry { .. })).map(|(id, _)| id.clone()).collect();
    ids.sort();
    ids
}

fn throttled() -> AwsError {
    AwsError::new("ec2:CreateFleet", AwsErrorKind::Throttled, Some("RequestLimitExceeded".into()), "slow down")
}

#[tokio::test]
async fn ephemeral_jit_runners_for_one_org() {
    let w = world(EPHEMERAL);
    let fates = run(&w, &[message(1, "acme", "web"), message(2, "acme", "api"), message(3, "acme", "web")]).await;
    assert_eq!(created(&fates), 3);
    let launches = w.ec2.launches();
    assert_eq!(launches.len(), 1, "one fleet for the owner");
    let l = &launches[0];
    assert_eq!((l.count, l.capacity_type, l.allocation_strategy.as_str()), (3, CapacityType::Spot, "lowest-price"));
    let tag = |k: &str| l.tags.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(tag(tags::TYPE), Some("Org"));
    assert_eq!(tag(tags::OWNER), Some("acme"));
    assert_eq!(tag(tags::APPLICATION), Some("github-action-runner"));
    assert_eq!(tag("ghr:runner_labels"), Some("self-hosted,linux,x64"));
    // One JIT config, one runner-id tag, one SecureString per instance.
    assert_eq!(w.github.count("create_jit_config"), 3);
    assert_eq!(w.github.count("installation"), 1);
    assert_eq!(w.github.count("job_status"), 0, "the queued check is off for ephemeral runners by default");
    let written = w.ssm.written();
    let tokens: Vec<_> = written.iter().filter(|p| p.name.starts_with("/gh/ci/runners/tokens/")).collect();
    assert_eq!(tokens.len(), 3);
    for p in &tokens {
        let id = p.name.rsplit('/').next().unwrap();
        assert!(p.secure);
        assert_eq!(p.tags, vec![("InstanceId".to_string(), id.to_string()), ("team".to_string(), "ci".to_string())]);
        assert_eq!(p.value.expose(), &format!("jit-config-for-ci-{id}"), "runner name = prefix + instance id");
    }
    assert_eq!(w.ec2.tagged().len(), 3);
    assert!(w.ec2.tagged().iter().all(|(_, t)| t[0].0 == tags::GITHUB_RUNNER_ID));
}

#[tokio::test]
async fn reusable_runners_with_a_registration_token_per_owner() {
    let w = world(&[("ENABLE_ORGANIZATION_RUNNERS", "false"), ("DISABLE_RUNNER_AUTOUPDATE", "true")]);
    let fates = run(&w, &[message(1, "acme", "web"), message(2, "acme", "web"), message(3, "acme", "api")]).await;
    assert_eq!(created(&fates), 3);
    assert_eq!(w.ec2.launches().len(), 2, "repo runners: one fleet per repository");
    assert_eq!(w.github.count("registration_token"), 2, "one token per owner");
    assert_eq!(w.github.count("job_status"), 3, "queued check on by default for reusable runners");
    let values: Vec<String> = w.ssm.written().iter().map(|p| p.value.expose().clone()).collect();
    assert!(values.iter().any(|v| v == "--url https://github.com/acme/web --token REGISTRATION-TOKEN --labels self-hosted,linux,x64 --disableupdate"), "{values:?}");
}

#[tokio::test]
async fn only_queued_jobs_get_runners_and_lookups_fail_open() {
    let w = world(&[]);
    w.github.set_job_status(2, "in_progress");
    w.github.fail(
        "job_status",
        vec![GithubError::Status { endpoint: "GET /x".into(), status: 502, message: "bad gateway".into() }],
    );
    let fates = run(&w, &[message(1, "acme", "web"), message(2, "acme", "web"), message(3, "acme", "web")]).await;
    assert_eq!(fates["m1"], Fate::Skipped { reason: "not_queued" });
    assert_eq!(created(&fates), 2, "the failed lookup is assumed queued");
}

#[tokio::test]
async fn malformed_duplicate_and_user_owned_messages_are_acknowledged() {
    let w = world(EPHEMERAL);
    let mut user = message(5, "someone", "repo");
    user["repoOwnerType"] = "User".into();
    let batch = [json!("{not json"), message(1, "acme", "web"), message(1, "acme", "web"), user, json!(r#"{"id": 3}"#)];
    let fates = run(&w, &batch).await;
    assert_eq!(fates["m0"], Fate::Skipped { reason: "malformed" });
    assert_eq!(fates["m4"], Fate::Skipped { reason: "malformed" });
    assert_eq!(fates["m2"], Fate::Skipped { reason: "duplicate" });
    assert_eq!(fates["m3"], Fate::Skipped { reason: "user_owned_repository" });
    assert!(matches!(fates["m1"], Fate::Created { .. }));
    let response = w.scale_up.handle(&event(&batch), deadline()).await;
    assert!(response.batch_item_failures.is_empty(), "nothing here can succeed later");
    let metrics = w.metrics.lines.lock().unwrap().join("\n");
    assert!(metrics.contains(r#""MalformedMessages":2.0"#), "{metrics}");
}

#[tokio::test]
async fn a_second_delivery_of_a_job_finds_its_instance_and_launches_nothing() {
    for jit in ["true", "false"] {
        let w = world(&[
            ("ENABLE_EPHEMERAL_RUNNERS", "true"),
            ("ENABLE_JOB_QUEUED_CHECK", "false"),
            ("ENABLE_JIT_CONFIG", jit),
        ]);
        let fates = run(&w, &[message(42, "acme", "web")]).await;
        assert_eq!(created(&fates), 1);
        let tagged = w.ec2.live().iter().filter(|i| i.tag(tags::LAUNCHED_FOR_JOB) == Some("42")).count();
        assert_eq!(tagged, 1, "JIT {jit}: the instance carries its job id");
        // The same event again (a webhook redelivery): nothing is launched, nothing comes back.
        let fates = run(&w, &[message(42, "acme", "web"), message(43, "acme", "web")]).await;
        assert_eq!(fates["m0"], Fate::Skipped { reason: "runner_exists" }, "JIT {jit}");
        assert_eq!(created(&fates), 1, "job 43 still gets its runner");
        // Job retry's message for the job is not a duplicate: its runner took another job.
        let mut retry = message(42, "acme", "web");
        retry["retryCounter"] = 1.into();
        let fates = run(&w, &[retry]).await;
        assert_eq!(created(&fates), 1, "JIT {jit}: {fates:?}");
        assert_eq!(w.ec2.live().len(), 3);
    }
}

#[tokio::test]
async fn over_the_maximum_ephemeral_jobs_are_retried_and_reusable_ones_acknowledged() {
    for (ephemeral, expect_retry) in [(true, true), (false, false)] {
        let mut extra = vec![("RUNNERS_MAXIMUM_COUNT", "3"), ("ENABLE_JOB_QUEUED_CHECK", "false")];
        if ephemeral {
            extra.push(("ENABLE_EPHEMERAL_RUNNERS", "true"));
        }
        let w = world(&extra);
        for i in 0..2 {
            w.ec2.add(acme_instance(&format!("i-existing{i}"), chrono::DateTime::from_timestamp(1_600_000_000, 0)));
        }
        let fates = run(&w, &[message(1, "acme", "a"), message(2, "acme", "b"), message(3, "acme", "c")]).await;
        assert_eq!(created(&fates), 1, "3 - 2 existing");
        assert_eq!(w.ec2.launches()[0].count, 1);
        if expect_retry {
            assert_eq!(retried(&fates), vec!["m1", "m2"]);
        } else {
            assert!(retried(&fates).is_empty());
            assert_eq!(fates["m2"], Fate::Skipped { reason: "maximum_reached" });
        }
    }
}

/// A running instance of this environment's organization runners for `acme`.
fn acme_instance(id: &str, launch_time: Option<chrono::DateTime<chrono::Utc>>) -> RunnerInstance {
    RunnerInstance {
        image_id: None,
        id: id.into(),
        launch_time,
        state: "running".into(),
        tags: [
            (tags::ENVIRONMENT, "ci"),
            (tags::APPLICATION, "github-action-runner"),
            (tags::TYPE, "Org"),
            (tags::OWNER, "acme"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    }
}

#[tokio::test]
async fn reusable_jobs_over_the_maximum_come_back_while_the_runners_are_still_starting() {
    // Runners launched seconds ago may all still be terminated by a concurrent recount: a job
    // is left to them only once one of them has settled.
    let w = world(&[("RUNNERS_MAXIMUM_COUNT", "2"), ("ENABLE_JOB_QUEUED_CHECK", "false")]);
    for (i, age) in [(0, 5), (1, 20)] {
        w.ec2.add(acme_instance(&format!("i-existing{i}"), Some(chrono::Utc::now() - chrono::TimeDelta::seconds(age))));
    }
    let fates = run(&w, &[message(1, "acme", "a")]).await;
    assert_eq!(retried(&fates), vec!["m0"], "{fates:?}");
    assert!(w.ec2.launches().is_empty());
}

#[tokio::test]
async fn a_partial_fleet_retries_exactly_the_jobs_without_a_runner() {
    let w = world(EPHEMERAL);
    w.ec2.script(vec![ScriptedLaunch::Partial {
        fulfil: 1,
        errors: vec![FleetError { code: "InsufficientInstanceCapacity".into(), message: "no capacity".into() }],
    }]);
    let fates = run(&w, &[message(1, "acme", "a"), message(2, "acme", "b"), message(3, "acme", "c")]).await;
    assert_eq!(created(&fates), 1);
    assert_eq!(retried(&fates), vec!["m1", "m2"]);
    assert_eq!(w.github.count("create_jit_config"), 1, "no registration for instances that do not exist");
}

#[tokio::test]
async fn spot_shortage_fails_over_to_on_demand() {
    let w = world(&[
        ("ENABLE_EPHEMERAL_RUNNERS", "true"),
        ("ENABLE_ON_DEMAND_FAILOVER_FOR_ERRORS", r#"["InsufficientInstanceCapacity"]"#),
        ("INSTANCE_ALLOCATION_STRATEGY", "price-capacity-optimized"),
    ]);
    w.ec2.script(vec![ScriptedLaunch::Partial {
        fulfil: 1,
        errors: vec![FleetError { code: "InsufficientInstanceCapacity".into(), message: String::new() }],
    }]);
    let fates = run(&w, &[message(1, "acme", "a"), message(2, "acme", "b"), message(3, "acme", "c")]).await;
    assert_eq!(created(&fates), 3);
    let launches = w.ec2.launches();
    assert_eq!(launches.len(), 2);
    assert_eq!(
        (launches[0].capacity_type, launches[0].allocation_strategy.as_str()),
        (CapacityType::Spot, "price-capacity-optimized")
    );
    assert_eq!(
        (launches[1].capacity_type, launches[1].count, launches[1].allocation_strategy.as_str()),
        (CapacityType::OnDemand, 2, "lowest-price")
    );
}

#[tokio::test]
async fn no_failover_for_other_codes() {
    let w = world(&[
        ("ENABLE_EPHEMERAL_RUNNERS", "true"),
        ("ENABLE_ON_DEMAND_FAILOVER_FOR_ERRORS", r#"["InsufficientInstanceCapacity"]"#),
    ]);
    w.ec2.script(vec![ScriptedLaunch::Partial {
        fulfil: 0,
        errors: vec![FleetError { code: "MaxSpotInstanceCountExceeded".into(), message: String::new() }],
    }]);
    let fates = run(&w, &[message(1, "acme", "a")]).await;
    assert_eq!(retried(&fates), vec!["m0"]);
    assert_eq!(w.ec2.launches().len(), 1);
}

#[tokio::test]
async fn throttled_fleets_are_retried_within_the_invocation() {
    let w = world(EPHEMERAL);
    w.ec2.script(vec![ScriptedLaunch::Fail(throttled()), ScriptedLaunch::Fail(throttled())]);
    let fates = run(&w, &[message(1, "acme", "a"), message(2, "acme", "b")]).await;
    assert_eq!(created(&fates), 2);
    assert_eq!(w.ec2.launches().len(), 3);
    // A non-retryable error is not retried; the jobs go back to SQS.
    let w = world(EPHEMERAL);
    w.ec2.script(vec![ScriptedLaunch::Fail(AwsError::new(
        "ec2:CreateFleet",
        AwsErrorKind::Client,
        Some("InvalidLaunchTemplateName.NotFoundException".into()),
        "no template",
    ))]);
    let fates = run(&w, &[message(1, "acme", "a")]).await;
    assert_eq!(retried(&fates), vec!["m0"]);
    assert_eq!(w.ec2.launches().len(), 1);
}

#[tokio::test]
async fn a_failed_registration_terminates_its_instance_and_retries_its_job() {
    let w = world(EPHEMERAL);
    w.github.fail(
        "create_jit_config",
        vec![GithubError::Status { endpoint: "POST x".into(), status: 500, message: String::new() }],
    );
    let fates = run(&w, &[message(1, "acme", "a"), message(2, "acme", "b"), message(3, "acme", "c")]).await;
    assert_eq!(created(&fates), 2);
    assert_eq!(retried(&fates).len(), 1);
    assert_eq!(w.ec2.terminated().len(), 1);
    let live: Vec<String> = w.ec2.live().into_iter().map(|i| i.id).collect();
    assert_eq!(live.len(), 2);
    assert!(!live.contains(&w.ec2.terminated()[0]));
}

#[tokio::test]
async fn a_failed_token_write_removes_the_runner_and_retries() {
    let w = world(EPHEMERAL);
    // The group id is cached, so the first write is a runner's token.
    w.ssm.put("/gh/ci/runners/config/runner-group/Default", "1");
    w.ssm.fail_next_puts(vec![AwsError::new(
        "ssm:PutParameter",
        AwsErrorKind::Throttled,
        Some("ThrottlingException".into()),
        "rate",
    )]);
    let fates = run(&w, &[message(1, "acme", "a"), message(2, "acme", "b")]).await;
    assert_eq!(created(&fates), 1);
    assert_eq!(retried(&fates).len(), 1);
    assert_eq!(w.ec2.terminated().len(), 1);
    assert_eq!(w.github.count("delete_runner"), 1, "the unused JIT registration is removed");
    assert_eq!(w.github.runners(&RunnerOwner::Org("acme".into())).len(), 1);
}

#[tokio::test]
async fn an_owner_failure_touches_only_that_owners_messages() {
    let w = world(EPHEMERAL);
    w.github.fail_installation(
        &RunnerOwner::Org("broken".into()),
        GithubError::Transport { endpoint: "POST x".into(), message: "reset".into() },
    );
    let fates = run(
        &w,
        &[message(1, "acme", "a"), message(2, "broken", "b"), message(3, "acme", "c"), message(4, "broken", "d")],
    )
    .await;
    assert_eq!(retried(&fates), vec!["m1", "m3"]);
    assert_eq!(created(&fates), 2);
}

#[tokio::test]
async fn a_failed_count_retries_instead_of_dropping() {
    let w = world(&[("RUNNERS_MAXIMUM_COUNT", "10"), ("ENABLE_JOB_QUEUED_CHECK", "false")]);
    w.ec2.fail_listing(Some(AwsError::new(
        "ec2:DescribeInstances",
        AwsErrorKind::Client,
        Some("UnauthorizedOperation".into()),
        "denied",
    )));
    let fates = run(&w, &[message(1, "acme", "a"), message(2, "acme", "b")]).await;
    assert_eq!(retried(&fates), vec!["m0", "m1"], "upstream #5105: an EC2 error must not drop jobs");
    assert!(w.ec2.launches().is_empty());
}

#[tokio::test]
async fn concurrent_invocations_settle_at_the_maximum() {
    let config = config(&[("ENABLE_EPHEMERAL_RUNNERS", "true"), ("RUNNERS_MAXIMUM_COUNT", "5")]);
    let ec2 = Arc::new(MemoryRunnerInstances::new("ci"));
    let github = MemoryGithub::default();
    github.add_group("Default", 1);
    let ssm = Arc::new(MemoryParameterStore::default());
    let make = || {
        ScaleUp::new(
            config.clone(),
            Arc::new(github.clone()),
            ec2.clone(),
            ssm.clone(),
            ssm.clone(),
            Metrics::new(&config.telemetry, Arc::new(MemorySink::default())),
        )
    };
    let invocations: Vec<ScaleUp> = (0..4).map(|_| make()).collect();
    let batches: Vec<SqsEvent> =
        (0..4).map(|b| event(&(0..5).map(|i| message(b * 10 + i, "acme", "a")).collect::<Vec<_>>())).collect();
    let results =
        futures::future::join_all(invocations.iter().zip(&batches).map(|(s, e)| s.process(e, deadline()))).await;
    let created: usize = results.iter().flatten().filter(|(_, f)| matches!(f, Fate::Created { .. })).count();
    let retried: usize = results.iter().flatten().filter(|(_, f)| matches!(f, Fate::Retry { .. })).count();
    assert!(ec2.live().len() <= 5, "{} live instances", ec2.live().len());
    assert_eq!(created, ec2.live().len());
    assert_eq!(created + retried, 20, "every job has a runner or is retried");
}

#[tokio::test]
async fn runner_group_ids_come_from_ssm_then_the_api() {
    let w = world(&[("ENABLE_EPHEMERAL_RUNNERS", "true"), ("RUNNER_GROUP_NAME", "ci-group")]);
    w.github.add_group("ci-group", 42);
    run(&w, &[message(1, "acme", "a")]).await;
    assert_eq!(w.github.count("runner_group_id"), 1);
    assert_eq!(w.ssm.value("/gh/ci/runners/config/runner-group/ci-group").as_deref(), Some("42"));
    assert!(w.github.calls().iter().any(|c| c.detail.contains("group=42")));
    // Cached for the container's life.
    run(&w, &[message(2, "acme", "a")]).await;
    assert_eq!(w.github.count("runner_group_id"), 1);
    // A new container reads the SSM cache.
    let w2 = world(&[("ENABLE_EPHEMERAL_RUNNERS", "true"), ("RUNNER_GROUP_NAME", "ci-group")]);
    w2.ssm.put("/gh/ci/runners/config/runner-group/ci-group", "42");
    run(&w2, &[message(3, "acme", "a")]).await;
    assert_eq!(w2.github.count("runner_group_id"), 0);
    // Terraform's placeholder (so that destroy removes the cache) is replaced by the id.
    let w4 = world(&[("ENABLE_EPHEMERAL_RUNNERS", "true"), ("RUNNER_GROUP_NAME", "ci-group")]);
    w4.github.add_group("ci-group", 42);
    w4.ssm.put("/gh/ci/runners/config/runner-group/ci-group", "unresolved");
    assert_eq!(created(&run(&w4, &[message(5, "acme", "a")]).await), 1);
    assert_eq!(w4.github.count("runner_group_id"), 1);
    assert_eq!(w4.ssm.value("/gh/ci/runners/config/runner-group/ci-group").as_deref(), Some("42"));
    // An unknown group: the instance is terminated and the job retried.
    let w3 = world(&[("ENABLE_EPHEMERAL_RUNNERS", "true"), ("RUNNER_GROUP_NAME", "nope")]);
    let fates = run(&w3, &[message(4, "acme", "a")]).await;
    assert_eq!(retried(&fates), vec!["m0"]);
    assert_eq!(w3.ec2.terminated().len(), 1);
}

#[tokio::test]
async fn ami_override_and_dedicated_hosts() {
    let w = world(&[("ENABLE_EPHEMERAL_RUNNERS", "true"), ("AMI_ID_SSM_PARAMETER_NAME", "/ami/runner")]);
    w.ssm.put("/ami/runner", "ami-0123456789abcdef0");
    run(&w, &[message(1, "acme", "a")]).await;
    assert_eq!(w.ec2.launches()[0].image_id.as_deref(), Some("ami-0123456789abcdef0"));
    let w = world(&[("ENABLE_EPHEMERAL_RUNNERS", "true"), ("AMI_ID_SSM_PARAMETER_NAME", "/ami/missing")]);
    assert_eq!(retried(&run(&w, &[message(1, "acme", "a")]).await), vec!["m0"]);
    let w = world(&[("ENABLE_EPHEMERAL_RUNNERS", "true"), ("USE_DEDICATED_HOST", "true")]);
    assert_eq!(
        retried(&run(&w, &[message(1, "acme", "a")]).await),
        vec!["m0"],
        "spot is not possible on dedicated hosts"
    );
    assert!(w.ec2.launches().is_empty());
    let w = world(&[
        ("ENABLE_EPHEMERAL_RUNNERS", "true"),
        ("USE_DEDICATED_HOST", "true"),
        ("INSTANCE_TARGET_CAPACITY_TYPE", "on-demand"),
    ]);
    assert_eq!(created(&run(&w, &[message(1, "acme", "a")]).await), 1);
    assert!(w.ec2.launches()[0].dedicated_host);
}

#[tokio::test]
async fn batch_response_and_metrics() {
    let w = world(EPHEMERAL);
    w.ec2.script(vec![ScriptedLaunch::Partial {
        fulfil: 1,
        errors: vec![FleetError { code: "InsufficientInstanceCapacity".into(), message: String::new() }],
    }]);
    let response = w
        .scale_up
        .handle(&event(&[message(1, "acme", "a"), message(2, "acme", "b"), json!("garbage")]), deadline())
        .await;
    let ids: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(ids, vec!["m1"]);
    let lines = w.metrics.lines.lock().unwrap().clone();
    let value = |name: &str| -> f64 {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v[name].as_f64())
            .sum()
    };
    assert_eq!(value("JobsReceived"), 2.0);
    assert_eq!(value("RunnersRequested"), 2.0);
    assert_eq!(value("RunnersCreated"), 1.0);
    assert_eq!(value("RunnersFailed"), 1.0);
    assert_eq!(value("JobsRetried"), 1.0);
    assert_eq!(value("MalformedMessages"), 1.0);
    assert_eq!(value("GitHubAppRateLimitRemaining"), 4999.0);
}

const JOB_RETRY: &str =
    r#"{"enable":true,"maxAttempts":2,"delayInSeconds":60,"delayBackoff":3,"queueUrl":"https://sqs/ci-job-retry"}"#;

#[tokio::test]
async fn job_retry_schedules_a_delayed_check_for_each_launched_job() {
    let mut extra = EPHEMERAL.to_vec();
    extra.push(("JOB_RETRY_CONFIG", JOB_RETRY));
    let mut w = world(&extra);
    let queue = Arc::new(common::testing::MemoryJobQueue::default());
    w.scale_up = w.scale_up.with_retry_queue(queue.clone());
    let mut retried_once = message(2, "acme", "web");
    retried_once["retryCounter"] = json!(1);
    let mut retried_twice = message(3, "acme", "web");
    retried_twice["retryCounter"] = json!(2);
    let fates = run(&w, &[message(1, "acme", "web"), retried_once, retried_twice]).await;
    assert_eq!(created(&fates), 3);
    let mut delayed: Vec<(u64, Option<u32>, u32)> = queue
        .delayed
        .lock()
        .unwrap()
        .iter()
        .map(|(m, delay)| {
            let body: QueuedJobMessage = serde_json::from_str(&m.body).unwrap();
            assert_eq!(m.queue_url, "https://sqs/ci-job-retry");
            (body.id, body.retry_counter, *delay)
        })
        .collect();
    delayed.sort();
    // First delivery: checked after 60 s; first retry: after 60 × 3; the second retry was the last.
    assert_eq!(delayed, vec![(1, Some(0), 60), (2, Some(1), 180)]);
}

#[tokio::test]
async fn a_retried_job_is_checked_again_even_without_the_queued_check() {
    let mut extra = EPHEMERAL.to_vec();
    extra.push(("JOB_RETRY_CONFIG", JOB_RETRY));
    let w = world(&extra);
    w.github.set_job_status(2, "in_progress");
    w.github.set_job_status(1, "in_progress");
    let mut retried = message(2, "acme", "web");
    retried["retryCounter"] = json!(1);
    let fates = run(&w, &[message(1, "acme", "web"), retried]).await;
    // The first delivery is not checked (ephemeral default); the retry is, and its job started.
    assert_eq!(fates["m0"], Fate::Created { instance_id: w.ec2.instances()[0].id.clone() });
    assert_eq!(fates["m1"], Fate::Skipped { reason: "not_queued" });
    assert_eq!(w.github.count("job_status"), 1);
}

fn labelled(id: u64, extra: &[&str]) -> serde_json::Value {
    let mut m = message(id, "acme", "web");
    let mut labels = vec!["self-hosted".to_string()];
    labels.extend(extra.iter().map(|l| l.to_string()));
    m["labels"] = json!(labels);
    m
}

#[tokio::test]
async fn dynamic_label_sets_get_a_fleet_each_and_runners_with_their_labels() {
    let w = world(EPHEMERAL);
    let big = ["ghr-ec2-instance-type:c5.xlarge", "ghr-ec2-ebs-volume-size:120"];
    let fates = run(
        &w,
        &[
            labelled(1, &big),
            labelled(2, &["ghr-ec2-vcpu-count-min:4", "ghr-ec2-memory-mib-min:8192"]),
            labelled(3, &[big[1], big[0]]),
            labelled(4, &[]),
            labelled(5, &["ghr-ec2-ebs-volume-size:100GB"]),
        ],
    )
    .await;
    assert_eq!(created(&fates), 4);
    assert_eq!(fates["m4"], Fate::Skipped { reason: "invalid_dynamic_labels" }, "a malformed size never launches");
    let launches = w.ec2.launches();
    assert_eq!(launches.len(), 3, "one fleet per label set, the same set in any order shares one");
    let by_count = |n: usize| launches.iter().filter(|l| l.count == n).collect::<Vec<_>>();
    let shared = by_count(2)[0];
    let o = shared.overrides.as_ref().unwrap();
    assert_eq!(o.instance_type.as_deref(), Some("c5.xlarge"));
    assert_eq!((o.ebs_volume_size, o.block_device_name.as_deref()), (Some(120), Some("/dev/xvda")));
    let tag = |l: &LaunchRequest| l.tags.iter().find(|(k, _)| k == "ghr:runner_labels").unwrap().1.clone();
    assert_eq!(tag(shared), "self-hosted,linux,x64,ghr-ec2-ebs-volume-size:120,ghr-ec2-instance-type:c5.xlarge");
    let plain: Vec<_> = launches.iter().filter(|l| l.overrides.is_none()).collect();
    assert_eq!(plain.len(), 1);
    assert_eq!(tag(plain[0]), "self-hosted,linux,x64");
    assert!(launches.iter().any(|l| l.overrides.as_ref().is_some_and(|o| o.uses_requirements())));
    // Each runner registers with its job's labels: GitHub gives a job only to a runner with all of them.
    let jit: Vec<String> =
        w.github.calls().iter().filter(|c| c.operation == "create_jit_config").map(|c| c.detail.clone()).collect();
    assert_eq!(jit.len(), 4);
    assert_eq!(jit.iter().filter(|d| d.ends_with("labels=self-hosted,linux,x64")).count(), 1, "{jit:?}");
    assert_eq!(jit.iter().filter(|d| d.contains("ghr-ec2-instance-type:c5.xlarge")).count(), 2, "{jit:?}");
}

#[tokio::test]
async fn a_label_set_ec2_refuses_is_acknowledged_and_the_rest_launch() {
    let w = world(EPHEMERAL);
    let invalid = FleetError { code: "InvalidParameterValue".into(), message: "no such instance type".into() };
    w.ec2.script(vec![ScriptedLaunch::Partial { fulfil: 0, errors: vec![invalid] }]);
    // A request error for a job whose labels shaped the request: it can never launch.
    let fates = run(&w, &[labelled(1, &["ghr-ec2-instance-type:m5.gigantic"])]).await;
    assert_eq!(fates["m0"], Fate::Skipped { reason: "invalid_dynamic_labels" });
    let shortage = FleetError { code: "InsufficientInstanceCapacity".into(), message: String::new() };
    w.ec2.script(vec![ScriptedLaunch::Partial { fulfil: 0, errors: vec![shortage] }]);
    let fates = run(&w, &[labelled(2, &["ghr-ec2-instance-type:p5.48xlarge"])]).await;
    assert_eq!(retried(&fates), ["m0"], "capacity can come back: retried");
    // A plain job refused the same way is retried: no label of its shaped the request. (The
    // plain set launches first: the sets are launched in their sorted order.)
    let invalid = FleetError { code: "InvalidParameterValue".into(), message: String::new() };
    w.ec2.script(vec![ScriptedLaunch::Partial { fulfil: 0, errors: vec![invalid] }]);
    let fates = run(&w, &[labelled(3, &[]), labelled(4, &["ghr-ec2-instance-type:c5.large"])]).await;
    assert!(matches!(fates["m0"], Fate::Retry { reason: "ec2", .. }), "{fates:?}");
    assert!(matches!(fates["m1"], Fate::Created { .. }), "the other set launched: {fates:?}");
    // Through the handler: acknowledged (not in batchItemFailures) and counted.
    let invalid = FleetError { code: "InvalidParameterValue".into(), message: String::new() };
    w.ec2.script(vec![ScriptedLaunch::Partial { fulfil: 0, errors: vec![invalid] }]);
    let response = w.scale_up.handle(&event(&[labelled(5, &["ghr-ec2-instance-type:m5.gigantic"])]), deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    let lines = w.metrics.lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.contains("invalid_dynamic_labels") && l.contains("JobsSkipped")), "{lines:?}");
}

#[tokio::test]
async fn a_rescued_job_runs_on_demand_whatever_the_configured_capacity() {
    let w = world(EPHEMERAL);
    let mut rescued = message(2, "acme", "web");
    rescued["capacityType"] = json!("on-demand");
    let fates = run(&w, &[message(1, "acme", "web"), rescued]).await;
    assert_eq!(created(&fates), 2);
    let mut capacities: Vec<(CapacityType, usize)> =
        w.ec2.launches().iter().map(|l| (l.capacity_type, l.count)).collect();
    capacities.sort_by_key(|(c, _)| c.as_str());
    assert_eq!(capacities, vec![(CapacityType::OnDemand, 1), (CapacityType::Spot, 1)], "a fleet each");
}

const WARM: &[(&str, &str)] = &[
    ("ENABLE_EPHEMERAL_RUNNERS", "true"),
    ("ENABLE_JOB_QUEUED_CHECK", "false"),
    ("RUNNERS_MAXIMUM_COUNT", "10"),
    ("WARM_POOL_CONFIG", r#"{"size":3,"maxAgeHours":24}"#),
];

/// A prepared warm pool instance, stopped, launched `minutes_ago`.
fn warm_instance(id: &str, minutes_ago: i64) -> RunnerInstance {
    RunnerInstance {
        image_id: None,
        id: id.into(),
        launch_time: Some(chrono::Utc::now() - chrono::TimeDelta::minutes(minutes_ago)),
        state: "stopped".into(),
        tags: [
            (tags::ENVIRONMENT, "ci"),
            (tags::APPLICATION, tags::APPLICATION_VALUE),
            (common::domain::warm_pool::WARM_TAG, "ready"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    }
}

fn instance_of<'a>(w: &'a [RunnerInstance], id: &str) -> &'a RunnerInstance {
    w.iter().find(|i| i.id == id).unwrap()
}

#[tokio::test]
async fn warm_instances_are_claimed_registered_and_started_before_any_launch() {
    let w = world(WARM);
    w.ec2.add(warm_instance("i-warm-young", 10));
    w.ec2.add(warm_instance("i-warm-old", 60));
    w.ec2.add(warm_instance("i-warm-expired", 25 * 60));
    let fates = run(
        &w,
        &[message(1, "acme", "web"), message(2, "acme", "web"), message(3, "acme", "web"), labelled(4, &["ghr-run:1"])],
    )
    .await;
    assert_eq!(created(&fates), 4, "{fates:?}");
    // The oldest ready instance first; the expired one is never claimed.
    let warm_ids: Vec<&str> = fates
        .values()
        .filter_map(|f| match f {
            Fate::Created { instance_id } if instance_id.starts_with("i-warm") => Some(instance_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(warm_ids.len(), 2);
    let mut started = w.ec2.started();
    started.sort();
    assert_eq!(started, vec![vec!["i-warm-old".to_string()], vec!["i-warm-young".to_string()]], "each once configured");
    // The third plain job and the dynamic-label job launch fresh: one fleet each.
    let launches = w.ec2.launches();
    assert_eq!(launches.iter().map(|l| l.count).sum::<usize>(), 2, "{launches:?}");
    let instances = w.ec2.instances();
    for id in ["i-warm-old", "i-warm-young"] {
        let i = instance_of(&instances, id);
        assert_eq!(i.state, "pending");
        assert_eq!(i.tag(common::domain::warm_pool::WARM_TAG), Some("claimed"));
        assert_eq!(i.owner(), Some(RunnerOwner::Org("acme".into())));
        assert!(i.tag(common::domain::warm_pool::CLAIMED_AT_TAG).is_some());
        assert!(i.github_runner_id().is_some(), "registered");
        // The claim (written without overwrite, with the instance's tags) is replaced by the
        // JIT config before the start.
        let writes: Vec<_> =
            w.ssm.written().into_iter().filter(|p| p.name == format!("/gh/ci/runners/tokens/{id}")).collect();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert!(!writes[0].overwrite && writes[0].value.expose().starts_with("ghr-warm-claim:"));
        assert_eq!(writes[0].tags[0], ("InstanceId".to_string(), id.to_string()));
        assert!(writes[1].overwrite && writes[1].value.expose() == &format!("jit-config-for-ci-{id}"));
    }
    assert_eq!(instance_of(&instances, "i-warm-expired").state, "stopped");
    assert_eq!(w.metrics.sum("WarmPoolClaims"), 2.0);
    assert_eq!(w.metrics.sum_with("WarmPoolFallbacks", &[("Reason", "none_ready")]), 1.0);
}

#[tokio::test]
async fn a_claim_another_invocation_won_moves_on_to_the_next_instance() {
    let w = world(WARM);
    w.ec2.add(warm_instance("i-warm-a", 60));
    w.ec2.add(warm_instance("i-warm-b", 30));
    // Another invocation holds i-warm-a's claim.
    use common::ports::ParameterWriter;
    w.ssm
        .put_parameter(&NewParameter {
            name: "/gh/ci/runners/tokens/i-warm-a".into(),
            value: Secret::new("ghr-warm-claim:other/m0".into()),
            secure: true,
            tags: vec![],
            overwrite: false,
        })
        .await
        .unwrap();
    let fates = run(&w, &[message(1, "acme", "web")]).await;
    assert_eq!(fates["m0"], Fate::Created { instance_id: "i-warm-b".into() });
    assert!(w.ec2.launches().is_empty());
    assert_eq!(instance_of(&w.ec2.instances(), "i-warm-a").state, "stopped", "the other claimant's to start");
}

#[tokio::test]
async fn concurrent_invocations_never_claim_the_same_warm_instance() {
    let config = config(WARM);
    let ec2 = Arc::new(MemoryRunnerInstances::new("ci"));
    ec2.add(warm_instance("i-warm", 5));
    let github = MemoryGithub::default();
    github.add_group("Default", 1);
    let ssm = Arc::new(MemoryParameterStore::default());
    let make = || {
        ScaleUp::new(
            config.clone(),
            Arc::new(github.clone()),
            ec2.clone(),
            ssm.clone(),
            ssm.clone(),
            Metrics::new(&config.telemetry, Arc::new(MemorySink::default())),
        )
    };
    let (a, b) = (make(), make());
    let (ea, eb) = (event(&[message(1, "acme", "web")]), event(&[message(2, "acme", "web")]));
    let (fa, fb) = futures::future::join(a.process(&ea, deadline()), b.process(&eb, deadline())).await;
    let ids: Vec<String> = fa
        .iter()
        .chain(&fb)
        .filter_map(|(_, f)| match f {
            Fate::Created { instance_id } => Some(instance_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2, "both jobs get a runner: {fa:?} {fb:?}");
    assert_eq!(ids.iter().filter(|id| *id == "i-warm").count(), 1, "exactly one claims the warm instance");
    assert_eq!(ec2.launches().len(), 1, "the other launches");
    assert_eq!(ec2.started(), vec![vec!["i-warm".to_string()]]);
}

#[tokio::test]
async fn a_claimed_instance_that_does_not_start_is_replaced_by_a_fresh_launch() {
    let w = world(WARM);
    w.ec2.add(warm_instance("i-warm", 5));
    w.ec2.fail_starting(Some(AwsError::new(
        "ec2:StartInstances",
        AwsErrorKind::Client,
        Some("InsufficientInstanceCapacity".into()),
        "no capacity",
    )));
    let fates = run(&w, &[message(1, "acme", "web")]).await;
    let Fate::Created { instance_id } = &fates["m0"] else { panic!("{fates:?}") };
    assert_ne!(instance_id, "i-warm", "a fresh instance");
    assert_eq!(w.ec2.launches().len(), 1);
    assert_eq!(w.ec2.terminated(), vec!["i-warm".to_string()], "the claimed instance is given up");
    assert_eq!(w.metrics.sum_with("WarmPoolFallbacks", &[("Reason", "start_failed")]), 1.0);
    assert_eq!(w.metrics.sum("WarmPoolClaims"), 0.0);
    // The fresh instance has its own JIT config.
    assert!(w.ssm.written().iter().any(|p| p.name == format!("/gh/ci/runners/tokens/{instance_id}")));
}

#[tokio::test]
async fn a_warm_claim_counts_toward_the_maximum() {
    let mut vars = WARM.to_vec();
    vars.push(("RUNNERS_MAXIMUM_COUNT", "1"));
    let w = world(&vars);
    w.ec2.add(warm_instance("i-warm", 5));
    let fates = run(&w, &[message(1, "acme", "web"), message(2, "acme", "web")]).await;
    assert_eq!(fates["m0"], Fate::Created { instance_id: "i-warm".into() });
    assert!(matches!(fates["m1"], Fate::Retry { reason: "maximum_reached", .. }), "{fates:?}");
    assert!(w.ec2.launches().is_empty());
}
