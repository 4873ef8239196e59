use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::deadline::Deadline;
use common::domain::redelivery::{Checkpoint, Settings};
use common::error::GithubError;
use common::github::app::AppParameterNames;
use common::telemetry::{MemorySink, Metrics, TelemetryConfig};
use common::testing::{ManualClock, MemoryDeliveries, MemoryParameterStore};

use super::*;

const CHECKPOINTS: &str = "/github-action-runners/acme/webhook/redelivery-checkpoints";

struct World {
    log: Arc<MemoryDeliveries>,
    store: Arc<MemoryParameterStore>,
    clock: Arc<ManualClock>,
    sink: Arc<MemorySink>,
    redelivery: Redelivery,
}

fn telemetry() -> TelemetryConfig {
    TelemetryConfig { environment: "acme".into(), namespace: "GitHub Runners".into(), log_level: "info".into() }
}

fn world(max_attempts: u32) -> World {
    let clock = Arc::new(ManualClock::at(Utc::now()));
    let log = Arc::new(MemoryDeliveries::new(clock.clone()));
    let store = Arc::new(MemoryParameterStore::default());
    let sink = Arc::new(MemorySink::default());
    let config = Config {
        settings: Settings { window: TimeDelta::minutes(60), max_attempts },
        checkpoint_parameter: CHECKPOINTS.into(),
        apps: AppParameterNames { ids: vec![], keys: vec![], installation_ids: vec![] },
        github: common::config::GithubConnection {
            ghes_url: None,
            verify_tls: true,
            user_agent: "t".into(),
            api_override: None,
        },
        clock_file: None,
        telemetry: telemetry(),
    };
    let redelivery = Redelivery::new(
        config,
        log.clone(),
        store.clone(),
        store.clone(),
        clock.clone(),
        Metrics::new(&telemetry(), sink.clone()),
    );
    World { log, store, clock, sink, redelivery }
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

impl World {
    async fn run(&self) -> AppSummary {
        let summary = self.redelivery.run_once(deadline()).await;
        self.redelivery.report(&summary);
        summary.apps.into_iter().next().unwrap()
    }

    fn checkpoint(&self) -> Checkpoint {
        let all: std::collections::BTreeMap<String, Checkpoint> =
            serde_json::from_str(&self.store.value(CHECKPOINTS).unwrap()).unwrap();
        all["7"]
    }
}

#[tokio::test]
async fn failed_workflow_jobs_are_redelivered_once_and_the_rest_left_alone() {
    let w = world(3);
    w.log.deliver("ok", "workflow_job", 200, TimeDelta::minutes(9));
    w.log.deliver("lost-1", "workflow_job", 502, TimeDelta::minutes(8));
    w.log.deliver("other", "pull_request", 500, TimeDelta::minutes(7));
    w.log.deliver("lost-2", "workflow_job", 0, TimeDelta::minutes(6));
    w.log.deliver("later", "workflow_job", 200, TimeDelta::minutes(1));
    let run = w.run().await;
    assert_eq!(run.redelivered, ["lost-1", "lost-2"], "oldest first");
    assert_eq!((run.failed_seen, run.other_failed, run.left, run.probe), (2, 1, 0, None), "{run:?}");
    assert!(run.complete);
    assert_eq!(w.log.attempts("lost-1").len(), 2);
    assert_eq!(w.log.attempts("other").len(), 1, "not a workflow_job: left alone");
    // The checkpoint waits at the oldest event still followed.
    assert_eq!(w.checkpoint().since, w.log.attempts("lost-1")[0].delivered_at);

    // Next run: both redeliveries succeeded, nothing more to do, and the checkpoint moves on.
    w.clock.advance(TimeDelta::minutes(5));
    let run = w.run().await;
    assert!(run.redelivered.is_empty() && run.given_up.is_empty(), "{run:?}");
    assert_eq!(w.checkpoint().since, w.clock.now() - common::domain::redelivery::LOG_LAG);
    assert_eq!(w.sink.sum("DeliveriesRedelivered"), 2.0);
}

#[tokio::test]
async fn while_the_endpoint_is_down_one_probe_per_run_and_the_rest_follow_when_it_answers() {
    let w = world(3);
    for i in 0..5 {
        w.log.deliver(&format!("job-{i}"), "workflow_job", 503, TimeDelta::minutes(10 - i));
    }
    w.log.set_endpoint_status(503);
    let run = w.run().await;
    assert_eq!((run.probe, run.redelivered.len(), run.left), (Some("failed"), 1, 4), "{run:?}");
    assert_eq!(w.log.redeliver_calls.lock().unwrap().len(), 1, "an outage costs one attempt");

    // Still down: the probe goes to an event not tried yet.
    w.clock.advance(TimeDelta::minutes(5));
    let run = w.run().await;
    assert_eq!(run.redelivered, ["job-1"], "the least redelivered, oldest first");

    // Back: the probe succeeds and everything else follows in the same run.
    w.clock.advance(TimeDelta::minutes(5));
    w.log.set_endpoint_status(200);
    let run = w.run().await;
    assert_eq!(run.probe, Some("succeeded"));
    assert_eq!(run.redelivered.len(), 5, "{run:?}");
    for i in 0..5 {
        assert!(w.log.attempts(&format!("job-{i}")).last().unwrap().succeeded());
    }
    assert!(run.given_up.is_empty());
}

#[tokio::test]
async fn an_event_failing_max_attempts_times_is_given_up_once() {
    let w = world(2);
    w.log.deliver("poison", "workflow_job", 500, TimeDelta::minutes(3));
    w.log.deliver("fine", "workflow_job", 200, TimeDelta::minutes(2));
    // The endpoint is up (the newest attempt succeeded) but refuses this one event.
    w.log.set_endpoint_status(500);
    for _ in 0..2 {
        let run = w.run().await;
        assert_eq!(run.redelivered, ["poison"]);
        w.clock.advance(TimeDelta::minutes(5));
        w.log.deliver(&format!("ok-{}", fastrand::u32(..)), "workflow_job", 200, TimeDelta::zero());
    }
    let run = w.run().await;
    assert_eq!((run.given_up.clone(), run.redelivered.len()), (vec!["poison".to_string()], 0), "{run:?}");
    assert_eq!(w.sink.sum("DeliveriesGivenUp"), 1.0);
    w.clock.advance(TimeDelta::minutes(5));
    let run = w.run().await;
    assert!(run.given_up.is_empty(), "reported once");
    assert_eq!(w.sink.sum("DeliveriesGivenUp"), 1.0);
    assert!(
        w.checkpoint().since > w.log.attempts("poison")[0].delivered_at,
        "a given-up event no longer holds the checkpoint"
    );
}

#[tokio::test]
async fn the_log_is_read_across_pages_back_to_the_checkpoint_only() {
    let w = world(3);
    for i in 0..250 {
        let status = if i % 50 == 0 { 500 } else { 200 };
        w.log.deliver(&format!("e-{i}"), "workflow_job", status, TimeDelta::seconds(3000 - i * 10));
    }
    let run = w.run().await;
    assert_eq!((run.read, run.redelivered.len()), (250, 5), "{run:?}");
    assert_eq!(*w.log.list_calls.lock().unwrap(), 3, "three pages of 100");
    // After the redeliveries settle, a run reads only what is newer than the checkpoint.
    w.clock.advance(TimeDelta::minutes(5));
    w.run().await;
    *w.log.list_calls.lock().unwrap() = 0;
    w.clock.advance(TimeDelta::minutes(5));
    let run = w.run().await;
    assert_eq!(*w.log.list_calls.lock().unwrap(), 1, "one page reaches the checkpoint: {run:?}");
}

#[tokio::test]
async fn github_errors_leave_the_events_for_the_next_run_and_refusals_are_given_up() {
    let w = world(3);
    w.log.deliver("a", "workflow_job", 500, TimeDelta::minutes(4));
    w.log.deliver("b", "workflow_job", 500, TimeDelta::minutes(3));
    w.log.deliver("c", "workflow_job", 500, TimeDelta::minutes(2));
    w.log.deliver("up", "workflow_job", 200, TimeDelta::minutes(1));
    *w.log.redeliver_errors.lock().unwrap() = vec![
        GithubError::Status { endpoint: "POST x".into(), status: 422, message: "too old".into() },
        GithubError::Status { endpoint: "POST x".into(), status: 401, message: "Bad credentials".into() },
        GithubError::RateLimited {
            endpoint: "POST x".into(),
            status: 403,
            retry_after: Some(Duration::from_secs(600)),
        },
    ];
    let run = w.run().await;
    assert_eq!(run.given_up, ["a"], "GitHub refused it: retrying cannot help");
    assert_eq!((run.redelivered.len(), run.left), (0, 2), "a credentials error is not the delivery's fault: {run:?}");
    assert_eq!(w.checkpoint().since, w.log.attempts("b")[0].delivered_at);
    // The next run: a rate limit stops it before any redelivery; nothing is given up.
    w.clock.advance(TimeDelta::minutes(5));
    let run = w.run().await;
    assert_eq!((run.redelivered.len(), run.left, run.given_up.len()), (0, 2, 0), "{run:?}");
    w.clock.advance(TimeDelta::minutes(5));
    let run = w.run().await;
    assert_eq!(run.redelivered, ["b", "c"]);
}
