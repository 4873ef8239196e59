//! The pool function (upstream `adjustPool`, §1.7): keeps idle organization runners waiting.
//!
//! - **Trigger**: one EventBridge Scheduler schedule per `pool_config` entry, with the input
//!   `{"poolSize": <size>}`; reserved concurrency 1.
//! - **Per run**: the organization's GitHub runners and its live instances; the pool's size is
//!   the idle online runners, plus the instances still booting (and the busy runners with
//!   `INCLUDE_BUSY_RUNNERS`), see `common::domain::pool`. The missing runners are launched
//!   through scale-up's own code ([`scale_up::ScaleUp::create_pool_runners`]: the maximum and
//!   its recount, one fleet, failover, JIT configs or registration tokens), **never past
//!   `RUNNERS_MAXIMUM_COUNT`** (upstream #5186 launched 300+ instances for a pool of 40 and a
//!   maximum of 100).
//! - **Unknown is never zero**: if GitHub or EC2 cannot be read, nothing is launched and the
//!   run fails.
//! - **No fight with scale-down**: the runners a run counts, and the ones it launches, are
//!   tagged `ghr:pool_hold_until` (now + `POOL_HOLD_MINUTES`); scale-down does not remove an
//!   idle runner the pool holds, so a pool and an idle config do not take turns launching and
//!   removing the same runners. Once the schedules stop, the holds expire and scale-down's
//!   rules apply again.
//! - **Environment**: scale-up's variables plus `RUNNER_OWNER`, `INCLUDE_BUSY_RUNNERS`,
//!   `RUNNER_BOOT_TIME_IN_MINUTES`, `POOL_HOLD_MINUTES`.
//! - **IAM**: scale-up's, plus `ec2:CreateTags` for `ghr:pool_hold_until` on this
//!   environment's instances.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use common::clock::{Clock, SystemClock};
use common::config::FromEnv;
use common::deadline::Deadline;
use common::domain::pool::{count_pool, top_up};
use common::domain::runner::{InstanceFilter, RunnerOwner, tags};
use common::error::{AwsError, GithubError};
use common::telemetry::Metrics;
use common::telemetry::metrics::{POOL_AVAILABLE, POOL_RUNNERS_LAUNCHED};
use scale_up::{Fate, ScaleUp};
use serde::Deserialize;

pub use config::Config;

/// The schedule's input (upstream: `{"poolSize": 3, "type": "ec2"}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolEvent {
    pub pool_size: usize,
}

/// Why a run launched nothing.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the schedule's input is not a pool event: {0}")]
    Event(String),
    #[error("cannot read the organization's runners, nothing launched: {0}")]
    Github(#[from] GithubError),
    #[error("cannot read the organization's instances, nothing launched: {0}")]
    Ec2(#[from] AwsError),
}

/// What one run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSummary {
    pub size: usize,
    pub idle: usize,
    pub busy: usize,
    pub booting: usize,
    pub available: usize,
    pub live: usize,
    /// Runners asked of scale-up's launch path, and the ones created.
    pub requested: usize,
    pub created: Vec<String>,
    /// Why the others were not.
    pub failures: Vec<String>,
}

impl PoolSummary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "size": self.size, "idle": self.idle, "busy": self.busy, "booting": self.booting,
            "available": self.available, "live": self.live, "requested": self.requested,
            "created": self.created, "failures": self.failures,
        })
    }
}

