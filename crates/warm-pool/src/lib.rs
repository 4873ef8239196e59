//! The warm-pool function (beyond upstream): keeps prepared, stopped runner instances that
//! scale-up starts for a job instead of launching a fresh one (`common::domain::warm_pool`).
//!
//! - **Trigger**: an EventBridge schedule (default every 2 minutes); the event is ignored.
//!   Reserved concurrency 1.
//! - **Per run**: lists the environment's warm pool (instances tagged `ghr:warm`, running or
//!   stopped) and its running instances once, then (`warm_pool::plan`):
//!   - terminates the instances to retire: prepared longer ago than `maxAgeHours` (the pool
//!     rotates, so its packages stay fresh), prepared from another image than the one the
//!     configuration launches now (a new AMI: `AMI_ID_SSM_PARAMETER_NAME`, else the launch
//!     template's), not prepared a boot time after their launch, or claimed and left stopped by
//!     a claimant that died;
//!   - launches the missing instances in prepare mode (`ghr:warm=preparing`, no owner), on
//!     demand, through scale-up's launch path (one fleet, the AMI override); their boot
//!     script installs the runner, tags them `ready` and stops (or hibernates) them;
//!   - **never past `RUNNERS_MAXIMUM_COUNT`**: stopped instances cost no compute and do not
//!     count, but instances preparing run, and so does the top-up only while the environment
//!     has room.
//! - **Unknown is never zero**: if EC2 cannot be read, nothing is launched or terminated and
//!   the run fails.
//! - **No GitHub**: its instances register only once claimed. It has no App credentials.
//! - **Environment**: scale-up's variables (with `WARM_POOL_CONFIG`), plus
//!   `RUNNER_BOOT_TIME_IN_MINUTES`.
//! - **IAM**: scale-up's launch permissions; `ec2:TerminateInstances` on this environment's
//!   instances.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use common::clock::{Clock, SystemClock};
use common::config::FromEnv;
use common::deadline::Deadline;
use common::domain::runner::InstanceFilter;
use common::domain::warm_pool::{PoolContext, WarmPlan, plan};
use common::error::AwsError;
use common::telemetry::Metrics;
use common::telemetry::metrics::{WARM_POOL_LAUNCHED, WARM_POOL_PREPARING, WARM_POOL_READY, WARM_POOL_RETIRED};
use scale_up::ScaleUp;

pub use config::Config;

/// Why a run did nothing.
#[derive(Debug, thiserror::Error)]
pub enum WarmPoolError {
    #[error("cannot read the environment's instances, nothing launched or terminated: {0}")]
    Ec2(#[from] AwsError),
}

/// What one run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmPoolSummary {
    pub size: usize,
    pub ready: usize,
    pub preparing: usize,
    pub running: usize,
    /// Terminated, with the reason.
    pub retired: Vec<(String, &'static str)>,
    /// Instances asked of the launch path, and the ones launched.
    pub requested: usize,
    pub launched: Vec<String>,
    /// Why fewer were launched, or why retiring failed.
    pub failures: Vec<String>,
}

impl WarmPoolSummary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "size": self.size, "ready": self.ready, "preparing": self.preparing, "running": self.running,
            "retired": self.retired.iter().map(|(id, why)| serde_json::json!({"instanceId": id, "reason": why})).collect::<Vec<_>>(),
            "requested": self.requested, "launched": self.launched, "failures": self.failures,
        })
    }
}

