//! Scale-up through its built binary against moto (behind the fault proxy) and the fake GitHub:
//! happy paths, the exact SSM parameters, EC2 tags and GitHub calls of the contract, faults, and
//! the maximum under concurrent invocations. Every fault test checks that no job is lost: each
//! message launched a runner or is in `batchItemFailures`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::aws_proxy::{AwsFault, AwsProxy};
use tests::fake_github::{FakeGithub, FakeGithubOptions, Fault};
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

use crate::support::scale_up_behind_proxy;

struct World {
    aws: Aws,
    stack: RunnerStack,
    github: FakeGithub,
    proxy: AwsProxy,
    installation: u64,
    apps: Vec<TestApp>,
}

impl World {
    async fn new(apps: usize, options: FakeGithubOptions) -> Self {
        let moto = Moto::shared();
        moto.warm_ec2().await;
        let aws = Aws::new(moto).await;
        let github = FakeGithub::start_with(options).await;
        let apps: Vec<TestApp> = (0..apps).map(|i| TestApp::new(i as u8 + 1, 1000 + i as u64)).collect();
        let mut installation = 0;
        for (i, app) in apps.iter().enumerate() {
            github.add_app(app.id, app.public_pem.as_bytes());
            let id = github.add_installation(app.id, "acme", "Organization");
            if i == 0 {
                installation = id;
            }
        }
        let stack = RunnerStack::create(&aws, &unique("su"), &apps).await;
        let proxy = AwsProxy::start(&moto.endpoint).await;
        Self { aws, stack, github, proxy, installation, apps }
    }

    /// Starts the binary with Terraform's environment plus `overrides`, AWS through the proxy.
    async fn function(&self, overrides: &[(&str, &str)]) -> LambdaFunction {
        self.function_with_timeout(overrides, Duration::from_secs(30)).await
    }

    async fn function_with_timeout(&self, overrides: &[(&str, &str)], timeout: Duration) -> LambdaFunction {
        scale_up_behind_proxy(&self.stack, &self.github.url, &self.proxy.url, overrides, timeout).await
    }

    fn message(&self, job_id: u64, repo: &str) -> Value {
        json!({"id": job_id, "repositoryName": repo, "repositoryOwner": "acme", "eventType": "workflow_job",
               "installationId": self.installation, "queueId": self.stack.queue_url, "repoOwnerType": "Organization",
               "labels": ["self-hosted", "linux"]})
    }

    /// Live runner instances of this stack.
    async fn instances(&self) -> Vec<aws_sdk_ec2::types::Instance> {
        let out = self
            .aws
            .ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
            .filters(Filter::builder().name("instance-state-name").values("running").values("pending").build())
            .send()
            .await
            .unwrap();
        out.reservations().iter().flat_map(|r| r.instances().to_vec()).collect()
    }

    /// Token parameters: instance id → (value, tags).
    async fn tokens(&self) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
        let mut out = BTreeMap::new();
        let mut next = None;
        loop {
            let page = self
                .aws
                .ssm
                .get_parameters_by_path()
                .path(self.stack.token_path())
                .with_decryption(true)
                .set_next_token(next)
                .send()
                .await
                .unwrap();
            for p in page.parameters() {
                let name = p.name().unwrap().to_string();
                let tags = self
                    .aws
                    .ssm
                    .list_tags_for_resource()
                    .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                    .resource_id(&name)
                    .send()
                    .await
                    .unwrap();
                let tags = tags.tag_list().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
                let id = name.rsplit('/').next().unwrap().to_string();
                out.insert(id, (p.value().unwrap().to_string(), tags));
            }
            next = page.next_token().map(str::to_string);
            if next.is_none() {
                return out;
            }
        }
    }
}

fn sqs_event(messages: &[Value]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let body = if let Value::String(s) = m { s.clone() } else { m.to_string() };
            json!({"messageId": format!("msg-{i}"), "receiptHandle": "h", "body": body, "attributes": {"ApproximateReceiveCount": "1"},
                   "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q", "awsRegion": "eu-west-1"})
        })
        .collect();
    json!({ "Records": records })
}

