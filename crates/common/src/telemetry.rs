//! Logs and metrics.
//!
//! Logs go through `tracing`: JSON objects with top-level `level` and `message` when Lambda's
//! logging config says `JSON` (Terraform sets it), human-readable text otherwise. Metrics are
//! CloudWatch Embedded Metric Format (EMF) lines on stdout: CloudWatch turns them into metrics
//! with no API call and no extra latency.
//!
//! Every metric the functions emit is declared once in [`metrics::ALL`]; the Terraform checks read
//! that list, so the dashboard and alarms can only name metrics that exist.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::EnvFilter;

use crate::config::Env;

/// Variables read for telemetry (also set by Terraform for every function).
pub const ENVIRONMENT: &str = "ENVIRONMENT";
pub const LOG_LEVEL: &str = "LOG_LEVEL";
pub const METRICS_NAMESPACE: &str = "POWERTOOLS_METRICS_NAMESPACE";
pub const DEFAULT_NAMESPACE: &str = "GitHub Runners";

/// Starts logging. The level comes from `LOG_LEVEL` (the upstream's names: silly, trace, debug,
/// info, warn, error, fatal), then Lambda's `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`; the format
/// from `AWS_LAMBDA_LOG_FORMAT`. `LOG_LEVEL` comes first because Terraform keeps Lambda's own
/// application log level at INFO or below: Lambda counts a line without a `level` as INFO, and
/// the EMF metric lines have none, so a stricter Lambda level would drop the metrics.
/// Safe to call more than once.
pub fn init_logging() {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let level = var(LOG_LEVEL)
        .or_else(|| var("AWS_LAMBDA_LOG_LEVEL"))
        .map(|l| tracing_level(&l).to_string())
        .or_else(|| var("RUST_LOG"))
        .unwrap_or_else(|| "info".to_string());
    // The SDKs and the HTTP stack are chatty at debug; keep them at warn unless asked for by name.
    // Every function crate by name: a crate missing here logs warnings only.
    let directives = format!(
        "warn,common={level},webhook={level},dispatcher={level},scale_up={level},scale_down={level},syncer={level},\
         pool={level},job_retry={level},ssm_housekeeper={level},redelivery={level},local={level}"
    );
    let filter = if level.contains('=') { EnvFilter::new(level) } else { EnvFilter::new(directives) };
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stdout).with_ansi(false);
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).with_target(true).try_init()
    } else {
        builder.with_target(true).try_init()
    };
}

/// Maps the upstream's log level names onto `tracing`'s.
pub fn tracing_level(level: &str) -> &'static str {
    match level.trim().to_ascii_lowercase().as_str() {
        "silly" | "trace" => "trace",
        "debug" => "debug",
        "warn" | "warning" => "warn",
        "error" | "fatal" | "critical" => "error",
        _ => "info",
    }
}

/// Telemetry settings every function reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The deployment's environment (Terraform's `prefix`), the `Environment` metric dimension.
    pub environment: String,
    pub namespace: String,
    pub log_level: String,
}

impl TelemetryConfig {
    pub fn load(env: &mut Env<'_>) -> Self {
        Self {
            environment: env.string_or(ENVIRONMENT, "N/A"),
            namespace: env.string_or(METRICS_NAMESPACE, DEFAULT_NAMESPACE),
            log_level: tracing_level(&env.string_or(LOG_LEVEL, "info")).to_string(),
        }
    }
}

pub mod metrics {
    //! The metric catalogue: names, units and dimensions, in one place.

