//! Handler tests with in-memory ports and the real GitHub payloads.

use std::sync::Arc;
use std::time::Duration;

use common::deadline::Deadline;
use common::domain::webhook::{QueueSelectionStrategy, QueuedJobMessage};
use common::error::{AwsError, AwsErrorKind};
use common::github::signature::sign;
use common::telemetry::{MemorySink, Metrics, TelemetryConfig};
use common::testing::{MemoryEventBus, MemoryJobQueue, MemoryParameterStore};

use super::*;

const SECRET: &str = "It's a Secret to Everybody";
const QUEUED: &str = include_str!("../../../tests/fixtures/github-webhooks/workflow_job.queued.json");
const IN_PROGRESS: &str = include_str!("../../../tests/fixtures/github-webhooks/workflow_job.in_progress.json");
const COMPLETED: &str =
    include_str!("../../../tests/fixtures/github-webhooks/workflow_job.completed.success.with-organization.json");
const CHECK_RUN: &str = include_str!("../../../tests/fixtures/github-webhooks/check_run.created.json");
const WORKFLOW_RUN: &str = include_str!("../../../tests/fixtures/github-webhooks/workflow_run.requested.json");
const PING: &str = include_str!("../../../tests/fixtures/github-webhooks/ping.json");

const MATCHERS: &str = r#"[
 {"id":"https://sqs.eu-west-1.amazonaws.com/123/linux","arn":"arn:aws:sqs:eu-west-1:123:linux","matcherConfig":{"labelMatchers":[["ubuntu-latest","self-hosted"]],"exactMatch":true}},
 {"id":"https://sqs.eu-west-1.amazonaws.com/123/loose.fifo","arn":"arn:aws:sqs:eu-west-1:123:loose.fifo","fifo":true,"matcherConfig":{"labelMatchers":[["gpu"]],"exactMatch":false}}
]"#;

struct World {
    webhook: Webhook,
    queue: Arc<MemoryJobQueue>,
    metrics: Arc<MemorySink>,
}

async fn world_with(allow_list: &[&str], strategy: QueueSelectionStrategy) -> World {
    let store = MemoryParameterStore::with(&[
        ("/app/webhook_secret", SECRET),
        ("/webhook/m-0", &MATCHERS[..40]),
        ("/webhook/m-1", &MATCHERS[40..]),
    ]);
    let config = Config {
        webhook_secret_parameter: "/app/webhook_secret".into(),
        matcher_config_parameters: vec!["/webhook/m-0".into(), "/webhook/m-1".into()],
        matcher_config_version: None,
        repository_allow_list: allow_list.iter().map(|s| s.to_string()).collect(),
        queue_selection_strategy: strategy,
        event_bus: None,
        accept_events: Vec::new(),
        telemetry: TelemetryConfig {
            environment: "test".into(),
            namespace: "GitHub Runners".into(),
            log_level: "info".into(),
        },
    };
    let settings = Settings::load(&config, &store).await.unwrap();
    assert_eq!(store.calls.load(std::sync::atomic::Ordering::SeqCst), 1, "one GetParameters call at cold start");
    let queue = Arc::new(MemoryJobQueue::default());
    let metrics = Arc::new(MemorySink::default());
    let webhook = Webhook::new(settings, queue.clone(), Metrics::new(&config.telemetry, metrics.clone()));
    World { webhook, queue, metrics }
}

async fn world() -> World {
    world_with(&[], QueueSelectionStrategy::First).await
}

fn request(event: &str, body: &str, signature: Option<String>) -> HttpRequest {
    let mut headers = std::collections::HashMap::new();
    headers.insert("x-github-event".to_string(), event.to_string());
    headers.insert("x-github-delivery".to_string(), "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string());
    if let Some(s) = signature {
        headers.insert("x-hub-signature-256".to_string(), s);
    }
    HttpRequest { method: Some("POST".into()), headers, body: body.as_bytes().to_vec() }
}

fn signed(event: &str, body: &str) -> HttpRequest {
    request(event, body, Some(sign(SECRET.as_bytes(), body.as_bytes())))
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(8))
}

fn rejections(w: &World) -> Vec<String> {
    rejection_reasons(&w.metrics)
}

