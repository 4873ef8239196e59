//! Scale-up benchmark: `cargo bench -p tests --bench scale_up` (`make bench-scale-up`).
//!
//! Counts at the fake GitHub and at the AWS proxy in front of moto (decisions.md #26: warm and
//! cold, job-queued check as the defaults configure it):
//! 1. a batch of 10 queued jobs of one org, JIT (ephemeral), and with registration tokens;
//! 2. `BENCH_JOBS` (1,000) jobs fed through SQS and the event source mapping: wall time until all
//!    instances exist in moto, JIT configs per second for one App, and the calls made, with the
//!    fake enforcing GitHub's secondary rate limits.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::aws_proxy::AwsProxy;
use tests::event_source::SqsEventSource;
use tests::fake_github::FakeGithub;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

struct Bench {
    aws: Aws,
    stack: RunnerStack,
    github: FakeGithub,
    proxy: AwsProxy,
    installation: u64,
}

impl Bench {
    async fn new() -> Self {
        let moto = Moto::shared();
        moto.warm_ec2().await;
        let aws = Aws::new(moto).await;
        let github = FakeGithub::start().await;
        let app = TestApp::new(1, 4242);
        github.add_app(app.id, app.public_pem.as_bytes());
        let installation = github.add_installation(app.id, "acme", "Organization");
        let stack = RunnerStack::create(&aws, &unique("bench-su"), &[app]).await;
        let proxy = AwsProxy::start(&moto.endpoint).await;
        Self { aws, stack, github, proxy, installation }
    }

    async fn function(&self, overrides: &[(&str, &str)]) -> LambdaFunction {
        let mut env = self.stack.scale_up_env(&self.github.url, overrides);
        env.extend(Moto::shared().lambda_env());
        env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        env.push(("AWS_ENDPOINT_URL".into(), self.proxy.url.clone()));
        env.push(("LOG_LEVEL".into(), "warn".into()));
        let f = LambdaFunction::spawn(
            &std::path::PathBuf::from(env!("CARGO_BIN_EXE_lambda-scale-up")),
            &self.stack.prefix,
            &env,
            Duration::from_secs(900),
        )
        .await;
        f.ready(Duration::from_secs(30)).await.unwrap();
        f
    }

    fn message(&self, id: u64) -> Value {
        json!({"id": id, "repositoryName": "web", "repositoryOwner": "acme", "eventType": "workflow_job",
               "installationId": self.installation, "queueId": self.stack.queue_url, "repoOwnerType": "Organization", "labels": ["self-hosted"]})
    }

    async fn live_instances(&self) -> usize {
        let mut n = 0;
        let mut next = None;
        loop {
            let out = self
                .aws
                .ec2
                .describe_instances()
                .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
                .set_next_token(next)
                .send()
                .await
                .unwrap();
            n += out.reservations().iter().map(|r| r.instances().len()).sum::<usize>();
            next = out.next_token().map(str::to_string);
            if next.is_none() {
                return n;
            }
        }
    }

    /// (GitHub calls, AWS calls) since the last reset, by endpoint.
    fn calls(&self) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        (self.github.request_counts(), self.proxy.counts())
    }

    fn reset(&self) {
        self.github.clear_requests();
        self.proxy.clear_calls();
    }
}

fn event(messages: &[Value]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"messageId": format!("m{i}"), "receiptHandle": "h", "body": m.to_string(), "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs"}))
        .collect();
    json!({ "Records": records })
}

fn table(title: &str, runners: usize, calls: &(BTreeMap<String, usize>, BTreeMap<String, usize>)) {
    let gh: usize = calls.0.values().sum();
    let aws: usize = calls.1.values().sum();
    println!("\n### {title}\n");
    println!(
        "{runners} runners; GitHub calls: {gh} ({:.2} per runner); AWS calls: {aws} ({:.2} per runner)\n",
        gh as f64 / runners as f64,
        aws as f64 / runners as f64
    );
    println!("| call | count |\n|---|---|");
    for (k, v) in calls.0.iter().chain(calls.1.iter()) {
        println!("| `{k}` | {v} |");
    }
}

