//! The redelivery function: failed `workflow_job` deliveries of the GitHub Apps, redelivered.
//!
//! GitHub never retries a failed delivery by itself: an endpoint that was down, slow or
//! answering 5xx loses the job. This function asks GitHub to send them again.
//!
//! - **Trigger**: the EventBridge rule `<prefix>-webhook-redelivery` (`rate(5 minutes)` by
//!   default). One invocation sweeps every configured App (primary and additional), each with
//!   its own checkpoint.
//! - **Per App**: reads the delivery log (`GET /app/hook/deliveries`, App JWT, newest first,
//!   GitHub's cursor) back to the App's checkpoint (the first run: `REDELIVERY_WINDOW_MINUTES`
//!   back), then judges each event by its attempts (`common::domain::redelivery`): an event
//!   whose latest attempt failed is redelivered (`POST .../attempts`), oldest first; one already
//!   redelivered `REDELIVERY_MAX_ATTEMPTS` times is given up (a log line and `DeliveriesGivenUp`);
//!   other events and events with a successful attempt are left alone.
//! - **An endpoint still down is probed, not flooded**: when the newest attempt in the log
//!   failed, one event (the one redelivered least) is redelivered first and its outcome awaited
//!   in the log; the rest follow only if it succeeded. An outage costs one attempt per run,
//!   spread over the events, instead of every event's attempts.
//! - **Paced and bounded**: redeliveries go through the client's write pacer (GitHub's
//!   secondary limits) and honour `retry-after`; the run stops before its deadline.
//! - **The checkpoint moves only past settled events**: it stays at the first attempt of the
//!   oldest event still followed (redelivered and awaiting its outcome, or left for the next run),
//!   and does not move at all when the log could not be read back to it. A run cut short resumes
//!   from there; nothing is skipped.
//! - **Duplicates are harmless**: a redelivered `queued` event for a job that already got a
//!   runner is skipped by scale-up (the job id tag on the runner's instance), see scale-up.
//! - **Environment**: `PARAMETER_GITHUB_APP_ID_NAME`, `PARAMETER_GITHUB_APP_KEY_BASE64_NAME`,
//!   `REDELIVERY_CHECKPOINT_PARAMETER`, `REDELIVERY_WINDOW_MINUTES`, `REDELIVERY_MAX_ATTEMPTS`,
//!   `GHES_URL`, `ENVIRONMENT`, `LOG_LEVEL`, `POWERTOOLS_METRICS_NAMESPACE`.
//! - **IAM**: `ssm:GetParameters` on the App parameters, `ssm:GetParameter` and
//!   `ssm:PutParameter` on the checkpoint parameter (one for every App, created by Terraform).
//!   GitHub: none beyond the App's own JWT.

pub mod config;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::clock::Clock;
use common::config::{FromEnv, Secret};
use common::deadline::Deadline;
use common::domain::redelivery::{Checkpoint, Delivery, Failed, next_checkpoint, plan, probe};
use common::error::GithubError;
use common::ports::{NewParameter, ParameterStore, ParameterWriter, WebhookDeliveries};
use common::telemetry::Metrics;
use common::telemetry::metrics::{DELIVERIES_FAILED_SEEN, DELIVERIES_GIVEN_UP, DELIVERIES_REDELIVERED};
use serde::Serialize;

pub use config::Config;

/// Log entries per page (GitHub's maximum).
const PAGE_SIZE: u32 = 100;
/// Kept for writing the checkpoint and answering.
const ANSWER_RESERVE: Duration = Duration::from_secs(3);
/// How long the probe's outcome is awaited in the log (GitHub sends a redelivery within
/// seconds, and the endpoint has 10 s to answer).
const PROBE_PATIENCE: Duration = Duration::from_secs(20);
const PROBE_POLL: Duration = Duration::from_secs(1);

