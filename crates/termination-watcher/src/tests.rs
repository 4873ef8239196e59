use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use common::deadline::Deadline;
use common::domain::runner::{GithubRunner, RunnerInstance, RunnerOwner};
use common::domain::termination::{BID_EVICTED, CLOUDTRAIL_EVENT, DeregisterRetry, SPOT_WARNING, STATE_CHANGE};
use common::error::GithubError;
use common::ports::RunnerInstances;
use common::telemetry::{MemorySink, Metrics, TelemetryConfig};
use common::testing::{MemoryGithub, MemoryJobQueue, MemoryRunnerInstances};
use serde_json::json;

use super::*;

const QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/gh-deregister-retry";

struct World {
    ec2: Arc<MemoryRunnerInstances>,
    github: MemoryGithub,
    queue: Arc<MemoryJobQueue>,
    sink: Arc<MemorySink>,
    watcher: Watcher,
}

fn world(deregistration: bool) -> World {
    world_with(deregistration, None)
}

fn world_with(deregistration: bool, job_rescue: Option<common::domain::termination::JobRescueConfig>) -> World {
    let ec2 = Arc::new(MemoryRunnerInstances::new("gh"));
    let github = MemoryGithub::default();
    let queue = Arc::new(MemoryJobQueue::default());
    let sink = Arc::new(MemorySink::default());
    let telemetry =
        TelemetryConfig { environment: "gh".into(), namespace: "GitHub Runners".into(), log_level: "info".into() };
    let config = Config {
        prefix: "gh".into(),
        tag_filters: BTreeMap::from([("ghr:environment".to_string(), "gh".to_string())]),
        spot_warning_metric: true,
        spot_termination_metric: true,
        deregistration,
        apps: None,
        retry_queue_url: Some(QUEUE.into()),
        job_rescue: job_rescue.clone(),
        github: common::config::GithubConnection {
            ghes_url: None,
            verify_tls: true,
            user_agent: "test".into(),
            api_override: None,
        },
        telemetry: telemetry.clone(),
    };
    let api: Option<Arc<dyn GithubApi>> =
        (deregistration || job_rescue.is_some()).then(|| Arc::new(github.clone()) as Arc<dyn GithubApi>);
    let watcher = Watcher::new(config, ec2.clone(), api, queue.clone(), Metrics::new(&telemetry, sink.clone()));
    World { ec2, github, queue, sink, watcher }
}

fn acme() -> RunnerOwner {
    RunnerOwner::Org("acme".into())
}

