//! Pool benchmark: `cargo bench -p tests --bench pool` (`make bench-pool`).
//!
//! One run of the built pool function tops an organization's pool up from empty to
//! `BENCH_POOL_SIZE` (100) runners, against moto (behind the counting proxy) and the fake GitHub
//! enforcing GitHub's secondary rate limits: wall time, and GitHub and AWS calls per runner
//! (the goal: what a scale-up batch costs per runner, JIT configs at the paced rate). A second
//! run right after finds the pool full: what a steady-state run costs.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::aws_proxy::AwsProxy;
use tests::fake_github::FakeGithub;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

fn print_calls(title: &str, github: &BTreeMap<String, usize>, aws: &BTreeMap<String, usize>, runners: usize) {
    let (gh, aws_total): (usize, usize) = (github.values().sum(), aws.values().sum());
    let per = |n: usize| if runners == 0 { n as f64 } else { n as f64 / runners as f64 };
    println!("\n### {title}\n");
    println!("| calls | total | per runner |\n|---|---|---|");
    println!("| GitHub | {gh} | {:.2} |", per(gh));
    println!("| AWS | {aws_total} | {:.2} |", per(aws_total));
    println!();
    for (k, v) in github.iter().chain(aws.iter()) {
        println!("- {k}: {v}");
    }
}

#[tokio::main]
async fn main() {
    let size: usize = std::env::var("BENCH_POOL_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let moto = Moto::shared();
    moto.warm_ec2().await;
    let aws = Aws::new(moto).await;
    let github = FakeGithub::start().await;
    let app = TestApp::new(1, 4343);
    github.add_app(app.id, app.public_pem.as_bytes());
    github.add_installation(app.id, "acme", "Organization");
    let stack = RunnerStack::create(&aws, &unique("bench-pool"), &[app]).await;
    let proxy = AwsProxy::start(&moto.endpoint).await;
    let mut env = stack.scale_up_env(
        &github.url,
        &[("RUNNER_OWNER", "acme"), ("RUNNER_BOOT_TIME_IN_MINUTES", "5"), ("POOL_HOLD_MINUTES", "30")],
    );
    env.extend(moto.lambda_env());
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.url.clone()));
    env.push(("LOG_LEVEL".into(), "warn".into()));
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lambda-pool"));
    let pool = LambdaFunction::spawn(&binary, &stack.prefix, &env, Duration::from_secs(900)).await;
    pool.ready(Duration::from_secs(30)).await.unwrap();
    println!("# Pool benchmark\n\nbinary: `{}`; pool of {size} from empty, one App\n", binary.display());

    github.clear_requests();
    let started = Instant::now();
    let answer = pool.invoke(json!({"poolSize": size, "type": "ec2"})).await.unwrap();
    let wall = started.elapsed();
    let created = answer["created"].as_array().map_or(0, Vec::len);
    let (gh, aws_calls) = (github.request_counts(), proxy.counts());
    let limited = github.requests().iter().filter(|r| r.status == 403 || r.status == 429).count();
    println!("| measure | value |\n|---|---|");
    println!("| runners created | {created} of {size} |");
    println!("| wall time of the run | {:.1} s |", wall.as_secs_f64());
    println!("| JIT configs per second | {:.2} |", created as f64 / wall.as_secs_f64());
    println!("| GitHub 403/429 answers | {limited} |");
    println!("| failures | {} |", answer["failures"]);
    print_calls(
        "Top-up from empty (a fresh process: token, runner group and App parameters included)",
        &gh,
        &aws_calls,
        created,
    );

    github.clear_requests();
    let before = proxy.counts();
    let started = Instant::now();
    let steady = pool.invoke(json!({"poolSize": size, "type": "ec2"})).await.unwrap();
    println!(
        "\nSecond run, pool full ({} booting): {:.2} s, {} launched",
        steady["booting"],
        started.elapsed().as_secs_f64(),
        steady["requested"]
    );
    let after: BTreeMap<String, usize> = proxy
        .counts()
        .into_iter()
        .map(|(k, v)| {
            let was = before.get(&k).copied().unwrap_or(0);
            (k, v - was)
        })
        .filter(|(_, v)| *v > 0)
        .collect();
    print_calls("Steady state (nothing to launch), calls of the run", &github.request_counts(), &after, 1);
}