/// What one run did for one App.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSummary {
    pub app_id: u64,
    /// Log entries read, and whether back to the checkpoint.
    pub read: usize,
    pub complete: bool,
    /// Failed `workflow_job` events seen (to redeliver, or given up this run).
    pub failed_seen: usize,
    /// GUIDs redelivered.
    pub redelivered: Vec<String>,
    /// GUIDs given up this run.
    pub given_up: Vec<String>,
    /// Failed events left for the next run (endpoint still down, deadline, GitHub errors).
    pub left: usize,
    /// `succeeded`, `failed` or `unknown` when the endpoint was probed.
    pub probe: Option<&'static str>,
    /// Failed deliveries of other events, left alone.
    pub other_failed: usize,
    pub checkpoint: Option<String>,
    /// Why this App could not be swept.
    pub error: Option<String>,
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub apps: Vec<AppSummary>,
}

impl Summary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    pub fn redelivered(&self) -> usize {
        self.apps.iter().map(|a| a.redelivered.len()).sum()
    }
}

pub struct Redelivery {
    config: Config,
    github: Arc<dyn WebhookDeliveries>,
    parameters: Arc<dyn ParameterStore>,
    writer: Arc<dyn ParameterWriter>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl Redelivery {
    pub fn new(
        config: Config,
        github: Arc<dyn WebhookDeliveries>,
        parameters: Arc<dyn ParameterStore>,
        writer: Arc<dyn ParameterWriter>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Self {
        Self { config, github, parameters, writer, clock, metrics }
    }

    /// One scheduled run over every App.
    pub async fn run_once(&self, deadline: Deadline) -> Summary {
        let mut summary = Summary::default();
        let name = &self.config.checkpoint_parameter;
        let mut checkpoints = match self.load_checkpoints(name).await {
            Ok(c) => c,
            Err(e) => {
                // Without the checkpoints a run could only start over from the window.
                tracing::error!(parameter = %name, error = %e, "cannot read the checkpoints; the next run tries again");
                for app in 0..self.github.app_count() {
                    let app_id = self.github.app_id(app);
                    summary.apps.push(AppSummary { app_id, error: Some(e.clone()), ..AppSummary::default() });
                }
                return summary;
            }
        };
        for app in 0..self.github.app_count() {
            let app_id = self.github.app_id(app);
            let mut result = AppSummary { app_id, ..AppSummary::default() };
            let previous = checkpoints.get(&app_id.to_string()).copied();
            match self.sweep(app, previous, deadline, &mut result).await {
                Ok(next) => {
                    checkpoints.insert(app_id.to_string(), next);
                }
                Err(e) => {
                    tracing::error!(app_id, error = %e, "cannot sweep the App's deliveries; the next run tries again");
                    result.error = Some(e);
                }
            }
            summary.apps.push(result);
        }
        let value = serde_json::to_string(&checkpoints).unwrap_or_default();
        let write = NewParameter {
            name: name.clone(),
            value: Secret::new(value),
            secure: false,
            tags: Vec::new(),
            overwrite: true,
        };
        if let Err(e) = common::aws::within(deadline, "ssm:PutParameter", self.writer.put_parameter(&write)).await {
            // The next run reads from the old checkpoints: more to read, nothing skipped.
            tracing::warn!(parameter = %name, error = %e, "saving the checkpoints failed");
        }
        summary
    }

    /// Every App's checkpoint by App id; an unreadable value (Terraform's placeholder) is none.
    async fn load_checkpoints(&self, name: &str) -> Result<BTreeMap<String, Checkpoint>, String> {
        let value = self.parameters.get_parameter_fresh(name).await.map_err(|e| e.to_string())?;
        Ok(value
            .and_then(|v| match serde_json::from_str::<BTreeMap<String, Checkpoint>>(v.expose()) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(parameter = name, error = %e, "unreadable checkpoints: starting from the window");
                    None
                }
            })
            .unwrap_or_default())
    }