    /// CloudWatch unit of a metric.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Unit {
        Count,
        Milliseconds,
        Seconds,
        None,
    }

    impl Unit {
        pub fn as_str(self) -> &'static str {
            match self {
                Unit::Count => "Count",
                Unit::Milliseconds => "Milliseconds",
                Unit::Seconds => "Seconds",
                Unit::None => "None",
            }
        }
    }

    /// One metric: its name, unit and dimensions besides `Environment`, and which function
    /// emits it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct MetricDef {
        pub name: &'static str,
        pub unit: Unit,
        pub dimensions: &'static [&'static str],
        pub function: &'static str,
        pub description: &'static str,
    }

    macro_rules! metric {
        ($id:ident, $name:literal, $unit:ident, [$($dim:literal),*], $function:literal, $description:literal) => {
            pub const $id: MetricDef = MetricDef {
                name: $name,
                unit: Unit::$unit,
                dimensions: &[$($dim),*],
                function: $function,
                description: $description,
            };
        };
    }

    // webhook
    metric!(WEBHOOK_RECEIVED, "WebhookReceived", Count, [], "webhook", "Deliveries received.");
    metric!(WEBHOOK_ACCEPTED, "WebhookAccepted", Count, [], "webhook", "Queued jobs enqueued to a runner queue.");
    metric!(WEBHOOK_REJECTED, "WebhookRejected", Count, ["Reason"], "webhook", "Deliveries not enqueued, by reason.");

    // dispatcher (EventBridge mode)
    metric!(JOBS_DISPATCHED, "JobsDispatched", Count, [], "dispatcher", "Queued jobs sent to a runner queue.");
    metric!(
        JOBS_NOT_DISPATCHED,
        "JobsNotDispatched",
        Count,
        ["Reason"],
        "dispatcher",
        "Events not sent to a runner queue, by reason (a send failure is retried by EventBridge)."
    );

    // scale-up
    metric!(JOBS_RECEIVED, "JobsReceived", Count, [], "scale-up", "Job messages received from SQS.");
    metric!(
        MALFORMED_MESSAGES,
        "MalformedMessages",
        Count,
        [],
        "scale-up",
        "Messages that can never succeed, acknowledged and dropped."
    );
    metric!(RUNNERS_REQUESTED, "RunnersRequested", Count, [], "scale-up", "Runners asked of EC2.");
    metric!(RUNNERS_CREATED, "RunnersCreated", Count, [], "scale-up", "Runners launched and configured.");
    metric!(RUNNERS_FAILED, "RunnersFailed", Count, ["Reason"], "scale-up", "Runners not created, by reason.");
    metric!(
        JOBS_SKIPPED,
        "JobsSkipped",
        Count,
        ["Reason"],
        "scale-up",
        "Jobs that need no runner (no longer queued, over the maximum for reusable runners...)."
    );
    metric!(JOBS_RETRIED, "JobsRetried", Count, [], "scale-up", "Messages returned to SQS for retry.");
    metric!(
        GITHUB_APP_RATE_LIMIT_REMAINING,
        "GitHubAppRateLimitRemaining",
        Count,
        ["AppId"],
        "scale-up",
        "Requests left in the GitHub App installation's primary rate limit."
    );

    metric!(
        GITHUB_RATE_LIMIT_HITS,
        "GitHubRateLimitHits",
        Count,
        ["AppId"],
        "scale-up",
        "Rate-limit answers from GitHub (the endpoint is then left alone until the limit passes)."
    );

    // pool
    metric!(
        POOL_AVAILABLE,
        "PoolRunnersAvailable",
        Count,
        [],
        "pool",
        "The pool's size as counted by a run (idle online runners and instances still booting)."
    );
    metric!(POOL_RUNNERS_LAUNCHED, "PoolRunnersLaunched", Count, [], "pool", "Runners launched to top the pool up.");

    // warm pool
    metric!(
        WARM_POOL_CLAIMS,
        "WarmPoolClaims",
        Count,
        [],
        "scale-up",
        "Jobs whose runner is a prepared, stopped instance of the warm pool, claimed and started."
    );
    metric!(
        WARM_POOL_FALLBACKS,
        "WarmPoolFallbacks",
        Count,
        ["Reason"],
        "scale-up",
        "Jobs the warm pool could not serve, launched fresh instead, by reason (none_ready, start_failed, claim_failed)."
    );
    metric!(
        WARM_POOL_CLAIM_TO_RUNNER_START,
        "WarmPoolClaimToRunnerStart",
        Seconds,
        [],
        "runner",
        "Seconds from scale-up's claim of a warm instance to its runner's start (sent by start-runner.sh on the instance)."
    );
    metric!(
        WARM_POOL_RETURNED,
        "WarmPoolReturned",
        Count,
        [],
        "scale-down",
        "Idle runners that came from the warm pool put back into it (stopped) instead of terminated."
    );
    metric!(
        WARM_POOL_READY,
        "WarmPoolReady",
        Count,
        [],
        "warm-pool",
        "Prepared, stopped instances ready to be claimed, as counted by a warm-pool run."
    );
    metric!(
        WARM_POOL_PREPARING,
        "WarmPoolPreparing",
        Count,
        [],
        "warm-pool",
        "Instances on their way into the warm pool (preparing, or stopping once prepared)."
    );
    metric!(
        WARM_POOL_LAUNCHED,
        "WarmPoolLaunched",
        Count,
        [],
        "warm-pool",
        "Instances launched in prepare mode to top the warm pool up."
    );
    metric!(
        WARM_POOL_RETIRED,
        "WarmPoolRetired",
        Count,
        ["Reason"],
        "warm-pool",
        "Warm pool instances terminated, by reason (expired, preparation_failed, claim_abandoned)."
    );

    // job-retry
    metric!(
        RETRY_JOB,
        "RetryJob",
        Count,
        ["RetryCount"],
        "job-retry",
        "Jobs still queued after their delay, sent back to the build queue (upstream's name)."
    );

    // ssm-housekeeper
    metric!(
        SSM_PARAMETERS_DELETED,
        "SsmParametersDeleted",
        Count,
        ["Reason"],
        "ssm-housekeeper",
        "Runner token parameters deleted, by reason (expired, orphaned)."
    );
    metric!(
        SSM_PARAMETERS_NOT_DELETED,
        "SsmParametersNotDeleted",
        Count,
        [],
        "ssm-housekeeper",
        "Token parameters to delete that a run could not (errors, deadline): tried again next run."
    );

    // redelivery
    metric!(
        DELIVERIES_FAILED_SEEN,
        "DeliveriesFailedSeen",
        Count,
        [],
        "redelivery",
        "workflow_job deliveries whose latest attempt failed, seen by a run (each run counts those still waiting)."
    );
    metric!(DELIVERIES_REDELIVERED, "DeliveriesRedelivered", Count, [], "redelivery", "Redeliveries GitHub accepted.");
    metric!(
        DELIVERIES_GIVEN_UP,
        "DeliveriesGivenUp",
        Count,
        [],
        "redelivery",
        "workflow_job deliveries still failed after the maximum number of redeliveries (or too old to redeliver): their jobs may be lost."
    );

    // ami-housekeeper
    metric!(AMIS_DEREGISTERED, "AmisDeregistered", Count, [], "ami-housekeeper", "Unused old images deregistered.");
    metric!(
        AMI_SNAPSHOTS_DELETED,
        "AmiSnapshotsDeleted",
        Count,
        [],
        "ami-housekeeper",
        "Snapshots of deregistered images deleted."
    );
    metric!(
        AMIS_NOT_DEREGISTERED,
        "AmisNotDeregistered",
        Count,
        [],
        "ami-housekeeper",
        "Images to deregister whose deregistration failed or was left for the next run (deadline)."
    );

    // termination-watcher
    metric!(
        SPOT_INTERRUPTION_WARNING,
        "SpotInterruptionWarning",
        Count,
        ["InstanceType"],
        "termination-watcher",
        "Spot interruption warnings for this deployment's runners (two minutes before the reclaim), by instance type."
    );
    metric!(
        SPOT_TERMINATION,
        "SpotTermination",
        Count,
        ["InstanceType"],
        "termination-watcher",
        "Runner instances reclaimed by EC2 spot (CloudTrail BidEvictedEvent), by instance type."
    );
    metric!(
        TERMINATED_RUNNERS_DEREGISTERED,
        "TerminatedRunnersDeregistered",
        Count,
        [],
        "termination-watcher",
        "Runners of terminating instances deregistered from GitHub."
    );
    metric!(
        TERMINATED_RUNNERS_BUSY,
        "TerminatedRunnersBusy",
        Count,
        [],
        "termination-watcher",
        "Deregistrations GitHub refused while the runner ran a job, put on the retry queue."
    );
    metric!(
        JOBS_RESCUED,
        "JobsRescued",
        Count,
        [],
        "termination-watcher",
        "Jobs a spot reclaim interrupted that were re-run, their runner launched on on-demand capacity (job rescue)."
    );
    metric!(
        JOBS_NOT_RESCUED,
        "JobsNotRescued",
        Count,
        ["Reason"],
        "termination-watcher",
        "Jobs a spot reclaim interrupted that were not re-run, by reason (attempts_exhausted, still_running, error...)."
    );
    metric!(
        TERMINATED_RUNNERS_NOT_DEREGISTERED,
        "TerminatedRunnersNotDeregistered",
        Count,
        [],
        "termination-watcher",
        "Runners of terminated instances that could not be deregistered (errors, or busy past the last retry)."
    );

    // scale-down
    metric!(RUNNERS_SEEN, "RunnersSeen", Count, [], "scale-down", "Runner instances found.");
    metric!(RUNNERS_IDLE_KEPT, "RunnersIdleKept", Count, [], "scale-down", "Idle runners kept by the idle config.");
    metric!(
        RUNNERS_TERMINATED,
        "RunnersTerminated",
        Count,
        ["Reason"],
        "scale-down",
        "Instances terminated and runners removed, by reason (idle, orphan, ghost)."
    );
    metric!(
        RUNNERS_SKIPPED,
        "RunnersSkipped",
        Count,
        ["Reason"],
        "scale-down",
        "Runners not removed because busy or because their state is unknown."
    );
    metric!(
        SCALE_DOWN_ERRORS,
        "ScaleDownErrors",
        Count,
        [],
        "scale-down",
        "Errors reading or changing an owner's runners."
    );

    // syncer
    metric!(
        SYNCER_RESULT,
        "RunnerBinarySync",
        Count,
        ["Result"],
        "syncer",
        "Runner binary syncs by result (synced, up_to_date, failed)."
    );

    /// Every metric the functions emit.
    pub const ALL: &[MetricDef] = &[
        WEBHOOK_RECEIVED,
        WEBHOOK_ACCEPTED,
        WEBHOOK_REJECTED,
        JOBS_DISPATCHED,
        JOBS_NOT_DISPATCHED,
        JOBS_RECEIVED,
        MALFORMED_MESSAGES,
        RUNNERS_REQUESTED,
        RUNNERS_CREATED,
        RUNNERS_FAILED,
        JOBS_SKIPPED,
        JOBS_RETRIED,
        GITHUB_APP_RATE_LIMIT_REMAINING,
        GITHUB_RATE_LIMIT_HITS,
        POOL_AVAILABLE,
        POOL_RUNNERS_LAUNCHED,
        WARM_POOL_CLAIMS,
        WARM_POOL_FALLBACKS,
        WARM_POOL_RETURNED,
        WARM_POOL_CLAIM_TO_RUNNER_START,
        WARM_POOL_READY,
        WARM_POOL_PREPARING,
        WARM_POOL_LAUNCHED,
        WARM_POOL_RETIRED,
        RETRY_JOB,
        SSM_PARAMETERS_DELETED,
        SSM_PARAMETERS_NOT_DELETED,
        DELIVERIES_FAILED_SEEN,
        DELIVERIES_REDELIVERED,
        DELIVERIES_GIVEN_UP,
        AMIS_DEREGISTERED,
        AMI_SNAPSHOTS_DELETED,
        AMIS_NOT_DEREGISTERED,
        SPOT_INTERRUPTION_WARNING,
        SPOT_TERMINATION,
        TERMINATED_RUNNERS_DEREGISTERED,
        TERMINATED_RUNNERS_BUSY,
        JOBS_RESCUED,
        JOBS_NOT_RESCUED,
        TERMINATED_RUNNERS_NOT_DEREGISTERED,
        RUNNERS_SEEN,
        RUNNERS_IDLE_KEPT,
        RUNNERS_TERMINATED,
        RUNNERS_SKIPPED,
        SCALE_DOWN_ERRORS,
        SYNCER_RESULT,
    ];

    /// The dimension every metric carries.
    pub const ENVIRONMENT_DIMENSION: &str = "Environment";
}

