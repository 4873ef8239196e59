//! The termination watcher's configuration, from its environment (upstream §1.11 names).

use std::collections::BTreeMap;

use common::config::{Env, FromEnv, GithubConnection};
use common::domain::termination::{JobRescueConfig, parse_tag_filters};
use common::github::app::{APP_ID_NAME, APP_INSTALLATION_ID_NAME, APP_KEY_NAME, AppParameterNames};
use common::telemetry::TelemetryConfig;

pub const PREFIX: &str = "PREFIX";
pub const TAG_FILTERS: &str = "TAG_FILTERS";
pub const SPOT_WARNING_METRIC: &str = "ENABLE_METRICS_SPOT_WARNING";
pub const SPOT_TERMINATION_METRIC: &str = "ENABLE_METRICS_SPOT_TERMINATION";
pub const DEREGISTRATION: &str = "ENABLE_RUNNER_DEREGISTRATION";
pub const RETRY_QUEUE_URL: &str = "DEREGISTER_RETRY_QUEUE_URL";
/// Beyond upstream: `{"maxAttempts": 1, "queues": {"<ghr:environment>": "<build queue URL>"}}`.
pub const JOB_RESCUE_CONFIG: &str = "JOB_RESCUE_CONFIG";

#[derive(Debug, Clone)]
pub struct Config {
    /// `PREFIX`: the deployment; the default tag filter is `ghr:environment` starting with it.
    pub prefix: String,
    /// `TAG_FILTERS`: tag → value prefix, all of which an instance must carry to be watched.
    pub tag_filters: BTreeMap<String, String>,
    /// `ENABLE_METRICS_SPOT_WARNING`: `SpotInterruptionWarning` for each warning.
    pub spot_warning_metric: bool,
    /// `ENABLE_METRICS_SPOT_TERMINATION`: `SpotTermination` for each reclaim.
    pub spot_termination_metric: bool,
    /// `ENABLE_RUNNER_DEREGISTRATION`: delete a terminating instance's runner from GitHub.
    pub deregistration: bool,
    /// The GitHub Apps (`PARAMETER_GITHUB_APP_*_NAME`), required with deregistration.
    pub apps: Option<AppParameterNames>,
    /// `DEREGISTER_RETRY_QUEUE_URL`: where a deregistration refused for a busy runner waits
    /// (the queue's delivery delay) before it is tried again; unset: not tried again.
    pub retry_queue_url: Option<String>,
    /// `JOB_RESCUE_CONFIG` (beyond upstream): a job a spot reclaim interrupted is re-run on
    /// on-demand capacity; needs the Apps and the retry queue.
    pub job_rescue: Option<JobRescueConfig>,
    pub github: GithubConnection,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let prefix = env.string_or(PREFIX, "");
        let raw_filters = env.optional(TAG_FILTERS);
        let tag_filters = match parse_tag_filters(raw_filters.as_deref(), &prefix) {
            Ok(f) => f,
            Err(e) => {
                env.problem(TAG_FILTERS, e);
                BTreeMap::new()
            }
        };
        if tag_filters.get(common::domain::runner::tags::ENVIRONMENT).is_some_and(String::is_empty) {
            // `{"ghr:environment": ""}` would match every runner of the account.
            env.problem(PREFIX, "is required when TAG_FILTERS is unset");
        }
        let deregistration = env.bool_or(DEREGISTRATION, false);
        let raw_rescue = env.optional(JOB_RESCUE_CONFIG);
        let job_rescue = match JobRescueConfig::parse(raw_rescue.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                env.problem(JOB_RESCUE_CONFIG, e);
                None
            }
        };
        let retry_queue_url = env.optional(RETRY_QUEUE_URL);
        if job_rescue.is_some() && retry_queue_url.is_none() {
            env.problem(RETRY_QUEUE_URL, format!("is required with {JOB_RESCUE_CONFIG}"));
        }
        let ids = env.optional(APP_ID_NAME);
        let keys = env.optional(APP_KEY_NAME);
        let installations = env.optional(APP_INSTALLATION_ID_NAME);
        let needs_github = deregistration || job_rescue.is_some();
        let apps = match (needs_github, ids, keys) {
            (false, _, _) => None,
            (true, Some(ids), Some(keys)) => match AppParameterNames::parse(&ids, &keys, installations.as_deref()) {
                Ok(apps) => Some(apps),
                Err(e) => {
                    env.problem(APP_ID_NAME, e);
                    None
                }
            },
            (true, _, _) => {
                env.problem(
                    APP_ID_NAME,
                    format!("and {APP_KEY_NAME} are required with {DEREGISTRATION} or {JOB_RESCUE_CONFIG}"),
                );
                None
            }
        };
        Self {
            prefix,
            tag_filters,
            spot_warning_metric: env.bool_or(SPOT_WARNING_METRIC, false),
            spot_termination_metric: env.bool_or(SPOT_TERMINATION_METRIC, false),
            deregistration,
            apps,
            retry_queue_url,
            job_rescue,
            github: GithubConnection::load(env),
            telemetry: TelemetryConfig::load(env),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn reads_upstream_names() {
        let c = Config::from_lookup(&lookup(&[
            (PREFIX, "gh"),
            (TAG_FILTERS, "null"),
            (SPOT_WARNING_METRIC, "true"),
            (DEREGISTRATION, "true"),
            (APP_ID_NAME, "/gh/app/id"),
            (APP_KEY_NAME, "/gh/app/key"),
            (RETRY_QUEUE_URL, "https://sqs.eu-west-1.amazonaws.com/1/gh-deregister-retry"),
        ]))
        .unwrap();
        assert_eq!(c.tag_filters["ghr:environment"], "gh");
        assert!(c.spot_warning_metric && !c.spot_termination_metric && c.deregistration);
        assert_eq!(c.apps.unwrap().ids, vec!["/gh/app/id".to_string()]);

        let off = Config::from_lookup(&lookup(&[(PREFIX, "gh")])).unwrap();
        assert!(!off.deregistration && off.apps.is_none() && off.retry_queue_url.is_none() && off.job_rescue.is_none());

        let rescue = Config::from_lookup(&lookup(&[
            (PREFIX, "gh"),
            (JOB_RESCUE_CONFIG, r#"{"maxAttempts":2,"queues":{"gh":"https://q"}}"#),
            (RETRY_QUEUE_URL, "https://r"),
            (APP_ID_NAME, "/gh/app/id"),
            (APP_KEY_NAME, "/gh/app/key"),
        ]))
        .unwrap();
        assert_eq!(rescue.job_rescue.unwrap().max_attempts, 2);
        assert!(rescue.apps.is_some(), "rescue reads runs through the Apps, with deregistration off");

        for bad in [
            vec![(PREFIX, "gh"), (DEREGISTRATION, "true")],
            vec![(PREFIX, "gh"), (TAG_FILTERS, "{not json")],
            vec![(TAG_FILTERS, "null")],
            vec![(PREFIX, "gh"), (JOB_RESCUE_CONFIG, r#"{"queues":{}}"#), (RETRY_QUEUE_URL, "https://q")],
            vec![(PREFIX, "gh"), (JOB_RESCUE_CONFIG, r#"{"queues":{}}"#), (APP_ID_NAME, "/i"), (APP_KEY_NAME, "/k")],
        ] {
            assert!(Config::from_lookup(&lookup(&bad)).is_err(), "{bad:?}");
        }
    }
}
