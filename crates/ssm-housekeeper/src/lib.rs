//! The SSM housekeeper function: deletes runner token parameters nobody will read.
//!
//! - **Trigger**: the EventBridge rule `<prefix>-ssm-housekeeper` (`rate(1 day)` by default).
//! - **Per run**: lists the parameters directly under the token path (`GetParametersByPath`,
//!   not recursive, values not read) and judges each (`common::domain::ssm_housekeeper`):
//!   older than `minimumDaysOld` days → deleted (upstream); younger but older than the boot
//!   time with its instance terminated or unknown to EC2 → deleted (beyond upstream: scale-up
//!   leaves one behind whenever an instance dies before reading it); anything not named after
//!   an instance is foreign and left alone, so the App and configuration parameters are never
//!   touched even with a misconfigured path. With `dryRun` it only logs what it would delete.
//! - **Paced under SSM's limits**: `DeleteParameters` with 10 names per call, one call at a
//!   time, a pause between calls, backing off on throttling; a run stops before its deadline
//!   and leaves the rest for the next one.
//! - **Unknown is never gone**: if EC2 cannot be read, the orphan rule deletes nothing.
//! - **Environment**: `SSM_CLEANUP_CONFIG`, `RUNNER_BOOT_TIME_IN_MINUTES`, `ENVIRONMENT`,
//!   `LOG_LEVEL`, `POWERTOOLS_METRICS_NAMESPACE`.
//! - **IAM**: `ssm:GetParametersByPath` on the token path, `ssm:DeleteParameter(s)` on the
//!   parameters below it, `ec2:DescribeInstances`.

pub mod config;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use common::clock::Clock;
use common::config::FromEnv;
use common::deadline::Deadline;
use common::domain::ssm_housekeeper::{Ages, InstanceState, Verdict, instance_id_of, judge, needs_instance_state};
use common::error::AwsError;
use common::ports::{ParameterHousekeeping, RunnerInstances};
use common::telemetry::Metrics;
use common::telemetry::metrics::{SSM_PARAMETERS_DELETED, SSM_PARAMETERS_NOT_DELETED};

pub use config::Config;

/// DeleteParameters takes at most this many names.
const DELETE_BATCH: usize = 10;
/// Between two delete calls: SSM's write limits are shared with scale-up's token writes.
const DELETE_PAUSE: Duration = Duration::from_millis(200);
/// Kept for the answer and the log lines.
const ANSWER_RESERVE: Duration = Duration::from_secs(2);

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub listed: usize,
    /// Deleted (or, in a dry run, to delete) names by verdict (`expired`, `orphaned`).
    pub deleted: BTreeMap<&'static str, Vec<String>>,
    pub dry_run: bool,
    pub recent: usize,
    pub foreign: usize,
    /// Names whose deletion failed or was left for the next run (deadline).
    pub not_deleted: Vec<String>,
    /// EC2 could not be read: no orphan was deleted.
    pub instances_unknown: bool,
}

impl Summary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "listed": self.listed,
            "dryRun": self.dry_run,
            "deleted": self.deleted,
            "recent": self.recent,
            "foreign": self.foreign,
            "notDeleted": self.not_deleted,
            "instancesUnknown": self.instances_unknown,
        })
    }
}

