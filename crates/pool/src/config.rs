//! The pool function's configuration, from its environment (upstream §1.7 names): scale-up's
//! variables (the pool launches through scale-up's code) and the pool's own.

use common::config::{Env, FromEnv};

pub const RUNNER_OWNER: &str = "RUNNER_OWNER";
pub const INCLUDE_BUSY_RUNNERS: &str = "INCLUDE_BUSY_RUNNERS";
pub const BOOT_TIME: &str = "RUNNER_BOOT_TIME_IN_MINUTES";
pub const HOLD: &str = "POOL_HOLD_MINUTES";

#[derive(Debug, Clone)]
pub struct Config {
    /// Everything scale-up reads, for the launches.
    pub scale_up: scale_up::Config,
    /// `RUNNER_OWNER`: the organization the pool's runners register with.
    pub owner: String,
    /// `INCLUDE_BUSY_RUNNERS`: busy runners count toward the pool's size.
    pub include_busy: bool,
    /// `RUNNER_BOOT_TIME_IN_MINUTES`: an instance not registered yet counts while this young.
    pub boot_time_minutes: i64,
    /// `POOL_HOLD_MINUTES` (beyond upstream): how long after a pool run scale-down leaves the
    /// runners it counted alone. Longer than the time between two pool runs keeps the pool
    /// from fighting the idle config.
    pub hold_minutes: i64,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let scale_up = scale_up::Config::load(env);
        if !scale_up.organization_runners {
            env.problem("ENABLE_ORGANIZATION_RUNNERS", "the pool supports organization runners only (as upstream)");
        }
        let owner = env.required(RUNNER_OWNER);
        if owner.contains('/') {
            env.problem(RUNNER_OWNER, format!("`{owner}` is a repository; the pool supports organizations only"));
        }
        let boot_time_minutes = env.parse_or(BOOT_TIME, 5i64);
        let hold_minutes = env.parse_or(HOLD, 30i64);
        if hold_minutes < 0 {
            env.problem(HOLD, "must not be negative");
        }
        Self {
            scale_up,
            owner,
            include_busy: env.bool_or(INCLUDE_BUSY_RUNNERS, false),
            boot_time_minutes,
            hold_minutes,
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
    fn reads_upstream_names_and_refuses_repository_pools() {
        let c = load(&[(RUNNER_OWNER, "acme"), (INCLUDE_BUSY_RUNNERS, "true"), (BOOT_TIME, "8")]).unwrap();
        assert_eq!((c.owner.as_str(), c.include_busy, c.boot_time_minutes, c.hold_minutes), ("acme", true, 8, 30));
        assert!(load(&[]).unwrap_err().contains(RUNNER_OWNER));
        let err = load(&[(RUNNER_OWNER, "acme"), ("ENABLE_ORGANIZATION_RUNNERS", "false")]).unwrap_err();
        assert!(err.contains("organization runners only"), "{err}");
        assert!(load(&[(RUNNER_OWNER, "acme/web")]).unwrap_err().contains("organizations only"));
    }
}
