//! The warm pool through the built warm-pool, scale-up and scale-down binaries against moto and
//! the fake GitHub: the top-up within the maximum, two scale-ups racing for one ready instance,
//! a claim that fails to start, age and image rotation, scale-down leaving the pool alone and
//! putting an idle reusable runner back into it. (Prepare mode and
//! the resume through the boot script: `boot_scripts::a_warm_pool_instance_*`.)

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use chrono::Utc;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::aws_proxy::{AwsFault, AwsProxy};
use tests::fake_github::FakeGithub;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, REGION, unique};
use tests::stack::RunnerStack;

use crate::support::{binary, scale_up_behind_proxy};

const WARM: &str = r#"{"size":3,"maxAgeHours":24,"hibernate":false}"#;

struct World {
    aws: Aws,
    stack: RunnerStack,
    github: FakeGithub,
    installation: u64,
    clock_file: std::path::PathBuf,
}

impl World {
    async fn new() -> Self {
        let moto = Moto::shared();
        moto.warm_ec2().await;
        let aws = Aws::new(moto).await;
        let github = FakeGithub::start().await;
        let app = TestApp::new(1, 4343);
        github.add_app(app.id, app.public_pem.as_bytes());
        let installation = github.add_installation(app.id, "acme", "Organization");
        let stack = RunnerStack::create(&aws, &unique("warm"), std::slice::from_ref(&app)).await;
        let clock_file = std::env::temp_dir().join(format!("{}-clock", stack.prefix));
        std::fs::write(&clock_file, Utc::now().to_rfc3339()).unwrap();
        Self { aws, stack, github, installation, clock_file }
    }

    /// The warm-pool function with Terraform's environment (scale-up's, plus its own).
    async fn warm_pool(&self, overrides: &[(&str, &str)]) -> LambdaFunction {
        let clock = self.clock_file.display().to_string();
        let mut all = vec![
            ("WARM_POOL_CONFIG", WARM),
            ("RUNNER_BOOT_TIME_IN_MINUTES", "5"),
            (common::config::test_overrides::CLOCK_FILE, clock.as_str()),
        ];
        all.extend_from_slice(overrides);
        let mut env = self.stack.scale_up_env(&self.github.url, &all);
        env.extend(Moto::shared().lambda_env());
        let name = format!("{}-warm-pool", self.stack.prefix);
        LambdaFunction::spawn(&binary("warm-pool"), &name, &env, Duration::from_secs(60)).await
    }

    async fn scale_up(&self, overrides: &[(&str, &str)]) -> LambdaFunction {
        let mut all = vec![("WARM_POOL_CONFIG", WARM)];
        all.extend_from_slice(overrides);
        let mut env = self.stack.scale_up_env(&self.github.url, &all);
        env.extend(Moto::shared().lambda_env());
        let name = format!("{}-scale-up", self.stack.prefix);
        LambdaFunction::spawn(&binary("scale-up"), &name, &env, Duration::from_secs(30)).await
    }

