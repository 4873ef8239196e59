//! The termination watcher's decisions (upstream `termination-watcher`): which EC2 events are
//! about this deployment's runners, and the deregistration retry message.
//!
//! Three kinds of EventBridge events reach the watcher: the spot interruption warning (two
//! minutes before a reclaim), the instance state change (`shutting-down`, any cause) and the
//! CloudTrail `BidEvictedEvent` (the reclaim itself). Tags are not in the events, so the
//! instance is described and matched against the tag filters: every filter key must be on the
//! instance with a value that **starts with** the filter's (so the prefix `gh` also matches the
//! multi-runner environments `gh-linux`, `gh-windows`, as upstream).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::runner::{RunnerInstance, tags};

pub const SPOT_WARNING: &str = "EC2 Spot Instance Interruption Warning";
pub const STATE_CHANGE: &str = "EC2 Instance State-change Notification";
pub const CLOUDTRAIL_EVENT: &str = "AWS Service Event via CloudTrail";
pub const BID_EVICTED: &str = "BidEvictedEvent";

/// An instance as the watcher sees it: a runner instance plus its type (the metrics' dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedInstance {
    pub instance: RunnerInstance,
    pub instance_type: Option<String>,
}

/// `TAG_FILTERS`: a JSON object of tag → value prefix; unset, empty or `null` means
/// `{"ghr:environment": <PREFIX>}`.
pub fn parse_tag_filters(raw: Option<&str>, prefix: &str) -> Result<BTreeMap<String, String>, String> {
    let raw = raw.map(str::trim).unwrap_or("");
    if raw.is_empty() || raw == "null" {
        return Ok(BTreeMap::from([(tags::ENVIRONMENT.to_string(), prefix.to_string())]));
    }
    let filters: BTreeMap<String, String> =
        serde_json::from_str(raw).map_err(|e| format!("not a JSON object of tag names to value prefixes: {e}"))?;
    if filters.is_empty() {
        // An empty filter would watch every instance of the account.
        return Err("must name at least one tag".into());
    }
    Ok(filters)
}

/// Whether every filter tag is on the instance with a value starting with the filter's.
pub fn matches_tag_filters(tags: &BTreeMap<String, String>, filters: &BTreeMap<String, String>) -> bool {
    filters.iter().all(|(key, prefix)| tags.get(key).is_some_and(|v| v.starts_with(prefix.as_str())))
}

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The spot interruption warning (`SpotInterruptionWarning`).
    SpotInterruptionWarning,
    /// An instance state change (`shutting-down`): any termination, only deregistration.
    StateChange,
    /// The CloudTrail `BidEvictedEvent` (`SpotTermination`).
    SpotTermination,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub instance_ids: Vec<String>,
    pub time: Option<DateTime<Utc>>,
}

/// Reads an EventBridge event; `None` for anything else (logged and ignored by the caller).
pub fn parse_event(event: &serde_json::Value) -> Option<Notice> {
    let detail_type = event.get("detail-type")?.as_str()?;
    let detail = event.get("detail")?;
    let time = event
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let one = |kind| {
        let id = detail.get("instance-id")?.as_str()?.to_string();
        Some(Notice { kind, instance_ids: vec![id], time })
    };
    match detail_type {
        SPOT_WARNING => one(NoticeKind::SpotInterruptionWarning),
        STATE_CHANGE => one(NoticeKind::StateChange),
        CLOUDTRAIL_EVENT if detail.get("eventName").and_then(|n| n.as_str()) == Some(BID_EVICTED) => {
            let ids: Vec<String> = detail
                .pointer("/serviceEventDetails/instanceIdSet")?
                .as_array()?
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect();
            (!ids.is_empty()).then_some(Notice { kind: NoticeKind::SpotTermination, instance_ids: ids, time })
        }
        _ => None,
    }
}

/// A deregistration GitHub refused because the runner was still running a job (422), tried
/// again from the retry queue (upstream's message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterRetry {
    pub instance_id: String,
    /// `ghr:Owner`: an organization, or `owner/repo`.
    pub owner: String,
    /// `ghr:Type`: `Org` or `Repo`.
    pub runner_type: String,
    /// The runner's id when known (0: look it up by the instance id in its name).
    #[serde(default)]
    pub runner_id: u64,
    #[serde(default)]
    pub retry_count: u32,
}

/// Tag the job-started hook writes next to `ghr:job_started`: the job's workflow run,
/// `<owner>/<repo>/<run id>` (`GITHUB_REPOSITORY/GITHUB_RUN_ID`).
pub const JOB_RUN_TAG: &str = "ghr:job_run";

/// The workflow run of the job an instance runs: `(owner, repo, run id)` from `ghr:job_run`.
pub fn job_run(instance: &RunnerInstance) -> Option<(String, String, u64)> {
    let value = instance.tag(JOB_RUN_TAG)?;
    let (repository, run_id) = value.trim().rsplit_once('/')?;
    let (owner, repo) = repository.split_once('/')?;
    let run_id = run_id.parse().ok()?;
    (!owner.is_empty() && !repo.is_empty()).then(|| (owner.to_string(), repo.to_string(), run_id))
}

