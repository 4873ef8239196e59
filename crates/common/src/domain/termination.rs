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
