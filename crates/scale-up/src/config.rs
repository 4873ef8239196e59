//! Scale-up configuration, from its environment (upstream §1.4 and §1.5 names, formats and
//! code defaults; Terraform sets its own defaults on top, as upstream).

use std::collections::BTreeMap;

use common::config::{Env, FromEnv, GithubConnection};
use common::domain::job_retry::JobRetryConfig;
use common::domain::scale_up::CapacityType;
use common::domain::warm_pool::WarmPoolConfig;
use common::github::app::AppParameterNames;
use common::telemetry::TelemetryConfig;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `ENVIRONMENT`: the `ghr:environment` tag value of this deployment's runners.
    pub environment: String,
    pub organization_runners: bool,
    /// `-1` for no maximum.
    pub maximum: i64,
    pub labels: Vec<String>,
    pub runner_group: String,
    pub name_prefix: String,
    pub token_path: String,
    pub config_path: String,
    pub parameter_tags: Vec<(String, String)>,
    pub ephemeral: bool,
    /// JIT configs are used only for ephemeral runners with JIT enabled (upstream).
    pub jit: bool,
    pub disable_update: bool,
    pub job_queued_check: bool,
    pub apps: AppParameterNames,
    pub rate_limit_metric: bool,
    pub launch_template: String,
    pub subnets: Vec<String>,
    pub instance_types: Vec<String>,
    pub instance_type_priorities: BTreeMap<String, f64>,
    pub capacity_type: CapacityType,
    pub max_spot_price: Option<String>,
    pub allocation_strategy: String,
    pub ami_parameter: Option<String>,
    pub failover_errors: Vec<String>,
    pub scale_errors: Vec<String>,
    pub dedicated_host: bool,
    /// `JOB_RETRY_CONFIG`: `None` when job retry is off.
    pub job_retry: Option<JobRetryConfig>,
    /// `WARM_POOL_CONFIG` (beyond upstream): `None` when the configuration has no warm pool.
    pub warm_pool: Option<WarmPoolConfig>,
    pub github: GithubConnection,
    pub telemetry: TelemetryConfig,
}

