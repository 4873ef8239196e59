//! The AMI housekeeper function: deregisters this account's old machine images that nothing
//! launches from any more, and deletes their snapshots (upstream `ami-housekeeper`).
//!
//! - **Trigger**: the EventBridge rule `<prefix>-ami-housekeeper` (`rate(1 day)` by default).
//! - **Images in use** are read first: the image of the `$Default` and `$Latest` versions of
//!   the listed launch templates (every template of the account when none are listed), and the
//!   values of the listed SSM parameters (`*fragment` for every parameter whose name contains
//!   it). A template naming its image as `resolve:ssm:<parameter>` keeps that parameter's value.
//! - **Then** the account's own images matching `amiFilters` (at most `maxItems`) are judged by
//!   `common::domain::ami_housekeeper`: an unused image older than `minimumDaysOld` days is
//!   deregistered, oldest first, 100 ms apart, then each of its EBS snapshots is deleted.
//!   `dryRun` only logs what would go.
//! - **Unknown is never unused** (upstream carries on with what it could read): if any template
//!   or parameter cannot be read, the run deregisters nothing and fails, so the errors alarm
//!   fires. A listed parameter that does not exist only logs a warning.
//! - **Deadline**: what is not done before the deadline is left for the next run.
//! - **Environment**: `AMI_CLEANUP_OPTIONS`, `ENVIRONMENT`, `LOG_LEVEL`,
//!   `POWERTOOLS_METRICS_NAMESPACE`.
//! - **IAM**: `ec2:DescribeImages`, `ec2:DescribeLaunchTemplates`,
//!   `ec2:DescribeLaunchTemplateVersions`, `ec2:DeregisterImage`, `ec2:DeleteSnapshot`,
//!   `ssm:DescribeParameters`, `ssm:GetParameters` (and `ssm:GetParameter` for `resolve:ssm:`).

pub mod config;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::clock::Clock;
use common::config::FromEnv;
use common::deadline::Deadline;
use common::domain::ami_housekeeper::{MachineImage, plan, ssm_reference};
use common::error::AwsError;
use common::ports::{MachineImages, ParameterLookup};
use common::telemetry::Metrics;
use common::telemetry::metrics::{AMI_SNAPSHOTS_DELETED, AMIS_DEREGISTERED, AMIS_NOT_DEREGISTERED};

pub use config::Config;

/// Between two deregistrations, as upstream: EC2's mutating calls share the account's limits
/// with scale-up's launches.
const DEREGISTER_PAUSE: Duration = Duration::from_millis(100);
/// Kept for the answer and the log lines.
const ANSWER_RESERVE: Duration = Duration::from_secs(2);

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub dry_run: bool,
    /// Images matching the filters.
    pub listed: usize,
    /// Distinct image ids found in launch templates and parameters.
    pub references: usize,
    pub in_use: Vec<String>,
    pub recent: usize,
    pub undated: Vec<String>,
    /// Deregistered (or, in a dry run, to deregister), oldest first.
    pub deregistered: Vec<String>,
    pub snapshots_deleted: Vec<String>,
    pub snapshots_not_deleted: Vec<String>,
    /// Images whose deregistration failed or was left for the next run (deadline).
    pub not_deregistered: Vec<String>,
}

impl Summary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "dryRun": self.dry_run,
            "listed": self.listed,
            "references": self.references,
            "inUse": self.in_use,
            "recent": self.recent,
            "undated": self.undated,
            "deregistered": self.deregistered,
            "snapshotsDeleted": self.snapshots_deleted,
            "snapshotsNotDeleted": self.snapshots_not_deleted,
            "notDeregistered": self.not_deregistered,
        })
    }
}

