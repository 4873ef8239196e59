//! Dynamic labels end to end: real `workflow_job` payloads with `ghr-` labels through the built
//! webhook (policy enforced: refused jobs answered 202 with the reason, never queued), then the
//! queued messages through the built scale-up against moto (behind the fault proxy) and the fake
//! GitHub: one CreateFleet per label set with its overrides, runners registered with their
//! job's labels, and jobs whose labels can never launch acknowledged while the rest launch.

use std::collections::BTreeMap;
use std::time::Duration;

use common::github::signature::sign;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::aws_proxy::{AwsFault, AwsProxy};
use tests::event_source::SqsEventSource;
use tests::fake_github::FakeGithub;
use tests::fixtures;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

use crate::support::{binary, env, scale_up_behind_proxy};

const POLICY: &str = r#"{"blocked_keys": ["image-id"],
  "restricted_keys": {"instance-type": {"allowed": ["c5.*", "m5.*"], "denied": ["*.metal"]},
                      "ebs-volume-size": {"max": 200}}}"#;

fn rest_event(body: &str, secret: &str) -> Value {
    json!({
        "resource": "/webhook", "path": "/webhook", "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", "X-GitHub-Event": "workflow_job",
                    "X-GitHub-Delivery": format!("d-{:08x}", fastrand::u32(..)),
                    "X-Hub-Signature-256": sign(secret.as_bytes(), body.as_bytes())},
        "multiValueHeaders": {}, "requestContext": {"httpMethod": "POST", "stage": "$default"},
        "body": body, "isBase64Encoded": false
    })
}