pub struct SsmHousekeeper {
    config: Config,
    parameters: Arc<dyn ParameterHousekeeping>,
    ec2: Arc<dyn RunnerInstances>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl SsmHousekeeper {
    pub fn new(
        config: Config,
        parameters: Arc<dyn ParameterHousekeeping>,
        ec2: Arc<dyn RunnerInstances>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Self {
        Self { config, parameters, ec2, clock, metrics }
    }

    /// One scheduled run. Fails only when the token path cannot be listed.
    pub async fn run_once(&self, deadline: Deadline) -> Result<Summary, AwsError> {
        let path = self.config.cleanup.token_path().to_string();
        let listed =
            common::aws::with_retries(deadline.less(ANSWER_RESERVE), &[], || self.parameters.list_under(&path)).await?;
        let now = self.clock.now();
        let ages = Ages {
            minimum_days_old: self.config.cleanup.minimum_days_old,
            boot_time: TimeDelta::minutes(self.config.boot_time_minutes),
        };
        let mut summary = Summary { listed: listed.len(), dry_run: self.config.cleanup.dry_run, ..Summary::default() };

        // The instances that decide the orphan rule, in one lookup.
        let ids: Vec<String> = listed
            .iter()
            .filter(|p| needs_instance_state(p.last_modified, now, ages))
            .filter_map(|p| instance_id_of(&p.name, &path).map(str::to_string))
            .collect();
        let states: Option<BTreeMap<String, String>> = if ids.is_empty() {
            Some(BTreeMap::new())
        } else {
            match common::aws::with_retries(deadline.less(ANSWER_RESERVE), &[], || self.ec2.find(&ids)).await {
                Ok(found) => Some(found.into_iter().map(|i| (i.id, i.state)).collect()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the instances: no orphaned parameter is deleted this run");
                    summary.instances_unknown = true;
                    None
                }
            }
        };
        let asked: HashSet<&String> = ids.iter().collect();

        let mut to_delete: Vec<(String, Verdict)> = Vec::new();
        for parameter in &listed {
            let instance = match (instance_id_of(&parameter.name, &path), &states) {
                (Some(id), Some(states)) if asked.contains(&id.to_string()) => {
                    InstanceState::from_ec2(states.get(id).map(String::as_str))
                }
                _ => InstanceState::Unknown,
            };
            let verdict = judge(&parameter.name, &path, parameter.last_modified, now, ages, instance);
            match verdict {
                Verdict::Recent => summary.recent += 1,
                Verdict::Foreign => {
                    summary.foreign += 1;
                    tracing::info!(parameter = %parameter.name, "not a runner token parameter: left alone");
                }
                Verdict::Expired | Verdict::Orphaned => to_delete.push((parameter.name.clone(), verdict)),
            }
        }

        if self.config.cleanup.dry_run {
            for (name, verdict) in to_delete {
                tracing::info!(parameter = %name, reason = verdict.as_str(), "dry run: would delete");
                summary.deleted.entry(verdict.as_str()).or_default().push(name);
            }
            return Ok(summary);
        }

        let mut batches = to_delete.chunks(DELETE_BATCH).peekable();
        while let Some(batch) = batches.next() {
            let names: Vec<String> = batch.iter().map(|(n, _)| n.clone()).collect();
            if deadline.less(ANSWER_RESERVE).remaining() < Duration::from_secs(1) {
                tracing::info!(left = names.len(), "out of time: the rest is deleted next run");
                summary.not_deleted.extend(names);
                summary.not_deleted.extend(batches.flat_map(|b| b.iter().map(|(n, _)| n.clone())));
                break;
            }
            match common::aws::with_retries(deadline.less(ANSWER_RESERVE), &[], || self.parameters.delete(&names)).await
            {
                Ok(_already_gone) => {
                    for (name, verdict) in batch {
                        tracing::info!(parameter = %name, reason = verdict.as_str(), "deleted");
                        summary.deleted.entry(verdict.as_str()).or_default().push(name.clone());
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, parameters = ?names, "deleting parameters failed; they are tried again next run");
                    summary.not_deleted.extend(names);
                }
            }
            if batches.peek().is_some() {
                tokio::time::sleep(DELETE_PAUSE).await;
            }
        }
        Ok(summary)
    }

    /// One log line and the metrics of a run.
    pub fn report(&self, summary: &Summary) {
        if !summary.dry_run {
            for (reason, names) in &summary.deleted {
                self.metrics.count(&SSM_PARAMETERS_DELETED, names.len(), &[("Reason", reason)]);
            }
            self.metrics.count(&SSM_PARAMETERS_NOT_DELETED, summary.not_deleted.len(), &[]);
        }
        let count = |reason: &str| summary.deleted.get(reason).map_or(0, Vec::len);
        tracing::info!(
            listed = summary.listed,
            dry_run = summary.dry_run,
            expired = count("expired"),
            orphaned = count("orphaned"),
            recent = summary.recent,
            foreign = summary.foreign,
            not_deleted = summary.not_deleted.len(),
            instances_unknown = summary.instances_unknown,
            "ssm housekeeping done"
        );
    }
}

/// The housekeeper with real clients, as Lambda runs it.
pub fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> SsmHousekeeper {
    SsmHousekeeper::new(
        config.clone(),
        Arc::new(common::aws::ssm::SsmParameterStore::new(sdk)),
        Arc::new(common::aws::ec2::Ec2RunnerInstances::without_retries(sdk)),
        Arc::from(common::clock::from_config(config.clock_file.as_deref())),
        metrics,
    )
}

/// Starts the function: reads its configuration, then serves scheduled events.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let sdk = common::aws::load_sdk_config(Duration::from_secs(5), 1).await;
    let housekeeper = build(&config, &sdk, Metrics::stdout(&config.telemetry));
    let housekeeper = &housekeeper;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let deadline = common::lambda::deadline_of(&event.context);
            let summary = housekeeper
                .run_once(deadline)
                .await
                .inspect_err(|e| tracing::error!(error = %e, "cannot list the token parameters"))?;
            housekeeper.report(&summary);
            Ok::<_, lambda_runtime::Error>(summary.to_json())
        },
    ))
    .await
}

#[cfg(test)]
mod tests;