/// A runner instance of environment `env`, and (when `runner_id` is set) its runner.
fn runner(w: &World, id: &str, env: &str, runner_id: Option<u64>, tag_the_id: bool) {
    let mut tags: BTreeMap<String, String> = [("ghr:environment", env), ("ghr:Type", "Org"), ("ghr:Owner", "acme")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let (Some(rid), true) = (runner_id, tag_the_id) {
        tags.insert("ghr:github_runner_id".into(), rid.to_string());
    }
    w.ec2.add(RunnerInstance {
        image_id: None,
        id: id.into(),
        launch_time: Some(chrono::Utc::now()),
        state: "running".into(),
        tags,
    });
    if let Some(rid) = runner_id {
        w.github.add_runner(
            &acme(),
            GithubRunner {
                id: rid,
                name: format!("gh-{id}"),
                status: "online".into(),
                busy: false,
                labels: vec![],
                custom_labels: vec![],
            },
        );
    }
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

fn warning(id: &str) -> serde_json::Value {
    json!({"detail-type": SPOT_WARNING, "source": "aws.ec2", "time": chrono::Utc::now().to_rfc3339(), "detail": {"instance-id": id, "instance-action": "terminate"}})
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_spot_warning_counts_by_type_and_deregisters_the_runner() {
    let w = world(true);
    runner(&w, "i-0000000000000000a", "gh-linux", Some(7), false);
    runner(&w, "i-0000000000000000b", "other", Some(8), false);
    let answer = w.watcher.on_event(&warning("i-0000000000000000a"), deadline()).await.unwrap();
    assert_eq!(strings(&answer["deregistered"]), ["i-0000000000000000a"], "{answer}");
    assert_eq!(w.sink.sum("SpotInterruptionWarning"), 1.0);
    let lines = w.sink.lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.contains("\"InstanceType\":\"m5.large\"")), "{lines:?}");
    assert_eq!(w.github.runners(&acme()).iter().map(|r| r.id).collect::<Vec<_>>(), [8]);

    // Another environment's instance is not ours: no metric, no deregistration.
    let other = w.watcher.on_event(&warning("i-0000000000000000b"), deadline()).await.unwrap();
    assert_eq!(strings(&other["notOurs"]), ["i-0000000000000000b"]);
    assert_eq!(w.sink.sum("SpotInterruptionWarning"), 1.0);
    assert_eq!(w.github.runners(&acme()).len(), 1);
}

#[tokio::test]
async fn a_busy_runner_waits_on_the_retry_queue_and_goes_when_its_job_ends() {
    let w = world(true);
    runner(&w, "i-0000000000000000c", "gh", Some(9), true);
    w.github.busy_on_delete(9);
    let state = json!({"detail-type": STATE_CHANGE, "detail": {"instance-id": "i-0000000000000000c", "state": "shutting-down"}});
    let answer = w.watcher.on_event(&state, deadline()).await.unwrap();
    assert_eq!(strings(&answer["busy"]), ["i-0000000000000000c"], "{answer}");
    assert_eq!(w.sink.sum("SpotInterruptionWarning"), 0.0, "a state change is not a spot warning");
    let sent = w.queue.messages();
    assert_eq!(sent.len(), 1);
    let retry: DeregisterRetry = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!((retry.runner_id, retry.retry_count, retry.owner.as_str()), (9, 0, "acme"));

    // Still busy: queued again with the count up. Then free: deregistered.
    let batch = |body: &str| {
        let mut m = SqsMessage::default();
        m.message_id = Some("m-1".into());
        m.body = Some(body.into());
        let mut e = SqsEvent::default();
        e.records = vec![m];
        e
    };
    let response = w.watcher.on_retries(&batch(&sent[0].body), deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    let again: DeregisterRetry = serde_json::from_str(&w.queue.messages()[1].body).unwrap();
    assert_eq!(again.retry_count, 1);
    w.github.not_busy_on_delete(9);
    let response = w.watcher.on_retries(&batch(&w.queue.messages()[1].body), deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(w.github.runners(&acme()).is_empty());
    assert_eq!(w.sink.sum("TerminatedRunnersDeregistered"), 1.0);
    assert_eq!(w.sink.sum("TerminatedRunnersBusy"), 2.0);

    // A GitHub failure hands the message back to SQS; the last retry gives up.
    w.github
        .fail("list_runners", vec![GithubError::Status { endpoint: "x".into(), status: 502, message: String::new() }]);
    let failing = serde_json::to_string(&DeregisterRetry { runner_id: 0, ..again.clone() }).unwrap();
    let response = w.watcher.on_retries(&batch(&failing), deadline()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    runner(&w, "i-0000000000000000d", "gh", Some(10), true);
    w.github.busy_on_delete(10);
    let last = DeregisterRetry {
        instance_id: "i-0000000000000000d".into(),
        runner_id: 10,
        retry_count: MAX_RETRIES - 1,
        ..again
    };
    let response = w.watcher.on_retries(&batch(&serde_json::to_string(&last).unwrap()), deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(w.queue.messages().len(), 2, "not queued again");
    assert_eq!(w.sink.sum("TerminatedRunnersNotDeregistered"), 1.0);
}

#[tokio::test]
async fn a_reclaim_is_counted_without_deregistration_when_it_is_off() {
    let w = world(false);
    runner(&w, "i-0000000000000000e", "gh", Some(11), true);
    let evicted = json!({
        "detail-type": CLOUDTRAIL_EVENT,
        "detail": {"eventName": BID_EVICTED, "serviceEventDetails": {"instanceIdSet": ["i-0000000000000000e", "i-0000000000000000f"]}}
    });
    let answer = w.watcher.on_event(&evicted, deadline()).await.unwrap();
    assert_eq!(strings(&answer["watched"]), ["i-0000000000000000e"]);
    assert_eq!(strings(&answer["notOurs"]), ["i-0000000000000000f"], "unknown to EC2");
    assert_eq!(w.sink.sum("SpotTermination"), 1.0);
    assert_eq!(w.github.runners(&acme()).len(), 1);
    assert!(w.github.calls().is_empty());
}

#[tokio::test]
async fn ec2_failures_fail_the_invocation_and_other_events_are_ignored() {
    let w = world(true);
    w.ec2.fail_listing(Some(common::error::AwsError::new(
        "ec2:DescribeInstances",
        common::error::AwsErrorKind::Client,
        None,
        "denied",
    )));
    assert!(w.watcher.on_event(&warning("i-0000000000000000a"), deadline()).await.is_err());
    let other = w.watcher.on_event(&json!({"detail-type": "Scheduled Event", "detail": {}}), deadline()).await.unwrap();
    assert_eq!(other["ignored"], true);
}

const BUILD_QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/gh-queued-builds";

fn batch_of(body: &str) -> SqsEvent {
    let mut m = SqsMessage::default();
    m.message_id = Some("m-1".into());
    m.body = Some(body.into());
    let mut e = SqsEvent::default();
    e.records = vec![m];
    e
}

fn run_job(
    id: u64,
    runner: &str,
    status: &str,
    conclusion: Option<&str>,
    attempt: u32,
) -> common::domain::termination::RunJob {
    common::domain::termination::RunJob {
        id,
        name: "build".into(),
        status: status.into(),
        conclusion: conclusion.map(str::to_string),
        run_attempt: attempt,
        runner_name: Some(runner.into()),
        labels: vec!["self-hosted".into(), "linux".into()],
    }
}

#[tokio::test]
async fn a_job_interrupted_by_a_reclaim_is_re_run_once_on_demand() {
    let rescue = common::domain::termination::JobRescueConfig {
        max_attempts: 1,
        queues: BTreeMap::from([("gh".to_string(), BUILD_QUEUE.to_string())]),
    };
    let w = world_with(false, Some(rescue));
    let id = "i-00000000000000010";
    runner(&w, id, "gh", Some(12), true);
    // No job in flight: a warning queues no rescue.
    let answer = w.watcher.on_event(&warning(id), deadline()).await.unwrap();
    assert!(strings(&answer["rescue"]).is_empty() && w.queue.messages().is_empty());
    // The job-started hook's markers: a job of run 555 of acme/web runs.
    let started = chrono::Utc::now().timestamp_millis().to_string();
    w.ec2
        .tag(&[id.to_string()], &[("ghr:job_started".into(), started), ("ghr:job_run".into(), "acme/web/555".into())])
        .await
        .unwrap();
    let answer = w.watcher.on_event(&warning(id), deadline()).await.unwrap();
    assert_eq!(strings(&answer["rescue"]), [id], "{answer}");
    let sent = w.queue.messages();
    assert_eq!(sent[0].queue_url, QUEUE, "the rescue waits on the retry queue");
    let message: JobRescue = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!((message.run_id, message.queue_url.as_str(), message.checks), (555, BUILD_QUEUE, 0));

    // Still running: looked at again later.
    w.github.put_run_job(555, run_job(70, &format!("gh-{id}"), "in_progress", None, 1));
    let response = w.watcher.on_retries(&batch_of(&sent[0].body), deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    let again: JobRescue = serde_json::from_str(&w.queue.messages()[1].body).unwrap();
    assert_eq!(again.checks, 1);
    assert_eq!(w.github.count("rerun_job"), 0);

    // Failed with its instance: re-run, and the re-run job sent to the build queue, on-demand.
    w.github.put_run_job(555, run_job(70, &format!("gh-{id}"), "completed", Some("failure"), 1));
    let response = w.watcher.on_retries(&batch_of(&w.queue.messages()[1].body), deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(w.github.count("rerun_job"), 1);
    let rerun = w.github.run_jobs_of(555).into_iter().find(|j| j.run_attempt == 2).unwrap();
    let to_build = w.queue.delayed.lock().unwrap().clone();
    assert_eq!(to_build.len(), 1);
    assert_eq!((to_build[0].0.queue_url.as_str(), to_build[0].1), (BUILD_QUEUE, 0), "sent without the queue's delay");
    let job: QueuedJobMessage = serde_json::from_str(&to_build[0].0.body).unwrap();
    assert_eq!(
        (job.id, job.capacity_type.as_deref(), job.repository_name.as_str()),
        (rerun.id, Some("on-demand"), "web")
    );
    assert_eq!(job.labels, ["self-hosted", "linux"]);
    assert_eq!(w.sink.sum("JobsRescued"), 1.0);

    // The same rescue again (a second warning, SQS delivering twice): the latest attempt has no
    // job of this runner any more; and an interrupted re-run is not re-run past maxAttempts.
    let response = w.watcher.on_retries(&batch_of(&w.queue.messages()[1].body), deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    w.github.put_run_job(555, run_job(rerun.id, &format!("gh-{id}"), "completed", Some("cancelled"), 2));
    let response = w.watcher.on_retries(&batch_of(&w.queue.messages()[1].body), deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(w.github.count("rerun_job"), 1, "never a second re-run");
    assert_eq!(w.sink.sum("JobsNotRescued"), 1.0, "attempts exhausted, counted");

    // A GitHub error hands the message back.
    w.github.fail("run_jobs", vec![GithubError::Status { endpoint: "x".into(), status: 502, message: String::new() }]);
    let response = w.watcher.on_retries(&batch_of(&w.queue.messages()[1].body), deadline()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
}
