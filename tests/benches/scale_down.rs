//! Scale-down benchmark: `cargo bench -p tests --bench scale_down` (`make bench-scale-down`).
//!
//! 1,000 runner instances of one organization (`BENCH_INSTANCES`), 100 of them busy, all past their minimum running
//! time. One scheduled run of the built binary against moto (behind the counting proxy) and the
//! fake GitHub (which enforces GitHub's secondary rate limits): the GitHub and EC2 calls it makes
//! and its wall time, first with Terraform's defaults (60 s timeout, 15 s job-start grace), then
//! a second run on the same fleet with Lambda's longest timeout (900 s), which removes every idle
//! runner the first left.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::domain::runner::{RunnerOwner, tags};
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::aws_proxy::AwsProxy;
use tests::fake_github::{FakeGithub, Scope};
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

/// Runner instances (`BENCH_INSTANCES`, default 1,000), a tenth of them busy.
fn instances() -> usize {
    std::env::var("BENCH_INSTANCES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

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

    /// Runner instances with online runners, the first tenth running a job.
    async fn runners(&self) {
        let owner = RunnerOwner::Org("acme".into());
        let total = instances();
        // One instance per reservation, as scale-up's fleets of a few instances give: moto pages
        // DescribeInstances by reservation, so one reservation of 1,000 instances would be one
        // 9-second page that no SDK attempt timeout lets through.
        use futures::StreamExt;
        let ids: Vec<String> = futures::stream::iter(0..total)
            .map(|_| self.stack.launch_instances(&self.aws, &owner, 1))
            .buffer_unordered(8)
            .flat_map(futures::stream::iter)
            .collect()
            .await;
        for (i, id) in ids.iter().enumerate() {
            self.github.add_runner(Scope::org("acme"), id, true, i < total / 10);
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
        (self.github.request_counts(), self.proxy.counts())
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

/// One scheduled run on the bench's world, as it stands after the previous runs.
async fn scenario(b: &Bench, title: &str, timeout: Duration) {
    let f = b.function(timeout).await;
    b.reset();
    let started = Instant::now();
    let out = f.invoke(scheduled_event()).await.unwrap();
    let wall = started.elapsed();
    let (gh, aws) = b.calls();
    let refused = b.github.requests().iter().filter(|r| r.status == 403 || r.status == 429).count();
    let busy_alive = b.github.runners().iter().filter(|r| r.busy_actual).count();
    let registered = b.github.runners().len();
    println!("\n## {title}\n");
    if out["errors"].as_u64().unwrap_or(0) > 0 {
        for line in f.logs().iter().filter(|l| l.contains("ERROR") || l.contains("WARN")) {
            println!("    {line}");
        }
    }
    println!("| measure | value |\n|---|---|");
    println!("| wall time of the run | {:.1} s |", wall.as_secs_f64());
    println!("| instances seen | {} |", out["seen"]);
    println!("| terminated (idle) | {} |", out["terminated"]["idle"].as_array().map_or(0, Vec::len));
    println!("| left for the next run (time budget) | {} |", out["deferred"]);
    println!("| busy runners kept | {} (busy runners still registered: {busy_alive}) |", out["skippedBusy"]);
    println!("| runners registered after the run | {registered} |");
    println!("| errors | {} |", out["errors"]);
    println!("| GitHub answers 403/429 (secondary limit) | {refused} |");
    println!("\n| call | count |\n|---|---|");
    for (k, v) in gh.iter().chain(aws.iter()) {
        println!("| `{k}` | {v} |");
    }
    println!("\nGitHub calls: {}; EC2 calls: {}", gh.values().sum::<usize>(), aws.values().sum::<usize>());
}

/// How long moto takes to answer one `DescribeInstances` page of 200 runner instances with
/// scale-down's filters: most of a run's listing time here is moto's (a Python server scanning
/// and rendering every instance), not the function's.
async fn moto_page_time(b: &Bench) -> Duration {
    let filter = |k: &str, v: &str| aws_sdk_ec2::types::Filter::builder().name(k).values(v).build();
    let started = Instant::now();
    b.aws
        .ec2
        .describe_instances()
        .filters(filter("instance-state-name", "running"))
        .filters(filter(&format!("tag:{}", tags::ENVIRONMENT), &b.stack.prefix))
        .filters(filter(&format!("tag:{}", tags::APPLICATION), tags::APPLICATION_VALUE))
        .max_results(200)
        .send()
        .await
        .unwrap();
    started.elapsed()
}

#[tokio::main]
async fn main() {
    println!("# Scale-down benchmark\n");
    let total = instances();
    println!("{total} runner instances of one organization, {} busy, all past the minimum running time.", total / 10);
    let b = Bench::new().await;
    b.runners().await;
    println!(
        "moto answers one `DescribeInstances` page of 200 of them in {:.1} s.",
        moto_page_time(&b).await.as_secs_f64()
    );
    scenario(&b, "Run 1: Terraform's defaults (timeout 60 s, job-start grace 15 s)", Duration::from_secs(60)).await;
    scenario(&b, "Run 2: the next run, with Lambda's longest timeout (900 s)", Duration::from_secs(900)).await;
}
