//! Handler tests with in-memory ports and real GitHub payloads inside EventBridge envelopes.

use std::sync::Arc;
use std::time::Duration;

use common::domain::webhook::{QueueSelectionStrategy, QueuedJobMessage, parse_matcher_config};
use common::error::{AwsError, AwsErrorKind};
use common::telemetry::{MemorySink, TelemetryConfig};
use common::testing::MemoryJobQueue;

use super::*;

const QUEUED: &str = include_str!("../../../tests/fixtures/github-webhooks/workflow_job.queued.json");
const IN_PROGRESS: &str = include_str!("../../../tests/fixtures/github-webhooks/workflow_job.in_progress.json");

const MATCHERS: &str = r#"[
 {"id":"https://sqs.eu-west-1.amazonaws.com/123/linux","arn":"arn:aws:sqs:eu-west-1:123:linux","matcherConfig":{"labelMatchers":[["ubuntu-latest","self-hosted"]],"exactMatch":true}},
 {"id":"https://sqs.us-east-2.amazonaws.com/123/linux-b","arn":"arn:aws:sqs:us-east-2:123:linux-b","matcherConfig":{"labelMatchers":[["ubuntu-latest","self-hosted"]],"exactMatch":true}}
]"#;

struct World {
    dispatcher: Dispatcher,
    queue: Arc<MemoryJobQueue>,
    metrics: Arc<MemorySink>,
}

fn world(allow_list: &[&str], strategy: QueueSelectionStrategy) -> World {
    let routing = JobRouting {
        matchers: parse_matcher_config(&[MATCHERS]).unwrap(),
        repository_allow_list: allow_list.iter().map(|s| s.to_string()).collect(),
        strategy,
    };
    let queue = Arc::new(MemoryJobQueue::default());
    let metrics = Arc::new(MemorySink::default());
    let telemetry =
        TelemetryConfig { environment: "test".into(), namespace: "GitHub Runners".into(), log_level: "info".into() };
    let dispatcher = Dispatcher::new(routing, queue.clone(), Metrics::new(&telemetry, metrics.clone()));
    World { dispatcher, queue, metrics }
}

/// An EventBridge envelope as the rule delivers it.
fn envelope(detail_type: &str, body: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": "github",
        "account": "123456789012",
        "time": "2026-12-01T10:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": serde_json::from_str::<serde_json::Value>(body).unwrap(),
    })
}

fn lines(w: &World) -> Vec<String> {
    w.metrics.lines.lock().unwrap().clone()
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(8))
}

#[tokio::test]
async fn a_queued_job_goes_to_its_first_matching_queue_with_the_upstream_message() {
    let w = world(&[], QueueSelectionStrategy::First);
    let answer = w.dispatcher.handle(&envelope("workflow_job", QUEUED), deadline()).await.unwrap();
    assert_eq!(answer["decision"], "queued");
    let sent = w.queue.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].queue_url, "https://sqs.eu-west-1.amazonaws.com/123/linux");
    let message: QueuedJobMessage = serde_json::from_str(&sent[0].body).unwrap();
    let payload: serde_json::Value = serde_json::from_str(QUEUED).unwrap();
    assert_eq!(message.id, payload["workflow_job"]["id"].as_u64().unwrap());
    assert_eq!(message.queue_id, sent[0].queue_url);
    assert!(lines(&w).iter().any(|l| l.contains("JobsDispatched")));
}

#[tokio::test]
async fn every_strategy_and_the_allow_list() {
    let w = world(&[], QueueSelectionStrategy::All);
    w.dispatcher.handle(&envelope("workflow_job", QUEUED), deadline()).await.unwrap();
    let queues: Vec<String> = w.queue.messages().into_iter().map(|m| m.queue_url).collect();
    assert_eq!(queues.len(), 2, "all: both configurations: {queues:?}");

    let w = world(&[], QueueSelectionStrategy::Random);
    for _ in 0..40 {
        w.dispatcher.handle(&envelope("workflow_job", QUEUED), deadline()).await.unwrap();
    }
    let sent = w.queue.messages();
    assert_eq!(sent.len(), 40, "random: one queue per job");
    assert!(
        sent.iter().any(|m| m.queue_url.contains("/linux-b")) && sent.iter().any(|m| m.queue_url.ends_with("/linux"))
    );

    let w = world(&["someone/else"], QueueSelectionStrategy::First);
    let answer = w.dispatcher.handle(&envelope("workflow_job", QUEUED), deadline()).await.unwrap();
    assert_eq!(answer["decision"], "unauthorized_repository");
    assert!(w.queue.messages().is_empty());
    assert!(lines(&w).iter().any(|l| l.contains("JobsNotDispatched") && l.contains("unauthorized_repository")));
}

#[tokio::test]
async fn jobs_that_do_not_qualify_are_done_and_failures_are_retried() {
    let w = world(&[], QueueSelectionStrategy::First);
    let answer = w.dispatcher.handle(&envelope("workflow_job", IN_PROGRESS), deadline()).await.unwrap();
    assert_eq!(answer["decision"], "not_queued");
    let mut other_labels: serde_json::Value = serde_json::from_str(QUEUED).unwrap();
    other_labels["workflow_job"]["labels"] = serde_json::json!(["windows", "gpu"]);
    let answer = w.dispatcher.handle(&envelope("workflow_job", &other_labels.to_string()), deadline()).await.unwrap();
    assert_eq!(answer["decision"], "no_matching_runner");
    // Dynamic labels on configurations that do not enable them: refused, counted with the reason.
    let mut dynamic: serde_json::Value = serde_json::from_str(QUEUED).unwrap();
    dynamic["workflow_job"]["labels"] =
        serde_json::json!(["ubuntu-latest", "self-hosted", "ghr-ec2-instance-type:c5.large"]);
    let answer = w.dispatcher.handle(&envelope("workflow_job", &dynamic.to_string()), deadline()).await.unwrap();
    assert_eq!(answer["decision"], "dynamic_labels_refused");
    assert!(lines(&w).iter().any(|l| l.contains("JobsNotDispatched") && l.contains("dynamic_labels_refused")));
    assert!(w.queue.messages().is_empty());

    // Not a workflow job, or not its payload: the invocation fails (retried, then the DLQ).
    let e = w.dispatcher.handle(&envelope("push", QUEUED), deadline()).await.unwrap_err();
    assert!(matches!(e, DispatcherError::NotWorkflowJob(ref t) if t == "push"), "{e}");
    let e = w.dispatcher.handle(&envelope("workflow_job", r#"{"action":"queued"}"#), deadline()).await.unwrap_err();
    assert!(matches!(e, DispatcherError::Malformed(_)), "{e}");

    // A send failure fails the invocation: EventBridge retries the event.
    w.queue.fail_with(Some(AwsError::new("sqs:SendMessage", AwsErrorKind::Transient, None, "boom")));
    let e = w.dispatcher.handle(&envelope("workflow_job", QUEUED), deadline()).await.unwrap_err();
    assert!(matches!(e, DispatcherError::Dispatch(DispatchError::Queue { .. })), "{e}");
    assert!(lines(&w).iter().any(|l| l.contains("queue_error")));
}
