//! EventBridge mode through the built binaries: a signed delivery → the webhook → moto's
//! `PutEvents` on the runners' bus → the rule's target (an SQS queue here, to read the event
//! back as EventBridge delivers it) → the dispatcher under the runtime emulator → the runner
//! queue(s).

use std::time::Duration;

use aws_sdk_eventbridge::types::Target;
use common::domain::webhook::QueuedJobMessage;
use common::github::signature::sign;
use serde_json::{Value, json};
use tests::aws::Aws;
use tests::fixtures;
use tests::lambda_emulator::{InvokeError, LambdaFunction};
use tests::moto::{ACCOUNT, Moto, REGION, unique};

use crate::support::{binary, env};

/// The second region of the cross-region dispatch.
const OTHER_REGION: &str = "us-east-2";

struct World {
    aws: Aws,
    prefix: String,
    secret: String,
    webhook: LambdaFunction,
    /// Where the bus rule delivers `workflow_job` + `queued` events (stands in for the
    /// dispatcher's Lambda target, so the test can hand the event to the dispatcher).
    rule_target: String,
    linux_queue: String,
    gpu_queue: String,
    /// A queue of the same name in `OTHER_REGION`, by its regional URL.
    remote_queue: String,
    root: String,
}

async fn events_client(region: &str) -> aws_sdk_eventbridge::Client {
    let config = Moto::shared().sdk_config().await;
    let config = aws_sdk_eventbridge::config::Builder::from(&config)
        .region(aws_sdk_eventbridge::config::Region::new(region.to_string()))
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

/// Deploys what the Terraform EventBridge mode creates: the bus `<prefix>-runners` with the
/// rule `<prefix>-workflow_job`, the matcher config, the webhook in EventBridge mode.
async fn deploy(accept_events: &str, bus_exists: bool) -> World {
    let moto = Moto::shared();
    let aws = Aws::new(moto).await;
    let prefix = unique("eb");
    let events = events_client(REGION).await;
    let bus = format!("{prefix}-runners");
    if bus_exists {
        events.create_event_bus().name(&bus).send().await.expect("create the bus");
    }
    let rule_target = aws.create_queue(&format!("{prefix}-rule-target"), false).await;
    if bus_exists {
        events
            .put_rule()
            .name(format!("{prefix}-workflow_job"))
            .event_bus_name(&bus)
            .event_pattern(json!({"detail-type": ["workflow_job"], "detail": {"action": ["queued"]}}).to_string())
            .send()
            .await
            .expect("put the rule");
        events
            .put_targets()
            .rule(format!("{prefix}-workflow_job"))
            .event_bus_name(&bus)
            .targets(
                Target::builder()
                    .id("dispatcher")
                    .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{prefix}-rule-target"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("put the target");
    }
    let linux_queue = aws.create_queue(&format!("{prefix}-linux"), false).await;
    let gpu_queue = aws.create_queue(&format!("{prefix}-gpu.fifo"), true).await;
    // The same name in another region: the dispatcher must send there, in that region.
    let sdk = moto.sdk_config().await;
    let remote = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk).region(aws_sdk_sqs::config::Region::new(OTHER_REGION)).build(),
    );
    remote.create_queue().queue_name(format!("{prefix}-remote")).send().await.expect("create the remote queue");
    let remote_queue = format!("https://sqs.{OTHER_REGION}.amazonaws.com/{ACCOUNT}/{prefix}-remote");
    let root = format!("/github-action-runners/{prefix}");
    let secret = format!("secret-{prefix}");
    aws.put_parameter(&format!("{root}/app/github_app_webhook_secret"), &secret, true).await;
    let mut vars = env(&[
        ("PARAMETER_GITHUB_APP_WEBHOOK_SECRET", &format!("{root}/app/github_app_webhook_secret")),
        // Terraform sets it in both modes; EventBridge mode does not read it (it does not exist).
        ("PARAMETER_RUNNER_MATCHER_CONFIG_PATH", &format!("{root}/webhook/runner-matcher-config")),
        ("EVENT_BUS_NAME", &bus),
        ("ACCEPT_EVENTS", accept_events),
        ("ENVIRONMENT", &prefix),
        ("LOG_LEVEL", "debug"),
        ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
    ]);
    vars.extend(moto.lambda_env());
    let webhook =
        LambdaFunction::spawn(&binary("webhook"), &format!("{prefix}-webhook"), &vars, Duration::from_secs(10)).await;
    World { aws, prefix, secret, webhook, rule_target, linux_queue, gpu_queue, remote_queue, root }
}

