//! Scale-down benchmark: `cargo bench -p tests --bench scale_down` (`make bench-scale-down`).
//!
//! 1,000 runner instances of one organization, 100 of them busy, all past their minimum running
//! time. One scheduled run of the built binary against moto (behind the counting proxy) and the
//! fake GitHub (which enforces GitHub's secondary rate limits): the GitHub and EC2 calls it makes
//! and its wall time, first with Terraform's defaults (60 s timeout, 15 s job-start grace), then
//! with Lambda's longest timeout (900 s), where one run removes every idle runner.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::domain::runner::RunnerOwner;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::aws_proxy::AwsProxy;
use tests::fake_github::{FakeGithub, Scope};
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

const INSTANCES: usize = 1000;
const BUSY: usize = 100;

struct Bench {
    aws: Aws,
    stack: RunnerStack,
    github: FakeGithub,
    proxy: AwsProxy,
    clock_file: std::path::PathBuf,
}

impl Bench {
    async fn new() -> Self {
        let moto = Moto::shared();
        moto.warm_ec2().await;
        let aws = Aws::new(moto).await;
        let github = FakeGithub::start().await;
        let app = TestApp::new(1, 4343);
        github.add_app(app.id, app.public_pem.as_bytes());
        github.add_installation(app.id, "acme", "Organization");
        let stack = RunnerStack::create(&aws, &unique("bench-sd"), &[app]).await;
        let proxy = AwsProxy::start(&moto.endpoint).await;
        let clock_file = std::env::temp_dir().join(format!("{}-clock", stack.prefix));
        Self { aws, stack, github, proxy, clock_file }
    }

    /// `INSTANCES` runner instances with online runners, the first `BUSY` running a job.
    async fn runners(&self) {
        let owner = RunnerOwner::Org("acme".into());
        let mut ids = Vec::new();
        while ids.len() < INSTANCES {
            let n = (INSTANCES - ids.len()).min(250);
            ids.extend(self.stack.launch_instances(&self.aws, &owner, n).await);
        }
        for (i, id) in ids.iter().enumerate() {
            self.github.add_runner(Scope::org("acme"), id, true, i < BUSY);
        }
        // Every instance is past the minimum running time (5 minutes).
        std::fs::write(&self.clock_file, (chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339()).unwrap();
    }

    async fn function(&self, timeout: Duration) -> LambdaFunction {
        let mut env = self.stack.scale_down_env(
            &self.github.url,
            &self.clock_file.to_string_lossy(),
            &[("RUNNER_JOB_START_GRACE_SECONDS", "15"), ("LOG_LEVEL", "warn")],
        );
        env.extend(Moto::shared().lambda_env());
        env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        env.push(("AWS_ENDPOINT_URL".into(), self.proxy.url.clone()));
        let f = LambdaFunction::spawn(
            &std::path::PathBuf::from(env!("CARGO_BIN_EXE_lambda-scale-down")),
            &self.stack.prefix,
            &env,
            timeout,
        )
        .await;
        f.ready(Duration::from_secs(30)).await.unwrap();
        f
    }

    fn calls(&self) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        let mut gh = BTreeMap::new();
        for r in self.github.requests() {
            *gh.entry(r.endpoint).or_insert(0) += 1;
        }
        let mut aws = BTreeMap::new();
        for (action, _) in self.proxy.calls() {
            *aws.entry(action).or_insert(0) += 1;
        }
        (gh, aws)
    }

    fn reset(&self) {
        self.github.clear_requests();
        self.proxy.clear_calls();
    }
}

fn scheduled_event() -> Value {
    json!({"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
           "account": "123456789012", "time": chrono::Utc::now().to_rfc3339(), "region": "eu-west-1",
           "resources": ["arn:aws:events:eu-west-1:123456789012:rule/scale-down"], "detail": {}})
}

async fn scenario(title: &str, timeout: Duration) {
    let b = Bench::new().await;
    b.runners().await;
    let f = b.function(timeout).await;
    b.reset();
    let started = Instant::now();
    let out = f.invoke(scheduled_event()).await.unwrap();
    let wall = started.elapsed();
    let (gh, aws) = b.calls();
    let refused = b.github.requests().iter().filter(|r| r.status == 403 || r.status == 429).count();
    let busy_alive = b.github.runners().iter().filter(|r| r.busy_actual).count();
    println!("\n## {title}\n");
    println!("| measure | value |\n|---|---|");
    println!("| wall time of the run | {:.1} s |", wall.as_secs_f64());
    println!("| instances seen | {} |", out["seen"]);
    println!("| terminated (idle) | {} |", out["terminated"]["idle"].as_array().map_or(0, Vec::len));
    println!("| left for the next run (time budget) | {} |", out["deferred"]);
    println!("| busy runners kept | {} (busy runners still registered: {busy_alive}) |", out["skippedBusy"]);
    println!("| errors | {} |", out["errors"]);
    println!("| GitHub answers 403/429 (secondary limit) | {refused} |");
    println!("\n| call | count |\n|---|---|");
    for (k, v) in gh.iter().chain(aws.iter()) {
        println!("| `{k}` | {v} |");
    }
    println!("\nGitHub calls: {}; EC2 calls: {}", gh.values().sum::<usize>(), aws.values().sum::<usize>());
}

#[tokio::main]
async fn main() {
    println!("# Scale-down benchmark\n");
    println!("{INSTANCES} runner instances of one organization, {BUSY} busy, all past the minimum running time.");
    scenario("One run with Terraform's defaults (timeout 60 s, job-start grace 15 s)", Duration::from_secs(60)).await;
    scenario("One run with a 900 s timeout", Duration::from_secs(900)).await;
}
