//! The redelivery function's configuration, from its environment.

use chrono::TimeDelta;
use common::config::{Env, FromEnv, GithubConnection, test_overrides};
use common::domain::redelivery::{GITHUB_REDELIVERY_LIMIT_MINUTES, Settings};
use common::github::app::AppParameterNames;
use common::telemetry::TelemetryConfig;

pub const WINDOW_MINUTES: &str = "REDELIVERY_WINDOW_MINUTES";
pub const MAX_ATTEMPTS: &str = "REDELIVERY_MAX_ATTEMPTS";
pub const CHECKPOINT_PARAMETER: &str = "REDELIVERY_CHECKPOINT_PARAMETER";

#[derive(Debug, Clone)]
pub struct Config {
    /// `REDELIVERY_WINDOW_MINUTES` (default 360, at most GitHub's 3 days) and
    /// `REDELIVERY_MAX_ATTEMPTS` (default 5).
    pub settings: Settings,
    /// `REDELIVERY_CHECKPOINT_PARAMETER`: the String parameter holding every App's checkpoint
    /// (a JSON object by App id). Terraform creates it (so that a destroy removes it).
    pub checkpoint_parameter: String,
    /// `PARAMETER_GITHUB_APP_*`: every App (primary and additional) is swept.
    pub apps: AppParameterNames,
    pub github: GithubConnection,
    /// Test-only: the clock file (decisions.md #18).
    pub clock_file: Option<String>,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let apps = AppParameterNames::load(env);
        let window = env.parse_or(WINDOW_MINUTES, 360i64);
        if !(1..=GITHUB_REDELIVERY_LIMIT_MINUTES).contains(&window) {
            env.problem(
                WINDOW_MINUTES,
                format!("must be 1 to {GITHUB_REDELIVERY_LIMIT_MINUTES} minutes (GitHub redelivers for 3 days)"),
            );
        }
        let max_attempts = env.parse_or(MAX_ATTEMPTS, 5u32);
        if max_attempts == 0 {
            env.problem(MAX_ATTEMPTS, "must be at least 1");
        }
        let checkpoint_parameter = env.required(CHECKPOINT_PARAMETER);
        Self {
            settings: Settings { window: TimeDelta::minutes(window.max(1)), max_attempts },
            checkpoint_parameter,
            apps,
            github: GithubConnection::load(env),
            clock_file: env.optional(test_overrides::CLOCK_FILE).filter(|f| !f.is_empty()),
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
    fn reads_its_variables_and_reports_every_problem() {
        let c = Config::from_lookup(&lookup(&[
            ("PARAMETER_GITHUB_APP_ID_NAME", "/ci/app/id:/ci/app/additional_github_app_1_id"),
            ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", "/ci/app/key:/ci/app/additional_github_app_1_key_base64"),
            (CHECKPOINT_PARAMETER, "/ci/webhook/redelivery-checkpoints"),
            (WINDOW_MINUTES, "90"),
        ]))
        .unwrap();
        assert_eq!(c.settings, Settings { window: TimeDelta::minutes(90), max_attempts: 5 });
        assert_eq!(c.apps.ids.len(), 2);
        assert_eq!(c.checkpoint_parameter, "/ci/webhook/redelivery-checkpoints");
        let err =
            Config::from_lookup(&lookup(&[(WINDOW_MINUTES, "5000"), (MAX_ATTEMPTS, "0")])).unwrap_err().to_string();
        for name in [WINDOW_MINUTES, MAX_ATTEMPTS, CHECKPOINT_PARAMETER, "PARAMETER_GITHUB_APP_ID_NAME"] {
            assert!(err.contains(name), "{name} missing in: {err}");
        }
    }
}