pub struct AmiHousekeeper {
    config: Config,
    images: Arc<dyn MachineImages>,
    parameters: Arc<dyn ParameterLookup>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl AmiHousekeeper {
    pub fn new(
        config: Config,
        images: Arc<dyn MachineImages>,
        parameters: Arc<dyn ParameterLookup>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Self {
        Self { config, images, parameters, clock, metrics }
    }

    /// Every image id a launch template or a listed parameter names. Fails when any of them
    /// cannot be read: an image whose use is unknown must not be deregistered.
    async fn images_in_use(&self, deadline: Deadline) -> Result<BTreeSet<String>, AwsError> {
        let cleanup = &self.config.cleanup;
        let templates = common::aws::with_retries(deadline, &[], || {
            self.images.launch_template_images(cleanup.launch_template_names.as_deref())
        })
        .await?;
        let mut in_use = BTreeSet::new();
        let (mut parameter_names, fragments) = cleanup.parameter_names();
        let listed_names = parameter_names.clone();
        for image in templates {
            match ssm_reference(&image) {
                Some(parameter) => parameter_names.push(parameter.to_string()),
                None => {
                    in_use.insert(image);
                }
            }
        }
        for fragment in &fragments {
            let found = common::aws::with_retries(deadline, &[], || self.parameters.names_containing(fragment)).await?;
            tracing::debug!(fragment = %fragment, parameters = found.len(), "parameters found by name");
            parameter_names.extend(found);
        }
        parameter_names.sort();
        parameter_names.dedup();
        if !parameter_names.is_empty() {
            let values =
                common::aws::with_retries(deadline, &[], || self.parameters.current_values(&parameter_names)).await?;
            for name in parameter_names.iter().filter(|n| !values.contains_key(*n)) {
                let listed = listed_names.contains(name);
                tracing::warn!(parameter = %name, listed, "parameter not found: it keeps no image");
            }
            // The values are compared, never logged: a misconfigured name could point at a secret.
            in_use.extend(values.values().map(|v| v.expose().trim().to_string()));
        }
        Ok(in_use)
    }

    /// One scheduled run. Fails only when the images in use or the images cannot be read.
    pub async fn run_once(&self, deadline: Deadline) -> Result<Summary, AwsError> {
        let work = deadline.less(ANSWER_RESERVE);
        let cleanup = &self.config.cleanup;
        let in_use = self.images_in_use(work).await?;
        let filters = cleanup.filters();
        let images = common::aws::with_retries(work, &[], || self.images.list_own(&filters, cleanup.max_items)).await?;
        let listed = images.len();
        let plan = plan(images, &in_use, self.clock.now(), cleanup.minimum_days_old());
        for id in &plan.undated {
            tracing::warn!(image = %id, "image without a creation date: kept");
        }
        let mut summary = Summary {
            dry_run: cleanup.dry_run(),
            listed,
            references: in_use.len(),
            in_use: plan.in_use,
            recent: plan.recent.len(),
            undated: plan.undated,
            ..Summary::default()
        };
        if summary.dry_run {
            for image in plan.deregister {
                tracing::info!(image = %image.id, name = ?image.name, created = ?image.created, snapshots = ?image.snapshot_ids, "dry run: would deregister");
                summary.deregistered.push(image.id);
            }
            return Ok(summary);
        }
        let mut queue = plan.deregister.into_iter().peekable();
        while let Some(image) = queue.next() {
            if work.remaining() < Duration::from_secs(1) {
                tracing::info!(left = queue.len() + 1, "out of time: the rest is deregistered next run");
                summary.not_deregistered.push(image.id);
                summary.not_deregistered.extend(queue.map(|i| i.id));
                break;
            }
            self.deregister(image, work, &mut summary).await;
            if queue.peek().is_some() {
                tokio::time::sleep(DEREGISTER_PAUSE).await;
            }
        }
        Ok(summary)
    }

    async fn deregister(&self, image: MachineImage, deadline: Deadline, summary: &mut Summary) {
        if let Err(e) = common::aws::with_retries(deadline, &[], || self.images.deregister(&image.id)).await {
            tracing::warn!(image = %image.id, error = %e, "deregistering failed; tried again next run");
            summary.not_deregistered.push(image.id);
            return;
        }
        tracing::info!(image = %image.id, name = ?image.name, created = ?image.created, "deregistered");
        summary.deregistered.push(image.id.clone());
        for snapshot in &image.snapshot_ids {
            match common::aws::with_retries(deadline, &[], || self.images.delete_snapshot(snapshot)).await {
                Ok(()) => summary.snapshots_deleted.push(snapshot.clone()),
                Err(e) => {
                    // Not tried again: the image is gone, so no later run will find the
                    // snapshot through it (as upstream, which logs the error too).
                    tracing::error!(image = %image.id, snapshot = %snapshot, error = %e, "deleting the image's snapshot failed: delete it by hand");
                    summary.snapshots_not_deleted.push(snapshot.clone());
                }
            }
        }
    }

    /// One log line and the metrics of a run.
    pub fn report(&self, summary: &Summary) {
        if !summary.dry_run {
            self.metrics.count(&AMIS_DEREGISTERED, summary.deregistered.len(), &[]);
            self.metrics.count(&AMI_SNAPSHOTS_DELETED, summary.snapshots_deleted.len(), &[]);
            self.metrics.count(&AMIS_NOT_DEREGISTERED, summary.not_deregistered.len(), &[]);
        }
        tracing::info!(
            dry_run = summary.dry_run,
            listed = summary.listed,
            references = summary.references,
            in_use = summary.in_use.len(),
            recent = summary.recent,
            undated = summary.undated.len(),
            deregistered = summary.deregistered.len(),
            snapshots_deleted = summary.snapshots_deleted.len(),
            snapshots_not_deleted = summary.snapshots_not_deleted.len(),
            not_deregistered = summary.not_deregistered.len(),
            "ami housekeeping done"
        );
    }
}

/// The housekeeper with real clients, as Lambda runs it.
pub fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> AmiHousekeeper {
    AmiHousekeeper::new(
        config.clone(),
        Arc::new(common::aws::images::Ec2MachineImages::without_retries(sdk)),
        Arc::new(common::aws::ssm::SsmParameterStore::new(sdk)),
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
            let summary = housekeeper.run_once(deadline).await.inspect_err(
                |e| tracing::error!(error = %e, "cannot read the images or what uses them: nothing deregistered"),
            )?;
            housekeeper.report(&summary);
            Ok::<_, lambda_runtime::Error>(summary.to_json())
        },
    ))
    .await
}

#[cfg(test)]
mod tests;
