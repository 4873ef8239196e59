//! The job-retry function's configuration, from its environment (upstream §1.8 names).

use common::config::{Env, FromEnv, GithubConnection};
use common::github::app::AppParameterNames;
use common::telemetry::TelemetryConfig;

#[derive(Debug, Clone)]
pub struct Config {
    /// `ENABLE_ORGANIZATION_RUNNERS`: jobs are looked up through the organization's
    /// installation (else the repository's).
    pub organization_runners: bool,
    /// `JOB_QUEUE_SCALE_UP_URL`: the build queue a job still queued goes back to.
    pub build_queue: String,
    /// `ENABLE_METRIC_JOB_RETRY`: emit `RetryJob`.
    pub retry_metric: bool,
    pub apps: AppParameterNames,
    pub github: GithubConnection,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let apps = AppParameterNames::load(env);
        Self {
            organization_runners: env.bool_or("ENABLE_ORGANIZATION_RUNNERS", true),
            build_queue: env.required("JOB_QUEUE_SCALE_UP_URL"),
            retry_metric: env.bool_or("ENABLE_METRIC_JOB_RETRY", true),
            apps,
            github: GithubConnection::load(env),
            telemetry: TelemetryConfig::load(env),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::github::app::APP_ID_NAME;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn reads_upstream_names() {
        let c = Config::from_lookup(&lookup(&[
            ("JOB_QUEUE_SCALE_UP_URL", "https://sqs.eu-west-1.amazonaws.com/1/ci-queued-builds"),
            ("ENABLE_ORGANIZATION_RUNNERS", "false"),
            ("ENABLE_METRIC_JOB_RETRY", "false"),
            ("PARAMETER_GITHUB_APP_ID_NAME", "/ci/app/id"),
            ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", "/ci/app/key"),
        ]))
        .unwrap();
        assert!(!c.organization_runners && !c.retry_metric);
        assert_eq!(c.apps.ids, vec!["/ci/app/id"]);
        let err = Config::from_lookup(&lookup(&[])).unwrap_err().to_string();
        assert!(err.contains("JOB_QUEUE_SCALE_UP_URL") && err.contains(APP_ID_NAME), "{err}");
    }
}
