//! The dispatcher's configuration, from its environment (upstream §1.3 names and formats).

use common::config::{Env, FromEnv};
use common::domain::webhook::QueueSelectionStrategy;
use common::telemetry::TelemetryConfig;

pub const MATCHER_CONFIG_PARAMETERS: &str = "PARAMETER_RUNNER_MATCHER_CONFIG_PATH";
pub const REPOSITORY_ALLOW_LIST: &str = "REPOSITORY_ALLOW_LIST";
pub const QUEUE_SELECTION_STRATEGY: &str = "QUEUE_SELECTION_STRATEGY";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The matcher config parameter names (`:`-joined), in the order their values concatenate.
    pub matcher_config_parameters: Vec<String>,
    /// `owner/repo` names allowed to use the runners; empty allows all.
    pub repository_allow_list: Vec<String>,
    pub queue_selection_strategy: QueueSelectionStrategy,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let matcher_config_parameters: Vec<String> = env
            .required(MATCHER_CONFIG_PARAMETERS)
            .split(':')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Self {
            matcher_config_parameters,
            repository_allow_list: env.json_or::<Vec<String>>(REPOSITORY_ALLOW_LIST, Vec::new()),
            queue_selection_strategy: env.parse_or(QUEUE_SELECTION_STRATEGY, QueueSelectionStrategy::First),
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
            (MATCHER_CONFIG_PARAMETERS, "/p/m-0:/p/m-1"),
            (REPOSITORY_ALLOW_LIST, r#"["o/a"]"#),
            (QUEUE_SELECTION_STRATEGY, "random"),
        ]))
        .unwrap();
        assert_eq!(c.matcher_config_parameters, vec!["/p/m-0", "/p/m-1"]);
        assert_eq!(c.repository_allow_list, vec!["o/a"]);
        assert_eq!(c.queue_selection_strategy, QueueSelectionStrategy::Random);
        let err = Config::from_lookup(&lookup(&[(QUEUE_SELECTION_STRATEGY, "most")])).unwrap_err().to_string();
        assert!(err.contains(MATCHER_CONFIG_PARAMETERS) && err.contains(QUEUE_SELECTION_STRATEGY), "{err}");
    }
}
