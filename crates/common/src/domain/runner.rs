//! Runners and who owns them, runner instances and their EC2 tags.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

/// The EC2 tags of runner instances (upstream §2.9): names and fixed values.
pub mod tags {
    pub const APPLICATION: &str = "ghr:Application";
    pub const APPLICATION_VALUE: &str = "github-action-runner";
    pub const ENVIRONMENT: &str = "ghr:environment";
    pub const TYPE: &str = "ghr:Type";
    pub const OWNER: &str = "ghr:Owner";
    pub const CREATED_BY: &str = "ghr:created_by";
    pub const CREATED_BY_SCALE_UP: &str = "scale-up-lambda";
    pub const CREATED_BY_POOL: &str = "pool-lambda";
    pub const CREATED_BY_WARM_POOL: &str = "warm-pool-lambda";
    /// Unix seconds until which the pool wants this runner kept (set by each pool run on the
    /// runners it counts): scale-down does not remove it as idle before then.
    pub const POOL_HOLD_UNTIL: &str = "ghr:pool_hold_until";
    pub const GITHUB_RUNNER_ID: &str = "ghr:github_runner_id";
    /// The id of the job whose `queued` event launched the instance (written by scale-up with
    /// the runner's registration): a second delivery of that event (a webhook redelivery, SQS's
    /// at-least-once delivery) finds it and launches nothing.
    pub const LAUNCHED_FOR_JOB: &str = "ghr:launched_for_job";
    pub const RUNNER_LABELS: &str = "ghr:runner_labels";
    pub const ORPHAN: &str = "ghr:orphan";
    /// Written by scale-down when it deregistered the instance's idle runner (unix seconds):
    /// the instance drains, and is terminated on a later run once no job can still start on it.
    pub const DEREGISTERED_AT: &str = "ghr:deregistered_at";
    /// Written by scale-down when it removed the idle runner's custom labels (unix seconds):
    /// GitHub no longer hands it jobs that ask for them; it is deregistered once a job handed
    /// out just before has had time to start.
    pub const WITHDRAWN_AT: &str = "ghr:withdrawn_at";
    pub const BYPASS_REMOVAL: &str = "ghr:bypass-removal";
    pub const SSM_CONFIG_PATH: &str = "ghr:ssm_config_path";
    pub const RUNNER_NAME_PREFIX: &str = "ghr:runner_name_prefix";
    /// Legacy owner tags, read only.
    pub const LEGACY_ORG: &str = "ghr:Org";
    pub const LEGACY_REPO: &str = "ghr:Repo";
}

/// The runner name of an instance: one rule everywhere (contract "do better" #4).
pub fn runner_name(prefix: &str, instance_id: &str) -> String {
    format!("{prefix}{instance_id}")
}

/// A runner instance as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerInstance {
    pub id: String,
    pub launch_time: Option<DateTime<Utc>>,
    /// `pending`, `running`...
    pub state: String,
    pub tags: BTreeMap<String, String>,
    /// The image it was launched from, when EC2 said.
    pub image_id: Option<String>,
}

impl RunnerInstance {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// The owner from `ghr:Type` + `ghr:Owner` (legacy `ghr:Org` / `ghr:Repo` as fallback).
    pub fn owner(&self) -> Option<RunnerOwner> {
        if let (Some(kind), Some(owner)) = (self.tag(tags::TYPE), self.tag(tags::OWNER)) {
            return RunnerOwner::from_tags(kind, owner);
        }
        match (self.tag(tags::LEGACY_ORG), self.tag(tags::LEGACY_REPO)) {
            (Some(org), _) => RunnerOwner::from_tags("Org", org),
            (None, Some(repo)) => RunnerOwner::from_tags("Repo", repo),
            _ => None,
        }
    }

    pub fn is_orphan(&self) -> bool {
        self.tag(tags::ORPHAN).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// When scale-down deregistered this instance's runner, if it did: the instance no longer
    /// takes jobs and only waits to be terminated.
    pub fn deregistered_at(&self) -> Option<DateTime<Utc>> {
        self.tag(tags::DEREGISTERED_AT)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .and_then(|s| DateTime::from_timestamp(s, 0))
    }

    /// When scale-down withdrew this instance's runner from job assignment (removed its custom
    /// labels), if it did.
    pub fn withdrawn_at(&self) -> Option<DateTime<Utc>> {
        self.tag(tags::WITHDRAWN_AT)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .and_then(|s| DateTime::from_timestamp(s, 0))
    }

    pub fn is_draining(&self) -> bool {
        self.tag(tags::DEREGISTERED_AT).is_some()
    }

    pub fn bypass_removal(&self) -> bool {
        self.tag(tags::BYPASS_REMOVAL).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Whether the pool wants this runner kept at `now` (`ghr:pool_hold_until` in the future).
    pub fn pool_held(&self, now: DateTime<Utc>) -> bool {
        self.tag(tags::POOL_HOLD_UNTIL).and_then(|v| v.trim().parse::<i64>().ok()).is_some_and(|t| t > now.timestamp())
    }

    /// When the instance last started for a runner: its launch time, or for a warm pool
    /// instance the later claim that started it (EC2 reports a restarted instance's last start
    /// as its launch time; the claim time does not depend on that). The boot time and the
    /// minimum running time count from here.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        let claimed = self
            .tag(crate::domain::warm_pool::CLAIMED_AT_TAG)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .and_then(|s| DateTime::from_timestamp(s, 0));
        match (self.launch_time, claimed) {
            (Some(l), Some(c)) => Some(l.max(c)),
            (l, c) => l.or(c),
        }
    }

    pub fn github_runner_id(&self) -> Option<u64> {
        self.tag(tags::GITHUB_RUNNER_ID).and_then(|v| v.trim().parse().ok())
    }
}

/// A self-hosted runner as GitHub reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRunner {
    pub id: u64,
    pub name: String,
    /// `online` or `offline`.
    pub status: String,
    pub busy: bool,
    pub labels: Vec<String>,
    /// The labels GitHub lists as `custom` (not the read-only `self-hosted`, OS and
    /// architecture): the ones scale-down can remove to stop job assignment.
    pub custom_labels: Vec<String>,
}

