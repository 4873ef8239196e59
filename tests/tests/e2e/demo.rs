//! `make demo` as a test: the whole system on one machine, a small burst of jobs. Every queued
//! job must run and every runner must be removed afterwards (by itself when ephemeral, by
//! scale-down when reusable). EventBridge mode (the default) and direct mode.

use std::time::Duration;

use tests::demo::{DemoOptions, run};

fn options(jobs: usize, ephemeral: bool) -> DemoOptions {
    DemoOptions {
        jobs,
        ephemeral,
        max_runners: 3,
        job_seconds: 1.0,
        boot_seconds: 0.5,
        delay_seconds: 1,
        verbose: false,
        timeout: Duration::from_secs(240),
        ..DemoOptions::default()
    }
}

fn check(summary: &tests::demo::DemoSummary, jobs: usize, direct: bool) {
    let report = summary.render();
    assert!(summary.ok(), "{report}");
    assert_eq!(summary.jobs_queued, jobs, "{report}");
    assert_eq!(summary.jobs_completed, jobs, "{report}");
    assert_eq!(summary.unmatched_ignored, 1, "the job no configuration matches is not queued: {report}");
    assert!(summary.runners_launched >= 1 && summary.runners_launched <= 3, "at most the maximum: {report}");
    assert_eq!(summary.runners_removed, summary.runners_launched, "{report}");
    assert_eq!(summary.queued_to_started.len(), jobs, "{report}");
    assert!(summary.github_calls.keys().any(|k| k.contains("/actions/runners")), "{report}");
    assert!(summary.aws_calls.contains_key("ec2:CreateFleet"), "{report}");
    if !direct {
        // EventBridge mode: every delivery published, every queued job routed by the dispatcher.
        assert_eq!(summary.jobs_dispatched, jobs, "{report}");
        assert_eq!(summary.aws_calls.get("events:PutEvents"), Some(&(jobs + 1)), "{report}");
    } else {
        assert_eq!(summary.jobs_dispatched, 0, "{report}");
        assert!(!summary.aws_calls.contains_key("events:PutEvents"), "{report}");
    }
    // Webhook (direct) or dispatcher (EventBridge): one send per queued job.
    assert_eq!(summary.aws_calls.get("sqs:SendMessage"), Some(&jobs), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_ephemeral_jit_runners_run_every_job_and_leave() {
    let summary = run(options(3, true)).await.unwrap();
    check(&summary, 3, false);
    eprintln!("{}", summary.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_direct_mode_runs_every_job_without_the_bus() {
    let summary = run(DemoOptions { direct: true, ..options(2, true) }).await.unwrap();
    check(&summary, 2, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_reusable_runners_run_every_job_and_scale_down_removes_them() {
    let summary = run(options(4, false)).await.unwrap();
    check(&summary, 4, false);
    assert!(summary.scale_down_runs >= 1);
    eprintln!("{}", summary.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_with_a_pool_starts_jobs_on_pool_runners_and_leaves_nothing() {
    let summary = run(DemoOptions { pool: 2, max_runners: 4, ..options(2, true) }).await.unwrap();
    let report = summary.render();
    assert!(summary.ok(), "{report}");
    assert_eq!(summary.jobs_completed, 2, "{report}");
    assert!(summary.pool_runs >= 1 && summary.pool_runners >= 2, "{report}");
    assert!(summary.jobs_on_pool_runners >= 1, "a job started on a waiting pool runner: {report}");
    assert_eq!(summary.runners_removed, summary.runners_launched, "{report}");
    assert!(summary.aws_calls.contains_key("ssm:GetParametersByPath"), "the SSM housekeeper ran: {report}");
    eprintln!("{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_recovers_an_endpoint_outage_by_redelivery() {
    let summary = run(DemoOptions { outage_seconds: 4, ..options(3, true) }).await.unwrap();
    let report = summary.render();
    // Every delivery of the burst failed (4 jobs, one matching no configuration), yet every
    // queued job ran: the redelivery function had GitHub deliver them again.
    assert!(summary.ok(), "{report}");
    assert_eq!(summary.deliveries_failed, 4, "{report}");
    assert_eq!((summary.jobs_queued, summary.jobs_completed), (3, 3), "{report}");
    assert!(summary.redelivered >= 4, "{report}");
    assert!(summary.runners_launched <= 3, "no duplicate runner: {report}");
    eprintln!("{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_with_a_warm_pool_starts_jobs_on_prepared_instances_and_leaves_nothing() {
    let summary =
        run(DemoOptions { warm_pool: 2, max_runners: 4, start_seconds: 0.2, ..options(3, true) }).await.unwrap();
    let report = summary.render();
    assert!(summary.ok(), "{report}");
    assert_eq!(summary.jobs_completed, 3, "{report}");
    assert!(summary.warm_pool_runs >= 1 && summary.warm_prepared >= 2, "{report}");
    assert!(summary.jobs_on_warm_instances >= 2, "the waiting instances took jobs: {report}");
    assert_eq!(summary.start_to_online.len(), summary.jobs_on_warm_instances, "{report}");
    assert!(summary.aws_calls.contains_key("ec2:StartInstances"), "{report}");
    assert_eq!(summary.runners_removed, summary.runners_launched + summary.jobs_on_warm_instances, "{report}");
    eprintln!("{report}");
}
