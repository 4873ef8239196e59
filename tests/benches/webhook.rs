#![allow(clippy::print_stdout, clippy::unwrap_used)] // a report printer
//! Webhook benchmark: `cargo bench -p tests --bench webhook` (`make bench-webhook`).
//!
//! Reports, on this machine:
//! 1. cold start of the real binary under the Lambda runtime emulator against moto, in two parts
//!    (decisions.md #25): process start → ready for the first event (init: config, SDK, the SSM
//!    GetParameters call), and the first event's handling (signature, routing, SQS send); the
//!    time spent waiting on moto is reported separately, since Lambda's own SSM/SQS answer in
//!    single-digit milliseconds;
//! 2. warm handler CPU time per event, in process, without SQS (a counting queue), with the JSON
//!    log line and the EMF metrics included;
//! 3. peak RSS of the binary after its cold start and 1,000 events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::deadline::Deadline;
use common::domain::webhook::QueueSelectionStrategy;
use common::error::AwsError;
use common::github::signature::sign;
use common::ports::JobQueue;
use common::telemetry::{MetricSink, Metrics, TelemetryConfig};
use serde_json::{Value, json};
use tests::aws::Aws;
use tests::fixtures;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use webhook::{Config, HttpRequest, Settings, Webhook};

const ROUNDS: usize = 15;
const WARM_EVENTS: usize = 100_000;
const RSS_EVENTS: usize = 1_000;

struct CountingQueue(AtomicUsize);

