#![allow(clippy::print_stdout, clippy::unwrap_used)] // a report printer
//! Dispatcher benchmark: `cargo bench -p tests --bench dispatcher` (`make bench-dispatcher`).
//!
//! Reports, on this machine:
//! 1. cold start of the real binary under the Lambda runtime emulator against moto, fed the
//!    event as EventBridge delivers it to the rule's target: process start → ready (init:
//!    config, SDK, the matcher config's SSM GetParameters), and the first event (parse, allow
//!    list, label matching, the SQS send); moto's own time reported separately;
//! 2. warm CPU time per event, in process, without SQS (a counting queue): from the raw event
//!    bytes (the runtime's JSON parse included) to the answer, with the JSON log line and the
//!    EMF metric;
//! 3. peak RSS after the cold start and 1,000 events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::deadline::Deadline;
use common::dispatch::JobRouting;
use common::domain::webhook::QueueSelectionStrategy;
use common::error::AwsError;
use common::ports::JobQueue;
use common::telemetry::{MetricSink, Metrics, TelemetryConfig};
use dispatcher::Dispatcher;
use serde_json::{Value, json};
use tests::aws::Aws;
use tests::bench::{ColdStarts, LogLines, thread_cpu};
use tests::fixtures;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{ACCOUNT, Moto, REGION, unique};

const ROUNDS: usize = 15;
const WARM_EVENTS: usize = 100_000;
const RSS_EVENTS: usize = 1_000;

struct CountingQueue(AtomicUsize);

