//! Which runner queue(s) a `workflow_job` event goes to, and the message put there.
//!
//! Pure functions over the matcher configuration (decisions.md #3) and the parts of the GitHub
//! payload the routing needs. The webhook function does the I/O around them.

use serde::{Deserialize, Serialize};

use super::dynamic_labels::{Policy, violations};
use super::labels::{can_run_job, split_labels};

/// One runner configuration as stored in the matcher config parameter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerMatcherConfig {
    /// The SQS queue URL of this runner configuration.
    pub id: String,
    pub arn: String,
    #[serde(default)]
    pub fifo: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_provider: Option<String>,
    pub matcher_config: MatcherConfig,
}

/// How jobs are matched to a runner configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatcherConfig {
    pub label_matchers: Vec<Vec<String>>,
    pub exact_match: bool,
    #[serde(default)]
    pub bidirectional_label_match: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default)]
    pub enable_dynamic_labels: bool,
    /// The policy of the job's `ghr-ec2-*` labels (only with `enable_dynamic_labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_dynamic_labels_policy: Option<Policy>,
    /// Upstream's former name of `awsDynamicLabelsPolicy`, read when that one is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_dynamic_labels_policy: Option<Policy>,
}

impl MatcherConfig {
    fn dynamic_labels_policy(&self) -> Option<&Policy> {
        self.aws_dynamic_labels_policy.as_ref().or(self.ec2_dynamic_labels_policy.as_ref())
    }
}

impl RunnerMatcherConfig {
    fn is_strict(&self) -> bool {
        self.matcher_config.exact_match || self.matcher_config.bidirectional_label_match
    }

    /// Upstream's `computeProvider` (trimmed, lower case); EC2 when absent.
    fn is_ec2(&self) -> bool {
        self.compute_provider.as_deref().is_none_or(|p| p.trim().eq_ignore_ascii_case("ec2"))
    }

    /// Why this configuration refuses a job's dynamic (`ghr-`) labels, if it does.
    fn refuses_dynamic_labels(&self, ghr: &[String]) -> Option<String> {
        let name = self.key.as_deref().unwrap_or(&self.id);
        if !self.is_ec2() {
            return Some(format!("{name}: compute provider {:?} takes no dynamic labels", self.compute_provider));
        }
        if !self.matcher_config.enable_dynamic_labels {
            return Some(format!("{name}: dynamic labels are not enabled"));
        }
        let broken = violations(ghr, self.matcher_config.dynamic_labels_policy());
        (!broken.is_empty()).then(|| {
            let reasons: Vec<String> = broken.iter().map(|(label, why)| format!("{label}: {why}")).collect();
            format!("{name}: {}", reasons.join("; "))
        })
    }
}

/// Parses the matcher configuration: the chunks are concatenated in order before parsing
/// (Terraform splits the JSON over several SSM parameters), and strict configurations are moved
/// to the front, keeping the priority order Terraform wrote within each group.
pub fn parse_matcher_config(chunks: &[&str]) -> Result<Vec<RunnerMatcherConfig>, String> {
    let joined: String = chunks.concat();
    if joined.trim().is_empty() {
        return Err("the runner matcher config is empty".into());
    }
    let mut configs: Vec<RunnerMatcherConfig> =
        serde_json::from_str(&joined).map_err(|e| format!("the runner matcher config is not valid: {e}"))?;
    if configs.is_empty() {
        return Err("the runner matcher config has no runner configuration".into());
    }
    // Stable: equal keys keep Terraform's priority order.
    configs.sort_by_key(|c| !c.is_strict());
    Ok(configs)
}

/// How to choose among equally good runner configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueSelectionStrategy {
    First,
    Random,
    All,
}

impl std::str::FromStr for QueueSelectionStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "first" => Ok(Self::First),
            "random" => Ok(Self::Random),
            "all" => Ok(Self::All),
            other => Err(format!("`{other}` is not one of first, random, all")),
        }
    }
}

