#![allow(clippy::print_stdout, clippy::unwrap_used)] // a report printer
//! Webhook benchmark: `cargo bench -p tests --bench webhook` (`make bench-webhook`).
//!
//! Reports, on this machine, for EventBridge mode (the default) and direct mode:
//! 1. cold start of the real binary under the Lambda runtime emulator against moto, in two parts
//!    (decisions.md #25): process start → ready for the first event (init: config, SDK, the SSM
//!    GetParameters call), and the first event's handling (signature, routing, the SQS send or
//!    the EventBridge PutEvents); the time spent waiting on moto is reported separately, since
//!    Lambda's own SSM/SQS/EventBridge answer in single-digit milliseconds;
//! 2. warm handler CPU time per event, in process, without SQS or EventBridge (counting ports),
//!    with the JSON log line and the EMF metrics included;
//! 3. peak RSS of the binary after its cold start and 1,000 events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::deadline::Deadline;
use common::domain::webhook::QueueSelectionStrategy;
use common::error::AwsError;
use common::github::signature::sign;
use common::ports::{EventBus, JobQueue, OutgoingEvent};
use common::telemetry::{MetricSink, Metrics, TelemetryConfig};
use serde_json::{Value, json};
use tests::aws::Aws;
use tests::bench::{ColdStarts, LogLines, thread_cpu};
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

struct CountingBus(AtomicUsize);

