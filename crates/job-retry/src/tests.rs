//! Handler tests with in-memory ports.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use common::deadline::Deadline;
use common::error::{AwsError, AwsErrorKind, GithubError};
use common::telemetry::{MemorySink, Metrics, TelemetryConfig};
use common::testing::{MemoryGithub, MemoryJobQueue};
use serde_json::json;

use super::*;

const BUILD_QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/1/ci-queued-builds";

struct World {
    retry: JobRetry,
    github: MemoryGithub,
    queue: Arc<MemoryJobQueue>,
    metrics: Arc<MemorySink>,
}

fn world(build_queue: &str) -> World {
    let config = Config {
        organization_runners: true,
        build_queue: build_queue.into(),
        retry_metric: true,
        apps: common::github::app::AppParameterNames { ids: vec![], keys: vec![], installation_ids: vec![] },
        github: common::config::GithubConnection {
            ghes_url: None,
            verify_tls: true,
            user_agent: "test".into(),
            api_override: None,
        },
        telemetry: TelemetryConfig {
            environment: "ci".into(),
            namespace: "GitHub Runners".into(),
            log_level: "info".into(),
        },
    };
    let github = MemoryGithub::default();
    let queue = Arc::new(MemoryJobQueue::default());
    let metrics = Arc::new(MemorySink::default());
    let retry = JobRetry::new(
        config.clone(),
        Arc::new(github.clone()),
        queue.clone(),
        Metrics::new(&config.telemetry, metrics.clone()),
    );
    World { retry, github, queue, metrics }
}

fn message(id: u64, retry_counter: u32) -> String {
    json!({"id": id, "repositoryName": "web", "repositoryOwner": "acme", "eventType": "workflow_job",
           "installationId": 7, "queueId": BUILD_QUEUE, "repoOwnerType": "Organization",
           "labels": ["self-hosted"], "retryCounter": retry_counter})
    .to_string()
}

fn event(bodies: &[String]) -> SqsEvent {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"messageId": format!("m{i}"), "body": body, "eventSource": "aws:sqs", "attributes": {}, "messageAttributes": {}}))
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(25))
}

fn failed(response: &SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_job_still_queued_goes_back_with_its_counter_raised() {
    let w = world(BUILD_QUEUE);
    let response = w.retry.handle(&event(&[message(1, 0)]), deadline()).await;
    assert!(failed(&response).is_empty());
    let sent = w.queue.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].queue_url, BUILD_QUEUE);
    assert_eq!(sent[0].fifo_group, None);
    let body: QueuedJobMessage = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!((body.id, body.retry_counter), (1, Some(1)));
    let metrics = w.metrics.lines.lock().unwrap().join("\n");
    assert!(metrics.contains("\"RetryJob\"") && metrics.contains("\"RetryCount\":\"1\""), "{metrics}");
}

#[tokio::test]
async fn started_finished_or_unknown_jobs_are_not_retried() {
    let w = world(BUILD_QUEUE);
    w.github.set_job_status(1, "in_progress");
    w.github.set_job_status(2, "completed");
    let response = w.retry.handle(&event(&[message(1, 0), message(2, 1), "not json".to_string()]), deadline()).await;
    assert!(failed(&response).is_empty(), "a malformed message is acknowledged");
    assert!(w.queue.messages().is_empty());
}

#[tokio::test]
async fn unknown_state_goes_back_to_the_retry_queue() {
    let w = world(BUILD_QUEUE);
    w.github.fail(
        "job_status",
        vec![GithubError::Status { endpoint: "GET job".into(), status: 502, message: "bad gateway".into() }],
    );
    let response = w.retry.handle(&event(&[message(1, 0), message(2, 0)]), deadline()).await;
    assert_eq!(failed(&response).len(), 1, "only the job whose state is unknown");
    assert_eq!(w.queue.messages().len(), 1);

    let w = world(BUILD_QUEUE);
    w.queue.fail_with(Some(AwsError::new("sqs:SendMessage", AwsErrorKind::Transient, None, "down")));
    let response = w.retry.handle(&event(&[message(1, 0)]), deadline()).await;
    assert_eq!(failed(&response), vec!["m0"], "a refused send comes back");
}

#[tokio::test]
async fn fifo_build_queues_get_a_new_deduplication_id_per_retry() {
    let w = world("https://sqs.eu-west-1.amazonaws.com/1/ci-queued-builds.fifo");
    w.retry.handle(&event(&[message(5, 1)]), deadline()).await;
    assert_eq!(w.queue.messages()[0].fifo_group.as_deref(), Some("5-retry-2"));
}
