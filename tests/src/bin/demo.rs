//! `make demo`: the whole system on one machine (see `tests::demo`).
//!
//! `demo [--jobs N] [--ephemeral] [--org | --repo] [--max-runners N] [--job-seconds S]
//!       [--minimum-running-minutes M] [--timeout SECONDS] [--direct] [--pool N] [--outage SECONDS]
//!       [--warm-pool N] [--boot-seconds S] [--start-seconds S]`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use tests::demo::{DEMO_FRESH_BOOT_SECONDS, DEMO_TIME_SCALE, DemoOptions, run};

fn usage() -> ! {
    eprintln!(
        "usage: demo [--jobs N] [--ephemeral] [--org | --repo] [--max-runners N] [--job-seconds S] \
         [--minimum-running-minutes M] [--timeout SECONDS] [--direct] [--pool N] [--outage SECONDS] \
         [--warm-pool N] [--boot-seconds S] [--start-seconds S]"
    );
    std::process::exit(2)
}

fn number<T: std::str::FromStr>(value: Option<String>) -> T {
    value.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())
}

#[tokio::main]
async fn main() {
    let mut options = DemoOptions::default();
    let mut boot_seconds = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--jobs" => options.jobs = number(args.next()),
            "--ephemeral" => options.ephemeral = true,
            "--org" => options.org = true,
            "--repo" => options.org = false,
            "--max-runners" => options.max_runners = number(args.next()),
            "--job-seconds" => options.job_seconds = number(args.next()),
            "--minimum-running-minutes" => options.minimum_running_minutes = number(args.next()),
            "--direct" => options.direct = true,
            "--pool" => options.pool = number(args.next()),
            "--outage" => options.outage_seconds = number(args.next()),
            "--warm-pool" => options.warm_pool = number(args.next()),
            "--boot-seconds" => boot_seconds = Some(number(args.next())),
            "--start-seconds" => options.start_seconds = number(args.next()),
            "--timeout" => options.timeout = Duration::from_secs(number(args.next())),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    // A warm pool is about the boot it saves: the instance side models EC2's times (at 1/20).
    options.boot_seconds = boot_seconds.unwrap_or(if options.warm_pool > 0 { DEMO_FRESH_BOOT_SECONDS } else { 1.0 });
    if options.warm_pool > 0 {
        println!(
            "Instance side: a fresh instance boots in {:.2} s, a stopped one starts in {:.2} s (EC2's ~{:.0} s and ~{:.0} s at 1/{DEMO_TIME_SCALE:.0}, docs/performance.md)",
            options.boot_seconds,
            options.start_seconds,
            options.boot_seconds * DEMO_TIME_SCALE,
            options.start_seconds * DEMO_TIME_SCALE,
        );
    }
    if options.pool > 0 && !options.org {
        eprintln!("--pool needs organization runners (as upstream's pool)");
        std::process::exit(2);
    }
    println!(
        "GitHub Actions runners on AWS, on this machine: {} jobs, {} {} runners (at most {}), each job {:.0} s, {}\n",
        options.jobs,
        if options.ephemeral { "ephemeral JIT" } else { "reusable" },
        if options.org { "organization" } else { "repository" },
        options.max_runners,
        options.job_seconds,
        if options.direct {
            "direct mode (webhook → queue)"
        } else {
            "EventBridge mode (webhook → bus → dispatcher → queue)"
        }
    );
    match run(options).await {
        Ok(summary) => {
            print!("{}", summary.render());
            std::process::exit(if summary.ok() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    }
}