/// `JOB_RESCUE_CONFIG`: how many times a job may be re-run after a spot reclaim, and the build
/// queue each runner configuration's rescued jobs go to (its own, or a fallback's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRescueConfig {
    /// A job is re-run while its run attempt is at most this (1: one rescue).
    #[serde(default = "one")]
    pub max_attempts: u32,
    /// `ghr:environment` → build queue URL.
    pub queues: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

impl JobRescueConfig {
    pub fn parse(raw: Option<&str>) -> Result<Option<Self>, String> {
        let raw = raw.map(str::trim).unwrap_or("");
        if raw.is_empty() || raw == "null" {
            return Ok(None);
        }
        let config: Self = serde_json::from_str(raw).map_err(|e| format!("not a job rescue config: {e}"))?;
        if config.max_attempts == 0 {
            return Err("maxAttempts must be at least 1".into());
        }
        Ok(Some(config))
    }
}

/// A job interrupted by a spot reclaim, followed on the retry queue until it can be re-run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRescue {
    pub instance_id: String,
    /// `ghr:Owner` / `ghr:Type` of the instance: whose installation reads the run.
    pub owner: String,
    pub runner_type: String,
    pub repository_owner: String,
    pub repository_name: String,
    pub run_id: u64,
    /// The build queue the re-run job's message goes to.
    pub queue_url: String,
    /// How many times the job was found still running.
    #[serde(default)]
    pub checks: u32,
}

/// What the retry queue carries: a rescue (it has a `runId`) or a deregistration retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RetryMessage {
    Rescue(JobRescue),
    Deregister(DeregisterRetry),
}

/// A job of a workflow run's latest attempt, as the rescue reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunJob {
    pub id: u64,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub run_attempt: u32,
    pub runner_name: Option<String>,
    pub labels: Vec<String>,
}

/// The next step of a rescue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RescueStep {
    /// The job has not ended yet: look again later.
    Wait,
    /// Re-run this job (it failed with its runner's instance).
    Rerun { job_id: u64, name: String, run_attempt: u32 },
    /// Nothing to do, and why.
    Done(&'static str),
}

/// Judges the run's latest attempt for the job that ran on `instance_id`.
pub fn rescue_step(jobs: &[RunJob], instance_id: &str, max_attempts: u32) -> RescueStep {
    let Some(job) = jobs.iter().find(|j| j.runner_name.as_deref().is_some_and(|n| n.contains(instance_id))) else {
        // Not in the latest attempt: re-run already (by someone, or an earlier rescue), or it
        // never reached this runner.
        return RescueStep::Done("no_job_of_this_runner");
    };
    if job.status != "completed" {
        return RescueStep::Wait;
    }
    match job.conclusion.as_deref() {
        Some("failure" | "cancelled") if job.run_attempt <= max_attempts => {
            RescueStep::Rerun { job_id: job.id, name: job.name.clone(), run_attempt: job.run_attempt }
        }
        Some("failure" | "cancelled") => RescueStep::Done("attempts_exhausted"),
        _ => RescueStep::Done("finished"),
    }
}