/// The `Reason` of every `WebhookRejected` EMF line, in order.
fn rejection_reasons(metrics: &MemorySink) -> Vec<String> {
    metrics
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("WebhookRejected").is_some())
        .map(|v| v["Reason"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn queued_job_is_enqueued_with_the_upstream_message() {
    let w = world().await;
    let response = w.webhook.handle(&signed("workflow_job", QUEUED), deadline()).await;
    assert_eq!(response.status, 201, "{}", response.body);
    let sent = w.queue.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].queue_url, "https://sqs.eu-west-1.amazonaws.com/123/linux");
    assert_eq!(sent[0].fifo_group, None);
    let message: QueuedJobMessage = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(
        message,
        QueuedJobMessage {
            id: 289782451,
            repository_name: "Hello-World".into(),
            repository_owner: "Octocoders".into(),
            event_type: "workflow_job".into(),
            installation_id: 3456996,
            queue_id: "https://sqs.eu-west-1.amazonaws.com/123/linux".into(),
            repo_owner_type: "Organization".into(),
            labels: vec!["ubuntu-latest".into()],
            retry_counter: None,
            capacity_type: None,
        }
    );
    assert!(rejections(&w).is_empty());
}

#[tokio::test]
async fn signature_rules() {
    let w = world().await;
    let wrong = request("workflow_job", QUEUED, Some(sign(b"wrong secret", QUEUED.as_bytes())));
    let missing = request("workflow_job", QUEUED, None);
    let garbage = request("workflow_job", QUEUED, Some("sha256=nothex".into()));
    let mut tampered = signed("workflow_job", QUEUED);
    tampered.body[20] ^= 1;
    for req in [wrong, missing, garbage, tampered] {
        let response = w.webhook.handle(&req, deadline()).await;
        assert_eq!(response.status, 401, "{}", response.body);
        assert!(!response.body.contains(SECRET));
    }
    assert!(w.queue.messages().is_empty());
    assert_eq!(rejections(&w), vec!["signature"; 4]);
}

#[tokio::test]
async fn every_fixture_gets_the_upstream_answer() {
    let w = world().await;
    let cases = [
        ("workflow_job", IN_PROGRESS, 201, "not_queued"),
        ("workflow_job", COMPLETED, 201, "not_queued"),
        ("check_run", CHECK_RUN, 202, "unsupported_event"),
        ("workflow_run", WORKFLOW_RUN, 202, "unsupported_event"),
        ("ping", PING, 202, "unsupported_event"),
    ];
    for (event, body, status, _) in cases {
        let response = w.webhook.handle(&signed(event, body), deadline()).await;
        assert_eq!(response.status, status, "{event}: {}", response.body);
    }
    assert!(w.queue.messages().is_empty());
    let expected: Vec<String> = cases.iter().map(|c| c.3.to_string()).collect();
    assert_eq!(rejections(&w), expected);
}

#[tokio::test]
async fn malformed_json_under_a_valid_signature_is_400_with_a_reason() {
    let w = world().await;
    for body in ["{not json", r#"{"action":"queued","workflow_job":{"id":1}}"#] {
        let response = w.webhook.handle(&signed("workflow_job", body), deadline()).await;
        assert_eq!(response.status, 400);
        assert!(response.body.starts_with("Malformed workflow_job payload"), "{}", response.body);
    }
    assert!(w.queue.messages().is_empty());
}

