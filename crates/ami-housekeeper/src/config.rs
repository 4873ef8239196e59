//! The AMI housekeeper's configuration, from its environment (upstream §1.12 names).

use common::config::{Env, FromEnv, test_overrides};
use common::domain::ami_housekeeper::AmiCleanupConfig;
use common::telemetry::TelemetryConfig;

pub const CLEANUP_OPTIONS: &str = "AMI_CLEANUP_OPTIONS";

#[derive(Debug, Clone)]
pub struct Config {
    /// `AMI_CLEANUP_OPTIONS`: `{minimumDaysOld, maxItems, amiFilters, launchTemplateNames,
    /// ssmParameterNames, dryRun}`; unset means upstream's defaults.
    pub cleanup: AmiCleanupConfig,
    /// Test-only: the clock file (decisions.md #18).
    pub clock_file: Option<String>,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let raw = env.optional(CLEANUP_OPTIONS).filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "{}".into());
        let cleanup = AmiCleanupConfig::parse(&raw).unwrap_or_else(|e| {
            env.problem(CLEANUP_OPTIONS, e);
            AmiCleanupConfig::parse("{\"dryRun\":true}").expect("a valid literal")
        });
        Self {
            cleanup,
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
    fn reads_upstream_names_and_defaults() {
        let c = Config::from_lookup(&lookup(&[
            (CLEANUP_OPTIONS, r#"{"minimumDaysOld":7,"dryRun":true,"launchTemplateNames":["acme-action-runner"]}"#),
            ("ENVIRONMENT", "acme"),
        ]))
        .unwrap();
        assert_eq!((c.cleanup.minimum_days_old(), c.cleanup.dry_run()), (7, true));
        assert_eq!(c.cleanup.launch_template_names, Some(vec!["acme-action-runner".to_string()]));
        let d = Config::from_lookup(&lookup(&[])).unwrap();
        assert_eq!((d.cleanup.minimum_days_old(), d.cleanup.dry_run()), (30, false));
        let err =
            Config::from_lookup(&lookup(&[(CLEANUP_OPTIONS, r#"{"minimumDaysOld":-2}"#)])).unwrap_err().to_string();
        assert!(err.contains(CLEANUP_OPTIONS), "{err}");
    }
}