/// The re-run of `name`: the job of that name in the attempt after `run_attempt`.
pub fn rerun_of<'a>(jobs: &'a [RunJob], name: &str, run_attempt: u32) -> Option<&'a RunJob> {
    jobs.iter().find(|j| j.name == name && j.run_attempt > run_attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tag_filters_default_to_the_environment_and_match_by_prefix() {
        let default = parse_tag_filters(None, "gh").unwrap();
        assert_eq!(default, BTreeMap::from([("ghr:environment".to_string(), "gh".to_string())]));
        assert_eq!(parse_tag_filters(Some("null"), "gh").unwrap(), default);
        let filters = parse_tag_filters(Some(r#"{"ghr:Application":"github-action-runner"}"#), "gh").unwrap();
        assert_eq!(filters.len(), 1);
        assert!(parse_tag_filters(Some("{}"), "gh").is_err());
        assert!(parse_tag_filters(Some("[1]"), "gh").is_err());

        let tags = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(matches_tag_filters(&tags(&[("ghr:environment", "gh-linux")]), &default));
        assert!(!matches_tag_filters(&tags(&[("ghr:environment", "other")]), &default));
        assert!(!matches_tag_filters(&tags(&[("Name", "gh")]), &default));
    }

    fn run_job(id: u64, runner: &str, status: &str, conclusion: Option<&str>, attempt: u32) -> RunJob {
        RunJob {
            id,
            name: "build".into(),
            status: status.into(),
            conclusion: conclusion.map(str::to_string),
            run_attempt: attempt,
            runner_name: Some(runner.into()),
            labels: vec!["self-hosted".into()],
        }
    }

    #[test]
    fn a_job_failed_with_its_spot_instance_is_re_run_within_the_attempts() {
        let running = [run_job(7, "gh-i-1", "in_progress", None, 1)];
        assert_eq!(rescue_step(&running, "i-1", 1), RescueStep::Wait);
        let failed = [run_job(7, "gh-i-1", "completed", Some("failure"), 1), run_job(8, "gh-i-2", "queued", None, 1)];
        assert_eq!(
            rescue_step(&failed, "i-1", 1),
            RescueStep::Rerun { job_id: 7, name: "build".into(), run_attempt: 1 }
        );
        assert_eq!(rescue_step(&failed, "i-9", 1), RescueStep::Done("no_job_of_this_runner"));
        let second = [run_job(9, "gh-i-1", "completed", Some("cancelled"), 2)];
        assert_eq!(rescue_step(&second, "i-1", 1), RescueStep::Done("attempts_exhausted"));
        assert!(matches!(rescue_step(&second, "i-1", 2), RescueStep::Rerun { .. }));
        let passed = [run_job(7, "gh-i-1", "completed", Some("success"), 1)];
        assert_eq!(rescue_step(&passed, "i-1", 1), RescueStep::Done("finished"));
        let after = [run_job(10, "", "queued", None, 2)];
        assert_eq!(rerun_of(&after, "build", 1).map(|j| j.id), Some(10));
        assert_eq!(rerun_of(&after, "build", 2), None);
    }

    #[test]
    fn the_job_run_tag_and_the_rescue_config() {
        let mut instance = RunnerInstance {
            image_id: None,
            id: "i-1".into(),
            launch_time: None,
            state: "running".into(),
            tags: BTreeMap::from([(JOB_RUN_TAG.to_string(), "acme/web.site/123".to_string())]),
        };
        assert_eq!(job_run(&instance), Some(("acme".into(), "web.site".into(), 123)));
        instance.tags.insert(JOB_RUN_TAG.into(), "acme/123".into());
        assert_eq!(job_run(&instance), None);
        assert_eq!(JobRescueConfig::parse(None).unwrap(), None);
        let config = JobRescueConfig::parse(Some(r#"{"queues":{"gh":"https://q"}}"#)).unwrap().unwrap();
        assert_eq!((config.max_attempts, config.queues["gh"].as_str()), (1, "https://q"));
        assert!(JobRescueConfig::parse(Some(r#"{"maxAttempts":0,"queues":{}}"#)).is_err());
        let rescue: RetryMessage =
            serde_json::from_value(json!({"instanceId": "i-1", "owner": "acme", "runnerType": "Org",
            "repositoryOwner": "acme", "repositoryName": "web", "runId": 5, "queueUrl": "https://q"}))
            .unwrap();
        assert!(matches!(rescue, RetryMessage::Rescue(JobRescue { checks: 0, .. })));
        let retry: RetryMessage =
            serde_json::from_value(json!({"instanceId": "i-1", "owner": "acme", "runnerType": "Org", "runnerId": 3}))
                .unwrap();
        assert!(matches!(retry, RetryMessage::Deregister(DeregisterRetry { runner_id: 3, .. })));
    }

    #[test]
    fn reads_the_three_events() {
        let warning = json!({
            "detail-type": SPOT_WARNING, "source": "aws.ec2", "time": "2026-12-02T10:00:00Z",
            "detail": {"instance-id": "i-0abc", "instance-action": "terminate"}
        });
        let n = parse_event(&warning).unwrap();
        assert_eq!(
            (n.kind, n.instance_ids.as_slice()),
            (NoticeKind::SpotInterruptionWarning, &["i-0abc".to_string()][..])
        );
        assert!(n.time.is_some());

        let state = json!({"detail-type": STATE_CHANGE, "detail": {"instance-id": "i-0def", "state": "shutting-down"}});
        assert_eq!(parse_event(&state).unwrap().kind, NoticeKind::StateChange);

        let evicted = json!({
            "detail-type": CLOUDTRAIL_EVENT,
            "detail": {"eventName": BID_EVICTED, "serviceEventDetails": {"instanceIdSet": ["i-1", "i-2"]}}
        });
        let n = parse_event(&evicted).unwrap();
        assert_eq!((n.kind, n.instance_ids.len()), (NoticeKind::SpotTermination, 2));

        let other_trail = json!({"detail-type": CLOUDTRAIL_EVENT, "detail": {"eventName": "RunInstances"}});
        assert_eq!(parse_event(&other_trail), None);
        assert_eq!(parse_event(&json!({"Records": []})), None);
    }

    #[test]
    fn the_retry_message_is_upstreams() {
        let m: DeregisterRetry = serde_json::from_str(
            r#"{"instanceId":"i-1","owner":"acme","runnerType":"Org","runnerId":0,"retryCount":0}"#,
        )
        .unwrap();
        assert_eq!((m.owner.as_str(), m.runner_id, m.retry_count), ("acme", 0, 0));
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["instanceId"], "i-1");
    }
}