fn failures(response: &Value) -> Vec<String> {
    let mut ids: Vec<String> = response["batchItemFailures"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

fn tag<'a>(instance: &'a aws_sdk_ec2::types::Instance, key: &str) -> Option<&'a str> {
    instance.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// Every message either got a runner or is reported for retry.
async fn assert_nothing_lost(w: &World, response: &Value, sent: usize, before: usize) {
    let created = w.instances().await.len() - before;
    assert_eq!(created + failures(response).len(), sent, "created {created}, retried {:?}", failures(response));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_jit_org_runners_with_the_contract_calls() {
    let w = World::new(1, FakeGithubOptions::default()).await;
    let f = w.function(&[]).await;
    let response = f.invoke(sqs_event(&[w.message(1, "web"), w.message(2, "api"), w.message(3, "web")])).await.unwrap();
    assert!(failures(&response).is_empty(), "{response}");

    let instances = w.instances().await;
    assert_eq!(instances.len(), 3);
    let tokens = w.tokens().await;
    assert_eq!(tokens.len(), 3);
    for instance in &instances {
        let id = instance.instance_id().unwrap();
        assert_eq!(tag(instance, "ghr:Application"), Some("github-action-runner"));
        assert_eq!(tag(instance, "ghr:created_by"), Some("scale-up-lambda"));
        assert_eq!(tag(instance, "ghr:Type"), Some("Org"));
        assert_eq!(tag(instance, "ghr:Owner"), Some("acme"));
        assert_eq!(tag(instance, "ghr:environment"), Some(w.stack.prefix.as_str()), "from the launch template");
        assert_eq!(tag(instance, "ghr:runner_labels"), Some("linux,self-hosted,x64"));
        let runner_id: u64 = tag(instance, "ghr:github_runner_id").unwrap().parse().unwrap();
        // The SSM parameter holds the JIT config of the runner named after the instance.
        let (value, tags) = &tokens[id];
        let jit = FakeGithub::decode_jit_config(value).expect("a JIT config");
        assert_eq!(jit["runner_id"], runner_id);
        assert_eq!(jit["name"], id, "runner name = prefix (empty) + instance id");
        assert_eq!(jit["labels"], json!(["linux", "self-hosted", "x64"]));
        assert_eq!(tags.get("InstanceId").map(String::as_str), Some(id));
        assert_eq!(tags.get("ghr:environment").map(String::as_str), Some(w.stack.prefix.as_str()));
        let runner = w.github.runner(runner_id).unwrap();
        assert!(runner.ephemeral && !runner.online, "registered, waiting for its instance");
    }
    // Cold: one token, one runner-group lookup, one JIT config per runner. The installation id
    // comes from the webhook payload, the queued check is off for ephemeral runners.
    let endpoints: Vec<String> = w.github.requests().iter().map(|r| r.endpoint.clone()).collect();
    assert_eq!(w.github.count("POST", "access_tokens"), 1, "{endpoints:?}");
    assert_eq!(w.github.count("GET", "runner-groups"), 1);
    assert_eq!(w.github.count("POST", "generate-jitconfig"), 3);
    assert_eq!(endpoints.len(), 5, "{endpoints:?}");
    assert_eq!(w.proxy.count("ec2:CreateFleet"), 1, "one fleet for the batch");
    // The fleet request: instant, launch template $Default, spot, an override per subnet × type.
    let fleet: BTreeMap<String, String> = w.proxy.ec2_requests("ec2:CreateFleet").remove(0).into_iter().collect();
    assert_eq!(fleet.get("Type").map(String::as_str), Some("instant"));
    assert_eq!(fleet.get("TargetCapacitySpecification.TotalTargetCapacity").map(String::as_str), Some("3"));
    assert_eq!(fleet.get("TargetCapacitySpecification.DefaultTargetCapacityType").map(String::as_str), Some("spot"));
    assert_eq!(fleet.get("SpotOptions.AllocationStrategy").map(String::as_str), Some("lowest-price"));
    assert_eq!(
        fleet.get("LaunchTemplateConfigs.1.LaunchTemplateSpecification.LaunchTemplateName"),
        Some(&w.stack.launch_template)
    );
    assert_eq!(
        fleet.get("LaunchTemplateConfigs.1.LaunchTemplateSpecification.Version").map(String::as_str),
        Some("$Default")
    );
    let mut overrides: Vec<(String, String)> = (1..=4)
        .map(|n| {
            let key =
                |f: &str| fleet.get(&format!("LaunchTemplateConfigs.1.Overrides.{n}.{f}")).cloned().unwrap_or_default();
            (key("SubnetId"), key("InstanceType"))
        })
        .collect();
    overrides.sort();
    let mut expected: Vec<(String, String)> =
        w.stack.subnets.iter().flat_map(|s| ["c5.large", "m5.large"].map(|t| (s.clone(), t.to_string()))).collect();
    expected.sort();
    assert_eq!(overrides, expected);
    assert!(!fleet.contains_key("LaunchTemplateConfigs.1.Overrides.5.SubnetId"));
    assert_eq!(fleet.get("TagSpecification.1.ResourceType").map(String::as_str), Some("instance"));
    assert_eq!(fleet.get("TagSpecification.2.ResourceType").map(String::as_str), Some("volume"));

    // Warm: only the JIT configs.
    w.github.clear_requests();
    let response = f.invoke(sqs_event(&[w.message(4, "web"), w.message(5, "web")])).await.unwrap();
    assert!(failures(&response).is_empty());
    let endpoints: Vec<String> = w.github.requests().iter().map(|r| r.endpoint.clone()).collect();
    assert_eq!(endpoints, vec!["POST /orgs/{org}/actions/runners/generate-jitconfig"; 2]);
    // Secrets stay out of the logs.
    let logs = f.logs().join("\n");
    for (value, _) in w.tokens().await.values() {
        assert!(!logs.contains(value.as_str()), "a JIT config leaked into the logs");
    }
    assert!(!logs.contains("BEGIN RSA PRIVATE KEY") && !logs.contains(&w.apps[0].key_base64()[..40]));
    assert!(!logs.contains("ghs_"), "an installation token leaked into the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusable_repo_runners_with_registration_tokens_on_demand() {
    let w = World::new(1, FakeGithubOptions::default()).await;
    let queued = w.github.add_job("acme", "web", &["self-hosted"]);
    let running = w.github.add_job("acme", "web", &["self-hosted"]);
    w.github.set_job_status(running, "in_progress");
    let other = w.github.add_job("acme", "api", &["self-hosted"]);
    let f = w
        .function(&[
            ("ENABLE_EPHEMERAL_RUNNERS", "false"),
            ("ENABLE_JIT_CONFIG", ""),
            ("ENABLE_JOB_QUEUED_CHECK", "true"),
            ("ENABLE_ORGANIZATION_RUNNERS", "false"),
            ("INSTANCE_TARGET_CAPACITY_TYPE", "on-demand"),
            ("RUNNER_LABELS", "self-hosted,linux,my label"),
        ])
        .await;
    let response = f
        .invoke(sqs_event(&[w.message(queued, "web"), w.message(running, "web"), w.message(other, "api")]))
        .await
        .unwrap();
    assert!(failures(&response).is_empty(), "{response}");
    let instances = w.instances().await;
    assert_eq!(instances.len(), 2, "the in-progress job needs no runner");
    assert!(instances.iter().all(|i| i.instance_lifecycle().is_none()), "on-demand instances");
    let owners: Vec<&str> = instances.iter().filter_map(|i| tag(i, "ghr:Owner")).collect();
    assert!(owners.contains(&"acme/web") && owners.contains(&"acme/api"));
    assert!(instances.iter().all(|i| tag(i, "ghr:Type") == Some("Repo")));
    let tokens = w.tokens().await;
    for (value, _) in tokens.values() {
        assert!(value.starts_with("--url https://github.com/acme/"), "{value}");
        assert!(value.contains("--labels 'self-hosted,linux,my label'"), "{value}");
        assert!(!value.contains("--ephemeral") && !value.contains("--runnergroup"));
        let token = value.split_whitespace().nth(3).unwrap();
        let name = format!("runner-{}", fastrand::u32(..));
        w.github.register_with_token(token, &name, &[], false).expect("the stored token registers a runner");
    }
    assert_eq!(w.github.count("POST", "registration-token"), 2, "one per repository");
    assert_eq!(w.github.count("GET", "/actions/jobs/{job_id}"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_apps_and_a_ghes_base_url() {
    let w = World::new(2, FakeGithubOptions::default()).await;
    let f = w.function(&[(common::config::test_overrides::GITHUB_API_URL, ""), ("GHES_URL", &w.github.url)]).await;
    for round in 0..4 {
        let response = f.invoke(sqs_event(&[w.message(100 + round, "web")])).await.unwrap();
        assert!(failures(&response).is_empty(), "{response}");
    }
    assert_eq!(w.instances().await.len(), 4);
    let requests = w.github.requests();
    assert!(requests.iter().all(|r| r.path.starts_with("/api/v3/") && r.status < 400), "{requests:?}");
    // Only the second App looks its installation up: the payload's id belongs to the first.
    let lookups = requests.iter().filter(|r| r.endpoint == "GET /orgs/{org}/installation").count();
    assert!(lookups <= 1, "{lookups}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghes_with_a_private_ca_needs_tls_verification_off() {
    let w = World::new(1, FakeGithubOptions { tls: true, ..Default::default() }).await;
    assert!(w.github.url.starts_with("https://"));
    let ghes = [(common::config::test_overrides::GITHUB_API_URL, ""), ("GHES_URL", w.github.url.as_str())];
    let strict = w.function(&ghes).await;
    let response = strict.invoke(sqs_event(&[w.message(1, "web")])).await.unwrap();
    assert_eq!(failures(&response), vec!["msg-0"], "an unknown CA is refused while verification is on");
    assert!(w.instances().await.is_empty());
    let mut relaxed_env = ghes.to_vec();
    relaxed_env.push(("NODE_TLS_REJECT_UNAUTHORIZED", "0"));
    let relaxed = w.function(&relaxed_env).await;
    let response = relaxed.invoke(sqs_event(&[w.message(1, "web")])).await.unwrap();
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(w.instances().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_faults_lose_no_job() {
    let w = World::new(1, FakeGithubOptions::default()).await;
    let f = w.function(&[]).await;

    // 5xx on one JIT config beyond the client's retries: that instance is terminated, its job
    // retried, the other runner is created. Two concurrent calls of 4 attempts each: 7 faults
    // exhaust exactly one of them (4 + 3), whatever the interleaving.
    w.github.inject(Fault::status("POST", "generate-jitconfig", 502).times(7));
    let before = w.instances().await.len();
    let response = f.invoke(sqs_event(&[w.message(1, "a"), w.message(2, "b")])).await.unwrap();
    assert_eq!(failures(&response).len(), 1, "{response}");
    assert_nothing_lost(&w, &response, 2, before).await;
    let terminated = w
        .aws
        .ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:ghr:environment").values(&w.stack.prefix).build())
        .filters(Filter::builder().name("instance-state-name").values("shutting-down").values("terminated").build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        terminated.reservations().iter().map(|r| r.instances().len()).sum::<usize>(),
        1,
        "the instance without a runner is terminated"
    );

    // A short secondary rate limit is waited out.
    w.github.inject(Fault::rate_limited("POST", "generate-jitconfig", 1).times(1));
    let before = w.instances().await.len();
    let response = f.invoke(sqs_event(&[w.message(4, "a")])).await.unwrap();
    assert!(failures(&response).is_empty());
    assert_nothing_lost(&w, &response, 1, before).await;

    // A long one is not: the jobs go back at once, nothing sleeps past the deadline.
    w.github.inject(Fault::rate_limited("POST", "generate-jitconfig", 120));
    let before = w.instances().await.len();
    let started = Instant::now();
    let response = f.invoke(sqs_event(&[w.message(5, "a"), w.message(6, "b")])).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(failures(&response).len(), 2);
    assert_nothing_lost(&w, &response, 2, before).await;
    w.github.clear_faults();

    // GitHub not answering: a fresh container cannot mint a token; every message goes back.
    let cold = w.function(&[]).await;
    w.github.inject(Fault::delay("POST", "access_tokens", Duration::from_secs(60)));
    let before = w.instances().await.len();
    let response = cold.invoke(sqs_event(&[w.message(7, "a"), w.message(8, "b")])).await.unwrap();
    assert_eq!(failures(&response), vec!["msg-0", "msg-1"]);
    assert_nothing_lost(&w, &response, 2, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_and_ssm_faults_lose_no_job() {
    let w = World::new(1, FakeGithubOptions::default()).await;
    let f = w.function(&[]).await;

    // Throttled CreateFleet: retried within the invocation.
    w.proxy.inject(AwsFault::ec2_throttled("ec2:CreateFleet").times(2));
    let response = f.invoke(sqs_event(&[w.message(1, "a"), w.message(2, "b")])).await.unwrap();
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(w.proxy.count("ec2:CreateFleet"), 3);
    assert_eq!(w.instances().await.len(), 2);

    // Spot capacity short: exactly the jobs without an instance are retried.
    w.proxy.inject(AwsFault::fleet_shortfall(1, "InsufficientInstanceCapacity").times(1));
    let before = w.instances().await.len();
    let response = f.invoke(sqs_event(&[w.message(3, "a"), w.message(4, "b"), w.message(5, "c")])).await.unwrap();
    assert_eq!(failures(&response), vec!["msg-1", "msg-2"]);
    assert_nothing_lost(&w, &response, 3, before).await;

    // SSM throttling on one token write beyond the SDK's 3 attempts: that instance goes, its job
    // is retried. Two concurrent writes of 3 attempts: 5 faults exhaust exactly one (3 + 2).
    w.proxy.inject(AwsFault::error("ssm:PutParameter", 400, "ThrottlingException").times(5));
    let before = w.instances().await.len();
    let response = f.invoke(sqs_event(&[w.message(6, "a"), w.message(7, "b")])).await.unwrap();
    assert_eq!(failures(&response).len(), 1, "{response}");
    assert_nothing_lost(&w, &response, 2, before).await;

    // A failed count (upstream #5105: DescribeInstances "Unavailable") retries instead of dropping.
    let limited = w.function(&[("RUNNERS_MAXIMUM_COUNT", "50")]).await;
    w.proxy.inject(AwsFault::error("ec2:DescribeInstances", 503, "Unavailable"));
    let response = limited.invoke(sqs_event(&[w.message(8, "a")])).await.unwrap();
    assert_eq!(failures(&response), vec!["msg-0"]);
    w.proxy.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_shortage_fails_over_to_on_demand_through_the_sdk() {
    let w = World::new(1, FakeGithubOptions::default()).await;
    let f = w.function(&[("ENABLE_ON_DEMAND_FAILOVER_FOR_ERRORS", r#"["InsufficientInstanceCapacity"]"#)]).await;
    w.proxy.inject(AwsFault::fleet_shortfall(0, "InsufficientInstanceCapacity").times(1));
    let response = f.invoke(sqs_event(&[w.message(1, "a"), w.message(2, "b")])).await.unwrap();
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(w.proxy.count("ec2:CreateFleet"), 2, "spot, then on-demand");
    let instances = w.instances().await;
    assert_eq!(instances.len(), 2);
    assert!(instances.iter().all(|i| i.instance_lifecycle().is_none()), "on-demand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_duplicate_messages_in_a_good_batch() {
    let w = World::new(1, FakeGithubOptions::default()).await;
    let f = w.function(&[]).await;
    let batch = [w.message(1, "a"), json!("{ not json"), w.message(1, "a"), json!(r#"{"id": 2}"#), w.message(3, "b")];
    let response = f.invoke(sqs_event(&batch)).await.unwrap();
    assert!(failures(&response).is_empty(), "malformed messages can never succeed: acknowledged");
    assert_eq!(w.instances().await.len(), 2, "one runner per distinct job");
    assert_eq!(f.metric("MalformedMessages").iter().map(|m| m.0).sum::<f64>(), 2.0);
    let skipped: Vec<String> =
        f.metric("JobsSkipped").iter().map(|m| m.1["Reason"].as_str().unwrap().to_string()).collect();
    assert_eq!(skipped, vec!["duplicate"]);

    // SQS redelivers a message of reusable runners: once the first runner took the job, the
    // queued check finds it in progress and no second runner starts.
    let reusable = w
        .function(&[
            ("ENABLE_EPHEMERAL_RUNNERS", "false"),
            ("ENABLE_JIT_CONFIG", ""),
            ("ENABLE_JOB_QUEUED_CHECK", "true"),
        ])
        .await;
    let job = w.github.add_job("acme", "a", &["self-hosted"]);
    let before = w.instances().await.len();
    let response = reusable.invoke(sqs_event(&[w.message(job, "a")])).await.unwrap();
    assert!(failures(&response).is_empty());
    w.github.set_job_status(job, "in_progress");
    let response = reusable.invoke(sqs_event(&[w.message(job, "a")])).await.unwrap();
    assert!(failures(&response).is_empty());
    assert_eq!(w.instances().await.len(), before + 1, "the redelivered job got no second runner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_never_end_above_the_maximum() {
    let w = World::new(1, FakeGithubOptions::default()).await;
    let maximum = 6;
    let mut functions = Vec::new();
    for _ in 0..4 {
        functions.push(w.function(&[("RUNNERS_MAXIMUM_COUNT", "6")]).await);
    }
    let batches: Vec<Value> =
        (0..4).map(|b| sqs_event(&(0..5).map(|i| w.message(b * 100 + i, "a")).collect::<Vec<_>>())).collect();
    let responses = futures::future::join_all(functions.iter().zip(&batches).map(|(f, e)| f.invoke(e.clone()))).await;
    let retried: usize = responses.iter().map(|r| failures(r.as_ref().unwrap()).len()).sum();
    let live = w.instances().await.len();
    assert!(live <= maximum, "{live} runners for a maximum of {maximum}");
    assert_eq!(live + retried, 20, "every job has a runner or is retried");
    assert_eq!(w.tokens().await.len(), live, "only admitted instances were registered");
}

/// Two invocations that both count the owner at zero, then launch (CreateFleet slowed so that
/// both count first).
/// Two invocations racing for the same maximum. Their timeout is generous: these tests are about
/// the count, and a loaded CI machine must not turn them into deadline tests (the surplus is
/// terminated only while the invocation has time).
async fn two_racing_invocations(w: &World, env: &[(&str, &str)], jobs_each: u64) -> (Vec<String>, Vec<String>) {
    let _quiet = crate::support::HEAVY.write().await;
    let a = w.function_with_timeout(env, Duration::from_secs(120)).await;
    let b = w.function_with_timeout(env, Duration::from_secs(120)).await;
    w.proxy.inject(AwsFault::delayed("ec2:CreateFleet", Duration::from_millis(1500)));
    let batch = |base: u64| sqs_event(&(0..jobs_each).map(|i| w.message(base + i, "a")).collect::<Vec<_>>());
    let (ra, rb) = futures::join!(a.invoke(batch(100)), b.invoke(batch(200)));
    let (fa, fb) = (failures(&ra.unwrap()), failures(&rb.unwrap()));
    if fa.len() + fb.len() > jobs_each as usize {
        // More jobs came back than one invocation's surplus: say why, for the assertion's reader.
        for line in a.logs().iter().chain(b.logs().iter()).filter(|l| l.contains("WARN") || l.contains("ERROR")) {
            eprintln!("{line}");
        }
    }
    (fa, fb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reusable_invocations_give_back_every_surplus_job() {
    // Issue 12 item 1: reusable runners, maximum 3, six jobs in two racing invocations. A job
    // whose instance was terminated as surplus goes back to SQS: it is never acknowledged as
    // "maximum reached" while the runner it was counted on is gone.
    let w = World::new(1, FakeGithubOptions::default()).await;
    let env = [("RUNNERS_MAXIMUM_COUNT", "3"), ("ENABLE_EPHEMERAL_RUNNERS", "false"), ("ENABLE_JIT_CONFIG", "false")];
    let (fa, fb) = two_racing_invocations(&w, &env, 3).await;
    let live = w.instances().await.len();
    assert!(live <= 3, "{live} runners for a maximum of 3");
    assert_eq!(live + fa.len() + fb.len(), 6, "every job has a runner or comes back (retried {fa:?} {fb:?})");
    assert_eq!(w.tokens().await.len(), live, "only admitted instances were registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recount_holds_the_maximum_while_ec2_lists_new_instances_late() {
    // Issue 12 item 2: DescribeInstances lists an instance only 2 s after its launch. Each
    // invocation's recount must count its own instances and see the other's: the maximum holds.
    let w = World::new(1, FakeGithubOptions::default()).await;
    w.proxy.inject(AwsFault::visibility_lag(Duration::from_secs(2)));
    let (fa, fb) = two_racing_invocations(&w, &[("RUNNERS_MAXIMUM_COUNT", "3")], 3).await;
    let live = w.instances().await.len();
    assert!(live <= 3, "{live} runners for a maximum of 3 (retried {fa:?} {fb:?})");
    assert_eq!(live + fa.len() + fb.len(), 6, "every job has a runner or comes back");
    assert_eq!(w.tokens().await.len(), live, "only admitted instances were registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_fleet_retried_after_its_timeout_launches_once() {
    // Issue 12 item 3: the first CreateFleet takes effect but answers after the SDK's 5 s
    // attempt timeout; the retry carries the same ClientToken, so EC2 answers the first fleet
    // again instead of launching a second one nobody tracks.
    let w = World::new(1, FakeGithubOptions::default()).await;
    let f = w.function(&[]).await;
    let before = w.instances().await.len();
    w.proxy.inject(AwsFault::slow_answer("ec2:CreateFleet", Duration::from_secs(7)).times(1));
    let response = f.invoke(sqs_event(&[w.message(301, "a"), w.message(302, "a")])).await.unwrap();
    assert!(failures(&response).is_empty(), "{response}");
    let calls = w.proxy.ec2_requests("ec2:CreateFleet");
    assert_eq!(calls.len(), 2, "the timed-out call was retried");
    let token = |call: &Vec<(String, String)>| call.iter().find(|(k, _)| k == "ClientToken").map(|(_, v)| v.clone());
    assert!(token(&calls[0]).is_some(), "CreateFleet carries a ClientToken");
    assert_eq!(token(&calls[0]), token(&calls[1]), "the retry is the same request");
    assert_eq!(w.instances().await.len() - before, 2, "one fleet, not two");
    assert_eq!(w.tokens().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_rate_limit_is_remembered_across_batches() {
    // Issue 12 item 4: generate-jitconfig answers 403 with `retry-after: 60`. A second batch a
    // few seconds later, in the same container, sends GitHub nothing and launches nothing: its
    // jobs go back at once. The limit is logged and counted.
    let w = World::new(1, FakeGithubOptions::default()).await;
    let f = w.function(&[]).await;
    w.github.inject(Fault::rate_limited("POST", "generate-jitconfig", 60));
    let first = f.invoke(sqs_event(&[w.message(401, "a"), w.message(402, "b")])).await.unwrap();
    assert_eq!(failures(&first).len(), 2, "{first}");
    let sent = w.github.count("POST", "generate-jitconfig");
    assert!(sent >= 1, "the first batch met the limit");
    let launches = w.proxy.count("ec2:CreateFleet");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let second = f.invoke(sqs_event(&[w.message(403, "a"), w.message(404, "b"), w.message(405, "c")])).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(failures(&second).len(), 3, "every job of the second batch goes back: {second}");
    assert_eq!(w.github.count("POST", "generate-jitconfig"), sent, "no request while the limit lasts");
    assert_eq!(w.proxy.count("ec2:CreateFleet"), launches, "no instance launched that could not register");
    let hits: f64 = f.metric("GitHubRateLimitHits").iter().map(|m| m.0).sum();
    assert!(hits >= 1.0, "the limit is counted");
    assert!(f.logs().iter().any(|l| l.contains("GitHub rate limit hit")), "and logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jit_config_whose_answer_timed_out_is_registered_again_not_torn_down() {
    // Issue 12 item 5: generate-jitconfig registers the runner but answers after the client's
    // 10 s timeout; the client's retry meets 409 (name taken). Scale-up removes the registration
    // whose config was lost and registers again: the instance keeps its job.
    let w = World::new(1, FakeGithubOptions::default()).await;
    let f = w.function(&[]).await;
    w.github.inject(Fault::slow_answer("POST", "generate-jitconfig", Duration::from_secs(11)).times(1));
    let before = w.instances().await.len();
    let response = f.invoke(sqs_event(&[w.message(501, "a")])).await.unwrap();
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(w.instances().await.len(), before + 1, "the instance is kept");
    let statuses: Vec<u16> =
        w.github.requests().iter().filter(|r| r.endpoint.ends_with("generate-jitconfig")).map(|r| r.status).collect();
    assert_eq!(statuses, vec![201, 409, 201], "created, name taken on the retry, created again");
    let tokens = w.tokens().await;
    assert_eq!(tokens.len(), 1);
    let (id, (jit, _)) = tokens.into_iter().next().unwrap();
    let decoded = FakeGithub::decode_jit_config(&jit).expect("a JIT config");
    let runners: Vec<_> = w.github.runners().into_iter().filter(|r| r.name.ends_with(&id)).collect();
    assert_eq!(runners.len(), 1, "one registration for the instance: {runners:?}");
    assert_eq!(decoded["runner_id"], runners[0].id, "the stored config is the live registration's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_parameter_write_retried_after_its_timeout_converges() {
    // Issue 12 item 5: the token parameter's PutParameter lands but answers after the SDK's 5 s
    // attempt timeout; the SDK's retry meets ParameterAlreadyExists. The parameter holds our
    // value, so the write is done: the runner is created, nothing torn down.
    let w = World::new(1, FakeGithubOptions::default()).await;
    let f = w.function(&[]).await;
    w.proxy.inject(
        AwsFault::slow_answer("ssm:PutParameter", Duration::from_secs(6))
            .when_body_contains(&w.stack.token_path())
            .times(1),
    );
    let before = w.instances().await.len();
    let response = f.invoke(sqs_event(&[w.message(502, "a")])).await.unwrap();
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(w.instances().await.len(), before + 1);
    let puts: Vec<u16> = w.proxy.calls().iter().filter(|(a, _)| a == "ssm:PutParameter").map(|(_, s)| *s).collect();
    assert!(puts.contains(&400), "the retry met ParameterAlreadyExists: {puts:?}");
    assert_eq!(w.tokens().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_aws_service_hands_the_jobs_back_before_the_lambda_times_out() {
    // Issue 12 item 6: SSM hangs on the token parameters. The SDK's own retries (3 attempts of
    // 5 s) would outlast a 15 s function: Lambda would time the invocation out, and the whole
    // batch come back with nothing cleaned up. Bounded by the deadline, the writes give up in
    // time: the function answers, both jobs go back, their instances and registrations are gone.
    let w = World::new(1, FakeGithubOptions::default()).await;
    let f = w.function_with_timeout(&[], Duration::from_secs(15)).await;
    w.proxy.inject(
        AwsFault::delayed("ssm:PutParameter", Duration::from_secs(60)).when_body_contains(&w.stack.token_path()),
    );
    let before = w.instances().await.len();
    let response = f.invoke(sqs_event(&[w.message(601, "a"), w.message(602, "b")])).await;
    let response = response.expect("the function answers before its timeout");
    assert_eq!(failures(&response), vec!["msg-0", "msg-1"], "{response}");
    assert_eq!(w.instances().await.len(), before, "the instances without a configuration are terminated");
    assert!(w.github.runners().is_empty(), "no registration left behind: {:?}", w.github.runners());
}
