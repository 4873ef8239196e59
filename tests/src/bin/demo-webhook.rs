//! `make demo` (until the local stack lands): the webhook function for real.
//!
//! Starts moto, creates what Terraform would (two runner queues, the webhook secret and the
//! matcher config in SSM), runs the built webhook binary under the Lambda runtime emulator,
//! sends it every real GitHub payload signed with the secret (plus one forged delivery), and
//! prints each answer and then every message that reached SQS. Exits non-zero if anything is
//! not as expected.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use common::github::signature::sign;
use serde_json::json;
use tests::aws::Aws;
use tests::fixtures;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("Starting moto (the AWS emulator)...");
    let moto = Moto::shared();
    println!("  moto on {} (started in {} ms)", moto.endpoint, moto.startup.as_millis());
    let aws = Aws::new(moto).await;
    let prefix = unique("demo");
    let linux = aws.create_queue(&format!("{prefix}-linux"), false).await;
    let gpu = aws.create_queue(&format!("{prefix}-gpu.fifo"), true).await;
    let matchers = json!([
        {"id": linux, "arn": "arn:aws:sqs:eu-west-1:123456789012:linux", "key": "linux",
         "matcherConfig": {"labelMatchers": [["self-hosted", "ubuntu-latest"]], "exactMatch": true}},
        {"id": gpu, "arn": "arn:aws:sqs:eu-west-1:123456789012:gpu.fifo", "fifo": true, "key": "gpu",
         "matcherConfig": {"labelMatchers": [["gpu"]], "exactMatch": false}}
    ]);
    let root = format!("/github-action-runners/{prefix}");
    aws.put_parameter(&format!("{root}/webhook/runner-matcher-config"), &matchers.to_string(), false).await;
    let secret = "demo-webhook-secret";
    aws.put_parameter(&format!("{root}/app/github_app_webhook_secret"), secret, true).await;
    println!("  created queues {prefix}-linux, {prefix}-gpu.fifo and the SSM parameters under {root}");

    let binary = std::env::current_exe()?.with_file_name("lambda-webhook");
    let mut env: Vec<(String, String)> = vec![
        ("PARAMETER_GITHUB_APP_WEBHOOK_SECRET".into(), format!("{root}/app/github_app_webhook_secret")),
        ("PARAMETER_RUNNER_MATCHER_CONFIG_PATH".into(), format!("{root}/webhook/runner-matcher-config")),
        ("ENVIRONMENT".into(), prefix.clone()),
    ];
    env.extend(moto.lambda_env());
    let webhook = LambdaFunction::spawn(&binary, &format!("{prefix}-webhook"), &env, Duration::from_secs(10)).await;
    let init = webhook.ready(Duration::from_secs(30)).await.map_err(|e| format!("the webhook did not start: {e}"))?;
    println!("\nWebhook function started under the Lambda runtime emulator, ready in {} ms\n", init.as_millis());

    let mut deliveries: Vec<(String, String, String, String)> = fixtures::ALL
        .iter()
        .map(|(file, event)| {
            let body = fixtures::webhook(file);
            (file.to_string(), event.to_string(), sign(secret.as_bytes(), body.as_bytes()), body)
        })
        .collect();
    let gpu_job = fixtures::workflow_job("queued", 9001, &["gpu"], "acme", "ml", 42);
    deliveries.push((
        "derived: queued job with label gpu".into(),
        "workflow_job".into(),
        sign(secret.as_bytes(), gpu_job.as_bytes()),
        gpu_job,
    ));
    let queued = fixtures::webhook(fixtures::QUEUED);
    deliveries.push((
        "forged: wrong signature".into(),
        "workflow_job".into(),
        sign(b"attacker", queued.as_bytes()),
        queued,
    ));

    let mut expected_ok = true;
    for (name, event, signature, body) in deliveries {
        let lambda_event = json!({
            "version": "2.0", "rawPath": "/webhook",
            "headers": {"x-github-event": event, "x-hub-signature-256": signature, "x-github-delivery": unique("delivery")},
            "requestContext": {"http": {"method": "POST"}},
            "body": body, "isBase64Encoded": false
        });
        let answer = webhook.invoke(lambda_event).await.map_err(|e| format!("{name}: {e}"))?;
        let status = answer["statusCode"].as_u64().unwrap_or(0);
        println!("POST {name:<55} {event:<13} → {status} {}", answer["body"].as_str().unwrap_or(""));
        let should = if name.starts_with("forged") {
            401
        } else if event == "workflow_job" {
            201
        } else {
            202
        };
        expected_ok &= status == should;
    }

    println!("\nMessages that reached SQS:");
    let mut count = 0;
    for (label, url) in [("linux", &linux), ("gpu.fifo", &gpu)] {
        for (body, group) in aws.drain(url).await {
            count += 1;
            println!("  [{label}] group={} {body}", group.unwrap_or_else(|| "-".into()));
        }
    }
    println!();
    if expected_ok && count == 2 {
        println!("OK: 2 queued jobs enqueued, everything else answered and dropped as GitHub expects.");
        Ok(())
    } else {
        Err(format!("unexpected result: answers as expected = {expected_ok}, messages queued = {count} (expected 2)")
            .into())
    }
}