/// Which runner instances to list (upstream `listEC2Runners` filters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFilter {
    pub environment: String,
    pub owner: Option<RunnerOwner>,
    pub orphan_only: bool,
    /// Only instances with a `ghr:warm` tag (the warm pool, whatever their place in it).
    pub warm_only: bool,
    pub states: Vec<String>,
}

impl InstanceFilter {
    /// Live (`running` or `pending`) runners of an environment.
    pub fn live(environment: &str) -> Self {
        Self {
            environment: environment.to_string(),
            owner: None,
            orphan_only: false,
            warm_only: false,
            states: vec!["running".into(), "pending".into()],
        }
    }

    /// The warm pool of an environment: instances with a `ghr:warm` tag, running or stopped
    /// (not terminated).
    pub fn warm_pool(environment: &str) -> Self {
        Self {
            warm_only: true,
            states: ["pending", "running", "stopping", "stopped"].iter().map(|s| s.to_string()).collect(),
            ..Self::live(environment)
        }
    }

    pub fn owned_by(mut self, owner: &RunnerOwner) -> Self {
        self.owner = Some(owner.clone());
        self
    }

    pub fn orphans(mut self) -> Self {
        self.orphan_only = true;
        self
    }
}

/// `ghr:Type` of a runner: registered on an organization or on one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunnerType {
    Org,
    Repo,
}

impl RunnerType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerType::Org => "Org",
            RunnerType::Repo => "Repo",
        }
    }
}

/// The GitHub owner a runner registers with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunnerOwner {
    Org(String),
    Repo { owner: String, repo: String },
}

impl RunnerOwner {
    pub fn runner_type(&self) -> RunnerType {
        match self {
            RunnerOwner::Org(_) => RunnerType::Org,
            RunnerOwner::Repo { .. } => RunnerType::Repo,
        }
    }

    /// The `ghr:Owner` tag value: `org` or `owner/repo`.
    pub fn tag_value(&self) -> String {
        self.to_string()
    }

    /// The login of the account (organization or repository owner).
    pub fn login(&self) -> &str {
        match self {
            RunnerOwner::Org(org) => org,
            RunnerOwner::Repo { owner, .. } => owner,
        }
    }

    /// From the `ghr:Type` and `ghr:Owner` tags.
    pub fn from_tags(runner_type: &str, owner: &str) -> Option<Self> {
        match runner_type {
            "Org" if !owner.is_empty() && !owner.contains('/') => Some(RunnerOwner::Org(owner.to_string())),
            "Repo" => {
                let (o, r) = owner.split_once('/')?;
                (!o.is_empty() && !r.is_empty())
                    .then(|| RunnerOwner::Repo { owner: o.to_string(), repo: r.to_string() })
            }
            _ => None,
        }
    }
}

impl fmt::Display for RunnerOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunnerOwner::Org(org) => f.write_str(org),
            RunnerOwner::Repo { owner, repo } => write!(f, "{owner}/{repo}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(tags: &[(&str, &str)]) -> RunnerInstance {
        RunnerInstance {
            image_id: None,
            id: "i-1".into(),
            launch_time: None,
            state: "running".into(),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn instance_tags() {
        let i = instance(&[
            ("ghr:Type", "Repo"),
            ("ghr:Owner", "a/b"),
            ("ghr:orphan", "true"),
            ("ghr:github_runner_id", "42"),
        ]);
        assert_eq!(i.owner(), Some(RunnerOwner::Repo { owner: "a".into(), repo: "b".into() }));
        assert!(i.is_orphan());
        assert!(!i.bypass_removal());
        assert_eq!(i.github_runner_id(), Some(42));
        assert_eq!(instance(&[("ghr:Org", "acme")]).owner(), Some(RunnerOwner::Org("acme".into())));
        assert_eq!(instance(&[("ghr:bypass-removal", "TRUE")]).owner(), None);
        assert!(instance(&[("ghr:bypass-removal", "TRUE")]).bypass_removal());
        assert_eq!(runner_name("ci-", "i-0abc"), "ci-i-0abc");
    }

    #[test]
    fn owner_tags_round_trip() {
        let org = RunnerOwner::Org("acme".into());
        let repo = RunnerOwner::Repo { owner: "acme".into(), repo: "web".into() };
        assert_eq!(RunnerOwner::from_tags("Org", &org.tag_value()), Some(org));
        assert_eq!(RunnerOwner::from_tags("Repo", &repo.tag_value()), Some(repo));
        assert_eq!(RunnerOwner::from_tags("Repo", "acme"), None);
        assert_eq!(RunnerOwner::from_tags("Org", "a/b"), None);
        assert_eq!(RunnerOwner::from_tags("Other", "a"), None);
    }
}