/// The parts of a `workflow_job` delivery that routing needs. Deserialising fails (a 400) when
/// one of them is missing.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowJobEvent {
    pub action: String,
    pub workflow_job: WorkflowJob,
    pub repository: Repository,
    #[serde(default)]
    pub installation: Option<Installation>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowJob {
    pub id: u64,
    #[serde(default)]
    pub run_id: Option<u64>,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Repository {
    pub name: String,
    pub full_name: String,
    pub owner: RepositoryOwner,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RepositoryOwner {
    pub login: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Installation {
    pub id: u64,
}

/// The SQS message the webhook sends and scale-up reads (decisions.md #4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedJobMessage {
    pub id: u64,
    pub repository_name: String,
    pub repository_owner: String,
    pub event_type: String,
    pub installation_id: u64,
    pub queue_id: String,
    pub repo_owner_type: String,
    #[serde(default)]
    pub labels: Vec<String>,
    /// Added only by the job-retry feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_counter: Option<u32>,
    /// Added only by job rescue (beyond upstream): `on-demand` makes scale-up launch this job's
    /// runner on on-demand capacity whatever the configuration's capacity type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<String>,
}

impl QueuedJobMessage {
    pub fn for_job(event: &WorkflowJobEvent, queue_url: &str, labels: Vec<String>) -> Self {
        Self {
            id: event.workflow_job.id,
            repository_name: event.repository.name.clone(),
            repository_owner: event.repository.owner.login.clone(),
            event_type: "workflow_job".into(),
            installation_id: event.installation.as_ref().map_or(0, |i| i.id),
            queue_id: queue_url.to_string(),
            repo_owner_type: event.repository.owner.kind.clone(),
            labels,
            retry_counter: None,
            capacity_type: None,
        }
    }
}

/// The runner configurations a job goes to, and the labels forwarded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    pub targets: Vec<&'a RunnerMatcherConfig>,
    pub labels: Vec<String>,
}

/// Why a job goes to no runner configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrouted {
    /// No configuration accepts the job's labels.
    NoMatch,
    /// Configurations accept its labels, but none its dynamic (`ghr-`) labels: one reason per
    /// matching configuration, in order.
    DynamicLabelsRefused(Vec<String>),
}

/// Chooses the target configurations for a job with `labels`. `configs` must come from
/// [`parse_matcher_config`] (strict ones first). `pick(n)` returns an index below `n` and is
/// only called for the `random` strategy.
///
/// A job with dynamic (`ghr-`) labels goes, whatever the strategy, to the first matching
/// configuration that takes them (EC2, `enableDynamicLabels`, its `ghr-ec2-*` labels within
/// the configuration's policy), with its sanitised `ghr-` labels forwarded; as upstream.
pub fn route_job<'a>(
    labels: &[String],
    configs: &'a [RunnerMatcherConfig],
    strategy: QueueSelectionStrategy,
    pick: impl FnOnce(usize) -> usize,
) -> Result<Route<'a>, Unrouted> {
    let split = split_labels(labels);
    let matches: Vec<&RunnerMatcherConfig> = configs
        .iter()
        .filter(|c| {
            can_run_job(
                &split.regular,
                &c.matcher_config.label_matchers,
                c.matcher_config.exact_match,
                c.matcher_config.bidirectional_label_match,
            )
        })
        .collect();
    let first = matches.first().ok_or(Unrouted::NoMatch)?;
    if !split.ghr.is_empty() {
        let mut refusals = Vec::new();
        for config in &matches {
            match config.refuses_dynamic_labels(&split.ghr) {
                Some(reason) => refusals.push(reason),
                None => {
                    let mut forwarded = split.regular.clone();
                    forwarded.extend(split.ghr.iter().cloned());
                    return Ok(Route { targets: vec![config], labels: forwarded });
                }
            }
        }
        return Err(Unrouted::DynamicLabelsRefused(refusals));
    }
    // Upstream compares only `exactMatch` with the first match when ranking candidates.
    let candidates: Vec<&RunnerMatcherConfig> =
        matches.iter().copied().filter(|c| c.matcher_config.exact_match == first.matcher_config.exact_match).collect();
    let targets = match strategy {
        QueueSelectionStrategy::First => vec![candidates[0]],
        QueueSelectionStrategy::Random => vec![candidates[pick(candidates.len()).min(candidates.len() - 1)]],
        QueueSelectionStrategy::All => candidates,
    };
    Ok(Route { targets, labels: split.regular })
}