#[derive(Deserialize)]
struct ParameterTag {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value")]
    value: String,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let environment = env.required("ENVIRONMENT");
        let ephemeral = env.bool_or("ENABLE_EPHEMERAL_RUNNERS", false);
        let jit_enabled = env.bool_or("ENABLE_JIT_CONFIG", ephemeral);
        let tags: Vec<ParameterTag> = env.json_or("SSM_PARAMETER_STORE_TAGS", Vec::new());
        if tags.iter().any(|t| t.key.trim().is_empty()) {
            env.problem("SSM_PARAMETER_STORE_TAGS", "has a tag with an empty `Key`");
        }
        let provider = env.string_or("COMPUTE_PROVIDER_TYPE", "ec2");
        if provider.trim().to_lowercase() != "ec2" {
            env.problem("COMPUTE_PROVIDER_TYPE", format!("`{provider}` is not supported (only `ec2`)"));
        }
        let apps = AppParameterNames::load(env);
        let subnets = env.csv("SUBNET_IDS");
        if subnets.is_empty() {
            env.problem("SUBNET_IDS", "needs at least one subnet id");
        }
        let instance_types = env.csv("INSTANCE_TYPES");
        if instance_types.is_empty() {
            env.problem("INSTANCE_TYPES", "needs at least one instance type");
        }
        let scale_errors_raw = env.optional("SCALE_ERRORS");
        let scale_errors: Vec<String> = match &scale_errors_raw {
            None => {
                env.problem("SCALE_ERRORS", "is required but not set");
                Vec::new()
            }
            Some(raw) => serde_json::from_str(raw).unwrap_or_else(|e| {
                env.problem("SCALE_ERRORS", format!("is not a JSON list of error codes: {e}"));
                Vec::new()
            }),
        };
        let job_retry = JobRetryConfig::parse(&env.string_or("JOB_RETRY_CONFIG", "")).unwrap_or_else(|e| {
            env.problem("JOB_RETRY_CONFIG", e);
            None
        });
        let warm_pool = WarmPoolConfig::parse(&env.string_or("WARM_POOL_CONFIG", "")).unwrap_or_else(|e| {
            env.problem("WARM_POOL_CONFIG", e);
            None
        });
        Self {
            environment,
            organization_runners: env.bool_or("ENABLE_ORGANIZATION_RUNNERS", true),
            maximum: env.parse_or("RUNNERS_MAXIMUM_COUNT", 3),
            labels: env.csv("RUNNER_LABELS"),
            runner_group: env.string_or("RUNNER_GROUP_NAME", "Default"),
            name_prefix: env.string_or("RUNNER_NAME_PREFIX", ""),
            token_path: env.required("SSM_TOKEN_PATH").trim_end_matches('/').to_string(),
            config_path: env.string_or("SSM_CONFIG_PATH", "").trim_end_matches('/').to_string(),
            parameter_tags: tags.into_iter().map(|t| (t.key, t.value)).collect(),
            ephemeral,
            jit: ephemeral && jit_enabled,
            disable_update: env.bool_or("DISABLE_RUNNER_AUTOUPDATE", false),
            job_queued_check: env.bool_or("ENABLE_JOB_QUEUED_CHECK", true),
            apps,
            rate_limit_metric: env.bool_or("ENABLE_METRIC_GITHUB_APP_RATE_LIMIT", true),
            launch_template: env.required("LAUNCH_TEMPLATE_NAME"),
            subnets,
            instance_types,
            instance_type_priorities: env.json_or("INSTANCE_TYPE_PRIORITIES", BTreeMap::new()),
            capacity_type: env.parse_or("INSTANCE_TARGET_CAPACITY_TYPE", CapacityType::Spot),
            max_spot_price: env.optional("INSTANCE_MAX_SPOT_PRICE"),
            allocation_strategy: env.string_or("INSTANCE_ALLOCATION_STRATEGY", "lowest-price"),
            ami_parameter: env.optional("AMI_ID_SSM_PARAMETER_NAME"),
            failover_errors: env.json_or("ENABLE_ON_DEMAND_FAILOVER_FOR_ERRORS", Vec::new()),
            scale_errors,
            dedicated_host: env.bool_or("USE_DEDICATED_HOST", false),
            job_retry,
            warm_pool,
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

    const MINIMAL: &[(&str, &str)] = &[
        ("ENVIRONMENT", "ci"),
        ("SSM_TOKEN_PATH", "/gh/ci/runners/tokens/"),
        ("PARAMETER_GITHUB_APP_ID_NAME", "/gh/ci/app/github_app_id"),
        ("PARAMETER_GITHUB_APP_KEY_BASE64_NAME", "/gh/ci/app/github_app_key_base64"),
        ("LAUNCH_TEMPLATE_NAME", "ci-action-runner"),
        ("SUBNET_IDS", "subnet-a,subnet-b"),
        ("INSTANCE_TYPES", "m5.large, c5.large"),
        ("SCALE_ERRORS", r#"["InsufficientInstanceCapacity","RequestLimitExceeded"]"#),
    ];

    #[test]
    fn upstream_code_defaults() {
        let c = Config::from_lookup(&lookup(MINIMAL)).unwrap();
        assert!(c.organization_runners);
        assert_eq!(c.maximum, 3);
        assert_eq!(c.runner_group, "Default");
        assert!(!c.ephemeral && !c.jit);
        assert!(c.job_queued_check);
        assert_eq!(c.capacity_type, CapacityType::Spot);
        assert_eq!(c.allocation_strategy, "lowest-price");
        assert_eq!(c.token_path, "/gh/ci/runners/tokens");
        assert_eq!(c.instance_types, vec!["m5.large", "c5.large"]);
        assert!(c.github.verify_tls);
        assert_eq!(c.apps.ids.len(), 1);
        assert_eq!(c.job_retry, None);
    }

    #[test]
    fn job_retry_as_terraform_sets_it() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("JOB_RETRY_CONFIG", "{}"));
        assert_eq!(Config::from_lookup(&lookup(&vars)).unwrap().job_retry, None);
        vars.pop();
        vars.push(("JOB_RETRY_CONFIG", r#"{"enable":true,"maxAttempts":2,"delayInSeconds":60,"delayBackoff":2,"queueUrl":"https://sqs.eu-west-1.amazonaws.com/1/ci-job-retry"}"#));
        let retry = Config::from_lookup(&lookup(&vars)).unwrap().job_retry.unwrap();
        assert_eq!((retry.max_attempts, retry.delay_in_seconds), (2, 60));
        vars.pop();
        vars.push(("JOB_RETRY_CONFIG", r#"{"enable":true}"#));
        assert!(Config::from_lookup(&lookup(&vars)).unwrap_err().to_string().contains("JOB_RETRY_CONFIG"));
    }

    #[test]
    fn warm_pool_as_terraform_sets_it() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("WARM_POOL_CONFIG", "{}"));
        assert_eq!(Config::from_lookup(&lookup(&vars)).unwrap().warm_pool, None);
        vars.pop();
        vars.push(("WARM_POOL_CONFIG", r#"{"size":2,"maxAgeHours":12,"hibernate":false}"#));
        let warm = Config::from_lookup(&lookup(&vars)).unwrap().warm_pool.unwrap();
        assert_eq!((warm.size, warm.max_age_hours), (2, 12));
        vars.pop();
        vars.push(("WARM_POOL_CONFIG", r#"{"size":"two"}"#));
        assert!(Config::from_lookup(&lookup(&vars)).unwrap_err().to_string().contains("WARM_POOL_CONFIG"));
    }

    #[test]
    fn jit_needs_ephemeral() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("ENABLE_JIT_CONFIG", "true"));
        assert!(!Config::from_lookup(&lookup(&vars)).unwrap().jit, "JIT only with ephemeral runners");
        vars.push(("ENABLE_EPHEMERAL_RUNNERS", "true"));
        assert!(Config::from_lookup(&lookup(&vars)).unwrap().jit);
        let mut vars = MINIMAL.to_vec();
        vars.push(("ENABLE_EPHEMERAL_RUNNERS", "true"));
        assert!(Config::from_lookup(&lookup(&vars)).unwrap().jit, "JIT defaults to ephemeral");
    }

    #[test]
    fn every_problem_is_reported() {
        let err = Config::from_lookup(&lookup(&[
            ("SSM_PARAMETER_STORE_TAGS", r#"[{"Key":"","Value":"x"}]"#),
            ("COMPUTE_PROVIDER_TYPE", "k8s"),
            ("INSTANCE_TARGET_CAPACITY_TYPE", "cheap"),
            ("RUNNERS_MAXIMUM_COUNT", "many"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "ENVIRONMENT",
            "SSM_TOKEN_PATH",
            "PARAMETER_GITHUB_APP_ID_NAME",
            "LAUNCH_TEMPLATE_NAME",
            "SUBNET_IDS",
            "INSTANCE_TYPES",
            "SCALE_ERRORS",
            "SSM_PARAMETER_STORE_TAGS",
            "COMPUTE_PROVIDER_TYPE",
            "INSTANCE_TARGET_CAPACITY_TYPE",
            "RUNNERS_MAXIMUM_COUNT",
        ] {
            assert!(text.contains(name), "{name} missing: {text}");
        }
    }

    #[test]
    fn parameter_tags_and_tls() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("SSM_PARAMETER_STORE_TAGS", r#"[{"Key":"team","Value":"ci"}]"#));
        vars.push(("NODE_TLS_REJECT_UNAUTHORIZED", "0"));
        vars.push(("INSTANCE_TYPE_PRIORITIES", r#"{"m5.large": 1, "c5.large": 2}"#));
        let c = Config::from_lookup(&lookup(&vars)).unwrap();
        assert_eq!(c.parameter_tags, vec![("team".to_string(), "ci".to_string())]);
        assert!(!c.github.verify_tls);
        assert_eq!(c.instance_type_priorities.get("c5.large"), Some(&2.0));
    }
}