#[async_trait]
impl JobQueue for CountingQueue {
    async fn send(&self, _: &str, body: &str, _: Option<&str>) -> Result<(), AwsError> {
        std::hint::black_box(body);
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

struct NullSink;
impl MetricSink for NullSink {
    fn write_line(&self, line: &str) {
        std::hint::black_box(line);
    }
}

/// The event as the rule `<prefix>-workflow_job` delivers it to its target.
fn eventbridge_event(detail: &Value) -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "workflow_job",
        "source": "github",
        "account": ACCOUNT,
        "time": "2026-12-02T06:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    })
}

#[tokio::main]
async fn main() {
    let moto = Moto::shared();
    let aws = Aws::new(moto).await;
    let prefix = unique("bench-dispatcher");
    let queue = aws.create_queue(&format!("{prefix}-linux"), false).await;
    // Three runner configurations, the job matching the last by priority: matching is not free.
    let matchers = json!([
        {"id": format!("{queue}-gpu"), "arn": "arn", "matcherConfig": {"labelMatchers": [["self-hosted", "gpu"]], "exactMatch": true, "priority": 1}},
        {"id": format!("{queue}-arm"), "arn": "arn", "matcherConfig": {"labelMatchers": [["self-hosted", "arm64"]], "exactMatch": true, "priority": 2}},
        {"id": queue, "arn": "arn", "matcherConfig": {"labelMatchers": [["self-hosted", "ubuntu-latest"]], "exactMatch": true, "priority": 3}},
    ])
    .to_string();
    let parameter = format!("/{prefix}/runner-matcher-config");
    aws.put_parameter(&parameter, &matchers, false).await;
    let mut env: Vec<(String, String)> = vec![
        ("PARAMETER_RUNNER_MATCHER_CONFIG_PATH".into(), parameter.clone()),
        ("REPOSITORY_ALLOW_LIST".into(), "[]".into()),
        ("QUEUE_SELECTION_STRATEGY".into(), "first".into()),
        ("ENVIRONMENT".into(), prefix.clone()),
        ("LOG_LEVEL".into(), "info".into()),
    ];
    env.extend(moto.lambda_env());
    let detail: Value = serde_json::from_str(&fixtures::webhook(fixtures::QUEUED)).unwrap();
    let event = eventbridge_event(&detail);
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lambda-dispatcher"));
    println!("# Dispatcher benchmark\n\nbinary: `{}`\n", binary.display());

    // 1. Cold start.
    let lines = LogLines { ready: "dispatcher ready", handled: "job dispatched" };
    let dispatched = |answer: &Value| assert_eq!(answer["decision"], "queued", "{answer}");
    ColdStarts::measure(&binary, &prefix, &env, ROUNDS, &event, &lines, dispatched)
        .await
        .print("Cold start", "SQS SendMessage");

    // 2. Warm CPU per event, in process.
    let telemetry =
        TelemetryConfig { environment: prefix.clone(), namespace: "GitHub Runners".into(), log_level: "info".into() };
    let store = common::aws::ssm::SsmParameterStore::new(&moto.sdk_config().await);
    let routing = JobRouting::load(&store, std::slice::from_ref(&parameter), Vec::new(), QueueSelectionStrategy::First)
        .await
        .expect("routing");
    let counter = Arc::new(CountingQueue(AtomicUsize::new(0)));
    let handler = Dispatcher::new(routing, counter.clone(), Metrics::new(&telemetry, Arc::new(NullSink)));
    let _ = tracing_subscriber::fmt().json().flatten_event(true).with_writer(std::io::sink).try_init();
    let mut unmatched_detail = detail.clone();
    unmatched_detail["workflow_job"]["labels"] = json!(["self-hosted", "windows"]);
    let queued = serde_json::to_vec(&event).unwrap();
    let unmatched = serde_json::to_vec(&eventbridge_event(&unmatched_detail)).unwrap();
    let deadline = Deadline::after(Duration::from_secs(3600));
    let mut results = Vec::new();
    for (name, bytes, decision) in [
        ("queued job, matched (third configuration by priority), message sent", &queued, "queued"),
        ("queued job, no configuration matches (logged, counted)", &unmatched, "no_matching_runner"),
    ] {
        let once = |bytes: &[u8]| {
            let event: Value = serde_json::from_slice(bytes).unwrap();
            let handler = &handler;
            async move { handler.handle(&event, deadline).await.unwrap() }
        };
        assert_eq!(once(bytes).await["decision"], decision);
        for _ in 0..1000 {
            std::hint::black_box(once(bytes).await);
        }
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        for _ in 0..WARM_EVENTS {
            std::hint::black_box(once(bytes).await);
        }
        let cpu = thread_cpu() - cpu0;
        results.push((
            name,
            cpu.as_secs_f64() * 1e6 / WARM_EVENTS as f64,
            wall0.elapsed().as_secs_f64() * 1e6 / WARM_EVENTS as f64,
        ));
    }
    assert!(counter.0.load(Ordering::Relaxed) >= WARM_EVENTS);
    println!("## Warm handler, in process, no SQS ({WARM_EVENTS} events each, {} bytes event)\n", queued.len());
    println!("| event | CPU µs/event | wall µs/event |\n|---|---|---|");
    for (name, cpu, wall) in results {
        println!("| {name} | {cpu:.1} | {wall:.1} |");
    }

    // 3. Peak RSS after the cold start and RSS_EVENTS events through the emulator and moto.
    let f = LambdaFunction::spawn(&binary, &format!("{prefix}-rss"), &env, Duration::from_secs(10)).await;
    f.ready(Duration::from_secs(20)).await.expect("ready");
    let after_init = f.peak_rss_kib().unwrap_or(0);
    for _ in 0..RSS_EVENTS {
        let answer = f.invoke_unsettled(event.clone()).await.expect("answer");
        assert_eq!(answer["decision"], "queued", "{answer}");
    }
    let peak = f.peak_rss_kib().unwrap_or(0);
    println!("\n## Memory (peak RSS, MiB)\n\n| after init | after {RSS_EVENTS} events |\n|---|---|");
    println!("| {:.1} | {:.1} |", after_init as f64 / 1024.0, peak as f64 / 1024.0);
    let drained = aws.drain(&queue).await.len();
    println!("\n({drained} messages reached SQS during the run.)");
}