#[async_trait]
impl JobQueue for CountingQueue {
    async fn send(&self, _: &str, _: &str, _: Option<&str>) -> Result<(), AwsError> {
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

/// CPU time of the calling thread, from the scheduler (nanosecond resolution).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn event(body: &str, secret: &str) -> Value {
    json!({
        "version": "2.0", "rawPath": "/webhook",
        "headers": {"x-github-event": "workflow_job", "x-github-delivery": "bench", "x-hub-signature-256": sign(secret.as_bytes(), body.as_bytes())},
        "requestContext": {"http": {"method": "POST"}},
        "body": body, "isBase64Encoded": false
    })
}

fn binary() -> std::path::PathBuf {
    // The Lambda artifact when `make build` produced it, else the bench-profile binary.
    let zipped = tests::moto::project_root().join("target/lambda/x86_64/webhook/bootstrap");
    if std::env::var("BENCH_USE_LAMBDA_BUILD").is_ok() && zipped.exists() {
        return zipped;
    }
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_lambda-webhook"))
}

#[tokio::main]
async fn main() {
    let moto = Moto::shared();
    let aws = Aws::new(moto).await;
    let prefix = unique("bench");
    let queue = aws.create_queue(&format!("{prefix}-linux"), false).await;
    let matchers = json!([{"id": queue, "arn": "arn", "matcherConfig": {"labelMatchers": [["self-hosted", "ubuntu-latest"]], "exactMatch": true}}]).to_string();
    aws.put_parameter(&format!("/{prefix}/matcher"), &matchers, false).await;
    let secret = "bench-secret";
    aws.put_parameter(&format!("/{prefix}/secret"), secret, true).await;
    let mut env: Vec<(String, String)> = vec![
        ("PARAMETER_GITHUB_APP_WEBHOOK_SECRET".into(), format!("/{prefix}/secret")),
        ("PARAMETER_RUNNER_MATCHER_CONFIG_PATH".into(), format!("/{prefix}/matcher")),
        ("ENVIRONMENT".into(), prefix.clone()),
        ("LOG_LEVEL".into(), "info".into()),
    ];
    env.extend(moto.lambda_env());
    let body = fixtures::webhook(fixtures::QUEUED);
    let binary = binary();
    println!("# Webhook benchmark\n\nbinary: `{}`\n", binary.display());

    // 1. Cold start.
    let (mut ready, mut first, mut total, mut params, mut sqs) = (vec![], vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS + 1 {
        let f = LambdaFunction::spawn(&binary, &format!("{prefix}-{round}"), &env, Duration::from_secs(10)).await;
        let init = f.ready(Duration::from_secs(20)).await.expect("function ready");
        let answer = f.invoke(event(&body, secret)).await.expect("answer");
        assert_eq!(answer["statusCode"], 201, "{answer}");
        let to_answer = f.spawned_at.elapsed();
        let handler = f.last_handler_time().unwrap_or_default();
        let logs = f.json_logs();
        let parameters_ms = logs
            .iter()
            .find(|l| l["message"] == "webhook ready")
            .and_then(|l| l["parameters_ms"].as_f64())
            .unwrap_or(0.0);
        let queue_ms = logs
            .iter()
            .find(|l| l["message"] == "webhook delivery")
            .and_then(|l| l["queue_ms"].as_f64())
            .unwrap_or(0.0);
        if round == 0 {
            continue; // warms moto's SSM/SQS backends and the page cache
        }
        ready.push(init.as_secs_f64() * 1000.0);
        first.push(handler.as_secs_f64() * 1000.0);
        total.push(to_answer.as_secs_f64() * 1000.0);
        params.push(parameters_ms);
        sqs.push(queue_ms);
    }
    let own: Vec<f64> = (0..ready.len()).map(|i| total[i] - params[i] - sqs[i]).collect();
    println!("## Cold start ({ROUNDS} processes, ms: p50 / min / max)\n");
    println!("| part | p50 | min | max |\n|---|---|---|---|");
    for (name, v) in [
        ("process start → ready (init, incl. SSM)", &ready),
        ("  of which waiting on moto SSM GetParameters", &params),
        ("first event handled (incl. SQS send)", &first),
        ("  of which waiting on moto SQS SendMessage", &sqs),
        ("process start → first answer", &total),
        ("process start → first answer, moto waits removed", &own),
    ] {
        let (min, max) = (v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
        println!("| {name} | {:.1} | {:.1} | {:.1} |", tests::percentile(v, 0.5).unwrap_or(f64::NAN), min, max);
    }

    // 2. Warm CPU per event, in process, no SQS.
    let config = Config {
        webhook_secret_parameter: format!("/{prefix}/secret"),
        matcher_config_parameters: vec![format!("/{prefix}/matcher")],
        matcher_config_version: None,
        repository_allow_list: vec![],
        queue_selection_strategy: QueueSelectionStrategy::First,
        event_bus: None,
        accept_events: Vec::new(),
        telemetry: TelemetryConfig {
            environment: prefix.clone(),
            namespace: "GitHub Runners".into(),
            log_level: "info".into(),
        },
    };
    let store = common::aws::ssm::SsmParameterStore::new(&moto.sdk_config().await);
    let settings = Settings::load(&config, &store).await.expect("settings");
    let counter = Arc::new(CountingQueue(AtomicUsize::new(0)));
    let handler = Webhook::new(settings, counter.clone(), Metrics::new(&config.telemetry, Arc::new(NullSink)));
    // JSON logs to a sink: the per-event log line costs what it costs in Lambda.
    let _ = tracing_subscriber_sink();
    let mut headers = std::collections::HashMap::new();
    headers.insert("x-github-event".to_string(), "workflow_job".to_string());
    headers.insert("x-github-delivery".to_string(), "bench".to_string());
    headers.insert("x-hub-signature-256".to_string(), sign(secret.as_bytes(), body.as_bytes()));
    let request = HttpRequest { method: Some("POST".into()), headers, body: body.clone().into_bytes() };
    let in_progress_body = fixtures::webhook(fixtures::IN_PROGRESS);
    let mut ip_request = request.clone();
    ip_request.body = in_progress_body.clone().into_bytes();
    ip_request.headers.insert("x-hub-signature-256".into(), sign(secret.as_bytes(), in_progress_body.as_bytes()));
    let deadline = Deadline::after(Duration::from_secs(3600));
    let mut results = Vec::new();
    for (name, req) in [("queued job (enqueued)", &request), ("in_progress job (not enqueued)", &ip_request)] {
        for _ in 0..1000 {
            std::hint::black_box(handler.handle(req, deadline).await);
        }
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        for _ in 0..WARM_EVENTS {
            std::hint::black_box(handler.handle(req, deadline).await);
        }
        let cpu = thread_cpu() - cpu0;
        results.push((
            name,
            cpu.as_secs_f64() * 1e6 / WARM_EVENTS as f64,
            wall0.elapsed().as_secs_f64() * 1e6 / WARM_EVENTS as f64,
        ));
    }
    assert!(counter.0.load(Ordering::Relaxed) >= WARM_EVENTS);
    println!("\n## Warm handler, in process, no SQS ({WARM_EVENTS} events each, {} bytes body)\n", body.len());
    println!("| event | CPU µs/event | wall µs/event |\n|---|---|---|");
    for (name, cpu, wall) in results {
        println!("| {name} | {cpu:.1} | {wall:.1} |");
    }

    // 3. Peak RSS after the cold start and RSS_EVENTS events through the emulator and moto.
    let f = LambdaFunction::spawn(&binary, &format!("{prefix}-rss"), &env, Duration::from_secs(10)).await;
    f.ready(Duration::from_secs(20)).await.expect("ready");
    let after_init = f.peak_rss_kib().unwrap_or(0);
    for _ in 0..RSS_EVENTS {
        let answer = f.invoke(event(&body, secret)).await.expect("answer");
        assert_eq!(answer["statusCode"], 201);
    }
    let peak = f.peak_rss_kib().unwrap_or(0);
    println!("\n## Memory\n\n| measure | MiB |\n|---|---|");
    println!("| peak RSS after init | {:.1} |", after_init as f64 / 1024.0);
    println!("| peak RSS after {RSS_EVENTS} events | {:.1} |", peak as f64 / 1024.0);
    let drained = aws.drain(&queue).await.len();
    println!("\n({drained} messages reached SQS during the run.)");
}

fn tracing_subscriber_sink() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().json().flatten_event(true).with_writer(std::io::sink).try_init()
}
