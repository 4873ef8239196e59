//! The webhook through its built binary: real payloads, both Lambda payload formats, signatures,
//! routing to SQS queues in moto, errors, logs and metrics.

use std::time::Duration;

use base64::Engine;
use common::domain::webhook::QueuedJobMessage;
use common::github::signature::sign;
use serde_json::{Value, json};
use tests::aws::Aws;
use tests::fixtures;
use tests::lambda_emulator::{InvokeError, LambdaFunction};
use tests::moto::{Moto, unique};

use crate::support::{binary, env};

struct World {
    aws: Aws,
    function: LambdaFunction,
    linux_queue: String,
    gpu_queue: String,
    secret: String,
}

/// Deploys the webhook as Terraform would: queues, SSM parameters (matcher config split in two
/// chunks), and the function's environment.
async fn deploy(allow_list: &str, strategy: &str, break_linux_queue: bool) -> World {
    let moto = Moto::shared();
    let aws = Aws::new(moto).await;
    let prefix = unique("webhook");
    let linux_queue = aws.create_queue(&format!("{prefix}-linux"), false).await;
    let gpu_queue = aws.create_queue(&format!("{prefix}-gpu.fifo"), true).await;
    let linux_target = if break_linux_queue {
        format!("{}/{}/{prefix}-missing", moto.endpoint, tests::moto::ACCOUNT)
    } else {
        linux_queue.clone()
    };
    let matchers = json!([
        {"id": linux_target, "arn": format!("arn:aws:sqs:eu-west-1:123456789012:{prefix}-linux"), "fifo": false, "key": "linux",
         "matcherConfig": {"labelMatchers": [["self-hosted", "ubuntu-latest"]], "exactMatch": true, "priority": 1}},
        {"id": gpu_queue, "arn": format!("arn:aws:sqs:eu-west-1:123456789012:{prefix}-gpu.fifo"), "fifo": true, "key": "gpu",
         "matcherConfig": {"labelMatchers": [["gpu"]], "exactMatch": false, "priority": 2}}
    ])
    .to_string();
    let (a, b) = matchers.split_at(matchers.len() / 2);
    let root = format!("/github-action-runners/{prefix}");
    aws.put_parameter(&format!("{root}/webhook/runner-matcher-config-0"), a, false).await;
    aws.put_parameter(&format!("{root}/webhook/runner-matcher-config-1"), b, false).await;
    let secret = format!("secret-{prefix}");
    aws.put_parameter(&format!("{root}/app/github_app_webhook_secret"), &secret, true).await;
    let mut vars = env(&[
        ("PARAMETER_GITHUB_APP_WEBHOOK_SECRET", &format!("{root}/app/github_app_webhook_secret")),
        (
            "PARAMETER_RUNNER_MATCHER_CONFIG_PATH",
            &format!("{root}/webhook/runner-matcher-config-0:{root}/webhook/runner-matcher-config-1"),
        ),
        ("PARAMETER_RUNNER_MATCHER_VERSION", "1:1"),
        ("REPOSITORY_ALLOW_LIST", allow_list),
        ("QUEUE_SELECTION_STRATEGY", strategy),
        ("ENVIRONMENT", &prefix),
        ("LOG_LEVEL", "debug"),
        ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
    ]);
    vars.extend(moto.lambda_env());
    let function =
        LambdaFunction::spawn(&binary("webhook"), &format!("{prefix}-webhook"), &vars, Duration::from_secs(10)).await;
    World { aws, function, linux_queue, gpu_queue, secret }
}

fn rest_event(event: &str, body: &str, signature: Option<&str>) -> Value {
    let mut headers = json!({
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc",
        "X-GitHub-Delivery": format!("d-{:08x}", fastrand::u32(..)),
        "X-GitHub-Event": event,
        "X-GitHub-Hook-ID": "292430182",
    });
    if let Some(s) = signature {
        headers["X-Hub-Signature-256"] = s.into();
    }
    json!({
        "resource": "/webhook", "path": "/webhook", "httpMethod": "POST",
        "headers": headers, "multiValueHeaders": {},
        "requestContext": {"httpMethod": "POST", "stage": "$default"},
        "body": body, "isBase64Encoded": false
    })
}

fn function_url_event(event: &str, body: &str, signature: Option<&str>) -> Value {
    let mut headers = json!({
        "content-type": "application/json",
        "x-github-delivery": format!("d-{:08x}", fastrand::u32(..)),
        "x-github-event": event,
    });
    if let Some(s) = signature {
        headers["x-hub-signature-256"] = s.into();
    }
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "140.82.115.1"}},
        "body": base64::engine::general_purpose::STANDARD.encode(body), "isBase64Encoded": true
    })
}

