//! Redelivery of failed webhook deliveries: which deliveries of the App's log to redeliver,
//! which to give up, and how far the checkpoint may move.
//!
//! GitHub keeps one log entry per delivery *attempt*; the attempts of one event share a GUID
//! (a redelivery is a new attempt with `redelivery = true`). An event needs a redelivery when
//! its **latest** attempt failed: one successful attempt, whenever, settles it.
//!
//! The checkpoint is the time before which every event is settled (succeeded, given up, not
//! ours). A run reads the log from now back to the checkpoint, so it sees every attempt of
//! every event it still has to follow: the count of redeliveries of an event comes from the
//! log itself, never from state of ours that could drift.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// The only event whose loss costs a job.
pub const WORKFLOW_JOB: &str = "workflow_job";
/// GitHub redelivers only deliveries of the last three days.
pub const GITHUB_REDELIVERY_LIMIT_MINUTES: i64 = 3 * 24 * 60;

/// One attempt in the App's delivery log (`GET /app/hook/deliveries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: u64,
    pub guid: String,
    pub delivered_at: DateTime<Utc>,
    pub redelivery: bool,
    /// The endpoint's HTTP status; 0 when it gave none (unreachable, timed out).
    pub status_code: u16,
    pub event: String,
    pub action: Option<String>,
}

impl Delivery {
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}

/// The settings of the redelivery function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Events older than this are not redelivered (and the first run looks back this far).
    pub window: TimeDelta,
    /// Redeliveries of one event before it is given up.
    pub max_attempts: u32,
}

/// Where the previous run left off, stored per App.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// Every event whose first attempt is older than this is settled.
    pub since: DateTime<Utc>,
    /// When the previous run started: an event given up since then is reported once.
    pub last_run: Option<DateTime<Utc>>,
}

impl Checkpoint {
    /// The first run's: the window back from `now`.
    pub fn initial(now: DateTime<Utc>, settings: Settings) -> Self {
        Self { since: now - settings.window, last_run: None }
    }

    /// Where this run reads back to: the checkpoint, never past the window.
    pub fn lower_bound(&self, now: DateTime<Utc>, settings: Settings) -> DateTime<Utc> {
        self.since.max(now - settings.window)
    }
}

/// An event to redeliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub guid: String,
    /// The attempt to redeliver (any attempt of the event does; the latest is used).
    pub delivery_id: u64,
    pub first_attempt: DateTime<Utc>,
    pub redeliveries: u32,
    pub action: Option<String>,
}

/// What a run should do with the attempts it read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Oldest first.
    pub redeliver: Vec<Failed>,
    /// Events given up since the previous run (reported once).
    pub newly_given_up: Vec<String>,
    /// Events still given up, reported before.
    pub given_up_before: usize,
    /// Events settled by a successful attempt.
    pub succeeded: usize,
    /// Failed events of other kinds, left alone.
    pub other_failed: usize,
    /// Events whose first attempt is before this run's range (settled by an earlier run, or
    /// outside the window): left alone.
    pub out_of_range: usize,
    /// The newest attempt read, of any event: whether the endpoint answered it.
    pub newest_attempt_succeeded: Option<bool>,
}

/// Judges the attempts read back to `lower` (newest first or in any order).
pub fn plan(
    attempts: &[Delivery],
    lower: DateTime<Utc>,
    previous_run: Option<DateTime<Utc>>,
    settings: Settings,
) -> Plan {
    let mut by_guid: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
    for attempt in attempts.iter().filter(|a| a.delivered_at >= lower) {
        by_guid.entry(attempt.guid.as_str()).or_default().push(attempt);
    }
    let mut plan = Plan {
        newest_attempt_succeeded: attempts
            .iter()
            .filter(|a| a.delivered_at >= lower)
            .max_by_key(|a| (a.delivered_at, a.id))
            .map(Delivery::succeeded),
        ..Plan::default()
    };
    for (guid, mut tries) in by_guid {
        tries.sort_by_key(|a| (a.delivered_at, a.id));
        let (Some(first), Some(latest)) = (tries.first(), tries.last()) else { continue };
        if latest.succeeded() {
            plan.succeeded += 1;
            continue;
        }
        if latest.event != WORKFLOW_JOB {
            plan.other_failed += 1;
            continue;
        }
        if first.redelivery {
            // Its first attempt is older than the range: an earlier run settled it (or it is
            // outside the window); a redelivery since then was someone else's.
            plan.out_of_range += 1;
            continue;
        }
        let redeliveries = tries.iter().filter(|a| a.redelivery).count() as u32;
        if redeliveries >= settings.max_attempts {
            if previous_run.is_none_or(|run| latest.delivered_at >= run) {
                plan.newly_given_up.push(guid.to_string());
            } else {
                plan.given_up_before += 1;
            }
            continue;
        }
        plan.redeliver.push(Failed {
            guid: guid.to_string(),
            delivery_id: latest.id,
            first_attempt: first.delivered_at,
            redeliveries,
            action: latest.action.clone(),
        });
    }
    plan.redeliver.sort_by_key(|f| (f.first_attempt, f.delivery_id));
    plan
}

/// The event to redeliver first while the endpoint may still be down: the one redelivered
/// least (the oldest of those), so that probing an outage spreads over the events instead of
/// using up one event's attempts.
pub fn probe(failed: &[Failed]) -> Option<usize> {
    failed.iter().enumerate().min_by_key(|(_, f)| (f.redeliveries, f.first_attempt, f.delivery_id)).map(|(i, _)| i)
}

