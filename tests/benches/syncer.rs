//! Syncer benchmark: `cargo bench -p tests --bench syncer` (`make bench-syncer`).
//!
//! Mirrors a generated 200 MB runner tarball from the fake GitHub to moto S3 through the built
//! function binary, and reports the wall time and the function's peak RSS (goal: ≤ 64 MiB,
//! flat whatever the size).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use serde_json::json;
use tests::aws::Aws;
use tests::fake_github::{AssetContent, FakeGithub};
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};

#[tokio::main]
async fn main() {
    let size: u64 = std::env::var("BENCH_ASSET_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(200) * 1_000_000;
    let moto = Moto::shared();
    let aws = Aws::new(moto).await;
    let bucket = unique("bench-dist");
    aws.s3
        .create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::EuWest1).build(),
        )
        .send()
        .await
        .unwrap();
    let github = FakeGithub::start().await;
    let name = "actions-runner-linux-x64-2.321.0.tar.gz";
    github.add_release("v2.321.0", vec![(name, AssetContent::Generated { size, seed: 42 })], true);
    let mut env: Vec<(String, String)> = vec![
        ("S3_BUCKET_NAME".into(), bucket.clone()),
        ("S3_OBJECT_KEY".into(), "actions-runner-linux.tar.gz".into()),
        ("S3_SSE_ALGORITHM".into(), "AES256".into()),
        ("LOG_LEVEL".into(), "warn".into()),
        (common::config::test_overrides::GITHUB_API_URL.into(), github.url.clone()),
    ];
    env.extend(moto.lambda_env());
    let f = LambdaFunction::spawn(
        &std::path::PathBuf::from(env!("CARGO_BIN_EXE_lambda-syncer")),
        "bench-syncer",
        &env,
        Duration::from_secs(900),
    )
    .await;
    f.ready(Duration::from_secs(30)).await.unwrap();
    let idle_rss = f.peak_rss_kib().unwrap_or(0);
    // Sample the RSS while it runs, to see it stay flat.
    let pid = f.pid;
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        loop {
            let rss = std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            });
            match rss {
                Some(r) => samples.push(r),
                None => return samples,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = Instant::now();
    let out = f.invoke(json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})).await.unwrap();
    let wall = started.elapsed();
    assert_eq!(out["result"], "synced", "{out}");
    let peak = f.peak_rss_kib().unwrap_or(0);
    sampler.abort();
    let head = aws.s3.head_object().bucket(&bucket).key("actions-runner-linux.tar.gz").send().await.unwrap();
    assert_eq!(head.content_length(), Some(size as i64));
    println!("# Syncer benchmark\n");
    println!("| measure | value |\n|---|---|");
    println!("| asset size | {:.0} MB |", size as f64 / 1e6);
    println!(
        "| wall time (fake GitHub → syncer → moto S3, multipart, SHA-256 checked) | {:.1} s |",
        wall.as_secs_f64()
    );
    println!("| throughput | {:.0} MB/s |", size as f64 / 1e6 / wall.as_secs_f64());
    println!("| peak RSS before the sync | {:.1} MiB |", idle_rss as f64 / 1024.0);
    println!("| peak RSS of the function (VmHWM) | {:.1} MiB |", peak as f64 / 1024.0);
}