/// Whether a repository may use the runners (`REPOSITORY_ALLOW_LIST`; empty allows all).
pub fn repository_allowed(allow_list: &[String], full_name: &str) -> bool {
    allow_list.is_empty() || allow_list.iter().any(|r| r == full_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str, labels: &[&[&str]], exact: bool, bidi: bool) -> RunnerMatcherConfig {
        RunnerMatcherConfig {
            id: id.into(),
            arn: format!("arn:{id}"),
            fifo: false,
            key: None,
            compute_provider: None,
            matcher_config: MatcherConfig {
                label_matchers: labels.iter().map(|s| s.iter().map(|l| l.to_string()).collect()).collect(),
                exact_match: exact,
                bidirectional_label_match: bidi,
                priority: None,
                enable_dynamic_labels: false,
                aws_dynamic_labels_policy: None,
                ec2_dynamic_labels_policy: None,
            },
        }
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    fn parsed(configs: Vec<RunnerMatcherConfig>) -> Vec<RunnerMatcherConfig> {
        let json = serde_json::to_string(&configs).unwrap();
        parse_matcher_config(&[&json]).unwrap()
    }

    fn ids(route: &Result<Route<'_>, Unrouted>) -> Vec<String> {
        route.as_ref().map(|r| r.targets.iter().map(|t| t.id.clone()).collect()).unwrap_or_default()
    }

    #[test]
    fn parses_the_decisions_example_and_chunks() {
        let json = r#"[{"id": "https://sqs.eu-west-1.amazonaws.com/1/q", "arn": "arn:q", "fifo": false, "key": "linux", "computeProvider": "ec2",
   "matcherConfig": {"labelMatchers": [["self-hosted", "linux", "x64"]], "exactMatch": true,
   "bidirectionalLabelMatch": false, "priority": 1, "enableDynamicLabels": false, "unknown": 1}}]"#;
        let (a, b) = json.split_at(50);
        let configs = parse_matcher_config(&[a, b]).unwrap();
        assert_eq!(configs.len(), 1);
        assert_eq!(configs[0].key.as_deref(), Some("linux"));
        assert!(configs[0].matcher_config.exact_match);
        let minimal = r#"[{"id":"q","arn":"a","matcherConfig":{"labelMatchers":[["x"]],"exactMatch":false}}]"#;
        assert!(parse_matcher_config(&[minimal]).is_ok());
        assert!(parse_matcher_config(&[""]).is_err());
        assert!(parse_matcher_config(&["[]"]).is_err());
        assert!(parse_matcher_config(&["[{\"id\":1}]"]).is_err());
    }

    #[test]
    fn strict_configurations_win_even_when_listed_later() {
        let configs = parsed(vec![
            config("loose", &[&["self-hosted", "linux"]], false, false),
            config("exact", &[&["self-hosted", "linux"]], true, false),
        ]);
        let route = route_job(&labels(&["self-hosted", "linux"]), &configs, QueueSelectionStrategy::First, |_| 0);
        assert_eq!(ids(&route), vec!["exact"]);
        // An extra label is rejected by the exact configuration and falls to the loose one.
        let route =
            route_job(&labels(&["self-hosted", "linux", "on-demand"]), &configs, QueueSelectionStrategy::First, |_| 0);
        assert_eq!(ids(&route), vec!["loose"]);
    }

    #[test]
    fn strategies_choose_among_equally_ranked_matches() {
        let configs = parsed(vec![
            config("a", &[&["linux"]], true, false),
            config("b", &[&["linux"]], true, false),
            config("loose", &[&["linux"]], false, false),
        ]);
        let job = labels(&["linux"]);
        assert_eq!(ids(&route_job(&job, &configs, QueueSelectionStrategy::First, |_| 0)), vec!["a"]);
        assert_eq!(ids(&route_job(&job, &configs, QueueSelectionStrategy::Random, |n| n - 1)), vec!["b"]);
        assert_eq!(ids(&route_job(&job, &configs, QueueSelectionStrategy::All, |_| 0)), vec!["a", "b"]);
    }

    #[test]
    fn no_match_and_label_forwarding() {
        let configs = parsed(vec![config("q", &[&["self-hosted", "linux"]], true, false)]);
        assert_eq!(
            route_job(&labels(&["windows"]), &configs, QueueSelectionStrategy::First, |_| 0),
            Err(Unrouted::NoMatch)
        );
        // Other labels keep their case.
        let route =
            route_job(&labels(&["Self-Hosted", "Linux"]), &configs, QueueSelectionStrategy::First, |_| 0).unwrap();
        assert_eq!(route.labels, labels(&["Self-Hosted", "Linux"]));
        // ghr- labels never take part in matching; without dynamic labels enabled the job is refused.
        let refused = route_job(
            &labels(&["Self-Hosted", "ghr-run-id:1", "Linux"]),
            &configs,
            QueueSelectionStrategy::First,
            |_| 0,
        );
        assert_eq!(refused, Err(Unrouted::DynamicLabelsRefused(vec!["q: dynamic labels are not enabled".into()])));
    }

    fn dynamic(id: &str, labels: &[&[&str]], policy: serde_json::Value) -> RunnerMatcherConfig {
        let mut c = config(id, labels, true, false);
        c.matcher_config.enable_dynamic_labels = true;
        c.matcher_config.aws_dynamic_labels_policy = Policy::parse(&policy).unwrap();
        c
    }

    #[test]
    fn dynamic_labels_go_to_the_first_configuration_whose_policy_takes_them() {
        use serde_json::json;
        let configs = parsed(vec![
            config("plain", &[&["self-hosted", "linux"]], true, false),
            dynamic(
                "small",
                &[&["self-hosted", "linux"]],
                json!({"restricted_keys": {"instance-type": {"allowed": ["c5.*", "m5.*"], "denied": ["*.metal"]}}}),
            ),
            dynamic("big", &[&["self-hosted", "linux"]], json!({"blocked_keys": ["image-id"]})),
            dynamic("other", &[&["windows"]], json!(null)),
        ]);
        let job = |extra: &[&str]| {
            let mut l = labels(&["self-hosted", "Linux"]);
            l.extend(labels(extra));
            l
        };
        // The strategy is ignored: the first configuration that takes the labels, alone.
        let route = route_job(
            &job(&["ghr-ec2-instance-type:c5.xlarge", "ghr-run:7"]),
            &configs,
            QueueSelectionStrategy::All,
            |_| 0,
        )
        .unwrap();
        assert_eq!(route.targets.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["small"]);
        assert_eq!(route.labels, labels(&["self-hosted", "Linux", "ghr-ec2-instance-type:c5.xlarge", "ghr-run:7"]));
        // Refused by the first policy, taken by the next one.
        let route =
            route_job(&job(&["ghr-ec2-instance-type:p4d.24xlarge"]), &configs, QueueSelectionStrategy::First, |_| 0);
        assert_eq!(ids(&route), ["big"]);
        // Refused by every matching configuration: each says why; a label that is not valid is dropped first.
        let route = route_job(
            &job(&["ghr-ec2-instance-type:m5.metal", "ghr-ec2-image-id:ami-1", "ghr-bad label"]),
            &configs,
            QueueSelectionStrategy::First,
            |_| 0,
        );
        assert_eq!(
            route,
            Err(Unrouted::DynamicLabelsRefused(vec![
                "plain: dynamic labels are not enabled".into(),
                "small: ghr-ec2-instance-type:m5.metal: value 'm5.metal' in denied list".into(),
                "big: ghr-ec2-image-id:ami-1: key 'image-id' is in blocked_keys".into(),
            ]))
        );
        // Another compute provider takes none; upstream's former policy key is read.
        let mut gpu = dynamic("gpu", &[&["gpu"]], json!(null));
        gpu.compute_provider = Some(" EC2 ".into());
        gpu.matcher_config.ec2_dynamic_labels_policy =
            Policy::parse(&json!({"blocked_keys": ["instance-type"]})).unwrap();
        let mut fargate = dynamic("fargate", &[&["gpu"]], json!(null));
        fargate.compute_provider = Some("fargate".into());
        let configs = parsed(vec![gpu, fargate]);
        let route = route_job(
            &labels(&["gpu", "ghr-ec2-instance-type:g5.xlarge"]),
            &configs,
            QueueSelectionStrategy::First,
            |_| 0,
        );
        let Err(Unrouted::DynamicLabelsRefused(reasons)) = route else { panic!("{route:?}") };
        assert!(reasons[0].contains("blocked_keys") && reasons[1].contains("compute provider"), "{reasons:?}");
    }

    #[test]
    fn message_shape_is_the_upstream_contract() {
        let event: WorkflowJobEvent = serde_json::from_value(serde_json::json!({
            "action": "queued",
            "workflow_job": {"id": 7, "labels": ["linux"]},
            "repository": {"name": "r", "full_name": "o/r", "owner": {"login": "o", "type": "Organization"}}
        }))
        .unwrap();
        let msg = QueuedJobMessage::for_job(&event, "https://q", vec!["linux".into()]);
        let v = serde_json::to_value(&msg).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "eventType",
                "id",
                "installationId",
                "labels",
                "queueId",
                "repoOwnerType",
                "repositoryName",
                "repositoryOwner"
            ]
        );
        assert_eq!(v["installationId"], 0);
        let with_retry: QueuedJobMessage = serde_json::from_value(serde_json::json!({
            "id": 1, "repositoryName": "r", "repositoryOwner": "o", "eventType": "workflow_job",
            "installationId": 3, "queueId": "q", "repoOwnerType": "User", "retryCounter": 2
        }))
        .unwrap();
        assert_eq!(with_retry.retry_counter, Some(2));
        assert!(with_retry.labels.is_empty());
    }

    #[test]
    fn allow_list() {
        assert!(repository_allowed(&[], "o/r"));
        assert!(repository_allowed(&["o/r".into()], "o/r"));
        assert!(!repository_allowed(&["o/x".into()], "o/r"));
    }
}