use metrics::MetricDef;

/// Where EMF lines go.
pub trait MetricSink: Send + Sync {
    fn write_line(&self, line: &str);
}

/// Writes EMF lines to stdout, where the Lambda log agent picks them up.
pub struct StdoutSink;

impl MetricSink for StdoutSink {
    fn write_line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
    }
}

/// Keeps EMF lines in memory (tests, benchmarks).
#[derive(Default)]
pub struct MemorySink {
    pub lines: Mutex<Vec<String>>,
}

impl MemorySink {
    /// The sum of a metric's values over every line.
    pub fn sum(&self, metric: &str) -> f64 {
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.get(metric).and_then(serde_json::Value::as_f64))
            .sum()
    }

    /// The sum of a metric's values over the lines with these dimension values.
    pub fn sum_with(&self, metric: &str, dimensions: &[(&str, &str)]) -> f64 {
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                dimensions.iter().all(|(k, value)| v.get(*k).and_then(serde_json::Value::as_str) == Some(*value))
            })
            .filter_map(|v| v.get(metric).and_then(serde_json::Value::as_f64))
            .sum()
    }
}

impl MetricSink for MemorySink {
    fn write_line(&self, line: &str) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line.to_string());
        }
    }
}

/// Emits metrics as EMF lines.
#[derive(Clone)]
pub struct Metrics {
    namespace: String,
    environment: String,
    sink: Arc<dyn MetricSink>,
}

