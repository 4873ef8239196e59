//! Redelivery of failed webhook deliveries, end to end: the fake GitHub delivers real
//! `workflow_job` payloads to the built webhook binary behind a function URL and logs every
//! attempt; the built redelivery binary reads that log and asks for redeliveries, which the fake
//! really sends; the built scale-up binary launches the runners in moto.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::event_source::SqsEventSource;
use tests::fake_github::{FakeGithub, Fault};
use tests::fixtures;
use tests::function_url::FunctionUrl;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

use crate::support::{HEAVY, binary, env};

const LABELS: &[&str] = &["self-hosted", "linux", "x64"];

struct World {
    aws: Aws,
    stack: RunnerStack,
    github: FakeGithub,
    app: TestApp,
    installation: u64,
    endpoint: FunctionUrl,
    scale_up: LambdaFunction,
    redelivery: LambdaFunction,
    /// The redelivery function's clock (decisions.md #18): now, or later to stand for the
    /// schedule's next runs.
    clock: std::path::PathBuf,
}

impl World {
    async fn new(redelivery_timeout: Duration) -> Self {
        let moto = Moto::shared();
        moto.warm_ec2().await;
        let aws = Aws::new(moto).await;
        let github = FakeGithub::start().await;
        let app = TestApp::new(1, 6161);
        github.add_app(app.id, app.public_pem.as_bytes());
        let installation = github.add_installation(app.id, "acme", "Organization");
        let stack = RunnerStack::create(&aws, &unique("rd"), std::slice::from_ref(&app)).await;

        // The webhook in direct mode, as Terraform deploys it, behind its function URL.
        let matchers = json!([{"id": stack.queue_url, "arn": format!("arn:aws:sqs:eu-west-1:123456789012:{}-queued-builds", stack.prefix),
            "fifo": false, "key": "default",
            "matcherConfig": {"labelMatchers": [LABELS], "exactMatch": true, "priority": 1}}])
        .to_string();
        let matcher_parameter = format!("{}/webhook/runner-matcher-config", stack.ssm_root);
        aws.put_parameter(&matcher_parameter, &matchers, false).await;
        let mut vars = env(&[
            ("PARAMETER_GITHUB_APP_WEBHOOK_SECRET", stack.webhook_secret_parameter.as_str()),
            ("PARAMETER_RUNNER_MATCHER_CONFIG_PATH", matcher_parameter.as_str()),
            ("PARAMETER_RUNNER_MATCHER_VERSION", "1"),
            ("REPOSITORY_ALLOW_LIST", "[]"),
            ("ENVIRONMENT", stack.prefix.as_str()),
            ("LOG_LEVEL", "info"),
            ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
        ]);
        vars.extend(moto.lambda_env());
        let webhook = LambdaFunction::spawn(
            &binary("webhook"),
            &format!("{}-webhook", stack.prefix),
            &vars,
            Duration::from_secs(10),
        )
        .await;
        let endpoint = FunctionUrl::start(Arc::new(webhook)).await;
        github.set_app_hook(app.id, &endpoint.url, &stack.webhook_secret);

        // Scale-up with Terraform's defaults: ephemeral JIT runners, no job-queued check (the
        // case where only the duplicate check stops a second runner).
        let mut vars = stack.scale_up_env(&github.url, &[]);
        vars.extend(moto.lambda_env());
        let scale_up = LambdaFunction::spawn(
            &binary("scale-up"),
            &format!("{}-scale-up", stack.prefix),
            &vars,
            Duration::from_secs(30),
        )
        .await;

        let clock = std::env::temp_dir().join(format!("{}-clock", stack.prefix));
        let checkpoints = format!("{}/webhook/redelivery-checkpoints", stack.ssm_root);
        aws.put_parameter(&checkpoints, "{}", false).await;
        let mut vars = env(&[
            ("PARAMETER_GITHUB_APP_ID_NAME", stack.app_id_parameters.as_str()),
            ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", stack.app_key_parameters.as_str()),
            ("REDELIVERY_CHECKPOINT_PARAMETER", checkpoints.as_str()),
            ("REDELIVERY_WINDOW_MINUTES", "60"),
            ("REDELIVERY_MAX_ATTEMPTS", "3"),
            ("ENVIRONMENT", stack.prefix.as_str()),
            ("LOG_LEVEL", "debug"),
            ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
            (common::config::test_overrides::GITHUB_API_URL, github.url.as_str()),
            (common::config::test_overrides::CLOCK_FILE, clock.to_str().unwrap()),
        ]);
        vars.extend(moto.lambda_env());
        let redelivery = LambdaFunction::spawn(
            &binary("redelivery"),
            &format!("{}-redelivery", stack.prefix),
            &vars,
            redelivery_timeout,
        )
        .await;
        Self { aws, stack, github, app, installation, endpoint, scale_up, redelivery, clock }
    }

