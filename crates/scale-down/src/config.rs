//! Scale-down configuration, from its environment (upstream §1.6 names and formats).

use common::config::{Env, FromEnv, GithubConnection, test_overrides};
use common::domain::scale_down::IdleSchedule;
use common::domain::warm_pool::WarmPoolConfig;
use common::github::app::AppParameterNames;
use common::telemetry::TelemetryConfig;

#[derive(Debug, Clone)]
pub struct Config {
    /// `ENVIRONMENT`: the `ghr:environment` tag value of this deployment's runners.
    pub environment: String,
    /// `SCALE_DOWN_CONFIG`: the idle schedule.
    pub idle: IdleSchedule,
    pub minimum_running_minutes: i64,
    pub boot_time_minutes: i64,
    /// `RUNNER_NAME_PREFIX`, for instances without a `ghr:runner_name_prefix` tag.
    pub name_prefix: String,
    /// `RUNNER_JOB_START_GRACE_SECONDS`, the hold of two-phase removal: how long after its
    /// runner's deregistration an instance is kept, for a job handed out just before to show
    /// in its job-started marker (the hook runs after "Set up job", up to minutes later).
    pub job_start_grace_seconds: u64,
    /// `RUNNER_WITHDRAWAL_WAIT_SECONDS`: how long after removing an idle runner's custom
    /// labels it is deregistered, for a job GitHub handed it just before to start (GitHub then
    /// refuses the deletion instead of losing the job).
    pub withdrawal_wait_seconds: u64,
    /// `RUNNER_OFFLINE_TIMEOUT_IN_MINUTES`: a runner GitHub lists offline this long while a job
    /// is marked in flight (or it is flagged busy) counts as crashed and is removed.
    pub offline_timeout_minutes: i64,
    /// `WARM_POOL_CONFIG` (beyond upstream): idle runners that came from the warm pool go back
    /// to it (stopped) while it has room, rather than being terminated.
    pub warm_pool: Option<WarmPoolConfig>,
    pub apps: AppParameterNames,
    pub rate_limit_metric: bool,
    pub clock_file: Option<String>,
    pub github: GithubConnection,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let environment = env.required("ENVIRONMENT");
        let idle_raw = env.required("SCALE_DOWN_CONFIG");
        let idle = if idle_raw.is_empty() { IdleSchedule::parse("[]") } else { IdleSchedule::parse(&idle_raw) };
        let idle = idle.unwrap_or_else(|e| {
            env.problem("SCALE_DOWN_CONFIG", e);
            IdleSchedule::parse("[]").unwrap_or_else(|_| unreachable!("an empty schedule parses"))
        });
        let provider = env.string_or("COMPUTE_PROVIDER_TYPE", "ec2");
        if provider.trim().to_lowercase() != "ec2" {
            env.problem("COMPUTE_PROVIDER_TYPE", format!("`{provider}` is not supported (only `ec2`)"));
        }
        let apps = AppParameterNames::load(env);
        let minimum_running_minutes = env.parse_or("MINIMUM_RUNNING_TIME_IN_MINUTES", 5);
        let boot_time_minutes = env.parse_or("RUNNER_BOOT_TIME_IN_MINUTES", 5);
        if minimum_running_minutes < 0 || boot_time_minutes < 0 {
            env.problem("MINIMUM_RUNNING_TIME_IN_MINUTES", "and RUNNER_BOOT_TIME_IN_MINUTES must not be negative");
        }
        let offline_timeout_minutes = env.parse_or("RUNNER_OFFLINE_TIMEOUT_IN_MINUTES", 15);
        if offline_timeout_minutes < 1 {
            env.problem("RUNNER_OFFLINE_TIMEOUT_IN_MINUTES", "must be at least 1");
        }
        let withdrawal_wait_seconds = env.parse_or("RUNNER_WITHDRAWAL_WAIT_SECONDS", 10);
        if withdrawal_wait_seconds > 30 {
            env.problem("RUNNER_WITHDRAWAL_WAIT_SECONDS", "must be at most 30 (it is spent within the run)");
        }
        let warm_pool = WarmPoolConfig::parse(&env.string_or("WARM_POOL_CONFIG", "")).unwrap_or_else(|e| {
            env.problem("WARM_POOL_CONFIG", e);
            None
        });
        Self {
            environment,
            idle,
            minimum_running_minutes,
            boot_time_minutes,
            name_prefix: env.string_or("RUNNER_NAME_PREFIX", ""),
            job_start_grace_seconds: env.parse_or("RUNNER_JOB_START_GRACE_SECONDS", 180),
            withdrawal_wait_seconds,
            offline_timeout_minutes,
            warm_pool,
            apps,
            rate_limit_metric: env.bool_or("ENABLE_METRIC_GITHUB_APP_RATE_LIMIT", true),
            clock_file: env.optional(test_overrides::CLOCK_FILE),
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
    fn defaults_and_problems() {
        let c = Config::from_lookup(&lookup(&[
            ("ENVIRONMENT", "ci"),
            ("SCALE_DOWN_CONFIG", "[]"),
            ("PARAMETER_GITHUB_APP_ID_NAME", "/a"),
            ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", "/k"),
        ]))
        .unwrap();
        assert_eq!((c.minimum_running_minutes, c.boot_time_minutes, c.job_start_grace_seconds), (5, 5, 180));
        assert_eq!(c.offline_timeout_minutes, 15);
        assert_eq!(c.withdrawal_wait_seconds, 10);
        let err = Config::from_lookup(&lookup(&[
            ("SCALE_DOWN_CONFIG", r#"[{"cron":"bad"}]"#),
            ("MINIMUM_RUNNING_TIME_IN_MINUTES", "-1"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for name in
            ["ENVIRONMENT", "SCALE_DOWN_CONFIG", "PARAMETER_GITHUB_APP_ID_NAME", "MINIMUM_RUNNING_TIME_IN_MINUTES"]
        {
            assert!(text.contains(name), "{name}: {text}");
        }
    }
}
