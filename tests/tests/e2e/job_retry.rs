//! Job retry through the built scale-up and job-retry binaries against moto and the fake GitHub,
//! both fed by the emulated SQS event source mapping: a job the fake keeps queued is retried
//! `maxAttempts` times with the delay scale-up chose, and a job that starts before its check
//! (or between the check and scale-up) gets no second runner.

use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use common::domain::webhook::QueuedJobMessage;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::event_source::SqsEventSource;
use tests::fake_github::FakeGithub;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

use crate::support::binary;

struct World {
    aws: Aws,
    stack: RunnerStack,
    github: FakeGithub,
    installation: u64,
    retry_queue: String,
    scale_up: LambdaFunction,
    job_retry: LambdaFunction,
}

impl World {
    async fn new(max_attempts: u32) -> Self {
        let moto = Moto::shared();
        moto.warm_ec2().await;
        let aws = Aws::new(moto).await;
        let github = FakeGithub::start().await;
        let app = TestApp::new(1, 5151);
        github.add_app(app.id, app.public_pem.as_bytes());
        let installation = github.add_installation(app.id, "acme", "Organization");
        let stack = RunnerStack::create(&aws, &unique("jr"), std::slice::from_ref(&app)).await;
        let retry_queue = aws.create_queue(&format!("{}-job-retry", stack.prefix), false).await;
        // As Terraform sets it (delays of 1 s so that the test does not wait minutes).
        let retry_config = json!({"enable": true, "maxAttempts": max_attempts, "delayInSeconds": 1,
                                  "delayBackoff": 1, "queueUrl": retry_queue})
        .to_string();
        let mut env = stack.scale_up_env(&github.url, &[("JOB_RETRY_CONFIG", &retry_config)]);
        env.extend(moto.lambda_env());
        let scale_up = LambdaFunction::spawn(
            &binary("scale-up"),
            &format!("{}-scale-up", stack.prefix),
            &env,
            Duration::from_secs(30),
        )
        .await;
        let mut env: Vec<(String, String)> = [
            ("ENVIRONMENT", stack.prefix.as_str()),
            ("ENABLE_ORGANIZATION_RUNNERS", "true"),
            ("ENABLE_METRIC_JOB_RETRY", "true"),
            ("JOB_QUEUE_SCALE_UP_URL", stack.queue_url.as_str()),
            ("PARAMETER_GITHUB_APP_ID_NAME", stack.app_id_parameters.as_str()),
            ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", stack.app_key_parameters.as_str()),
            ("LOG_LEVEL", "debug"),
            ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
            (common::config::test_overrides::GITHUB_API_URL, github.url.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(moto.lambda_env());
        let job_retry = LambdaFunction::spawn(
            &binary("job-retry"),
            &format!("{}-job-retry", stack.prefix),
            &env,
            Duration::from_secs(30),
        )
        .await;
        Self { aws, stack, github, installation, retry_queue, scale_up, job_retry }
    }

    fn message(&self, job_id: u64) -> Value {
        json!({"id": job_id, "repositoryName": "web", "repositoryOwner": "acme", "eventType": "workflow_job",
               "installationId": self.installation, "queueId": self.stack.queue_url, "repoOwnerType": "Organization",
               "labels": ["self-hosted", "linux"]})
    }

    async fn send(&self, body: &Value) {
        self.aws
            .sqs
            .send_message()
            .queue_url(&self.stack.queue_url)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }

    fn build_source(&self) -> SqsEventSource {
        SqsEventSource::new(self.aws.sqs.clone(), &self.stack.queue_url, 10)
    }

    /// The retry queue's mapping, waiting for the delayed message to become visible.
    fn retry_source(&self) -> SqsEventSource {
        let mut source = SqsEventSource::new(self.aws.sqs.clone(), &self.retry_queue, 10);
        source.wait_seconds = 3;
        source
    }

    async fn instances(&self) -> usize {
        let out = self
            .aws
            .ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
            .filters(Filter::builder().name("instance-state-name").values("running").values("pending").build())
            .send()
            .await
            .unwrap();
        out.reservations().iter().map(|r| r.instances().len()).sum()
    }

    /// Messages waiting on a queue (visible or delayed), read without taking them.
    async fn waiting(&self, queue: &str) -> usize {
        let out = self
            .aws
            .sqs
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes().cloned().unwrap_or_default();
        ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible"]
            .iter()
            .filter_map(|k| attrs.get(&aws_sdk_sqs::types::QueueAttributeName::from(*k)))
            .filter_map(|v| v.parse::<usize>().ok())
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_kept_queued_is_retried_max_attempts_times() {
    let w = World::new(2).await;
    let job = w.github.add_job("acme", "web", &["self-hosted", "linux"]);
    w.send(&w.message(job)).await;
    let (build, retry) = (w.build_source(), w.retry_source());

    let first = build.poll_once(&w.scale_up).await.unwrap();
    assert_eq!((first.received, first.retried), (1, 0));
    assert_eq!(w.instances().await, 1);
    for attempt in 1..=2u32 {
        // The check comes out of the retry queue after its delay; the fake keeps the job queued.
        let check = retry.poll_once(&w.job_retry).await.expect("the retry check arrives");
        assert_eq!((check.received, check.deleted), (1, 1));
        let requeued: Vec<QueuedJobMessage> = {
            let (event, handles) = build.receive().await.expect("the job is back on the build queue");
            // Hand the same event to scale-up, as the mapping would (and delete it after).
            let bodies: Vec<QueuedJobMessage> = event["Records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
                .collect();
            let answer = w.scale_up.invoke(event).await.unwrap();
            assert_eq!(answer["batchItemFailures"].as_array().map(Vec::len), Some(0), "{answer}");
            for (_, receipt) in handles {
                w.aws.sqs.delete_message().queue_url(&w.stack.queue_url).receipt_handle(receipt).send().await.unwrap();
            }
            bodies
        };
        assert_eq!(requeued.len(), 1);
        assert_eq!((requeued[0].id, requeued[0].retry_counter), (job, Some(attempt)));
        assert_eq!(w.instances().await, 1 + attempt as usize, "a new runner for the retried job");
    }
    // Its info lines are logged (every function crate is in the log filter).
    assert!(w.job_retry.logs().iter().any(|l| l.contains("sent back to the build queue")), "{:?}", w.job_retry.logs());
    let metrics = w.job_retry.metric("RetryJob");
    assert_eq!(metrics.len(), 2, "RetryJob once per retry: {metrics:?}");
    // maxAttempts 2: the second retry schedules no further check.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(w.waiting(&w.retry_queue).await, 0);
    // Every check looked the job up (the build-queue copies were received and answered above).
    assert!(w.github.count("GET", "/actions/jobs/") >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_started_gets_no_second_runner() {
    let w = World::new(3).await;
    let (build, retry) = (w.build_source(), w.retry_source());

    // 1. The job starts before its check fires: the check drops it.
    let job = w.github.add_job("acme", "web", &["self-hosted", "linux"]);
    w.send(&w.message(job)).await;
    build.poll_once(&w.scale_up).await.unwrap();
    w.github.set_job_status(job, "in_progress");
    let check = retry.poll_once(&w.job_retry).await.expect("the retry check arrives");
    assert_eq!((check.received, check.deleted), (1, 1));
    assert_eq!(w.waiting(&w.stack.queue_url).await, 0, "nothing put back");
    assert_eq!(w.instances().await, 1);

    // 2. The job is still queued at its check but starts before scale-up takes it back:
    //    scale-up looks a retried job up (even with the queued check off) and launches nothing.
    let job = w.github.add_job("acme", "web", &["self-hosted", "linux"]);
    w.send(&w.message(job)).await;
    build.poll_once(&w.scale_up).await.unwrap();
    retry.poll_once(&w.job_retry).await.expect("the retry check arrives");
    w.github.set_job_status(job, "in_progress");
    let retried = build.poll_once(&w.scale_up).await.expect("the job is back on the build queue");
    assert_eq!((retried.received, retried.deleted), (1, 1));
    assert_eq!(w.instances().await, 2, "one runner per job, none for the retry");
    assert!(w.scale_up.logs().iter().any(|l| l.contains("not_queued")), "scale-up says why");
}
