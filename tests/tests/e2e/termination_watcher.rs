//! The termination watcher through its built binary against moto and the fake GitHub: a spot
//! interruption warning counts by instance type and deregisters the runner; a reclaim of a
//! runner still running its job is counted, waits on the retry queue, is refused again while
//! the job runs and goes once it ends; an instance of another deployment is left alone. Job
//! rescue: a job interrupted by a spot reclaim is re-run once it has failed, once, and scale-up
//! launches its runner on-demand.

use std::time::Duration;

use common::domain::runner::RunnerOwner;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::aws_proxy::AwsProxy;
use tests::event_source::SqsEventSource;
use tests::fake_github::{FakeGithub, Scope};
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

use crate::support::{binary, env, scale_up_behind_proxy};

fn event(detail_type: &str, detail: Value) -> Value {
    json!({"version": "0", "id": unique("evt"), "detail-type": detail_type, "source": "aws.ec2",
           "account": tests::moto::ACCOUNT, "time": chrono::Utc::now().to_rfc3339(), "region": tests::moto::REGION,
           "resources": [], "detail": detail})
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// The retry queue's messages as the event source mapping hands them over (one batch).
async fn take_batch(aws: &Aws, queue_url: &str) -> (Value, Vec<Value>) {
    let mut records = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let out = aws.sqs.receive_message().queue_url(queue_url).max_number_of_messages(10).send().await.unwrap();
        for m in out.messages() {
            let body = m.body().unwrap_or_default().to_string();
            bodies.push(serde_json::from_str::<Value>(&body).unwrap());
            records.push(json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": body,
                                "eventSource": "aws:sqs", "awsRegion": tests::moto::REGION, "attributes": {}, "messageAttributes": {}}));
            aws.sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if !records.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (json!({"Records": records}), bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_runners_are_counted_and_deregistered_a_busy_one_once_its_job_ends() {
    let moto = Moto::shared();
    moto.warm_ec2().await;
    let aws = Aws::new(moto).await;
    let github = FakeGithub::start().await;
    let app = TestApp::new(1, 4242);
    github.add_app(app.id, app.public_pem.as_bytes());
    github.add_installation(app.id, "acme", "Organization");
    let stack = RunnerStack::create(&aws, &unique("tw"), std::slice::from_ref(&app)).await;
    let retry_queue = aws.create_queue(&format!("{}-deregister-retry", stack.prefix), false).await;

    let acme = RunnerOwner::Org("acme".into());
    let launched = stack.launch_instances(&aws, &acme, 2).await;
    let (warned, reclaimed) = (launched[0].clone(), launched[1].clone());
    let warned_runner = github.add_runner(Scope::org("acme"), &format!("{}-{warned}", stack.prefix), true, false);
    let busy_runner = github.add_runner(Scope::org("acme"), &format!("{}-{reclaimed}", stack.prefix), true, true);
    // An instance of no deployment of ours (no ghr:environment tag).
    let foreign = aws.ec2.run_instances().image_id("ami-12c6146b").min_count(1).max_count(1).send().await.unwrap();
    let foreign = foreign.instances()[0].instance_id().unwrap().to_string();

    let mut vars = env(&[
        ("PREFIX", &stack.prefix),
        ("TAG_FILTERS", "null"),
        ("ENABLE_METRICS_SPOT_WARNING", "true"),
        ("ENABLE_METRICS_SPOT_TERMINATION", "true"),
        ("ENABLE_RUNNER_DEREGISTRATION", "true"),
        ("PARAMETER_GITHUB_APP_ID_NAME", &stack.app_id_parameters),
        ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", &stack.app_key_parameters),
        ("DEREGISTER_RETRY_QUEUE_URL", &retry_queue),
        ("ENVIRONMENT", &stack.prefix),
        ("LOG_LEVEL", "debug"),
        ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
        (common::config::test_overrides::GITHUB_API_URL, &github.url),
    ]);
    vars.extend(moto.lambda_env());
    let watcher = LambdaFunction::spawn(
        &binary("termination-watcher"),
        &format!("{}-spot-termination-notification", stack.prefix),
        &vars,
        Duration::from_secs(60),
    )
    .await;

    // The interruption warning: counted by type, the idle runner deregistered at once.
    let warning =
        event("EC2 Spot Instance Interruption Warning", json!({"instance-id": warned, "instance-action": "terminate"}));
    let answer = watcher.invoke(warning).await.unwrap();
    assert_eq!(ids(&answer["deregistered"]), std::slice::from_ref(&warned), "{answer}");
    assert!(github.runner(warned_runner).is_none(), "the warned instance's runner is gone");
    let warnings = watcher.metric("SpotInterruptionWarning");
    let instance_type = aws.ec2.describe_instances().instance_ids(&warned).send().await.unwrap().reservations()[0]
        .instances()[0]
        .instance_type()
        .map(|t| t.as_str().to_string())
        .unwrap();
    assert!(warnings.iter().any(|(n, v)| *n == 1.0 && v["InstanceType"] == instance_type), "{warnings:?}");

    // The reclaim (CloudTrail BidEvictedEvent) of the busy one and of a foreign instance.
    let evicted = json!({"eventSource": "ec2.amazonaws.com", "eventName": "BidEvictedEvent",
                         "serviceEventDetails": {"instanceIdSet": [reclaimed, foreign]}});
    let answer = watcher.invoke(event("AWS Service Event via CloudTrail", evicted)).await.unwrap();
    assert_eq!(ids(&answer["busy"]), std::slice::from_ref(&reclaimed), "{answer}");
    assert_eq!(ids(&answer["notOurs"]), std::slice::from_ref(&foreign), "{answer}");
    assert!(watcher.metric("SpotTermination").iter().any(|(n, _)| *n == 1.0));
    assert!(github.runner(busy_runner).is_some(), "GitHub refused: the job still runs");

    // The retry: still busy → queued again, counted up; the job ends → deregistered.
    let (batch, bodies) = take_batch(&aws, &retry_queue).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(
        (bodies[0]["instanceId"].as_str(), bodies[0]["owner"].as_str(), bodies[0]["retryCount"].as_u64()),
        (Some(reclaimed.as_str()), Some("acme"), Some(0))
    );
    let answer = watcher.invoke(batch).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let (batch, bodies) = take_batch(&aws, &retry_queue).await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["retryCount"], 1);
    assert_eq!(bodies[0]["runnerId"], busy_runner);
    github.set_runner_busy(busy_runner, false);
    let answer = watcher.invoke(batch).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert!(github.runner(busy_runner).is_none(), "deregistered once its job ended");
    let deregistered: f64 = watcher.metric("TerminatedRunnersDeregistered").iter().map(|(n, _)| n).sum();
    assert_eq!(deregistered, 2.0);
    let (_, left) = take_batch(&aws, &retry_queue).await;
    assert!(left.is_empty(), "nothing left to retry: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_a_spot_reclaim_interrupts_is_re_run_once_on_an_on_demand_runner() {
    let moto = Moto::shared();
    moto.warm_ec2().await;
    let aws = Aws::new(moto).await;
    let github = FakeGithub::start().await;
    let app = TestApp::new(1, 4343);
    github.add_app(app.id, app.public_pem.as_bytes());
    let installation = github.add_installation(app.id, "acme", "Organization");
    let stack = RunnerStack::create(&aws, &unique("rescue"), std::slice::from_ref(&app)).await;
    let retry_queue = aws.create_queue(&format!("{}-deregister-retry", stack.prefix), false).await;

    // A spot runner running a job; its job-started hook tagged the markers and the job's run.
    let acme = RunnerOwner::Org("acme".into());
    let instance = stack.launch_instances(&aws, &acme, 1).await.remove(0);
    let runner = github.add_runner(Scope::org("acme"), &format!("{}-{instance}", stack.prefix), true, false);
    let job = github.add_job("acme", "web", &["self-hosted", "linux"]);
    github.assign_job(job, runner, Duration::ZERO).unwrap();
    let run_id = github.job(job).unwrap().run_id;
    let started = chrono::Utc::now().timestamp_millis().to_string();
    let markers = [("ghr:job_started", started), ("ghr:job_run", format!("acme/web/{run_id}"))];
    for (key, value) in markers {
        aws.ec2
            .create_tags()
            .resources(&instance)
            .tags(aws_sdk_ec2::types::Tag::builder().key(key).value(value).build())
            .send()
            .await
            .unwrap();
    }

    let rescue_config =
        json!({"maxAttempts": 1, "queues": {stack.prefix.clone(): stack.queue_url.clone()}}).to_string();
    let mut vars = env(&[
        ("PREFIX", &stack.prefix),
        ("TAG_FILTERS", "null"),
        ("ENABLE_RUNNER_DEREGISTRATION", "false"),
        ("JOB_RESCUE_CONFIG", &rescue_config),
        ("PARAMETER_GITHUB_APP_ID_NAME", &stack.app_id_parameters),
        ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", &stack.app_key_parameters),
        ("DEREGISTER_RETRY_QUEUE_URL", &retry_queue),
        ("ENVIRONMENT", &stack.prefix),
        ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
        (common::config::test_overrides::GITHUB_API_URL, &github.url),
    ]);
    vars.extend(moto.lambda_env());
    let watcher = LambdaFunction::spawn(
        &binary("termination-watcher"),
        &format!("{}-spot-termination-notification", stack.prefix),
        &vars,
        Duration::from_secs(60),
    )
    .await;

    // The interruption warning: the job is in flight, its rescue waits on the retry queue.
    let warning = event(
        "EC2 Spot Instance Interruption Warning",
        json!({"instance-id": instance, "instance-action": "terminate"}),
    );
    let answer = watcher.invoke(warning).await.unwrap();
    assert_eq!(ids(&answer["rescue"]), std::slice::from_ref(&instance), "{answer}");
    let (batch, bodies) = take_batch(&aws, &retry_queue).await;
    assert_eq!((bodies[0]["runId"].as_u64(), bodies[0]["checks"].as_u64()), (Some(run_id), Some(0)), "{bodies:?}");

    // After the queue's delay the job still runs (GitHub has not noticed yet): looked at later.
    let answer = watcher.invoke(batch).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let (batch, bodies) = take_batch(&aws, &retry_queue).await;
    assert_eq!(bodies[0]["checks"], 1);
    assert_eq!(github.count("POST", "rerun"), 0);

    // The instance is gone and the job failed with it: re-run once, the re-run job sent to the
    // build queue for an on-demand runner.
    github.fail_job(job, Duration::ZERO);
    let answer = watcher.invoke(batch.clone()).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}\n{}", watcher.logs().join("\n"));
    assert_eq!(github.count("POST", "rerun"), 1);
    let rerun = github.jobs().into_iter().find(|j| j.run_id == run_id && j.run_attempt == 2).expect("the re-run job");
    assert_eq!(rerun.status, "queued");
    let rescued: f64 = watcher.metric("JobsRescued").iter().map(|(n, _)| n).sum();
    assert_eq!(rescued, 1.0);

    // The same rescue delivered again: the run's latest attempt has no job of that runner, so
    // nothing is re-run a second time.
    let answer = watcher.invoke(batch).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert_eq!(github.count("POST", "rerun"), 1, "never re-run twice");

    // Scale-up takes the rescued job on-demand; the webhook's own delivery of the re-run job
    // (the same job id, later) finds its instance and launches nothing.
    let proxy = AwsProxy::start(&moto.endpoint).await;
    let scale_up = scale_up_behind_proxy(&stack, &github.url, &proxy.url, &[], Duration::from_secs(30)).await;
    let source = SqsEventSource::new(aws.sqs.clone(), &stack.queue_url, 10);
    let poll = source.poll_once(&scale_up).await.expect("the rescued job's message");
    assert_eq!((poll.received, poll.retried), (1, 0), "{}", scale_up.logs().join("\n"));
    let fleets = proxy.ec2_requests("ec2:CreateFleet");
    assert_eq!(fleets.len(), 1);
    let capacity = fleets[0].iter().find(|(k, _)| k == "TargetCapacitySpecification.DefaultTargetCapacityType");
    assert_eq!(capacity.map(|(_, v)| v.as_str()), Some("on-demand"), "{fleets:?}");
    let delivered = json!({"id": rerun.id, "repositoryName": "web", "repositoryOwner": "acme", "eventType": "workflow_job",
                           "installationId": installation, "queueId": stack.queue_url, "repoOwnerType": "Organization",
                           "labels": ["self-hosted", "linux"]});
    aws.sqs.send_message().queue_url(&stack.queue_url).message_body(delivered.to_string()).send().await.unwrap();
    let poll = source.poll_once(&scale_up).await.expect("the webhook's delivery");
    assert_eq!((poll.received, poll.retried), (1, 0));
    assert_eq!(proxy.count("ec2:CreateFleet"), 1, "one runner for the re-run job");
    assert!(scale_up.logs().join("\n").contains("runner_exists"));
}