/// Attempts are logged when they end, up to GitHub's 10 s answer deadline after they start:
/// the checkpoint stays this far behind the start of the run that read the log.
pub const LOG_LAG: TimeDelta = TimeDelta::minutes(2);

/// The next checkpoint. `complete`: the log was read all the way back to the lower bound;
/// `unsettled`: the first attempts of the events still followed (redelivered this run and
/// waiting for the outcome, or left for the next run).
pub fn next_checkpoint(
    previous: &Checkpoint,
    run_started: DateTime<Utc>,
    complete: bool,
    unsettled: impl IntoIterator<Item = DateTime<Utc>>,
) -> Checkpoint {
    let since = if complete {
        unsettled.into_iter().fold(run_started - LOG_LAG, DateTime::min).max(previous.since)
    } else {
        previous.since
    };
    Checkpoint { since, last_run: Some(run_started) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().with_timezone(&Utc) + TimeDelta::minutes(minute)
    }

    fn attempt(id: u64, guid: &str, minute: i64, status: u16, redelivery: bool) -> Delivery {
        Delivery {
            id,
            guid: guid.into(),
            delivered_at: at(minute),
            redelivery,
            status_code: status,
            event: WORKFLOW_JOB.into(),
            action: Some("queued".into()),
        }
    }

    const SETTINGS: Settings = Settings { window: TimeDelta::minutes(60), max_attempts: 2 };

    #[test]
    fn only_events_whose_latest_attempt_failed_are_redelivered() {
        let mut ping = attempt(9, "ping", 4, 500, false);
        ping.event = "ping".into();
        let log = vec![
            attempt(1, "ok", 1, 200, false),
            attempt(2, "failed", 2, 500, false),
            attempt(3, "recovered", 3, 0, false),
            attempt(4, "recovered", 8, 202, true),
            attempt(5, "twice", 5, 503, false),
            attempt(6, "twice", 10, 500, true),
            ping,
        ];
        let p = plan(&log, at(0), Some(at(9)), SETTINGS);
        let guids: Vec<&str> = p.redeliver.iter().map(|f| f.guid.as_str()).collect();
        assert_eq!(guids, ["failed", "twice"], "oldest first");
        assert_eq!((p.redeliver[1].delivery_id, p.redeliver[1].redeliveries), (6, 1));
        assert_eq!((p.succeeded, p.other_failed, p.out_of_range), (2, 1, 0));
        assert_eq!(p.newest_attempt_succeeded, Some(false), "the newest attempt (minute 10) failed");
        assert!(p.newly_given_up.is_empty());
    }

    #[test]
    fn an_event_redelivered_max_attempts_times_is_given_up_and_reported_once() {
        let log = vec![
            attempt(1, "lost", 1, 500, false),
            attempt(2, "lost", 6, 500, true),
            attempt(3, "lost", 11, 500, true),
        ];
        let first = plan(&log, at(0), Some(at(10)), SETTINGS);
        assert_eq!(first.newly_given_up, ["lost"]);
        assert!(first.redeliver.is_empty());
        let later = plan(&log, at(0), Some(at(15)), SETTINGS);
        assert!(later.newly_given_up.is_empty());
        assert_eq!(later.given_up_before, 1);
    }

    #[test]
    fn attempts_before_the_range_are_not_read_and_a_stray_redelivery_is_left_alone() {
        // The original (minute 1) is before the lower bound: the event was settled earlier;
        // someone redelivered it by hand at minute 20 and that failed.
        let log = vec![attempt(1, "old", 1, 500, false), attempt(2, "old", 20, 500, true)];
        let p = plan(&log, at(5), None, SETTINGS);
        assert!(p.redeliver.is_empty());
        assert_eq!(p.out_of_range, 1);
    }

    #[test]
    fn the_probe_spreads_over_events() {
        let failed = |guid: &str, minute: i64, redeliveries: u32| Failed {
            guid: guid.into(),
            delivery_id: minute as u64,
            first_attempt: at(minute),
            redeliveries,
            action: None,
        };
        let list = vec![failed("a", 1, 2), failed("b", 2, 1), failed("c", 3, 1)];
        assert_eq!(probe(&list), Some(1), "fewest redeliveries, then oldest");
        assert_eq!(probe(&[]), None);
    }

    #[test]
    fn the_checkpoint_stays_at_the_oldest_unsettled_event_and_never_moves_on_an_incomplete_read() {
        let previous = Checkpoint { since: at(0), last_run: Some(at(0)) };
        let next = next_checkpoint(&previous, at(30), true, [at(12), at(7)]);
        assert_eq!(next, Checkpoint { since: at(7), last_run: Some(at(30)) });
        let quiet = next_checkpoint(&previous, at(30), true, []);
        assert_eq!(quiet.since, at(30) - LOG_LAG, "attempts still in flight are read again");
        let cut = next_checkpoint(&previous, at(30), false, []);
        assert_eq!(cut.since, at(0));
        let round = serde_json::to_string(&next).unwrap();
        assert!(round.contains("\"since\"") && round.contains("\"lastRun\""), "{round}");
        assert_eq!(serde_json::from_str::<Checkpoint>(&round).unwrap(), next);
        assert_eq!(Checkpoint::initial(at(60), SETTINGS).lower_bound(at(60), SETTINGS), at(0));
        assert_eq!(previous.lower_bound(at(120), SETTINGS), at(60), "never past the window");
    }
}
