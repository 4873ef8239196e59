//! The warm-pool function's configuration, from its environment: scale-up's variables (it
//! launches through scale-up's code, and `WARM_POOL_CONFIG` is scale-up's too) and the time an
//! instance has to prepare.

use common::config::{Env, FromEnv, test_overrides};

pub const BOOT_TIME: &str = "RUNNER_BOOT_TIME_IN_MINUTES";

#[derive(Debug, Clone)]
pub struct Config {
    /// Everything scale-up reads, for the launches; its `warm_pool` is set.
    pub scale_up: scale_up::Config,
    /// `RUNNER_BOOT_TIME_IN_MINUTES`: an instance not prepared this long after its launch
    /// failed its preparation.
    pub boot_time_minutes: i64,
    /// Tests only: a file holding the current time.
    pub clock_file: Option<String>,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let scale_up = scale_up::Config::load(env);
        if scale_up.warm_pool.is_none() {
            env.problem("WARM_POOL_CONFIG", "the warm-pool function needs a warm pool (a size of at least 1)");
        }
        let boot_time_minutes = env.parse_or(BOOT_TIME, 5i64);
        if boot_time_minutes < 1 {
            env.problem(BOOT_TIME, "must be at least 1");
        }
        Self {
            scale_up,
            boot_time_minutes,
            clock_file: env.optional(test_overrides::CLOCK_FILE).filter(|f| !f.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const BASE: &[(&str, &str)] = &[
        ("ENVIRONMENT", "ci"),
        ("SSM_TOKEN_PATH", "/gh/ci/runners/tokens"),
        ("PARAMETER_GITHUB_APP_ID_NAME", "/gh/ci/app/id"),
        ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", "/gh/ci/app/key"),
        ("LAUNCH_TEMPLATE_NAME", "ci-action-runner"),
        ("SUBNET_IDS", "subnet-a"),
        ("INSTANCE_TYPES", "m5.large"),
        ("SCALE_ERRORS", "[]"),
    ];

    fn load(extra: &[(&str, &str)]) -> Result<Config, String> {
        let map: HashMap<String, String> =
            BASE.iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(&|k: &str| map.get(k).cloned()).map_err(|e| e.to_string())
    }

    #[test]
    fn needs_a_warm_pool() {
        let c = load(&[("WARM_POOL_CONFIG", r#"{"size":2}"#), (BOOT_TIME, "8")]).unwrap();
        assert_eq!((c.scale_up.warm_pool.unwrap().size, c.boot_time_minutes), (2, 8));
        assert!(load(&[]).unwrap_err().contains("WARM_POOL_CONFIG"));
        assert!(load(&[("WARM_POOL_CONFIG", r#"{"size":0}"#)]).unwrap_err().contains("WARM_POOL_CONFIG"));
        assert!(load(&[("WARM_POOL_CONFIG", r#"{"size":1}"#), (BOOT_TIME, "0")]).unwrap_err().contains(BOOT_TIME));
    }
}