#[tokio::test]
async fn allow_list_and_matching() {
    let w = world_with(&["someone/else"], QueueSelectionStrategy::First).await;
    assert_eq!(w.webhook.handle(&signed("workflow_job", QUEUED), deadline()).await.status, 403);
    let w = world().await;
    let windows = QUEUED.replace(r#""labels": ["ubuntu-latest"]"#, r#""labels": ["windows", "self-hosted"]"#);
    assert_ne!(windows, QUEUED);
    let response = w.webhook.handle(&signed("workflow_job", &windows), deadline()).await;
    assert_eq!(response.status, 202);
    assert!(response.body.contains("windows,self-hosted"));
    assert!(w.queue.messages().is_empty());
}

#[tokio::test]
async fn fifo_queues_get_the_job_id_as_group() {
    let w = world().await;
    let gpu = QUEUED.replace(r#""labels": ["ubuntu-latest"]"#, r#""labels": ["gpu", "large"]"#);
    assert_eq!(w.webhook.handle(&signed("workflow_job", &gpu), deadline()).await.status, 201);
    let sent = w.queue.messages();
    assert_eq!(sent[0].fifo_group.as_deref(), Some("289782451"));
    assert!(sent[0].queue_url.ends_with("loose.fifo"));
}

#[tokio::test]
async fn queue_failure_is_a_5xx_never_a_2xx() {
    let w = world().await;
    w.queue.fail_with(Some(AwsError::new(
        "sqs:SendMessage",
        AwsErrorKind::Transient,
        Some("ServiceUnavailable".into()),
        "down",
    )));
    let response = w.webhook.handle(&signed("workflow_job", QUEUED), deadline()).await;
    assert_eq!(response.status, 500);
    assert_eq!(rejections(&w), vec!["queue_error"]);
}

#[tokio::test]
async fn only_post_is_accepted() {
    let w = world().await;
    let mut req = signed("workflow_job", QUEUED);
    req.method = Some("GET".into());
    assert_eq!(w.webhook.handle(&req, deadline()).await.status, 405);
    assert!(w.queue.messages().is_empty());
}

#[tokio::test]
async fn lambda_events_in_both_payload_formats() {
    use base64::Engine;
    let w = world().await;
    let signature = sign(SECRET.as_bytes(), QUEUED.as_bytes());
    let v1 = serde_json::json!({
        "httpMethod": "POST", "path": "/webhook",
        "headers": {"X-GitHub-Event": "workflow_job", "X-Hub-Signature-256": signature},
        "body": QUEUED, "isBase64Encoded": false
    });
    let v2 = serde_json::json!({
        "version": "2.0", "rawPath": "/",
        "headers": {"x-github-event": "workflow_job", "x-hub-signature-256": signature},
        "requestContext": {"http": {"method": "POST"}},
        "body": base64::engine::general_purpose::STANDARD.encode(QUEUED), "isBase64Encoded": true
    });
    for event in [v1, v2] {
        let response = w.webhook.handle_event(&event, deadline()).await;
        assert_eq!(response["statusCode"], 201, "{response}");
    }
    assert_eq!(w.queue.messages().len(), 2);
    let response = w.webhook.handle_event(&serde_json::json!({"Records": []}), deadline()).await;
    assert_eq!(response["statusCode"], 400);
}

#[tokio::test]
async fn strategy_all_sends_to_every_equal_match() {
    let two = r#"[
 {"id":"q1","arn":"a1","matcherConfig":{"labelMatchers":[["ubuntu-latest"]],"exactMatch":true}},
 {"id":"q2","arn":"a2","matcherConfig":{"labelMatchers":[["ubuntu-latest"]],"exactMatch":true}}]"#;
    let store = MemoryParameterStore::with(&[("/s", SECRET), ("/m", two)]);
    let config = Config {
        webhook_secret_parameter: "/s".into(),
        matcher_config_parameters: vec!["/m".into()],
        matcher_config_version: None,
        repository_allow_list: vec![],
        queue_selection_strategy: QueueSelectionStrategy::All,
        event_bus: None,
        accept_events: Vec::new(),
        telemetry: TelemetryConfig { environment: "t".into(), namespace: "n".into(), log_level: "info".into() },
    };
    let queue = Arc::new(MemoryJobQueue::default());
    let webhook = Webhook::new(
        Settings::load(&config, &store).await.unwrap(),
        queue.clone(),
        Metrics::new(&config.telemetry, Arc::new(MemorySink::default())),
    );
    assert_eq!(webhook.handle(&signed("workflow_job", QUEUED), deadline()).await.status, 201);
    let urls: Vec<String> = queue.messages().into_iter().map(|m| m.queue_url).collect();
    assert_eq!(urls, vec!["q1", "q2"]);
}

/// EventBridge mode: the webhook publishes, it does not route (no matcher config is read).
async fn eventbridge(accept_events: &[&str]) -> (Webhook, Arc<MemoryEventBus>, Arc<MemorySink>) {
    let store = MemoryParameterStore::with(&[("/app/webhook_secret", SECRET)]);
    let config = Config {
        webhook_secret_parameter: "/app/webhook_secret".into(),
        matcher_config_parameters: vec!["/webhook/not-read".into()],
        matcher_config_version: None,
        repository_allow_list: Vec::new(),
        queue_selection_strategy: QueueSelectionStrategy::First,
        event_bus: Some("ci-runners".into()),
        accept_events: accept_events.iter().map(|s| s.to_string()).collect(),
        telemetry: TelemetryConfig {
            environment: "test".into(),
            namespace: "GitHub Runners".into(),
            log_level: "info".into(),
        },
    };
    let settings = Settings::load(&config, &store).await.unwrap();
    assert!(settings.matchers().is_empty());
    let bus = Arc::new(MemoryEventBus::default());
    let metrics = Arc::new(MemorySink::default());
    let webhook =
        Webhook::new(settings, Arc::new(MemoryJobQueue::default()), Metrics::new(&config.telemetry, metrics.clone()))
            .with_event_bus(bus.clone());
    (webhook, bus, metrics)
}

#[tokio::test]
async fn eventbridge_mode_publishes_the_raw_delivery() {
    let (webhook, bus, _) = eventbridge(&[]).await;
    let answer = webhook.handle(&signed("workflow_job", QUEUED), deadline()).await;
    assert_eq!((answer.status, answer.body.as_str()), (201, "Event sent successfully to the EventBridge."));
    // Every event type goes on the bus when ACCEPT_EVENTS is empty; the rule picks the jobs.
    assert_eq!(webhook.handle(&signed("check_run", CHECK_RUN), deadline()).await.status, 201);
    let events = bus.events();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].bus.as_str(), events[0].source.as_str(), events[0].detail_type.as_str(), events[0].detail.as_str()),
        ("ci-runners", "github", "workflow_job", QUEUED),
        "the raw body, byte for byte"
    );
    assert_eq!(events[1].detail_type, "check_run");
    // The signature is still checked first.
    assert_eq!(
        webhook.handle(&request("workflow_job", QUEUED, Some("sha256=00".into())), deadline()).await.status,
        401
    );
    assert_eq!(bus.events().len(), 2);
}