pub struct Pool {
    config: Config,
    scale_up: ScaleUp,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl Pool {
    pub fn new(config: Config, scale_up: ScaleUp, clock: Arc<dyn Clock>, metrics: Metrics) -> Self {
        Self { config, scale_up, clock, metrics }
    }

    /// One scheduled run: the event is the schedule's input.
    pub async fn handle(&self, event: &serde_json::Value, deadline: Deadline) -> Result<PoolSummary, PoolError> {
        let event: PoolEvent = serde_json::from_value(event.clone()).map_err(|e| PoolError::Event(e.to_string()))?;
        let summary = self.adjust(event.pool_size, deadline).await;
        match &summary {
            Ok(s) => {
                self.metrics.count(&POOL_AVAILABLE, s.available, &[]);
                self.metrics.count(&POOL_RUNNERS_LAUNCHED, s.created.len(), &[]);
                tracing::info!(
                    size = s.size,
                    available = s.available,
                    idle = s.idle,
                    busy = s.busy,
                    booting = s.booting,
                    live = s.live,
                    requested = s.requested,
                    created = s.created.len(),
                    failures = ?s.failures,
                    "pool adjusted"
                );
            }
            Err(e) => tracing::error!(error = %e, "pool not adjusted"),
        }
        summary
    }

    /// Tops the pool up to `size`.
    pub async fn adjust(&self, size: usize, deadline: Deadline) -> Result<PoolSummary, PoolError> {
        let owner = RunnerOwner::Org(self.config.owner.clone());
        let github = self.scale_up.github();
        let app = github.choose_app();
        let installation = github.for_owner(app, &owner, None, deadline).await?;
        let runners = installation.list_runners().await?;
        let environment = &self.config.scale_up.environment;
        let live = InstanceFilter::live(environment).owned_by(&owner);
        let instances = common::aws::with_retries(deadline, &[], || self.scale_up.instances().list(&live)).await?;
        let now = self.clock.now();
        let count = count_pool(
            &instances,
            &runners,
            now,
            TimeDelta::minutes(self.config.boot_time_minutes),
            &self.config.scale_up.name_prefix,
        );
        let available = count.available(self.config.include_busy);
        let requested = top_up(size, available, count.live, self.config.scale_up.maximum);
        let mut summary = PoolSummary {
            size,
            idle: count.idle.len(),
            busy: count.busy.len(),
            booting: count.booting.len(),
            available,
            live: count.live,
            requested,
            ..PoolSummary::default()
        };
        if requested > 0 {
            for fate in self.scale_up.create_pool_runners(&owner, requested, deadline).await {
                match fate {
                    Fate::Created { instance_id } => summary.created.push(instance_id),
                    Fate::Retry { reason, detail } => summary.failures.push(format!("{reason}: {detail}")),
                    Fate::Skipped { reason } => summary.failures.push(reason.to_string()),
                }
            }
        }
        // Hold what the pool counts, and what it launched, against scale-down's idle rules.
        let mut held: Vec<String> = count.counted(self.config.include_busy);
        held.extend(summary.created.iter().cloned());
        if !held.is_empty() && self.config.hold_minutes > 0 {
            let until = (now + TimeDelta::minutes(self.config.hold_minutes)).timestamp().to_string();
            let tag = [(tags::POOL_HOLD_UNTIL.to_string(), until)];
            if let Err(e) =
                common::aws::within(deadline, "ec2:CreateTags", self.scale_up.instances().tag(&held, &tag)).await
            {
                tracing::warn!(error = %e, "holding the pool's runners failed; scale-down's idle rules apply to them");
            }
        }
        Ok(summary)
    }
}

/// The pool with real clients, as Lambda runs it (scale-up's own build).
pub async fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> Result<Pool, String> {
    let scale_up = scale_up::build(&config.scale_up, sdk, metrics.clone()).await?;
    Ok(Pool::new(config.clone(), scale_up, Arc::new(SystemClock), metrics))
}

/// Starts the function: reads its configuration, then serves scheduled events.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let sdk = common::aws::load_sdk_config(Duration::from_secs(5), 3).await;
    let metrics = Metrics::stdout(&config.telemetry());
    let handler: tokio::sync::OnceCell<Pool> = tokio::sync::OnceCell::new();
    let build = || build(&config, &sdk, metrics.clone());
    let handler = &handler;
    let build = &build;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let deadline = common::lambda::deadline_of(&event.context);
            let pool = handler.get_or_try_init(build).await.map_err(lambda_runtime::Error::from)?;
            let summary = pool.handle(&event.payload, deadline).await?;
            Ok::<_, lambda_runtime::Error>(summary.to_json())
        },
    ))
    .await
}

impl Config {
    pub fn telemetry(&self) -> common::telemetry::TelemetryConfig {
        self.scale_up.telemetry.clone()
    }
}

#[cfg(test)]
mod tests;