impl World {
    /// The dispatcher, with a matcher config whose `labels` configuration goes to `targets`.
    async fn dispatcher(&self, strategy: &str, allow_list: &str, targets: &[&str]) -> LambdaFunction {
        let matchers: Vec<Value> = targets
            .iter()
            .enumerate()
            .map(|(i, url)| {
                json!({"id": url, "arn": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:q{i}"), "fifo": url.ends_with(".fifo"),
                       "matcherConfig": {"labelMatchers": [["self-hosted", "ubuntu-latest"]], "exactMatch": true, "priority": i + 1}})
            })
            .collect();
        let matchers = Value::from(matchers).to_string();
        let (a, b) = matchers.split_at(matchers.len() / 2);
        let name = unique("m");
        self.aws.put_parameter(&format!("{}/{name}-0", self.root), a, false).await;
        self.aws.put_parameter(&format!("{}/{name}-1", self.root), b, false).await;
        let mut vars = env(&[
            ("PARAMETER_RUNNER_MATCHER_CONFIG_PATH", &format!("{0}/{name}-0:{0}/{name}-1", self.root)),
            ("REPOSITORY_ALLOW_LIST", allow_list),
            ("QUEUE_SELECTION_STRATEGY", strategy),
            ("ENVIRONMENT", &self.prefix),
            ("LOG_LEVEL", "debug"),
            ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
        ]);
        vars.extend(Moto::shared().lambda_env());
        LambdaFunction::spawn(
            &binary("dispatcher"),
            &format!("{}-dispatcher-{name}", self.prefix),
            &vars,
            Duration::from_secs(10),
        )
        .await
    }