pub struct WarmPool {
    config: Config,
    scale_up: ScaleUp,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl WarmPool {
    pub fn new(config: Config, scale_up: ScaleUp, clock: Arc<dyn Clock>, metrics: Metrics) -> Self {
        Self { config, scale_up, clock, metrics }
    }

    /// One scheduled run.
    pub async fn handle(&self, deadline: Deadline) -> Result<WarmPoolSummary, WarmPoolError> {
        let summary = self.adjust(deadline).await;
        match &summary {
            Ok(s) => {
                self.metrics.count(&WARM_POOL_READY, s.ready, &[]);
                self.metrics.count(&WARM_POOL_PREPARING, s.preparing, &[]);
                self.metrics.count(&WARM_POOL_LAUNCHED, s.launched.len(), &[]);
                let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
                for (_, why) in &s.retired {
                    *reasons.entry(why).or_default() += 1;
                }
                for (why, n) in reasons {
                    self.metrics.count(&WARM_POOL_RETIRED, n, &[("Reason", why)]);
                }
                tracing::info!(
                    size = s.size,
                    ready = s.ready,
                    preparing = s.preparing,
                    running = s.running,
                    retired = ?s.retired,
                    requested = s.requested,
                    launched = ?s.launched,
                    failures = ?s.failures,
                    "warm pool adjusted"
                );
            }
            Err(e) => tracing::error!(error = %e, "warm pool not adjusted"),
        }
        summary
    }

    /// Retires what must go and tops the pool up to its size.
    pub async fn adjust(&self, deadline: Deadline) -> Result<WarmPoolSummary, WarmPoolError> {
        let config = &self.config.scale_up;
        let Some(warm) = &config.warm_pool else {
            return Ok(WarmPoolSummary::default());
        };
        let ec2 = self.scale_up.instances();
        let pool_filter = InstanceFilter::warm_pool(&config.environment);
        let running_filter = InstanceFilter::live(&config.environment);
        let pool = common::aws::with_retries(deadline, &[], || ec2.list(&pool_filter)).await?;
        let running = common::aws::with_retries(deadline, &[], || ec2.list(&running_filter)).await?;
        // A new image rotates the pool; an unknown one rotates nothing (and launches anyway:
        // the template decides the image of what is launched).
        let current_image = match self.scale_up.current_image(deadline).await {
            Ok(image) => image,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the configuration's image; no rotation by image this run");
                None
            }
        };
        let context = PoolContext {
            running: running.len(),
            maximum: config.maximum,
            boot_time: TimeDelta::minutes(self.config.boot_time_minutes),
            current_image: current_image.as_deref(),
            now: self.clock.now(),
        };
        let WarmPlan { ready, preparing, retire, launch } = plan(&pool, warm, context);
        let mut summary = WarmPoolSummary {
            size: warm.size,
            ready: ready.len(),
            preparing: preparing.len(),
            running: running.len(),
            requested: launch,
            ..WarmPoolSummary::default()
        };
        if !retire.is_empty() {
            let ids: Vec<String> = retire.iter().map(|(id, _)| id.clone()).collect();
            match common::aws::within(deadline, "ec2:TerminateInstances", ec2.terminate(&ids)).await {
                Ok(()) => summary.retired = retire.iter().map(|(id, why)| (id.clone(), why.as_str())).collect(),
                Err(e) => summary.failures.push(format!("retiring {ids:?}: {e}")),
            }
        }
        if launch > 0 {
            let (launched, failure) = self.scale_up.create_warm_instances(launch, deadline).await;
            summary.launched = launched;
            summary.failures.extend(failure);
        }
        Ok(summary)
    }
}

/// The warm-pool function with real clients, as Lambda runs it.
pub async fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> WarmPool {
    let scale_up = scale_up::build_launcher(&config.scale_up, sdk, metrics.clone()).await;
    let clock: Arc<dyn Clock> = match &config.clock_file {
        Some(file) => Arc::new(common::clock::FileClock(file.into())),
        None => Arc::new(SystemClock),
    };
    WarmPool::new(config.clone(), scale_up, clock, metrics)
}

/// Starts the function: reads its configuration, then serves scheduled events.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let sdk = common::aws::load_sdk_config(Duration::from_secs(5), 3).await;
    let metrics = Metrics::stdout(&config.scale_up.telemetry);
    let warm_pool = build(&config, &sdk, metrics).await;
    let warm_pool = &warm_pool;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let deadline = common::lambda::deadline_of(&event.context);
            let summary = warm_pool.handle(deadline).await?;
            Ok::<_, lambda_runtime::Error>(summary.to_json())
        },
    ))
    .await
}

#[cfg(test)]
mod tests;