#[tokio::test]
async fn eventbridge_mode_accept_events_oversized_bodies_and_failures() {
    let (webhook, bus, metrics) = eventbridge(&["workflow_job"]).await;
    let answer = webhook.handle(&signed("workflow_run", WORKFLOW_RUN), deadline()).await;
    assert_eq!((answer.status, answer.body.as_str()), (202, "Unsupported event type: workflow_run"));
    assert!(bus.events().is_empty());

    // Over EventBridge's 256 KB entry limit: 400, and an error notice on the bus instead.
    let mut big: serde_json::Value = serde_json::from_str(QUEUED).unwrap();
    big["workflow_job"]["steps"] = serde_json::json!(["x".repeat(256 * 1024)]);
    let big = big.to_string();
    let answer = webhook.handle(&signed("workflow_job", &big), deadline()).await;
    assert_eq!((answer.status, answer.body.as_str()), (400, "Body size exceeded 256KB"));
    let events = bus.events();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].source.as_str(), events[0].detail_type.as_str()), ("runners.webhook", "error.workflow_job"));
    let notice: serde_json::Value = serde_json::from_str(&events[0].detail).unwrap();
    assert_eq!(notice["size"].as_u64(), Some(big.len() as u64));

    // A failed PutEvents (or a refused entry) is a 5xx: GitHub shows a delivery to redeliver.
    bus.fail_with(Some(AwsError::new(
        "events:PutEvents",
        AwsErrorKind::Transient,
        Some("InternalException".into()),
        "x",
    )));
    let answer = webhook.handle(&signed("workflow_job", QUEUED), deadline()).await;
    assert_eq!(answer.status, 500);
    assert_eq!(rejection_reasons(&metrics), vec!["unsupported_event", "body_too_large", "publish_error"]);
}