    /// Every instance of the stack that is not terminated: state and tags.
    async fn instances(&self) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
        let out = self
            .aws
            .ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .values("stopping")
                    .values("stopped")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                let state = i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default();
                let tags =
                    i.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
                (i.instance_id().unwrap().to_string(), (state, tags))
            })
            .collect()
    }

    fn with_warm_state<'a>(
        all: &'a BTreeMap<String, (String, BTreeMap<String, String>)>,
        warm: &str,
    ) -> Vec<&'a String> {
        all.iter().filter(|(_, (_, t))| t.get("ghr:warm").map(String::as_str) == Some(warm)).map(|(id, _)| id).collect()
    }

    /// What an instance's boot script does in prepare mode (run for real by
    /// `boot_scripts::a_warm_pool_instance_*`): tag itself ready, stop.
    async fn prepare(&self, ids: &[String]) {
        let tag = aws_sdk_ec2::types::Tag::builder().key("ghr:warm").value("ready").build();
        self.aws.ec2.create_tags().set_resources(Some(ids.to_vec())).tags(tag).send().await.unwrap();
        self.aws.ec2.stop_instances().set_instance_ids(Some(ids.to_vec())).send().await.unwrap();
    }

    fn set_clock(&self, t: chrono::DateTime<Utc>) {
        std::fs::write(&self.clock_file, t.to_rfc3339()).unwrap();
    }

    fn job_event(&self, job_id: u64, message_id: &str) -> Value {
        let message = json!({"id": job_id, "repositoryName": "web", "repositoryOwner": "acme",
            "eventType": "workflow_job", "installationId": self.installation, "queueId": self.stack.queue_url,
            "repoOwnerType": "Organization", "labels": ["self-hosted", "linux"]});
        json!({"Records": [{"messageId": message_id, "receiptHandle": "h", "body": message.to_string(),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q", "awsRegion": REGION}]})
    }

    async fn token(&self, id: &str) -> Option<String> {
        let name = format!("{}/{id}", self.stack.token_path());
        let out = self.aws.ssm.get_parameter().name(name).with_decryption(true).send().await.ok()?;
        out.parameter().and_then(|p| p.value()).map(str::to_string)
    }
}

fn launched(summary: &Value) -> Vec<String> {
    summary["launched"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_tops_up_within_the_maximum_and_rotates_by_age() {
    let w = World::new().await;
    // Two runners already run; the maximum is 4: room for two instances preparing.
    let runners = w.stack.launch_instances(&w.aws, &common::domain::runner::RunnerOwner::Org("acme".into()), 2).await;
    let warm_pool = w.warm_pool(&[("RUNNERS_MAXIMUM_COUNT", "4")]).await;
    let first = warm_pool.invoke(json!({})).await.unwrap();
    assert_eq!((first["running"].as_u64(), first["requested"].as_u64()), (Some(2), Some(2)), "{first}");
    let first_ids = launched(&first);
    assert_eq!(first_ids.len(), 2);
    let all = w.instances().await;
    for id in &first_ids {
        let (_, tags) = &all[id];
        assert_eq!(tags.get("ghr:warm").map(String::as_str), Some("preparing"));
        assert_eq!(tags.get("ghr:created_by").map(String::as_str), Some("warm-pool-lambda"));
        assert!(!tags.contains_key("ghr:Owner"), "no owner until claimed: {tags:?}");
    }
    // Full while they prepare: nothing more, never past the maximum.
    let again = warm_pool.invoke(json!({})).await.unwrap();
    assert_eq!((again["preparing"].as_u64(), again["requested"].as_u64()), (Some(2), Some(0)), "{again}");

    // Prepared and stopped, they no longer count toward the maximum: the third is launched.
    w.prepare(&first_ids).await;
    let third = warm_pool.invoke(json!({})).await.unwrap();
    assert_eq!(
        (third["ready"].as_u64(), third["running"].as_u64(), launched(&third).len()),
        (Some(2), Some(2), 1),
        "{third}"
    );
    w.prepare(&launched(&third)).await;
    let full = warm_pool.invoke(json!({})).await.unwrap();
    assert_eq!((full["ready"].as_u64(), full["requested"].as_u64()), (Some(3), Some(0)), "{full}");
    assert_eq!(warm_pool.metric("WarmPoolReady").last().map(|(v, _)| *v), Some(3.0));

    // A day later the whole pool has aged out: retired and replaced (within the maximum).
    w.set_clock(Utc::now() + chrono::TimeDelta::hours(25));
    let rotated = warm_pool.invoke(json!({})).await.unwrap();
    let retired: Vec<&str> =
        rotated["retired"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(retired, vec!["expired"; 3], "{rotated}");
    assert_eq!(launched(&rotated).len(), 2, "room for two next to the two runners: {rotated}");
    let all = w.instances().await;
    for id in first_ids.iter().chain(&launched(&third)) {
        assert!(!all.contains_key(id), "{id} retired");
    }
    for id in &runners {
        assert_eq!(all[id].0, "running", "runners are never the warm pool's to retire");
    }
    assert_eq!(warm_pool.metric("WarmPoolRetired").iter().map(|(v, _)| v).sum::<f64>(), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scale_ups_racing_for_one_ready_instance_claim_it_once() {
    let w = World::new().await;
    let warm_pool = w.warm_pool(&[("WARM_POOL_CONFIG", r#"{"size":1}"#)]).await;
    let ready = launched(&warm_pool.invoke(json!({})).await.unwrap());
    w.prepare(&ready).await;
    let warm = ready[0].clone();

    let (a, b) = (w.scale_up(&[]).await, w.scale_up(&[]).await);
    let (ra, rb) = futures::future::join(a.invoke(w.job_event(1, "m1")), b.invoke(w.job_event(2, "m2"))).await;
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra["batchItemFailures"].clone(), rb["batchItemFailures"].clone()), (json!([]), json!([])));
    let claims: f64 = [&a, &b].iter().flat_map(|f| f.metric("WarmPoolClaims")).map(|(v, _)| v).sum();
    assert_eq!(claims, 1.0, "exactly one invocation claims the instance");
    let fallbacks: f64 = [&a, &b].iter().flat_map(|f| f.metric("WarmPoolFallbacks")).map(|(v, _)| v).sum();
    assert_eq!(fallbacks, 1.0, "the other launches fresh");

    let all = w.instances().await;
    let (state, tags) = &all[&warm];
    assert!(matches!(state.as_str(), "pending" | "running"), "{state}");
    assert_eq!(tags.get("ghr:warm").map(String::as_str), Some("claimed"));
    let job = tags.get("ghr:launched_for_job").cloned().expect("claimed for a job");
    let fresh: Vec<_> = all.iter().filter(|(id, (_, t))| **id != warm && t.get("ghr:Owner").is_some()).collect();
    assert_eq!(fresh.len(), 1, "one fresh instance: {all:?}");
    let other_job = fresh[0].1.1.get("ghr:launched_for_job").cloned().unwrap();
    let mut jobs = vec![job, other_job];
    jobs.sort();
    assert_eq!(jobs, vec!["1", "2"], "each job has its own runner");
    // The claimed instance holds one JIT config, no claim placeholder.
    let config = w.token(&warm).await.expect("its configuration");
    assert!(FakeGithub::decode_jit_config(&config).is_some(), "{config}");
    assert_eq!(w.github.runners().len(), 2, "two runners registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_fails_to_start_gets_a_fresh_instance_in_the_same_invocation() {
    let w = World::new().await;
    let warm_pool = w.warm_pool(&[("WARM_POOL_CONFIG", r#"{"size":1}"#)]).await;
    let ready = launched(&warm_pool.invoke(json!({})).await.unwrap());
    w.prepare(&ready).await;

    let proxy = AwsProxy::start(&Moto::shared().endpoint).await;
    proxy.inject(AwsFault::error("ec2:StartInstances", 500, "InsufficientInstanceCapacity"));
    let scale_up = scale_up_behind_proxy(
        &w.stack,
        &w.github.url,
        &proxy.url,
        &[("WARM_POOL_CONFIG", WARM)],
        Duration::from_secs(30),
    )
    .await;
    let response = scale_up.invoke(w.job_event(5, "m1")).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    assert_eq!(proxy.count("ec2:StartInstances"), 1, "no retry: capacity does not come back in seconds");
    assert_eq!(proxy.count("ec2:CreateFleet"), 1, "a fresh launch");
    let fallback = scale_up.metric("WarmPoolFallbacks");
    assert_eq!(fallback.len(), 1);
    assert_eq!(fallback[0].1["Reason"], "start_failed");

    let all = w.instances().await;
    assert!(!all.contains_key(&ready[0]), "the claimed instance that did not start is terminated");
    let fresh: Vec<_> =
        all.iter().filter(|(_, (_, t))| t.get("ghr:launched_for_job").map(String::as_str) == Some("5")).collect();
    assert_eq!(fresh.len(), 1, "{all:?}");
    assert!(FakeGithub::decode_jit_config(&w.token(fresh[0].0).await.unwrap()).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_leaves_the_warm_pool_alone() {
    let w = World::new().await;
    let warm_pool = w.warm_pool(&[("WARM_POOL_CONFIG", r#"{"size":2}"#)]).await;
    let ids = launched(&warm_pool.invoke(json!({})).await.unwrap());
    w.prepare(&ids[..1]).await;
    // An hour later: a runner without a registration would be an orphan by now.
    w.set_clock(Utc::now() + chrono::TimeDelta::hours(1));
    let mut env = w.stack.scale_down_env(
        &w.github.url,
        &w.clock_file.to_string_lossy(),
        &[("MINIMUM_RUNNING_TIME_IN_MINUTES", "5"), ("SCALE_DOWN_CONFIG", "[]")],
    );
    env.extend(Moto::shared().lambda_env());
    let scale_down = LambdaFunction::spawn(
        &binary("scale-down"),
        &format!("{}-scale-down", w.stack.prefix),
        &env,
        Duration::from_secs(60),
    )
    .await;
    for _ in 0..2 {
        scale_down.invoke(json!({})).await.unwrap();
    }
    let all = w.instances().await;
    assert_eq!(World::with_warm_state(&all, "ready").len(), 1, "{all:?}");
    assert_eq!(World::with_warm_state(&all, "preparing").len(), 1, "{all:?}");
    assert!(all.values().all(|(_, t)| !t.contains_key("ghr:orphan")), "never marked an orphan: {all:?}");
    assert!(!scale_down.logs().iter().any(|l| l.contains("without ghr:Type/ghr:Owner")), "no warning either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_reusable_runner_from_the_pool_goes_back_to_it_and_is_claimed_again() {
    let w = World::new().await;
    let size = r#"{"size":1,"maxAgeHours":24}"#;
    let reusable = [("ENABLE_EPHEMERAL_RUNNERS", "false"), ("ENABLE_JIT_CONFIG", "false"), ("WARM_POOL_CONFIG", size)];
    let warm_pool = w.warm_pool(&[("WARM_POOL_CONFIG", size)]).await;
    let ready = launched(&warm_pool.invoke(json!({})).await.unwrap());
    w.prepare(&ready).await;
    let id = ready[0].clone();

    // A job claims it; its runner registers (config.sh with the token) and runs the job.
    let scale_up = w.scale_up(&reusable).await;
    let answer = scale_up.invoke(w.job_event(1, "m1")).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let token = w.github.registration_tokens().pop().expect("a registration token");
    let labels: Vec<String> = ["linux", "self-hosted", "x64"].iter().map(|l| l.to_string()).collect();
    let runner = w.github.register_with_token(&token, &id, &labels, false).unwrap();
    // start-runner.sh read its configuration and deleted it.
    w.aws.ssm.delete_parameter().name(format!("{}/{id}", w.stack.token_path())).send().await.unwrap();
    let tag = |k: &str, v: String| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    w.aws.ec2.create_tags().resources(&id).tags(tag("ghr:github_runner_id", runner.to_string())).send().await.unwrap();

    // Idle past its minimum running time: scale-down deregisters it, and after the hold puts it
    // back into the pool instead of terminating it.
    let mut env = w.stack.scale_down_env(
        &w.github.url,
        &w.clock_file.to_string_lossy(),
        &[("MINIMUM_RUNNING_TIME_IN_MINUTES", "5"), ("WARM_POOL_CONFIG", size)],
    );
    env.extend(Moto::shared().lambda_env());
    let scale_down = LambdaFunction::spawn(
        &binary("scale-down"),
        &format!("{}-scale-down", w.stack.prefix),
        &env,
        Duration::from_secs(60),
    )
    .await;
    w.set_clock(Utc::now() + chrono::TimeDelta::minutes(10));
    scale_down.invoke(json!({})).await.unwrap();
    assert!(w.github.runners().is_empty(), "deregistered: {:?}", w.github.runners());
    w.set_clock(Utc::now() + chrono::TimeDelta::minutes(20));
    let summary = scale_down.invoke(json!({})).await.unwrap();
    assert_eq!(summary["returnedToPool"], json!([id]), "{summary}");
    assert_eq!(scale_down.metric("WarmPoolReturned").iter().map(|(v, _)| v).sum::<f64>(), 1.0);
    let all = w.instances().await;
    let (state, tags) = &all[&id];
    assert!(matches!(state.as_str(), "stopping" | "stopped"), "stopped, not terminated: {state}");
    assert_eq!(tags.get("ghr:warm").map(String::as_str), Some("ready"), "{tags:?}");
    for gone in [
        "ghr:Owner",
        "ghr:Type",
        "ghr:github_runner_id",
        "ghr:launched_for_job",
        "ghr:deregistered_at",
        "ghr:warm_claimed_at",
    ] {
        assert!(!tags.contains_key(gone), "{gone} removed: {tags:?}");
    }

    // The warm pool counts it ready again, and the next job claims it.
    let counted = warm_pool.invoke(json!({})).await.unwrap();
    assert_eq!((counted["ready"].as_u64(), counted["requested"].as_u64()), (Some(1), Some(0)), "{counted}");
    let answer = scale_up.invoke(w.job_event(2, "m2")).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let (state, tags) = &w.instances().await[&id];
    assert!(matches!(state.as_str(), "pending" | "running"), "{state}");
    assert_eq!(tags.get("ghr:launched_for_job").map(String::as_str), Some("2"), "{tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_image_in_the_launch_template_rotates_the_pool() {
    let w = World::new().await;
    let warm_pool = w.warm_pool(&[("WARM_POOL_CONFIG", r#"{"size":1}"#)]).await;
    let first = launched(&warm_pool.invoke(json!({})).await.unwrap());
    w.prepare(&first).await;
    let old_image = w.aws.ec2.describe_instances().instance_ids(&first[0]).send().await.unwrap().reservations()[0]
        .instances()[0]
        .image_id()
        .unwrap()
        .to_string();
    let unchanged = warm_pool.invoke(json!({})).await.unwrap();
    assert!(unchanged["retired"].as_array().unwrap().is_empty(), "{unchanged}");

    // A new AMI: a new default version of the template.
    let images = w.aws.ec2.describe_images().owners("amazon").send().await.unwrap();
    let new_image = images
        .images()
        .iter()
        .filter_map(|i| i.image_id())
        .find(|i| *i != old_image)
        .expect("another image in moto")
        .to_string();
    let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder().image_id(&new_image).build();
    let version = w
        .aws
        .ec2
        .create_launch_template_version()
        .launch_template_name(&w.stack.launch_template)
        .source_version("$Default")
        .launch_template_data(data)
        .send()
        .await
        .unwrap();
    let number = version.launch_template_version().and_then(|v| v.version_number()).unwrap();
    w.aws
        .ec2
        .modify_launch_template()
        .launch_template_name(&w.stack.launch_template)
        .default_version(number.to_string())
        .send()
        .await
        .unwrap();
    let rotated = warm_pool.invoke(json!({})).await.unwrap();
    let retired: Vec<(&str, &str)> = rotated["retired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["instanceId"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(retired, vec![(first[0].as_str(), "image_changed")], "{rotated}");
    let replacement = launched(&rotated);
    assert_eq!(replacement.len(), 1, "{rotated}");
    let image = w.aws.ec2.describe_instances().instance_ids(&replacement[0]).send().await.unwrap().reservations()[0]
        .instances()[0]
        .image_id()
        .map(str::to_string);
    assert_eq!(image.as_deref(), Some(new_image.as_str()), "the replacement has the new image");
}