    /// Sweeps one App's log from its checkpoint; the next checkpoint.
    async fn sweep(
        &self,
        app: usize,
        previous: Option<Checkpoint>,
        deadline: Deadline,
        out: &mut AppSummary,
    ) -> Result<Checkpoint, String> {
        let settings = self.config.settings;
        let started = self.clock.now();
        let work = deadline.less(ANSWER_RESERVE);
        let checkpoint = previous.unwrap_or_else(|| Checkpoint::initial(started, settings));
        let lower = checkpoint.lower_bound(started, settings);

        // 1. The log, newest first, back to the lower bound.
        let mut attempts: Vec<Delivery> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            if work.remaining() < Duration::from_secs(2) {
                tracing::warn!(
                    app_id = out.app_id,
                    read = attempts.len(),
                    "out of time reading the log; the checkpoint stays"
                );
                break;
            }
            let page = match self.github.list_deliveries(app, cursor.as_deref(), PAGE_SIZE, work).await {
                Ok(page) => page,
                Err(e) if attempts.is_empty() => return Err(e.to_string()),
                Err(e) => {
                    tracing::warn!(app_id = out.app_id, error = %e, "reading the log failed part way; the checkpoint stays");
                    break;
                }
            };
            let reached = page.deliveries.iter().any(|d| d.delivered_at < lower);
            attempts.extend(page.deliveries);
            cursor = page.next_cursor;
            if reached || cursor.is_none() {
                out.complete = true;
                break;
            }
        }
        out.read = attempts.len();

        // 2. What to do.
        let plan = plan(&attempts, lower, checkpoint.last_run, settings);
        out.other_failed = plan.other_failed;
        // Events given up by an earlier run are not seen again (they are only re-read while an
        // older event holds the checkpoint back).
        out.failed_seen = plan.redeliver.len() + plan.newly_given_up.len();
        for guid in &plan.newly_given_up {
            tracing::error!(
                app_id = out.app_id,
                guid,
                max_attempts = settings.max_attempts,
                "delivery still failing after the last redelivery: given up, its job may be lost"
            );
        }
        out.given_up.extend(plan.newly_given_up.iter().cloned());

        // 3. Redeliver, probing first if the endpoint may still be down.
        let mut waiting: Vec<Failed> = plan.redeliver;
        let mut unsettled: Vec<chrono::DateTime<chrono::Utc>> = Vec::new();
        if !waiting.is_empty() && plan.newest_attempt_succeeded == Some(false) {
            let newest_id = attempts.iter().map(|a| a.id).max().unwrap_or(0);
            let probe_event = waiting.remove(probe(&waiting).unwrap_or(0));
            let outcome = self.probe(app, &probe_event, newest_id, work, out).await;
            unsettled.push(probe_event.first_attempt);
            out.probe = Some(outcome);
            if outcome != "succeeded" {
                tracing::info!(
                    app_id = out.app_id,
                    probe = outcome,
                    left = waiting.len(),
                    "the endpoint is not answering yet; the other deliveries wait for the next run"
                );
                unsettled.extend(waiting.iter().map(|f| f.first_attempt));
                out.left = waiting.len();
                waiting.clear();
            }
        }
        let mut rest = waiting.into_iter();
        for failed in rest.by_ref() {
            if work.remaining() < Duration::from_secs(1) {
                unsettled.push(failed.first_attempt);
                out.left += 1;
                break;
            }
            match self.github.redeliver(app, failed.delivery_id, work).await {
                Ok(()) => {
                    tracing::info!(app_id = out.app_id, guid = failed.guid, delivery_id = failed.delivery_id, attempt = failed.redeliveries + 1, action = ?failed.action, "redelivery requested");
                    unsettled.push(failed.first_attempt);
                    out.redelivered.push(failed.guid);
                }
                Err(e) if refused(&e) => {
                    // GitHub will not redeliver it (too old, gone): retrying cannot help.
                    tracing::error!(app_id = out.app_id, guid = failed.guid, error = %e, "GitHub refused the redelivery: given up, its job may be lost");
                    out.given_up.push(failed.guid);
                }
                Err(e) => {
                    tracing::warn!(app_id = out.app_id, guid = failed.guid, error = %e, "redelivery failed; it and the rest wait for the next run");
                    unsettled.push(failed.first_attempt);
                    out.left += 1;
                    break;
                }
            }
        }
        for failed in rest {
            unsettled.push(failed.first_attempt);
            out.left += 1;
        }

        // 4. The checkpoint.
        let next = next_checkpoint(&checkpoint, started, out.complete, unsettled);
        out.checkpoint = Some(next.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        Ok(next)
    }