impl Metrics {
    pub fn new(config: &TelemetryConfig, sink: Arc<dyn MetricSink>) -> Self {
        Self { namespace: config.namespace.clone(), environment: config.environment.clone(), sink }
    }

    pub fn stdout(config: &TelemetryConfig) -> Self {
        Self::new(config, Arc::new(StdoutSink))
    }

    /// Emits one value of `def`. `dimensions` must name exactly the metric's declared
    /// dimensions (CloudWatch identifies a metric by its name and dimension set).
    pub fn put(&self, def: &MetricDef, value: f64, dimensions: &[(&str, &str)]) {
        debug_assert!(
            def.dimensions.len() == dimensions.len()
                && def.dimensions.iter().all(|d| dimensions.iter().any(|(k, _)| k == d)),
            "metric {} emitted with dimensions {:?}, declared {:?}",
            def.name,
            dimensions,
            def.dimensions
        );
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut dims: Vec<&str> = vec![metrics::ENVIRONMENT_DIMENSION];
        dims.extend(dimensions.iter().map(|(k, _)| *k));
        let mut line = serde_json::Map::new();
        line.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dims],
                    "Metrics": [{"Name": def.name, "Unit": def.unit.as_str()}],
                }],
            }),
        );
        line.insert(metrics::ENVIRONMENT_DIMENSION.into(), self.environment.clone().into());
        for (k, v) in dimensions {
            line.insert((*k).to_string(), (*v).into());
        }
        line.insert(def.name.into(), value.into());
        self.sink.write_line(&serde_json::Value::Object(line).to_string());
    }

    pub fn count(&self, def: &MetricDef, value: usize, dimensions: &[(&str, &str)]) {
        self.put(def, value as f64, dimensions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_shape() {
        let sink = Arc::new(MemorySink::default());
        let config = TelemetryConfig {
            environment: "prod".into(),
            namespace: "GitHub Runners".into(),
            log_level: "info".into(),
        };
        let m = Metrics::new(&config, sink.clone());
        m.count(&metrics::WEBHOOK_REJECTED, 1, &[("Reason", "signature")]);
        let lines = sink.lines.lock().unwrap();
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "GitHub Runners");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], serde_json::json!(["Environment", "Reason"]));
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "WebhookRejected");
        assert_eq!(v["WebhookRejected"], 1.0);
        assert_eq!(v["Environment"], "prod");
        assert_eq!(v["Reason"], "signature");
    }

    #[test]
    fn metric_names_are_unique() {
        let mut names: Vec<_> = metrics::ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), metrics::ALL.len());
    }

    #[test]
    fn upstream_log_levels() {
        assert_eq!(tracing_level("silly"), "trace");
        assert_eq!(tracing_level("FATAL"), "error");
        assert_eq!(tracing_level("warn"), "warn");
        assert_eq!(tracing_level("whatever"), "info");
    }
}