#[tokio::main]
async fn main() {
    let jobs: usize = std::env::var("BENCH_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    println!("# Scale-up benchmark\n");

    // 1. Call counts for a batch of 10.
    for (title, overrides) in [
        ("ephemeral, JIT (Terraform defaults for ephemeral: queued check off), no maximum", vec![]),
        (
            "ephemeral, JIT, maximum 100 (instances counted before and after the launch)",
            vec![("RUNNERS_MAXIMUM_COUNT", "100")],
        ),
        (
            "reusable, registration token (queued check on)",
            vec![("ENABLE_EPHEMERAL_RUNNERS", "false"), ("ENABLE_JIT_CONFIG", ""), ("ENABLE_JOB_QUEUED_CHECK", "true")],
        ),
    ] {
        let b = Bench::new().await;
        let f = b.function(&overrides).await;
        for (phase, base) in [("cold", 0), ("warm", 100)] {
            for i in 0..10 {
                b.github.add_job("acme", "web", &["self-hosted"]);
                let _ = i;
            }
            b.reset();
            let ids: Vec<u64> = b.github.jobs().iter().rev().take(10).map(|j| j.id).collect();
            let messages: Vec<Value> = if overrides.iter().any(|(k, _)| *k == "ENABLE_JOB_QUEUED_CHECK") {
                ids.iter().map(|id| b.message(*id)).collect()
            } else {
                (0..10).map(|i| b.message(base + i)).collect()
            };
            let response = f.invoke_unsettled(event(&messages)).await.unwrap();
            assert_eq!(response["batchItemFailures"], json!([]), "{response}");
            table(&format!("{title} — {phase}"), 10, &b.calls());
        }
    }

    // 2. Jobs through SQS, one scale-up process (upstream's default reserved concurrency).
    let b = Bench::new().await;
    let f = b.function(&[]).await;
    println!("\n## {jobs} jobs through SQS (batch size 10, one scale-up process, one App)\n");
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(10) {
        let entries: Vec<aws_sdk_sqs::types::SendMessageBatchRequestEntry> = chunk
            .iter()
            .map(|i| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(b.message(10_000 + *i as u64).to_string())
                    .build()
                    .unwrap()
            })
            .collect();
        b.aws.sqs.send_message_batch().queue_url(&b.stack.queue_url).set_entries(Some(entries)).send().await.unwrap();
    }
    b.reset();
    let source = SqsEventSource::new(b.aws.sqs.clone(), &b.stack.queue_url, 10);
    let started = Instant::now();
    let mut invocations = 0;
    let mut retried = 0;
    let mut empty_polls = 0;
    while empty_polls < 3 {
        match source.poll_once(&f).await {
            Some(poll) => {
                invocations += 1;
                retried += poll.retried;
                empty_polls = 0;
            }
            None => {
                empty_polls += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let wall = started.elapsed();
    let instances = b.live_instances().await;
    let calls = b.calls();
    let jit = calls.0.get("POST /orgs/{org}/actions/runners/generate-jitconfig").copied().unwrap_or(0);
    let refused = b.github.requests().iter().filter(|r| r.status == 403 || r.status == 429).count();
    println!("| measure | value |\n|---|---|");
    println!("| wall time until all instances exist and are registered | {:.1} s |", wall.as_secs_f64());
    println!("| instances in moto | {instances} |");
    println!("| JIT configs created | {jit} ({:.2} per second) |", jit as f64 / wall.as_secs_f64());
    println!("| invocations | {invocations} (messages retried: {retried}) |");
    println!("| GitHub answers 403/429 (secondary limit) | {refused} |");
    table("calls for all jobs", instances.max(1), &calls);
}