    async fn deliver(&self, event: &str, body: &str) -> (u16, String) {
        let signature = sign(self.secret.as_bytes(), body.as_bytes());
        let request = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
            "headers": {"content-type": "application/json", "x-github-event": event,
                        "x-github-delivery": format!("d-{:08x}", fastrand::u32(..)), "x-hub-signature-256": signature},
            "requestContext": {"http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "140.82.115.1"}},
            "body": body, "isBase64Encoded": false
        });
        let response = self.webhook.invoke(request).await.expect("the webhook answers");
        (response["statusCode"].as_u64().unwrap_or(0) as u16, response["body"].as_str().unwrap_or("").to_string())
    }

    /// The events the bus rule delivered, as EventBridge envelopes.
    async fn routed_events(&self) -> Vec<Value> {
        self.aws
            .drain(&self.rule_target)
            .await
            .into_iter()
            .map(|(body, _)| serde_json::from_str(&body).unwrap())
            .collect()
    }

    async fn jobs_in(&self, queue_url: &str) -> Vec<QueuedJobMessage> {
        self.aws.drain(queue_url).await.into_iter().map(|(body, _)| serde_json::from_str(&body).unwrap()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_travels_from_the_webhook_over_the_bus_to_its_queue() {
    let w = deploy("null", true).await;
    // Every real payload is published (ACCEPT_EVENTS null: all); the rule routes only the queued job.
    for (file, event) in fixtures::ALL {
        let (status, text) = w.deliver(event, &fixtures::webhook(file)).await;
        assert_eq!((status, text.as_str()), (201, "Event sent successfully to the EventBridge."), "{file}");
    }
    let routed = w.routed_events().await;
    assert_eq!(routed.len(), 1, "{routed:?}");
    let event = &routed[0];
    assert_eq!((event["detail-type"].as_str(), event["source"].as_str()), (Some("workflow_job"), Some("github")));
    let queued: Value = serde_json::from_str(&fixtures::webhook(fixtures::QUEUED)).unwrap();
    assert_eq!(event["detail"], queued, "the raw delivery is the detail");

    let dispatcher = w.dispatcher("first", "[]", &[&w.linux_queue, &w.gpu_queue]).await;
    let answer = dispatcher.invoke(event.clone()).await.expect("dispatched");
    assert_eq!(answer["decision"], "queued", "{answer}");
    // Its info lines reach the log (every function crate is in the log filter).
    assert!(dispatcher.wait_for_log("job dispatched", Duration::from_secs(10)).await, "{:?}", dispatcher.logs());
    let jobs = w.jobs_in(&w.linux_queue).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].id, jobs[0].queue_id.as_str()), (289782451, w.linux_queue.as_str()));
    assert!(w.jobs_in(&w.gpu_queue).await.is_empty(), "first: one queue");

    // `all` sends to both; `random` to one of them.
    let all = w.dispatcher("all", "[]", &[&w.linux_queue, &w.gpu_queue]).await;
    all.invoke(event.clone()).await.expect("dispatched");
    assert_eq!((w.jobs_in(&w.linux_queue).await.len(), w.jobs_in(&w.gpu_queue).await.len()), (1, 1));
    // Two standard queues here: a FIFO queue deduplicates the same job sent twice (its
    // deduplication id is the job id), which is what it is for.
    let other_queue = w.aws.create_queue(&format!("{}-other", w.prefix), false).await;
    let random = w.dispatcher("random", "[]", &[&w.linux_queue, &other_queue]).await;
    for _ in 0..6 {
        random.invoke(event.clone()).await.expect("dispatched");
    }
    assert_eq!(w.jobs_in(&w.linux_queue).await.len() + w.jobs_in(&other_queue).await.len(), 6);

    // The allow list: a job of another repository is done, not queued.
    let strict = w.dispatcher("first", r#"["someone/else"]"#, &[&w.linux_queue]).await;
    let answer = strict.invoke(event.clone()).await.expect("handled");
    assert_eq!(answer["decision"], "unauthorized_repository");
    assert!(w.jobs_in(&w.linux_queue).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_another_region_is_sent_to_in_its_region_and_failures_are_retried() {
    let w = deploy("[\"workflow_job\"]", true).await;
    assert_eq!(w.deliver("workflow_job", &fixtures::webhook(fixtures::QUEUED)).await.0, 201);
    let event = w.routed_events().await.pop().expect("routed");
    let dispatcher = w.dispatcher("first", "[]", &[&w.remote_queue]).await;
    dispatcher.invoke(event.clone()).await.expect("dispatched");
    let sdk = Moto::shared().sdk_config().await;
    let remote = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk).region(aws_sdk_sqs::config::Region::new(OTHER_REGION)).build(),
    );
    let url = remote.get_queue_url().queue_name(format!("{}-remote", w.prefix)).send().await.unwrap();
    let received = remote.receive_message().queue_url(url.queue_url().unwrap()).send().await.unwrap();
    assert_eq!(received.messages().len(), 1, "sent in {OTHER_REGION}");

    // A queue that does not exist: the invocation fails, so EventBridge retries the event.
    let missing = format!("{}/{ACCOUNT}/{}-missing", Moto::shared().endpoint, w.prefix);
    let broken = w.dispatcher("first", "[]", &[&missing]).await;
    match broken.invoke(event).await {
        Err(InvokeError::Function { message, .. }) => assert!(message.contains("sqs:SendMessage"), "{message}"),
        other => panic!("the invocation must fail: {other:?}"),
    }
    // ACCEPT_EVENTS: other types are answered 202 and not published.
    let (status, _) = w.deliver("workflow_run", &fixtures::webhook(fixtures::WORKFLOW_RUN)).await;
    assert_eq!(status, 202);
    assert!(w.routed_events().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_deliveries_get_a_400_and_a_failed_publish_a_5xx() {
    let w = deploy("null", true).await;
    let mut big: Value = serde_json::from_str(&fixtures::webhook(fixtures::QUEUED)).unwrap();
    big["workflow_job"]["steps"] = json!(["x".repeat(256 * 1024)]);
    let (status, text) = w.deliver("workflow_job", &big.to_string()).await;
    assert_eq!((status, text.as_str()), (400, "Body size exceeded 256KB"));
    assert!(w.routed_events().await.is_empty());

    // No bus: PutEvents fails; GitHub gets a 5xx and can redeliver.
    let w = deploy("null", false).await;
    let (status, text) = w.deliver("workflow_job", &fixtures::webhook(fixtures::QUEUED)).await;
    assert_eq!(status, 500, "{text}");
}
