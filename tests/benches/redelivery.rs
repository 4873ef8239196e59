//! Redelivery benchmark: `cargo bench -p tests --bench redelivery` (`make bench-redelivery`).
//!
//! The local stack (`make demo`'s, EventBridge mode, ephemeral JIT runners) with the webhook
//! endpoint down for `BENCH_OUTAGE_SECONDS` (20) while a burst of `BENCH_JOBS` (50) jobs is
//! queued: every delivery fails, and the redelivery function (every 10 s here, 5 minutes by
//! default when deployed) recovers them. Reports the GitHub calls the redelivery made per
//! recovered job, and the time from the endpoint's recovery to the last job taken by a runner
//! (the goal: within one schedule period plus the scale-up time).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Duration;

use tests::demo::{DemoOptions, run};

#[tokio::main]
async fn main() {
    let jobs: usize = std::env::var("BENCH_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let outage: u64 = std::env::var("BENCH_OUTAGE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let options = DemoOptions {
        jobs,
        ephemeral: true,
        max_runners: jobs + 10,
        job_seconds: 2.0,
        boot_seconds: 1.0,
        delay_seconds: 0,
        verbose: false,
        timeout: Duration::from_secs(600),
        outage_seconds: outage,
        ..DemoOptions::default()
    };
    let summary = run(options).await.unwrap();
    assert!(summary.ok(), "{}", summary.render());
    let calls = |key: &str| summary.github_calls.iter().filter(|(k, _)| k.contains(key)).map(|(_, v)| v).sum::<usize>();
    let (lists, redeliveries) = (calls("GET /app/hook/deliveries"), calls("POST /app/hook/deliveries/{id}/attempts"));
    let recovered = summary.deliveries_failed.max(1);
    println!("# Redelivery benchmark\n");
    println!(
        "{jobs} jobs queued during a {outage} s endpoint outage (+1 matching no configuration); redelivery every 10 s\n"
    );
    println!("| figure | value |\n|---|---|");
    println!("| deliveries failed | {} |", summary.deliveries_failed);
    println!("| redeliveries requested | {} |", summary.redelivered);
    println!("| jobs completed | {}/{} |", summary.jobs_completed, summary.jobs_queued);
    println!("| runners launched | {} |", summary.runners_launched);
    println!(
        "| redelivery's GitHub calls per recovered delivery | {:.2} ({lists} log reads, {redeliveries} redeliveries) |",
        (lists + redeliveries) as f64 / recovered as f64
    );
    println!(
        "| endpoint back → last job on a runner | {} |",
        summary.recovery_to_last_started.map_or("n/a".into(), |s| format!("{s:.1} s"))
    );
    println!(
        "| queued → runner online with the job, p50 / p95 | {:.1} s / {:.1} s |",
        tests::percentile(&summary.queued_to_started, 0.5).unwrap_or(f64::NAN),
        tests::percentile(&summary.queued_to_started, 0.95).unwrap_or(f64::NAN)
    );
    println!("\nwall time {:.1} s", summary.wall_seconds);
}
