//! The webhook's configuration, from its environment (upstream §1.1 names and formats).

use common::config::{Env, FromEnv};
use common::domain::webhook::QueueSelectionStrategy;
use common::telemetry::TelemetryConfig;

pub const WEBHOOK_SECRET_PARAMETER: &str = "PARAMETER_GITHUB_APP_WEBHOOK_SECRET";
pub const MATCHER_CONFIG_PARAMETERS: &str = "PARAMETER_RUNNER_MATCHER_CONFIG_PATH";
/// Not needed by the code: Terraform changes it when the matcher config changes, which forces
/// new containers (the config is read once per container). Logged for traceability.
pub const MATCHER_CONFIG_VERSION: &str = "PARAMETER_RUNNER_MATCHER_VERSION";
pub const REPOSITORY_ALLOW_LIST: &str = "REPOSITORY_ALLOW_LIST";
pub const QUEUE_SELECTION_STRATEGY: &str = "QUEUE_SELECTION_STRATEGY";
/// Set: EventBridge mode (publish every accepted delivery on this bus); unset: direct mode.
pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
/// EventBridge mode: the event types published (JSON array; `null` or `[]` publishes all).
pub const ACCEPT_EVENTS: &str = "ACCEPT_EVENTS";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub webhook_secret_parameter: String,
    /// The matcher config parameter names, in the order their values are concatenated.
    pub matcher_config_parameters: Vec<String>,
    pub matcher_config_version: Option<String>,
    /// `owner/repo` names allowed to use the runners; empty allows all.
    pub repository_allow_list: Vec<String>,
    pub queue_selection_strategy: QueueSelectionStrategy,
    /// `EVENT_BUS_NAME`: EventBridge mode when set (upstream's default deployment).
    pub event_bus: Option<String>,
    /// `ACCEPT_EVENTS`: the event types EventBridge mode publishes; empty publishes all.
    pub accept_events: Vec<String>,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let webhook_secret_parameter = env.required(WEBHOOK_SECRET_PARAMETER);
        let event_bus = env.optional(EVENT_BUS_NAME).filter(|b| !b.trim().is_empty());
        // Terraform sets the matcher parameters in both modes; only direct mode reads them.
        let matchers = if event_bus.is_some() {
            env.optional(MATCHER_CONFIG_PARAMETERS).unwrap_or_default()
        } else {
            env.required(MATCHER_CONFIG_PARAMETERS)
        };
        let accept_events = env.json_or::<Option<Vec<String>>>(ACCEPT_EVENTS, None).unwrap_or_default();
        let matcher_config_parameters: Vec<String> =
            matchers.split(':').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        let matcher_config_version = env.optional(MATCHER_CONFIG_VERSION);
        let repository_allow_list = env.json_or::<Vec<String>>(REPOSITORY_ALLOW_LIST, Vec::new());
        let queue_selection_strategy = env.parse_or(QUEUE_SELECTION_STRATEGY, QueueSelectionStrategy::First);
        let telemetry = TelemetryConfig::load(env);
        Self {
            webhook_secret_parameter,
            matcher_config_parameters,
            matcher_config_version,
            repository_allow_list,
            queue_selection_strategy,
            event_bus,
            accept_events,
            telemetry,
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
    fn reads_upstream_names_and_formats() {
        let l = lookup(&[
            (WEBHOOK_SECRET_PARAMETER, "/gh/app/webhook_secret"),
            (MATCHER_CONFIG_PARAMETERS, "/gh/webhook/runner-matcher-config-0:/gh/webhook/runner-matcher-config-1"),
            (REPOSITORY_ALLOW_LIST, r#"["o/a","o/b"]"#),
            (QUEUE_SELECTION_STRATEGY, "all"),
            ("ENVIRONMENT", "prod"),
        ]);
        let c = Config::from_lookup(&l).unwrap();
        assert_eq!(c.matcher_config_parameters.len(), 2);
        assert_eq!(c.repository_allow_list, vec!["o/a", "o/b"]);
        assert_eq!(c.queue_selection_strategy, QueueSelectionStrategy::All);
        assert_eq!(c.telemetry.environment, "prod");
    }

    #[test]
    fn eventbridge_mode_needs_no_matcher_config() {
        let c = Config::from_lookup(&lookup(&[
            (WEBHOOK_SECRET_PARAMETER, "/s"),
            (EVENT_BUS_NAME, "ci-runners"),
            (ACCEPT_EVENTS, "null"),
        ]))
        .unwrap();
        assert_eq!(c.event_bus.as_deref(), Some("ci-runners"));
        assert!(c.accept_events.is_empty() && c.matcher_config_parameters.is_empty());
        let c = Config::from_lookup(&lookup(&[
            (WEBHOOK_SECRET_PARAMETER, "/s"),
            (EVENT_BUS_NAME, "ci-runners"),
            (ACCEPT_EVENTS, r#"["workflow_job"]"#),
        ]))
        .unwrap();
        assert_eq!(c.accept_events, vec!["workflow_job"]);
        let err = Config::from_lookup(&lookup(&[(WEBHOOK_SECRET_PARAMETER, "/s")])).unwrap_err();
        assert!(err.to_string().contains(MATCHER_CONFIG_PARAMETERS), "direct mode needs it: {err}");
    }

    #[test]
    fn defaults_follow_upstream() {
        let l = lookup(&[
            (WEBHOOK_SECRET_PARAMETER, "/s"),
            (MATCHER_CONFIG_PARAMETERS, "/m"),
            (REPOSITORY_ALLOW_LIST, "null"),
        ]);
        let c = Config::from_lookup(&l).unwrap();
        assert!(c.repository_allow_list.is_empty());
        assert_eq!(c.queue_selection_strategy, QueueSelectionStrategy::First);
    }

    #[test]
    fn reports_every_problem() {
        let l = lookup(&[(QUEUE_SELECTION_STRATEGY, "fastest"), (REPOSITORY_ALLOW_LIST, "o/a")]);
        let err = Config::from_lookup(&l).unwrap_err();
        let text = err.to_string();
        for name in
            [WEBHOOK_SECRET_PARAMETER, MATCHER_CONFIG_PARAMETERS, QUEUE_SELECTION_STRATEGY, REPOSITORY_ALLOW_LIST]
        {
            assert!(text.contains(name), "{text}");
        }
    }

    #[test]
    fn variables_are_the_upstream_ones() {
        let vars = Config::variables();
        for v in [
            WEBHOOK_SECRET_PARAMETER,
            MATCHER_CONFIG_PARAMETERS,
            MATCHER_CONFIG_VERSION,
            REPOSITORY_ALLOW_LIST,
            QUEUE_SELECTION_STRATEGY,
            "ENVIRONMENT",
            "LOG_LEVEL",
            "POWERTOOLS_METRICS_NAMESPACE",
        ] {
            assert!(vars.contains(&v), "{v} missing from {vars:?}");
        }
    }
}