    /// Redelivers `event` and waits for its outcome in the log.
    async fn probe(
        &self,
        app: usize,
        event: &Failed,
        newest_id: u64,
        work: Deadline,
        out: &mut AppSummary,
    ) -> &'static str {
        if let Err(e) = self.github.redeliver(app, event.delivery_id, work).await {
            tracing::warn!(app_id = out.app_id, guid = event.guid, error = %e, "the probe's redelivery failed");
            return "unknown";
        }
        out.redelivered.push(event.guid.clone());
        let until = std::time::Instant::now() + PROBE_PATIENCE;
        while std::time::Instant::now() < until && work.allows(PROBE_POLL, Duration::from_secs(2)) {
            tokio::time::sleep(PROBE_POLL).await;
            let Ok(page) = self.github.list_deliveries(app, None, PAGE_SIZE, work).await else { continue };
            if let Some(attempt) = page.deliveries.iter().find(|d| d.guid == event.guid && d.id > newest_id) {
                return if attempt.succeeded() { "succeeded" } else { "failed" };
            }
        }
        "unknown"
    }

    /// One log line and the metrics of a run.
    pub fn report(&self, summary: &Summary) {
        for app in &summary.apps {
            self.metrics.count(&DELIVERIES_FAILED_SEEN, app.failed_seen, &[]);
            self.metrics.count(&DELIVERIES_REDELIVERED, app.redelivered.len(), &[]);
            self.metrics.count(&DELIVERIES_GIVEN_UP, app.given_up.len(), &[]);
            tracing::info!(
                app_id = app.app_id,
                read = app.read,
                complete = app.complete,
                failed_seen = app.failed_seen,
                redelivered = app.redelivered.len(),
                given_up = app.given_up.len(),
                left = app.left,
                probe = app.probe,
                other_failed = app.other_failed,
                checkpoint = app.checkpoint,
                error = app.error,
                "redelivery sweep done"
            );
        }
    }
}

/// A redelivery GitHub will never accept: the delivery is unknown (404) or no longer
/// redeliverable (422, older than 3 days). Anything else (401/403: the App's credentials or
/// permissions; 5xx; rate limits) is not the delivery's fault and is tried again next run.
fn refused(e: &GithubError) -> bool {
    matches!(e, GithubError::Status { status: 404 | 422, .. })
}

/// The function with real clients, as Lambda runs it.
pub async fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> Result<Redelivery, String> {
    let store = Arc::new(common::aws::ssm::SsmParameterStore::new(sdk));
    let apps = common::github::app::load_apps(store.as_ref(), &config.apps).await.map_err(|e| e.to_string())?;
    let github = common::github::client::GithubClient::configured(&config.github, apps)?;
    Ok(Redelivery::new(
        config.clone(),
        Arc::new(github),
        store.clone(),
        store,
        Arc::from(common::clock::from_config(config.clock_file.as_deref())),
        metrics,
    ))
}

/// Starts the function: reads its configuration, then serves scheduled events.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let sdk = common::aws::load_sdk_config(Duration::from_secs(5), 3).await;
    let metrics = Metrics::stdout(&config.telemetry);
    // The App credentials are loaded on first use: a failure fails that run, not the container.
    let handler: tokio::sync::OnceCell<Redelivery> = tokio::sync::OnceCell::new();
    let build = || build(&config, &sdk, metrics.clone());
    let (handler, build) = (&handler, &build);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let deadline = common::lambda::deadline_of(&event.context);
            let redelivery = handler
                .get_or_try_init(build)
                .await
                .inspect_err(|e| tracing::error!(error = %e, "cannot start redelivery"))?;
            let summary = redelivery.run_once(deadline).await;
            redelivery.report(&summary);
            if !summary.apps.is_empty() && summary.apps.iter().all(|a| a.error.is_some()) {
                return Err(lambda_runtime::Error::from("no App's deliveries could be read"));
            }
            Ok::<_, lambda_runtime::Error>(summary.to_json())
        },
    ))
    .await
}

#[cfg(test)]
mod tests;