    /// A job is queued on GitHub, which delivers its `workflow_job` event; the GUID.
    async fn queue_job(&self) -> (u64, String) {
        let job = self.github.add_job("acme", "web", LABELS);
        let payload = fixtures::workflow_job("queued", job, LABELS, "acme", "web", self.installation);
        (job, self.github.deliver(self.app.id, "workflow_job", &payload).await.guid)
    }

    /// Scale-up's event source mapping, until the build queue is empty.
    async fn scale_up_all(&self) {
        let source = SqsEventSource::new(self.aws.sqs.clone(), &self.stack.queue_url, 10);
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until {
            if source.poll_once(&self.scale_up).await.is_none() {
                return;
            }
        }
        panic!("the build queue did not drain");
    }

    async fn sweep(&self) -> Value {
        self.sweep_later(0).await
    }

    /// A run `minutes` from now on the function's clock.
    async fn sweep_later(&self, minutes: i64) -> Value {
        std::fs::write(&self.clock, (chrono::Utc::now() + chrono::TimeDelta::minutes(minutes)).to_rfc3339()).unwrap();
        self.redelivery.invoke(json!({"source": "aws.events", "detail-type": "Scheduled Event"})).await.unwrap()
    }

    /// Waits until every one of `guids` has a successful attempt in GitHub's log.
    async fn wait_delivered(&self, guids: &[String]) {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.github.deliveries();
            let missing = guids.iter().filter(|g| !log.iter().any(|d| &d.guid == *g && d.succeeded())).count();
            if missing == 0 {
                return;
            }
            assert!(Instant::now() < until, "{missing} deliveries never succeeded");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Live instances of this environment by the job they were launched for.
    async fn instances_by_job(&self) -> BTreeMap<String, usize> {
        let out = self
            .aws
            .ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
            .filters(Filter::builder().name("instance-state-name").values("running").values("pending").build())
            .send()
            .await
            .unwrap();
        let mut by_job = BTreeMap::new();
        for instance in out.reservations().iter().flat_map(|r| r.instances()) {
            let job = instance
                .tags()
                .iter()
                .find(|t| t.key() == Some("ghr:launched_for_job"))
                .and_then(|t| t.value())
                .unwrap_or("none")
                .to_string();
            *by_job.entry(job).or_insert(0) += 1;
        }
        by_job
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_outage_of_50_jobs_is_recovered_by_one_run_with_no_duplicate_runner() {
    let _alone = HEAVY.write().await;
    let w = World::new(Duration::from_secs(120)).await;
    // Before the outage: delivered, runners launched.
    let mut jobs = Vec::new();
    for _ in 0..3 {
        jobs.push(w.queue_job().await.0);
    }
    // A delivery the webhook handled but whose answer GitHub never got (a gateway timeout):
    // the job got its runner, yet the log says the delivery failed.
    w.endpoint.set_answer_override(Some(504));
    let (answered_late, _) = w.queue_job().await;
    jobs.push(answered_late);
    w.endpoint.set_answer_override(None);
    w.scale_up_all().await;
    assert_eq!(w.instances_by_job().await.len(), 4);

    // The outage: 50 jobs queued, every delivery fails; an event of another kind fails too.
    w.endpoint.set_outage(Some(503));
    let mut lost: Vec<String> = Vec::new();
    for _ in 0..50 {
        let (job, guid) = w.queue_job().await;
        jobs.push(job);
        lost.push(guid);
    }
    let push = w.github.deliver(w.app.id, "push", r#"{"ref":"refs/heads/main","repository":{"id":1}}"#).await;
    assert!(w.github.deliveries().iter().filter(|d| !d.succeeded()).count() >= 52);
    w.endpoint.set_outage(None);

    // One redelivery run once the endpoint is back.
    let summary = w.sweep().await;
    let app = &summary["apps"][0];
    assert_eq!(app["probe"], "succeeded", "{summary}");
    assert_eq!(app["redelivered"].as_array().map(Vec::len), Some(51), "50 lost + the one answered late: {summary}");
    assert_eq!(app["otherFailed"], 1, "{summary}");
    let redelivered: Vec<String> =
        app["redelivered"].as_array().unwrap().iter().filter_map(|g| g.as_str().map(str::to_string)).collect();
    assert!(lost.iter().all(|g| redelivered.contains(g)), "every lost delivery redelivered: {summary}");
    w.wait_delivered(&redelivered).await;
    w.scale_up_all().await;

    let by_job = w.instances_by_job().await;
    for job in &jobs {
        assert_eq!(by_job.get(&job.to_string()), Some(&1), "job {job}: {by_job:?}");
    }
    assert_eq!(by_job.values().sum::<usize>(), 54, "54 jobs, 54 runners, no duplicate: {by_job:?}");
    assert_eq!(w.github.deliveries().iter().filter(|d| d.guid == push.guid).count(), 1, "push left alone");
    let skipped: f64 = w.scale_up.metric("JobsSkipped").iter().map(|(v, _)| v).sum();
    assert!(skipped >= 1.0, "the late-answered job's redelivery was skipped as a duplicate");
    assert_eq!(w.redelivery.metric("DeliveriesRedelivered").iter().map(|(v, _)| v).sum::<f64>(), 51.0);

    // The next scheduled run reads back to the oldest redelivered event, finds every one settled
    // and moves the checkpoint on; the one after reads a single page.
    let summary = w.sweep_later(5).await;
    assert_eq!(summary["apps"][0]["redelivered"].as_array().map(Vec::len), Some(0), "{summary}");
    assert_eq!(summary["apps"][0]["failedSeen"], 0, "{summary}");
    w.github.clear_requests();
    w.sweep_later(10).await;
    assert_eq!(w.github.count("GET", "/app/hook/deliveries"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_by_its_deadline_resumes_next_run_across_pages_without_skipping_any() {
    let _alone = HEAVY.write().await;
    // 8 s: 5 s of work after the answer reserve, less than 30 paced redeliveries need.
    let w = World::new(Duration::from_secs(8)).await;
    // Older, successful history: the log is read over several pages.
    for i in 0..150 {
        w.github.log_attempt(tests::fake_github::DeliveryAttempt {
            id: 0,
            guid: format!("history-{i}"),
            app_id: w.app.id,
            event: "workflow_job".into(),
            action: Some("completed".into()),
            installation_id: Some(w.installation),
            repository_id: Some(1),
            delivered_at: chrono::Utc::now() - chrono::TimeDelta::minutes(30),
            redelivery: false,
            status_code: 202,
            status: "OK".into(),
            duration: 0.1,
            payload: "{}".into(),
        });
    }
    w.endpoint.set_outage(Some(502));
    let mut lost = Vec::new();
    for _ in 0..30 {
        lost.push(w.queue_job().await.1);
    }
    w.endpoint.set_outage(None);

    let mut runs = Vec::new();
    for _ in 0..6 {
        let summary = w.sweep().await;
        let done = summary["apps"][0]["left"] == 0;
        runs.push(summary);
        // The redeliveries of the run are logged before the next one reads the log.
        tokio::time::sleep(Duration::from_secs(2)).await;
        if done {
            break;
        }
    }
    assert!(runs[0]["apps"][0]["left"].as_u64().unwrap_or(0) > 0, "the first run is cut short: {}", runs[0]);
    assert!(runs[0]["apps"][0]["read"].as_u64().unwrap_or(0) >= 180, "every page read: {}", runs[0]);
    assert_eq!(runs.last().unwrap()["apps"][0]["left"], 0, "{runs:?}");
    w.wait_delivered(&lost).await;
    let log = w.github.deliveries();
    for guid in &lost {
        let attempts: Vec<_> = log.iter().filter(|d| &d.guid == guid).collect();
        assert_eq!(attempts.len(), 2, "{guid}: the failed delivery and exactly one redelivery");
    }
    let queued = w.aws.drain(&w.stack.queue_url).await;
    assert_eq!(queued.len(), 30, "every job reached the build queue once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_errors_and_rate_limits_are_waited_out_and_an_endpoint_still_down_is_probed_once() {
    let w = World::new(Duration::from_secs(60)).await;
    w.endpoint.set_outage(Some(500));
    let mut lost = Vec::new();
    for _ in 0..5 {
        lost.push(w.queue_job().await.1);
    }
    // Still down: one probe, nothing else sent.
    let summary = w.sweep().await;
    assert_eq!(summary["apps"][0]["probe"], "failed", "{summary}");
    assert_eq!(summary["apps"][0]["left"], 4, "{summary}");
    assert_eq!(w.github.count("POST", "/attempts"), 1);

    // Back up; GitHub answers the log read with a 502 once and the redeliveries with a
    // secondary rate limit (retry-after 2 s) once.
    w.endpoint.set_outage(None);
    w.github.inject(Fault::status("GET", "/app/hook/deliveries", 502).times(1));
    w.github.inject(Fault::rate_limited("POST", "/attempts", 2).times(1));
    let summary = w.sweep().await;
    let app = &summary["apps"][0];
    assert!(app["error"].is_null(), "{summary}");
    assert_eq!(app["left"], 0, "{summary}");
    assert_eq!(app["probe"], "succeeded", "the newest attempt (the last probe) failed: probed again ({summary})");
    w.wait_delivered(&lost).await;
    let statuses: Vec<u16> = w.github.requests().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&502) && statuses.contains(&403), "{statuses:?}");
}
