//! `ghr-local`: the four functions on this machine against real AWS and a real GitHub App, to
//! try a configuration before deploying it (as upstream's `local.ts` entry points do).
//!
//! Configure it as the deployed functions are: export the variables Terraform sets on them
//! (all four in one environment; e.g. `aws lambda get-function-configuration --function-name
//! <prefix>-scale-up --query Environment.Variables`), and AWS credentials and region the usual
//! way. See the README's "Try it locally" section.
//!
//! `ghr-local [--listen 127.0.0.1:8080] [--scale-down-every 300] [--batch-size 10] [--event-queue URL]
//!            [--pool SIZE --pool-every SECONDS]`
//!
//! EventBridge mode (`EVENT_BUS_NAME` set): the webhook publishes on the bus; `--event-queue`
//! names an SQS queue that a rule on the bus (`workflow_job`, `queued`) targets, which the
//! dispatcher is fed from. Without it, jobs are routed directly.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use local::{Environments, Event, Local, Options};

fn usage() -> ! {
    eprintln!(
        "usage: ghr-local [--listen ADDRESS:PORT] [--scale-down-every SECONDS] [--batch-size 1-10] [--event-queue SQS_URL] \
         [--pool SIZE [--pool-every SECONDS]]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut listen = "127.0.0.1:8080".to_string();
    let mut every = 300u64;
    let mut batch = 10i32;
    let mut event_queue = None;
    let mut pool_size: Option<usize> = None;
    let mut pool_every = 300u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--listen" => listen = value(),
            "--scale-down-every" => every = value().parse().unwrap_or_else(|_| usage()),
            "--event-queue" => event_queue = Some(value()),
            "--pool" => pool_size = Some(value().parse().unwrap_or_else(|_| usage())),
            "--pool-every" => pool_every = value().parse().unwrap_or_else(|_| usage()),
            "--batch-size" => batch = value().parse().ok().filter(|b| (1..=10).contains(b)).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    common::telemetry::init_logging();
    let sdk = common::aws::load_sdk_config(Duration::from_secs(5), 3).await;
    let mut options = Options::new(
        listen.parse().map_err(|e| format!("--listen {listen}: {e}"))?,
        Arc::new(common::telemetry::StdoutSink),
    );
    options.scale_down_every = Duration::from_secs(every);
    options.batch_size = batch;
    options.event_queue = event_queue;
    options.pool = pool_size.map(|size| (size, Duration::from_secs(pool_every)));
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let local = Local::start(&Environments::from_process(), &sdk, options, events).await?;
    println!("webhook listening on {} (POST GitHub deliveries there); Ctrl-C stops", local.webhook_url);
    loop {
        tokio::select! {
            event = received.recv() => match event {
                Some(Event::Webhook { delivery, event, status, body }) => println!("webhook  {event} {delivery}: {status} {body}"),
                Some(Event::Dispatcher(outcome)) => println!("dispatcher {outcome:?}"),
                Some(Event::ScaleUp { queue, bodies, retried }) => println!("scale-up {} messages from {queue}, {retried} returned for retry", bodies.len()),
                Some(Event::ScaleDown(summary)) => println!("scale-down {summary}"),
                Some(Event::Syncer(result)) => println!("syncer   {result:?}"),
                Some(Event::Pool(result)) => println!("pool     {result:?}"),
                Some(Event::WarmPool(result)) => println!("warm-pool {result:?}"),
                Some(Event::JobRetry { bodies, retried }) => println!("job-retry {} messages, {retried} returned for retry", bodies.len()),
                Some(Event::SsmHousekeeper(result)) => println!("ssm-housekeeper {result:?}"),
                Some(Event::Redelivery(summary)) => println!("redelivery {summary}"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    local.stop().await;
    Ok(())
}
