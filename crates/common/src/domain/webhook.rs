//! Which runner queue(s) a `workflow_job` event goes to, and the message put there.
//!
//! Pure functions over the matcher configuration (decisions.md #3) and the parts of the GitHub
//! payload the routing needs. The webhook function does the I/O around them.

use serde::{Deserialize, Serialize};

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
}

impl RunnerMatcherConfig {
    fn is_strict(&self) -> bool {
        self.matcher_config.exact_match || self.matcher_config.bidirectional_label_match
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
        }
    }
}

/// The runner configurations a job goes to, and the labels forwarded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    pub targets: Vec<&'a RunnerMatcherConfig>,
    pub labels: Vec<String>,
}

/// Chooses the target configurations for a job with `labels`. `configs` must come from
/// [`parse_matcher_config`] (strict ones first). `pick(n)` returns an index below `n` and is
/// only called for the `random` strategy. `None` when no configuration accepts the job.
pub fn route_job<'a>(
    labels: &[String],
    configs: &'a [RunnerMatcherConfig],
    strategy: QueueSelectionStrategy,
    pick: impl FnOnce(usize) -> usize,
) -> Option<Route<'a>> {
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
    let first = matches.first()?;
    // Upstream compares only `exactMatch` with the first match when ranking candidates.
    let candidates: Vec<&RunnerMatcherConfig> =
        matches.iter().copied().filter(|c| c.matcher_config.exact_match == first.matcher_config.exact_match).collect();
    let targets = match strategy {
        QueueSelectionStrategy::First => vec![candidates[0]],
        QueueSelectionStrategy::Random => vec![candidates[pick(candidates.len()).min(candidates.len() - 1)]],
        QueueSelectionStrategy::All => candidates,
    };
    Some(Route { targets, labels: split.regular })
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

    fn ids(route: &Option<Route<'_>>) -> Vec<String> {
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
        assert!(route_job(&labels(&["windows"]), &configs, QueueSelectionStrategy::First, |_| 0).is_none());
        // ghr- labels never take part in matching and are not forwarded (decisions.md #3);
        // other labels keep their case.
        let route = route_job(
            &labels(&["Self-Hosted", "ghr-run-id:1", "Linux"]),
            &configs,
            QueueSelectionStrategy::First,
            |_| 0,
        )
        .unwrap();
        assert_eq!(route.labels, labels(&["Self-Hosted", "Linux"]));
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