async fn post(w: &World, event: Value) -> (u16, String) {
    let response = w.function.invoke(event).await.expect("the webhook answers");
    (response["statusCode"].as_u64().unwrap_or(0) as u16, response["body"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_payloads_in_both_formats_reach_the_right_queue() {
    let w = deploy("[]", "first", false).await;
    for (file, event) in fixtures::ALL {
        let body = fixtures::webhook(file);
        let signature = sign(w.secret.as_bytes(), body.as_bytes());
        let expected = match (*file, *event) {
            (fixtures::QUEUED, _) | (_, "workflow_job") => 201,
            _ => 202,
        };
        for make in [rest_event, function_url_event] {
            let (status, text) = post(&w, make(event, &body, Some(&signature))).await;
            assert_eq!(status, expected, "{file} ({event}): {text}");
        }
    }
    // Only the queued job was enqueued, once per payload format, with the upstream message.
    let messages = w.aws.drain(&w.linux_queue).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    for (body, group) in messages {
        assert_eq!(group, None);
        let message: QueuedJobMessage = serde_json::from_str(&body).unwrap();
        assert_eq!(
            message,
            QueuedJobMessage {
                id: 289782451,
                repository_name: "Hello-World".into(),
                repository_owner: "Octocoders".into(),
                event_type: "workflow_job".into(),
                installation_id: 3456996,
                queue_id: w.linux_queue.clone(),
                repo_owner_type: "Organization".into(),
                labels: vec!["ubuntu-latest".into()],
                retry_counter: None,
                capacity_type: None,
            }
        );
        let raw: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(raw.as_object().map(|o| o.len()), Some(8), "exactly the upstream fields: {raw}");
    }
    assert!(w.aws.drain(&w.gpu_queue).await.is_empty());
    // Metrics: 12 received, 2 accepted, the rest rejected by reason.
    let received: f64 = w.function.metric("WebhookReceived").iter().map(|m| m.0).sum();
    let accepted: f64 = w.function.metric("WebhookAccepted").iter().map(|m| m.0).sum();
    assert_eq!((received, accepted), (12.0, 2.0));
    let reasons: Vec<String> =
        w.function.metric("WebhookRejected").iter().map(|m| m.1["Reason"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(reasons.iter().filter(|r| *r == "not_queued").count(), 4);
    assert_eq!(reasons.iter().filter(|r| *r == "unsupported_event").count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_401_and_nothing_is_queued() {
    let w = deploy("[]", "first", false).await;
    let body = fixtures::webhook(fixtures::QUEUED);
    let good = sign(w.secret.as_bytes(), body.as_bytes());
    let mut tampered = body.clone().into_bytes();
    tampered[40] ^= 0x01;
    let tampered = String::from_utf8(tampered).unwrap();
    let cases: Vec<(String, Option<String>)> = vec![
        (body.clone(), Some(sign(b"not the secret", body.as_bytes()))),
        (body.clone(), None),
        (body.clone(), Some("sha256=".into())),
        (body.clone(), Some(good.replace("sha256=", "sha1="))),
        (tampered, Some(good.clone())),
    ];
    for (payload, signature) in &cases {
        for make in [rest_event, function_url_event] {
            let (status, text) = post(&w, make("workflow_job", payload, signature.as_deref())).await;
            assert_eq!(status, 401, "{text}");
        }
    }
    assert!(w.aws.drain(&w.linux_queue).await.is_empty());
    // The secret never reaches the logs; each delivery is one structured line.
    let logs = w.function.logs().join("\n");
    assert!(!logs.contains(&w.secret), "the webhook secret leaked into the logs");
    let deliveries: Vec<Value> =
        w.function.json_logs().into_iter().filter(|l| l["message"] == "webhook delivery").collect();
    assert_eq!(deliveries.len(), 10);
    for line in deliveries {
        assert_eq!(line["status"], 401);
        assert_eq!(line["decision"], "signature");
        assert_eq!(line["level"], "WARN");
        assert!(line["delivery_id"].as_str().is_some_and(|d| d.starts_with("d-")), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_fifo_allow_list_and_malformed_bodies() {
    let w = deploy(r#"["Codertocat/Hello-World","acme/web"]"#, "first", false).await;
    let sig = |b: &str| sign(w.secret.as_bytes(), b.as_bytes());

    // A GPU job goes to the FIFO queue, grouped by its job id.
    let gpu = fixtures::workflow_job("queued", 4242, &["gpu", "large"], "acme", "web", 77);
    assert_eq!(post(&w, rest_event("workflow_job", &gpu, Some(&sig(&gpu)))).await.0, 201);
    let fifo = w.aws.drain(&w.gpu_queue).await;
    assert_eq!(fifo.len(), 1);
    assert_eq!(fifo[0].1.as_deref(), Some("4242"));
    let message: QueuedJobMessage = serde_json::from_str(&fifo[0].0).unwrap();
    assert_eq!(
        (message.id, message.installation_id, message.labels.clone()),
        (4242, 77, vec!["gpu".to_string(), "large".to_string()])
    );

    // Labels no configuration accepts: 202, nothing queued.
    let windows = fixtures::workflow_job("queued", 4243, &["self-hosted", "windows"], "acme", "web", 77);
    let (status, text) = post(&w, rest_event("workflow_job", &windows, Some(&sig(&windows)))).await;
    assert_eq!(status, 202);
    assert!(text.contains("not accepted"), "{text}");

    // A repository outside the allow list: 403.
    let other = fixtures::workflow_job("queued", 4244, &["self-hosted", "ubuntu-latest"], "evil", "repo", 77);
    assert_eq!(post(&w, rest_event("workflow_job", &other, Some(&sig(&other)))).await.0, 403);

    // Malformed JSON under a valid signature: 400 with a reason.
    for bad in ["{\"action\": \"queued\"", r#"{"action":"queued","workflow_job":{"id":1,"labels":[]}}"#] {
        let (status, text) = post(&w, function_url_event("workflow_job", bad, Some(&sig(bad)))).await;
        assert_eq!(status, 400);
        assert!(text.starts_with("Malformed workflow_job payload"), "{text}");
    }
    // A Lambda event that is not an HTTP request at all.
    assert_eq!(post(&w, json!({"Records": []})).await.0, 400);
    assert!(w.aws.drain(&w.linux_queue).await.is_empty());
    assert!(w.aws.drain(&w.gpu_queue).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_failure_is_a_5xx_never_a_2xx() {
    let w = deploy("[]", "first", true).await;
    let body = fixtures::webhook(fixtures::QUEUED);
    let (status, text) =
        post(&w, rest_event("workflow_job", &body, Some(&sign(w.secret.as_bytes(), body.as_bytes())))).await;
    assert_eq!(status, 500, "{text}");
    assert!(w.function.wait_for_log(r#""level":"ERROR""#, Duration::from_secs(10)).await, "{:?}", w.function.logs());
    let reasons: Vec<Value> = w.function.metric("WebhookRejected").into_iter().map(|m| m.1["Reason"].clone()).collect();
    assert_eq!(reasons, vec![json!("queue_error")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_are_reported_all_at_once() {
    let moto = Moto::shared();
    let mut vars = env(&[("QUEUE_SELECTION_STRATEGY", "fastest"), ("REPOSITORY_ALLOW_LIST", "not json")]);
    vars.extend(moto.lambda_env());
    let function = LambdaFunction::spawn(&binary("webhook"), "broken-webhook", &vars, Duration::from_secs(5)).await;
    let status = function.exited(Duration::from_secs(10)).await;
    assert!(status.is_some(), "a function without its configuration must not start");
    let logs = function.logs().join("\n");
    for name in [
        "PARAMETER_GITHUB_APP_WEBHOOK_SECRET",
        "PARAMETER_RUNNER_MATCHER_CONFIG_PATH",
        "QUEUE_SELECTION_STRATEGY",
        "REPOSITORY_ALLOW_LIST",
    ] {
        assert!(logs.contains(name), "{name} not reported in: {logs}");
    }
    assert!(matches!(function.invoke(json!({})).await, Err(InvokeError::Exited(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategy_all_queues_to_every_equal_configuration() {
    let moto = Moto::shared();
    let aws = Aws::new(moto).await;
    let prefix = unique("webhook-all");
    let q1 = aws.create_queue(&format!("{prefix}-a"), false).await;
    let q2 = aws.create_queue(&format!("{prefix}-b"), false).await;
    let loose = aws.create_queue(&format!("{prefix}-loose"), false).await;
    let config = json!([
        {"id": q1, "arn": "a", "matcherConfig": {"labelMatchers": [["ubuntu-latest"]], "exactMatch": true}},
        {"id": loose, "arn": "c", "matcherConfig": {"labelMatchers": [["ubuntu-latest"]], "exactMatch": false}},
        {"id": q2, "arn": "b", "matcherConfig": {"labelMatchers": [["ubuntu-latest"]], "exactMatch": true}}
    ]);
    aws.put_parameter(&format!("/{prefix}/matcher"), &config.to_string(), false).await;
    aws.put_parameter(&format!("/{prefix}/secret"), "s", true).await;
    let mut vars = env(&[
        ("PARAMETER_GITHUB_APP_WEBHOOK_SECRET", &format!("/{prefix}/secret")),
        ("PARAMETER_RUNNER_MATCHER_CONFIG_PATH", &format!("/{prefix}/matcher")),
        ("QUEUE_SELECTION_STRATEGY", "all"),
    ]);
    vars.extend(moto.lambda_env());
    let function = LambdaFunction::spawn(&binary("webhook"), &prefix, &vars, Duration::from_secs(10)).await;
    let body = fixtures::webhook(fixtures::QUEUED);
    let response =
        function.invoke(rest_event("workflow_job", &body, Some(&sign(b"s", body.as_bytes())))).await.unwrap();
    assert_eq!(response["statusCode"], 201);
    assert_eq!(aws.drain(&q1).await.len(), 1);
    assert_eq!(aws.drain(&q2).await.len(), 1);
    assert!(aws.drain(&loose).await.is_empty(), "the loose match ranks below the exact ones");
}
