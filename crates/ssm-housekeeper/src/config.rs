//! The SSM housekeeper's configuration, from its environment (upstream §1.9 names).

use common::config::{Env, FromEnv, test_overrides};
use common::domain::ssm_housekeeper::SsmCleanupConfig;
use common::telemetry::TelemetryConfig;

pub const CLEANUP_CONFIG: &str = "SSM_CLEANUP_CONFIG";
pub const BOOT_TIME: &str = "RUNNER_BOOT_TIME_IN_MINUTES";

#[derive(Debug, Clone)]
pub struct Config {
    /// `SSM_CLEANUP_CONFIG`: `{tokenPath, minimumDaysOld, dryRun}`.
    pub cleanup: SsmCleanupConfig,
    /// `RUNNER_BOOT_TIME_IN_MINUTES` (beyond upstream): a parameter of a terminated instance
    /// older than this is deleted without waiting `minimumDaysOld`.
    pub boot_time_minutes: i64,
    /// Test-only: the clock file (decisions.md #18).
    pub clock_file: Option<String>,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let raw = env.required(CLEANUP_CONFIG);
        let placeholder = SsmCleanupConfig { token_path: None, minimum_days_old: 1, dry_run: true };
        let cleanup = if raw.is_empty() {
            placeholder
        } else {
            SsmCleanupConfig::parse(&raw).unwrap_or_else(|e| {
                env.problem(CLEANUP_CONFIG, e);
                placeholder
            })
        };
        let boot_time_minutes = env.parse_or(BOOT_TIME, 5i64);
        if boot_time_minutes < 1 {
            env.problem(BOOT_TIME, "must be at least 1 minute");
        }
        Self {
            cleanup,
            boot_time_minutes,
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
    fn reads_upstream_names() {
        let c = Config::from_lookup(&lookup(&[
            (CLEANUP_CONFIG, r#"{"tokenPath":"/p/tokens","minimumDaysOld":3,"dryRun":true}"#),
            (BOOT_TIME, "7"),
            ("ENVIRONMENT", "acme"),
        ]))
        .unwrap();
        assert_eq!((c.cleanup.token_path(), c.cleanup.minimum_days_old, c.cleanup.dry_run), ("/p/tokens", 3, true));
        assert_eq!(c.boot_time_minutes, 7);
        let err = Config::from_lookup(&lookup(&[(CLEANUP_CONFIG, r#"{"minimumDaysOld":0}"#)])).unwrap_err().to_string();
        assert!(err.contains(CLEANUP_CONFIG), "{err}");
        let err = Config::from_lookup(&lookup(&[])).unwrap_err().to_string();
        assert!(err.contains(CLEANUP_CONFIG), "{err}");
    }
}
