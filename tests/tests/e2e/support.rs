//! Shared setup for the end-to-end tests.

use std::path::PathBuf;

/// Path of a function binary built for the tests (`lambda-<name>`).
/// The Terraform apply tests (each runs several terraform and moto processes at once) hold it
/// shared; the tests whose outcome depends on AWS answering within a few seconds hold it alone,
/// so they never run on a machine those applies saturate (2 cores in CI).
pub static HEAVY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub fn binary(name: &str) -> PathBuf {
    let path = match name {
        "webhook" => env!("CARGO_BIN_EXE_lambda-webhook"),
        "scale-up" => env!("CARGO_BIN_EXE_lambda-scale-up"),
        "scale-down" => env!("CARGO_BIN_EXE_lambda-scale-down"),
        "syncer" => env!("CARGO_BIN_EXE_lambda-syncer"),
        "dispatcher" => env!("CARGO_BIN_EXE_lambda-dispatcher"),
        "pool" => env!("CARGO_BIN_EXE_lambda-pool"),
        "warm-pool" => env!("CARGO_BIN_EXE_lambda-warm-pool"),
        "job-retry" => env!("CARGO_BIN_EXE_lambda-job-retry"),
        "ssm-housekeeper" => env!("CARGO_BIN_EXE_lambda-ssm-housekeeper"),
        "ami-housekeeper" => env!("CARGO_BIN_EXE_lambda-ami-housekeeper"),
        // Terraform deploys the one binary as three functions, by the events they receive.
        "termination-watcher" | "spot-termination-notification" | "spot-termination-handler" | "deregister-retry" => {
            env!("CARGO_BIN_EXE_lambda-termination-watcher")
        }
        // Terraform names the function `<prefix>-webhook-redelivery`.
        "redelivery" | "webhook-redelivery" => env!("CARGO_BIN_EXE_lambda-redelivery"),
        other => panic!("no function {other}"),
    };
    PathBuf::from(path)
}

/// `(name, value)` pairs as owned strings.
pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The built scale-up with Terraform's environment for `stack` (plus `overrides`), GitHub at
/// `github_url` and AWS through the fault proxy at `proxy_url`.
pub async fn scale_up_behind_proxy(
    stack: &tests::stack::RunnerStack,
    github_url: &str,
    proxy_url: &str,
    overrides: &[(&str, &str)],
    timeout: std::time::Duration,
) -> tests::lambda_emulator::LambdaFunction {
    let mut env = stack.scale_up_env(github_url, overrides);
    env.extend(tests::moto::Moto::shared().lambda_env());
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy_url.to_string()));
    tests::lambda_emulator::LambdaFunction::spawn(
        &binary("scale-up"),
        &format!("{}-scale-up", stack.prefix),
        &env,
        timeout,
    )
    .await
}