fn tag<'a>(instance: &'a aws_sdk_ec2::types::Instance, key: &str) -> Option<&'a str> {
    instance.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_refuses_at_the_webhook_and_each_label_set_gets_its_fleet() {
    let moto = Moto::shared();
    moto.warm_ec2().await;
    let aws = Aws::new(moto).await;
    let github = FakeGithub::start().await;
    let app = TestApp::new(1, 1000);
    github.add_app(app.id, app.public_pem.as_bytes());
    let installation = github.add_installation(app.id, "acme", "Organization");
    let stack = RunnerStack::create(&aws, &unique("dyn"), std::slice::from_ref(&app)).await;
    let proxy = AwsProxy::start(&moto.endpoint).await;

    // The webhook as Terraform deploys it, with one runner configuration taking dynamic labels.
    let root = format!("/github-action-runners/{}", stack.prefix);
    let matchers = json!([{
        "id": stack.queue_url, "arn": format!("arn:aws:sqs:eu-west-1:123456789012:{}-queued-builds", stack.prefix),
        "fifo": false, "key": "linux", "computeProvider": "ec2",
        "matcherConfig": {"labelMatchers": [["self-hosted", "linux"]], "exactMatch": true, "priority": 1,
                          "enableDynamicLabels": true, "awsDynamicLabelsPolicy": serde_json::from_str::<Value>(POLICY).unwrap()}
    }]);
    aws.put_parameter(&format!("{root}/webhook/runner-matcher-config"), &matchers.to_string(), false).await;
    let secret = format!("secret-{}", stack.prefix);
    aws.put_parameter(&format!("{root}/app/webhook_secret"), &secret, true).await;
    let mut vars = env(&[
        ("PARAMETER_GITHUB_APP_WEBHOOK_SECRET", &format!("{root}/app/webhook_secret")),
        ("PARAMETER_RUNNER_MATCHER_CONFIG_PATH", &format!("{root}/webhook/runner-matcher-config")),
        ("PARAMETER_RUNNER_MATCHER_VERSION", "1"),
        ("REPOSITORY_ALLOW_LIST", "[]"),
        ("QUEUE_SELECTION_STRATEGY", "first"),
        ("ENVIRONMENT", &stack.prefix),
        ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
    ]);
    vars.extend(moto.lambda_env());
    let webhook =
        LambdaFunction::spawn(&binary("webhook"), &format!("{}-webhook", stack.prefix), &vars, Duration::from_secs(10))
            .await;

    let big = ["ghr-ec2-instance-type:c5.xlarge", "ghr-ec2-ebs-volume-size:120"];
    let jobs: Vec<(u64, Vec<&str>, u16, &str)> = vec![
        (11, vec![big[0], big[1]], 201, ""),
        (12, vec![big[1], big[0]], 201, ""),
        (13, vec!["ghr-ec2-instance-type:m5.2xlarge", "ghr-run:42"], 201, ""),
        (14, vec![], 201, ""),
        (15, vec!["ghr-ec2-instance-type:p4d.24xlarge"], 202, "value 'p4d.24xlarge' not in allowed list"),
        (16, vec!["ghr-ec2-image-id:ami-12345678"], 202, "key 'image-id' is in blocked_keys"),
        (17, vec!["ghr-ec2-ebs-volume-size:500"], 202, "exceeds max"),
        // Within the policy, but never launchable: malformed, and an instance type EC2 refuses.
        (18, vec!["ghr-ec2-ebs-iops:fast"], 201, ""),
        (19, vec!["ghr-ec2-instance-type:m5.gigantic"], 201, ""),
    ];
    for (id, extra, status, reason) in &jobs {
        let mut labels = vec!["self-hosted", "linux"];
        labels.extend(extra);
        let body = fixtures::workflow_job("queued", *id, &labels, "acme", "web", installation);
        let response = webhook.invoke(rest_event(&body, &secret)).await.unwrap();
        let text = response["body"].as_str().unwrap_or_default();
        assert_eq!(response["statusCode"], *status, "job {id}: {text}");
        assert!(text.contains(reason), "job {id}: {text}");
    }

    // Scale-up takes the queue's batch.
    let scale_up = scale_up_behind_proxy(&stack, &github.url, &proxy.url, &[], Duration::from_secs(30)).await;
    proxy.inject(AwsFault::error("ec2:CreateFleet", 400, "InvalidParameterValue").when_body_contains("m5.gigantic"));
    let source = SqsEventSource::new(aws.sqs.clone(), &stack.queue_url, 10);
    let poll = source.poll_once(&scale_up).await.expect("the accepted jobs are queued");
    assert_eq!((poll.received, poll.deleted, poll.retried), (6, 6, 0), "every job has its fate, none comes back");
    assert!(source.receive().await.is_none(), "nothing left in the queue");

    // One fleet per label set: {c5.xlarge, 120 GiB} ×2, {m5.2xlarge, ghr-run}, plain, m5.gigantic.
    let fleets = proxy.ec2_requests("ec2:CreateFleet");
    assert_eq!(fleets.len(), 4, "{fleets:?}");
    let fleets: Vec<BTreeMap<String, String>> = fleets.into_iter().map(|f| f.into_iter().collect()).collect();
    let get = |f: &BTreeMap<String, String>, k: &str| f.get(k).cloned().unwrap_or_default();
    let with_type = |t: &str| {
        fleets
            .iter()
            .find(|f| get(f, "LaunchTemplateConfigs.1.Overrides.1.InstanceType") == t)
            .unwrap_or_else(|| panic!("no fleet for {t}: {fleets:?}"))
    };
    let shared = with_type("c5.xlarge");
    assert_eq!(get(shared, "TargetCapacitySpecification.TotalTargetCapacity"), "2", "two jobs, one set, one fleet");
    for n in 1..=2 {
        let o = |f: &str| get(shared, &format!("LaunchTemplateConfigs.1.Overrides.{n}.{f}"));
        assert_eq!(o("InstanceType"), "c5.xlarge", "the label replaces the configured types");
        assert_eq!(o("SubnetId"), stack.subnets[n - 1]);
        assert_eq!(o("BlockDeviceMapping.1.DeviceName"), "/dev/xvda", "the template's device");
        assert_eq!(o("BlockDeviceMapping.1.Ebs.VolumeSize"), "120");
        assert_eq!(o("BlockDeviceMapping.1.Ebs.Encrypted"), "true");
    }
    assert!(!shared.contains_key("LaunchTemplateConfigs.1.Overrides.3.SubnetId"), "one type × two subnets");
    assert_eq!(get(with_type("m5.2xlarge"), "TargetCapacitySpecification.TotalTargetCapacity"), "1");
    let plain = with_type("m5.large");
    assert_eq!(get(plain, "LaunchTemplateConfigs.1.Overrides.2.InstanceType"), "c5.large", "the configured types");
    assert!(!plain.keys().any(|k| k.contains("BlockDeviceMapping")));

    // The runners: the asked instance types, their labels on the instance and in the JIT config.
    let out = aws
        .ec2
        .describe_instances()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:ghr:environment").values(&stack.prefix).build())
        .send()
        .await
        .unwrap();
    let instances: Vec<_> = out.reservations().iter().flat_map(|r| r.instances().to_vec()).collect();
    assert_eq!(instances.len(), 4);
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in &instances {
        let labels = tag(i, "ghr:runner_labels").unwrap().to_string();
        by_type.entry(i.instance_type().unwrap().as_str().to_string()).or_default().push(labels);
        let name = format!("{}/{}", stack.token_path(), i.instance_id().unwrap());
        let token = aws.ssm.get_parameter().name(name).with_decryption(true).send().await.unwrap();
        let jit = FakeGithub::decode_jit_config(token.parameter().unwrap().value().unwrap()).expect("a JIT config");
        let registered: Vec<String> =
            jit["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
        assert_eq!(registered.join(","), tag(i, "ghr:runner_labels").unwrap(), "registered as tagged");
    }
    assert_eq!(
        by_type["c5.xlarge"],
        vec!["linux,self-hosted,x64,ghr-ec2-ebs-volume-size:120,ghr-ec2-instance-type:c5.xlarge"; 2]
    );
    assert_eq!(by_type["m5.2xlarge"], vec!["linux,self-hosted,x64,ghr-run:42,ghr-ec2-instance-type:m5.2xlarge"]);
    assert_eq!(by_type["m5.large"], vec!["linux,self-hosted,x64"]);

    // The two hopeless jobs: acknowledged with the reason, logged and counted.
    let logs = scale_up.logs().join("\n");
    assert_eq!(logs.matches("\"reason\":\"invalid_dynamic_labels\"").count(), 2, "{logs}");
    assert!(logs.contains("ghr-ec2-ebs-iops: `fast` is not a whole number"), "{logs}");
    assert!(logs.contains("EC2 refuses the job's dynamic labels"), "{logs}");
    assert!(logs.contains("\"JobsSkipped\"") && logs.contains("invalid_dynamic_labels"), "{logs}");

    // Calls for the batch (6 jobs, 4 label sets, 4 runners), for the note.
    let github_calls = github.requests().len();
    let aws_calls = proxy.counts();
    eprintln!("dynamic-label batch: GitHub {github_calls} calls, AWS {aws_calls:?}");
    assert_eq!(github_calls, 6, "cold: one installation token, one runner-group lookup, a JIT config per runner");
    assert_eq!(aws_calls.get("ec2:DescribeLaunchTemplateVersions"), Some(&1), "only the EBS set reads the template");
}