#[async_trait]
impl EventBus for CountingBus {
    async fn put_event(&self, event: &OutgoingEvent<'_>) -> Result<(), AwsError> {
        std::hint::black_box(event.size());
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

fn request(body: &str, secret: &str) -> HttpRequest {
    let mut headers = std::collections::HashMap::new();
    headers.insert("x-github-event".to_string(), "workflow_job".to_string());
    headers.insert("x-github-delivery".to_string(), "bench".to_string());
    headers.insert("x-hub-signature-256".to_string(), sign(secret.as_bytes(), body.as_bytes()));
    HttpRequest { method: Some("POST".into()), headers, body: body.as_bytes().to_vec() }
}

/// CPU and wall microseconds per event of `handler` on `request`, warm.
async fn per_event(handler: &Webhook, request: &HttpRequest) -> (f64, f64) {
    let deadline = Deadline::after(Duration::from_secs(3600));
    for _ in 0..1000 {
        std::hint::black_box(handler.handle(request, deadline).await);
    }
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    for _ in 0..WARM_EVENTS {
        std::hint::black_box(handler.handle(request, deadline).await);
    }
    let cpu = thread_cpu() - cpu0;
    (cpu.as_secs_f64() * 1e6 / WARM_EVENTS as f64, wall0.elapsed().as_secs_f64() * 1e6 / WARM_EVENTS as f64)
}

/// Peak RSS (KiB) after init and after `RSS_EVENTS` events through the emulator and moto.
async fn peak_rss(binary: &std::path::Path, name: &str, env: &[(String, String)], event: &Value) -> (u64, u64) {
    let f = LambdaFunction::spawn(binary, name, env, Duration::from_secs(10)).await;
    f.ready(Duration::from_secs(20)).await.expect("ready");
    let after_init = f.peak_rss_kib().unwrap_or(0);
    for _ in 0..RSS_EVENTS {
        let answer = f.invoke_unsettled(event.clone()).await.expect("answer");
        assert_eq!(answer["statusCode"], 201, "{answer}");
    }
    (after_init, f.peak_rss_kib().unwrap_or(0))
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
    // The bus of EventBridge mode, with no rule: what the dispatcher costs is its own benchmark.
    let bus = format!("{prefix}-runners");
    let events = aws_sdk_eventbridge::Client::new(&moto.sdk_config().await);
    events.create_event_bus().name(&bus).send().await.expect("create the bus");
    let mut direct_env: Vec<(String, String)> = vec![
        ("PARAMETER_GITHUB_APP_WEBHOOK_SECRET".into(), format!("/{prefix}/secret")),
        ("PARAMETER_RUNNER_MATCHER_CONFIG_PATH".into(), format!("/{prefix}/matcher")),
        ("ENVIRONMENT".into(), prefix.clone()),
        ("LOG_LEVEL".into(), "info".into()),
    ];
    direct_env.extend(moto.lambda_env());
    let mut eventbridge_env = direct_env.clone();
    eventbridge_env.push(("EVENT_BUS_NAME".into(), bus.clone()));
    eventbridge_env.push(("ACCEPT_EVENTS".into(), r#"["workflow_job"]"#.into()));
    let body = fixtures::webhook(fixtures::QUEUED);
    let binary = binary();
    println!("# Webhook benchmark\n\nbinary: `{}`\n", binary.display());

    // 1. Cold start, each mode.
    let lines = LogLines { ready: "webhook ready", handled: "webhook delivery" };
    let created = |answer: &Value| assert_eq!(answer["statusCode"], 201, "{answer}");
    let delivery = event(&body, secret);
    ColdStarts::measure(&binary, &format!("{prefix}-eb"), &eventbridge_env, ROUNDS, &delivery, &lines, created)
        .await
        .print("Cold start, EventBridge mode (the default)", "EventBridge PutEvents");
    ColdStarts::measure(&binary, &format!("{prefix}-direct"), &direct_env, ROUNDS, &delivery, &lines, created)
        .await
        .print("Cold start, direct mode", "SQS SendMessage");

    // 2. Warm CPU per event, in process, the queue and the bus counted instead of called.
    let config = |event_bus: Option<String>| Config {
        webhook_secret_parameter: format!("/{prefix}/secret"),
        matcher_config_parameters: vec![format!("/{prefix}/matcher")],
        matcher_config_version: None,
        repository_allow_list: vec![],
        queue_selection_strategy: QueueSelectionStrategy::First,
        accept_events: if event_bus.is_some() { vec!["workflow_job".into()] } else { Vec::new() },
        event_bus,
        telemetry: TelemetryConfig {
            environment: prefix.clone(),
            namespace: "GitHub Runners".into(),
            log_level: "info".into(),
        },
    };
    let store = common::aws::ssm::SsmParameterStore::new(&moto.sdk_config().await);
    let (direct_config, eventbridge_config) = (config(None), config(Some(bus.clone())));
    let counter = Arc::new(CountingQueue(AtomicUsize::new(0)));
    let published = Arc::new(CountingBus(AtomicUsize::new(0)));
    let direct = Webhook::new(
        Settings::load(&direct_config, &store).await.expect("settings"),
        counter.clone(),
        Metrics::new(&direct_config.telemetry, Arc::new(NullSink)),
    );
    let eventbridge = Webhook::new(
        Settings::load(&eventbridge_config, &store).await.expect("settings"),
        counter.clone(),
        Metrics::new(&eventbridge_config.telemetry, Arc::new(NullSink)),
    )
    .with_event_bus(published.clone());
    // JSON logs to a sink: the per-event log line costs what it costs in Lambda.
    let _ = tracing_subscriber_sink();
    let queued = request(&body, secret);
    let in_progress = request(&fixtures::webhook(fixtures::IN_PROGRESS), secret);
    let mut results = Vec::new();
    for (name, handler, req) in [
        ("EventBridge mode: queued job (signature, parse, published)", &eventbridge, &queued),
        ("EventBridge mode: `in_progress` job (signature, parse, published)", &eventbridge, &in_progress),
        ("direct mode: queued job (signature, parse, match, message built)", &direct, &queued),
        ("direct mode: `in_progress` job (signature, parse, ignored)", &direct, &in_progress),
    ] {
        let (cpu, wall) = per_event(handler, req).await;
        results.push((name, cpu, wall));
    }
    assert!(counter.0.load(Ordering::Relaxed) >= WARM_EVENTS);
    assert!(published.0.load(Ordering::Relaxed) >= 2 * WARM_EVENTS);
    println!(
        "## Warm handler, in process, no SQS or EventBridge ({WARM_EVENTS} events each, {} bytes body)\n",
        body.len()
    );
    println!("| event | CPU µs/event | wall µs/event |\n|---|---|---|");
    for (name, cpu, wall) in results {
        println!("| {name} | {cpu:.1} | {wall:.1} |");
    }

    // 3. Peak RSS after the cold start and RSS_EVENTS events through the emulator and moto.
    let (eb_init, eb_peak) = peak_rss(&binary, &format!("{prefix}-rss-eb"), &eventbridge_env, &delivery).await;
    let (direct_init, direct_peak) = peak_rss(&binary, &format!("{prefix}-rss"), &direct_env, &delivery).await;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("\n## Memory (peak RSS, MiB)\n\n| mode | after init | after {RSS_EVENTS} events |\n|---|---|---|");
    println!("| EventBridge | {:.1} | {:.1} |", mib(eb_init), mib(eb_peak));
    println!("| direct | {:.1} | {:.1} |", mib(direct_init), mib(direct_peak));
    let drained = aws.drain(&queue).await.len();
    println!("\n({drained} messages reached SQS during the run.)");
}

fn tracing_subscriber_sink() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().json().flatten_event(true).with_writer(std::io::sink).try_init()
}
