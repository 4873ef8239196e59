//! Scale-down rules: which runner instances to keep, mark as orphans, or remove.
//!
//! Pure functions over what EC2 and GitHub reported; `scale-down` does the I/O. The safety
//! rules are the reason this module exists:
//! - a runner GitHub reports busy is kept, and so is an instance whose job-started marker says a
//!   job is in flight (the `busy` flag lags a job's start by up to a minute);
//! - an instance whose state could not be read is never planned at all (the caller stops
//!   removals for an owner on any error);
//! - ghost runners are only those whose instance is confirmed gone.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::cron::CronExpression;
use super::runner::{GithubRunner, RunnerInstance, runner_name, tags};

/// Tag written by the runner's job-started hook on its own instance: the job's start, in unix
/// milliseconds (hooks before 0.2 wrote seconds; both are read).
pub const JOB_STARTED_TAG: &str = "ghr:job_started";
/// Tag written by the runner's job-completed hook: the `ghr:job_started` stamp of the job it
/// closes (or the time, when the start was not recorded). A job that starts and ends within the
/// same second or millisecond therefore still reads as done: the stamps cannot tie by accident.
pub const JOB_COMPLETED_TAG: &str = "ghr:job_completed";
/// Tag scale-down writes on an instance whose runner it first saw offline while a job was
/// marked in flight (unix seconds); removed when the runner is seen online again.
pub const OFFLINE_SINCE_TAG: &str = "ghr:offline_since";
/// GitHub stops a self-hosted job after 5 days; an older started marker is stale.
pub const MAX_JOB_DURATION: Duration = Duration::days(5);

/// A marker's value in unix milliseconds; values below 10^11 are seconds (older hooks).
fn stamp_millis(value: &str) -> Option<i64> {
    let v = value.trim().parse::<i64>().ok()?;
    Some(if v < 100_000_000_000 { v.saturating_mul(1000) } else { v })
}

/// Whether the instance's markers say a job is running: a start later than the last completion
/// (which names the start it closes), and not longer ago than any job can run.
pub fn job_in_flight(instance: &RunnerInstance, now: DateTime<Utc>) -> bool {
    let stamp = |key: &str| instance.tag(key).and_then(stamp_millis);
    match stamp(JOB_STARTED_TAG) {
        None => false,
        Some(started) => {
            let completed = stamp(JOB_COMPLETED_TAG).unwrap_or(i64::MIN);
            started > completed && now.timestamp_millis() - started < MAX_JOB_DURATION.num_milliseconds()
        }
    }
}

/// When scale-down first saw the instance's runner offline with a job in flight.
pub fn offline_since(instance: &RunnerInstance) -> Option<DateTime<Utc>> {
    instance
        .tag(OFFLINE_SINCE_TAG)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(|s| DateTime::from_timestamp(s, 0))
}

/// Which idle runners go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionStrategy {
    /// Keep the newest idle runners, remove the oldest (upstream default).
    OldestFirst,
    NewestFirst,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdleConfigEntry {
    cron: String,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    idle_count: usize,
    #[serde(default)]
    eviction_strategy: Option<String>,
}

/// `SCALE_DOWN_CONFIG`: when to keep how many idle runners.
#[derive(Debug, Clone)]
pub struct IdleSchedule {
    entries: Vec<(CronExpression, chrono_tz::Tz, usize, EvictionStrategy)>,
}

impl IdleSchedule {
    /// Parses the upstream JSON list `[{cron, timeZone, idleCount, evictionStrategy}]`.
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: Vec<IdleConfigEntry> =
            serde_json::from_str(json).map_err(|e| format!("not a valid idle config: {e}"))?;
        let mut entries = Vec::new();
        for e in raw {
            let cron: CronExpression = e.cron.parse()?;
            let tz: chrono_tz::Tz = e
                .time_zone
                .as_deref()
                .unwrap_or("UTC")
                .parse()
                .map_err(|_| format!("`{}` is not a time zone", e.time_zone.unwrap_or_default()))?;
            let strategy = match e.eviction_strategy.as_deref().unwrap_or("oldest_first") {
                "oldest_first" => EvictionStrategy::OldestFirst,
                "newest_first" => EvictionStrategy::NewestFirst,
                other => return Err(format!("`{other}` is not oldest_first or newest_first")),
            };
            entries.push((cron, tz, e.idle_count, strategy));
        }
        Ok(Self { entries })
    }

    /// The idle count and eviction order now: the first active entry, else none kept.
    pub fn at(&self, now: DateTime<Utc>) -> (usize, EvictionStrategy) {
        self.entries
            .iter()
            .find(|(cron, tz, _, _)| cron.active_at(now, *tz))
            .map(|(_, _, count, strategy)| (*count, *strategy))
            .unwrap_or((0, EvictionStrategy::OldestFirst))
    }
}

/// Timing rules.
#[derive(Debug, Clone)]
pub struct Policy {
    pub minimum_running_time: Duration,
    pub boot_time: Duration,
    /// How long a runner may be listed offline while a job is marked in flight (or GitHub
    /// still calls it busy) before it counts as crashed.
    pub offline_timeout: Duration,
    /// `RUNNER_NAME_PREFIX`, for instances without a `ghr:runner_name_prefix` tag.
    pub name_prefix: String,
}

/// What to do with one live runner instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `ghr:bypass-removal=true`.
    Bypass,
    /// Not registered yet, still within the boot time.
    Booting,
    /// Not registered after the boot time: tag `ghr:orphan`, terminate on a later run.
    MarkOrphan,
    /// Within the minimum running time.
    TooYoung,
    /// GitHub reports the runner busy.
    Busy,
    /// The job-started marker says a job is running (GitHub's flag may lag).
    JobInFlight,
    /// GitHub lists the runner offline while it is busy or a job is marked in flight: kept for
    /// now (a network blip), tagged `ghr:offline_since` when first seen.
    OfflineBusy { first_seen: bool },
    /// Offline for longer than the offline timeout with a job marked: the runner crashed
    /// (its hook never ran). Deregister and terminate; no job can still finish there.
    Crashed { runner_id: u64 },
    /// Idle, kept by the idle config.
    IdleKept,
    /// Idle, kept because the pool wants it (`ghr:pool_hold_until`); takes no idle slot.
    PoolKept,
    /// Idle: deregister the runner, then terminate the instance.
    Remove { runner_id: u64 },
}

/// The runner name of an instance: its `ghr:runner_name_prefix` tag (set by the launch
/// template), else the configured prefix, followed by the instance id.
pub fn expected_runner_name(instance: &RunnerInstance, default_prefix: &str) -> String {
    runner_name(instance.tag(tags::RUNNER_NAME_PREFIX).unwrap_or(default_prefix), &instance.id)
}

fn exceeded(launch: Option<DateTime<Utc>>, period: Duration, now: DateTime<Utc>) -> bool {
    // A missing launch time never counts as exceeded (upstream).
    launch.is_some_and(|t| t + period < now)
}

/// Decides for the live, non-orphan instances of one owner. `idle_left` is the run's idle count,
/// shared across owners as upstream does; only idle runners use it.
pub fn plan_owner(
    instances: &[RunnerInstance],
    runners: &[GithubRunner],
    now: DateTime<Utc>,
    policy: &Policy,
    strategy: EvictionStrategy,
    idle_left: &mut usize,
) -> Vec<(String, Decision)> {
    let mut sorted: Vec<&RunnerInstance> = instances.iter().collect();
    // oldest_first keeps the newest: visit the newest first so they take the idle slots.
    sorted.sort_by(|a, b| match (a.launch_time, b.launch_time) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    if strategy == EvictionStrategy::NewestFirst {
        let (timed, untimed): (Vec<_>, Vec<_>) = sorted.into_iter().partition(|i| i.launch_time.is_some());
        sorted = timed.into_iter().rev().chain(untimed).collect();
    }
    sorted
        .into_iter()
        .map(|instance| {
            let decision = if instance.bypass_removal() {
                Decision::Bypass
            } else {
                let name = expected_runner_name(instance, &policy.name_prefix);
                match runners.iter().find(|r| r.name == name) {
                    None if exceeded(instance.started_at(), policy.boot_time, now) => Decision::MarkOrphan,
                    None => Decision::Booting,
                    Some(_) if !exceeded(instance.started_at(), policy.minimum_running_time, now) => Decision::TooYoung,
                    Some(r) if r.status == "offline" && (r.busy || job_in_flight(instance, now)) => {
                        match offline_since(instance) {
                            None => Decision::OfflineBusy { first_seen: true },
                            Some(since) if since + policy.offline_timeout < now => {
                                Decision::Crashed { runner_id: r.id }
                            }
                            Some(_) => Decision::OfflineBusy { first_seen: false },
                        }
                    }
                    Some(r) if r.busy => Decision::Busy,
                    Some(_) if job_in_flight(instance, now) => Decision::JobInFlight,
                    // The pool's runners are the pool's to keep: the idle config and the pool
                    // do not fight over them (a withdrawn runner is on its way out already).
                    Some(_) if instance.pool_held(now) && instance.withdrawn_at().is_none() => Decision::PoolKept,
                    // A withdrawn runner may have lost its custom labels: it takes no idle slot.
                    Some(_) if *idle_left > 0 && instance.withdrawn_at().is_none() => {
                        *idle_left -= 1;
                        Decision::IdleKept
                    }
                    Some(r) => Decision::Remove { runner_id: r.id },
                }
            };
            (instance.id.clone(), decision)
        })
        .collect()
}

/// How an idle runner (a `Decision::Remove`) leaves GitHub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalStep {
    /// Remove its custom labels first, then deregister it once `wait` has passed, so that a job
    /// GitHub handed it just before has started (GitHub then refuses the deletion) instead of
    /// losing its runner between assignment and start.
    Withdraw,
    /// Deregister now: withdrawn at least `wait` ago, or it has no custom label to remove (then
    /// a job that asks only for read-only labels can still be handed to it in the moment
    /// before the deletion: the bound of this design).
    Deregister,
}

/// The removal step for an idle runner on `instance` whose GitHub runner has `custom_labels`.
pub fn removal_step(
    instance: &RunnerInstance,
    custom_labels: &[String],
    now: DateTime<Utc>,
    wait: Duration,
) -> RemovalStep {
    if custom_labels.is_empty() {
        // Nothing GitHub matches on is left to remove (withdrawn by an earlier run whose
        // deregistration was deferred or refused, or never labelled): a new withdrawal would
        // change nothing. A runner withdrawn less than `wait` ago waits for the next run.
        match instance.withdrawn_at() {
            Some(at) if at + wait > now => RemovalStep::Withdraw,
            _ => RemovalStep::Deregister,
        }
    } else {
        RemovalStep::Withdraw
    }
}

/// Instances tagged `ghr:offline_since` whose runner GitHub lists online again: the tag goes.
pub fn offline_marks_to_clear(instances: &[RunnerInstance], runners: &[GithubRunner], prefix: &str) -> Vec<String> {
    instances
        .iter()
        .filter(|i| i.tag(OFFLINE_SINCE_TAG).is_some())
        .filter(|i| {
            let name = expected_runner_name(i, prefix);
            runners.iter().any(|r| r.name == name && r.status != "offline")
        })
        .map(|i| i.id.clone())
        .collect()
}

/// What to do with a draining instance (its runner deregistered on an earlier run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainDecision {
    Bypass,
    /// A job started on it (one GitHub handed out just before the deregistration): kept until
    /// the job completes.
    JobInFlight,
    /// Not long enough since the deregistration for a job's start marker to have appeared.
    Wait,
    Terminate,
}

/// Two-phase removal, the second phase: an instance deregistered at least `hold` ago whose
/// markers show no job is terminated. `hold` covers a job handed to the runner just before its
/// deregistration: it starts within seconds, and its job-started hook runs after "Set up job"
/// (0-120 s later), so by then its marker is there.
pub fn drain_decision(instance: &RunnerInstance, now: DateTime<Utc>, hold: Duration) -> DrainDecision {
    if instance.bypass_removal() {
        DrainDecision::Bypass
    } else if job_in_flight(instance, now) {
        DrainDecision::JobInFlight
    } else {
        match instance.deregistered_at() {
            Some(at) if at + hold > now => DrainDecision::Wait,
            _ => DrainDecision::Terminate,
        }
    }
}

/// What to do with an instance tagged `ghr:orphan`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanDecision {
    Bypass,
    JobInFlight,
    /// Never registered: terminate.
    Terminate,
    /// Registered as this runner: ask GitHub once more before terminating.
    LastChance {
        runner_id: u64,
    },
}

pub fn orphan_decision(instance: &RunnerInstance, now: DateTime<Utc>) -> OrphanDecision {
    if instance.bypass_removal() {
        OrphanDecision::Bypass
    } else if job_in_flight(instance, now) {
        OrphanDecision::JobInFlight
    } else if let Some(runner_id) = instance.github_runner_id() {
        OrphanDecision::LastChance { runner_id }
    } else {
        OrphanDecision::Terminate
    }
}

/// The last-chance check (upstream): the orphan is confirmed when GitHub does not know the
/// runner, or reports it offline and busy; otherwise it is a live runner and loses its tag.
pub fn orphan_confirmed(runner: Option<&GithubRunner>) -> bool {
    match runner {
        None => true,
        Some(r) => r.status == "offline" && r.busy,
    }
}

/// Offline GitHub runners named like this deployment's runners (`<prefix>i-<hex>`) whose
/// instance is not among `live`: ghost candidates, as (runner id, instance id). They are ghosts
/// only once EC2 confirms the instance is gone (other deployments may share the owner).
pub fn ghost_candidates(runners: &[GithubRunner], live: &HashSet<String>, prefix: &str) -> Vec<(u64, String)> {
    runners
        .iter()
        .filter(|r| r.status == "offline" && !r.busy)
        .filter_map(|r| {
            let instance = r.name.strip_prefix(prefix)?;
            let hex = instance.strip_prefix("i-")?;
            let valid = (8..=17).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit());
            (valid && !live.contains(instance)).then(|| (r.id, instance.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn instance(id: &str, launched: i64, extra: &[(&str, &str)]) -> RunnerInstance {
        let mut tags: std::collections::BTreeMap<String, String> =
            [("ghr:Type", "Org"), ("ghr:Owner", "acme")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (k, v) in extra {
            tags.insert(k.to_string(), v.to_string());
        }
        RunnerInstance { image_id: None, id: id.into(), launch_time: Some(at(launched)), state: "running".into(), tags }
    }

    fn runner(id: u64, name: &str, busy: bool) -> GithubRunner {
        GithubRunner { id, name: name.into(), status: "online".into(), busy, labels: vec![], custom_labels: vec![] }
    }

    fn policy() -> Policy {
        Policy {
            minimum_running_time: Duration::minutes(5),
            boot_time: Duration::minutes(5),
            offline_timeout: Duration::minutes(15),
            name_prefix: "ci-".into(),
        }
    }

    #[test]
    fn decisions() {
        let now = at(3600);
        let instances = vec![
            instance("i-bypass", 0, &[("ghr:bypass-removal", "true")]),
            instance("i-booting", 3500, &[]),
            instance("i-orphan", 0, &[]),
            instance("i-young", 3500, &[]),
            instance("i-busy", 0, &[]),
            instance("i-marker", 0, &[(JOB_STARTED_TAG, &at(3000).timestamp().to_string())]),
            instance("i-idle", 0, &[]),
            instance("i-tagged-prefix", 0, &[("ghr:runner_name_prefix", "other-")]),
        ];
        let runners = vec![
            runner(1, "ci-i-young", false),
            runner(2, "ci-i-busy", true),
            runner(3, "ci-i-marker", false),
            runner(4, "ci-i-idle", false),
            runner(5, "other-i-tagged-prefix", false),
            runner(6, "i-orphan", false), // not this deployment's name for it
        ];
        let mut idle = 0;
        let plan: std::collections::BTreeMap<String, Decision> =
            plan_owner(&instances, &runners, now, &policy(), EvictionStrategy::OldestFirst, &mut idle)
                .into_iter()
                .collect();
        assert_eq!(plan["i-bypass"], Decision::Bypass);
        assert_eq!(plan["i-booting"], Decision::Booting);
        assert_eq!(plan["i-orphan"], Decision::MarkOrphan);
        assert_eq!(plan["i-young"], Decision::TooYoung);
        assert_eq!(plan["i-busy"], Decision::Busy);
        assert_eq!(plan["i-marker"], Decision::JobInFlight);
        assert_eq!(plan["i-idle"], Decision::Remove { runner_id: 4 });
        assert_eq!(plan["i-tagged-prefix"], Decision::Remove { runner_id: 5 });
    }

    #[test]
    fn the_pools_runners_are_kept_while_it_holds_them_and_take_no_idle_slot() {
        let now = at(3600);
        let held = (now.timestamp() + 60).to_string();
        let expired = (now.timestamp() - 1).to_string();
        let instances = vec![
            instance("i-held", 100, &[("ghr:pool_hold_until", held.as_str())]),
            instance("i-expired", 200, &[("ghr:pool_hold_until", expired.as_str())]),
            instance("i-plain", 300, &[]),
            instance("i-held-withdrawn", 50, &[("ghr:pool_hold_until", held.as_str()), ("ghr:withdrawn_at", "1")]),
        ];
        let runners = vec![
            runner(1, "ci-i-held", false),
            runner(2, "ci-i-expired", false),
            runner(3, "ci-i-plain", false),
            runner(4, "ci-i-held-withdrawn", false),
        ];
        let mut idle = 1;
        let plan: std::collections::BTreeMap<_, _> =
            plan_owner(&instances, &runners, now, &policy(), EvictionStrategy::OldestFirst, &mut idle)
                .into_iter()
                .collect();
        assert_eq!(plan["i-held"], Decision::PoolKept);
        assert_eq!(plan["i-plain"], Decision::IdleKept, "the idle slot goes to the newest non-pool runner");
        assert_eq!(plan["i-expired"], Decision::Remove { runner_id: 2 });
        assert_eq!(plan["i-held-withdrawn"], Decision::Remove { runner_id: 4 });
        // A busy pool runner is busy.
        let busy = vec![runner(1, "ci-i-held", true)];
        let mut idle = 0;
        let plan = plan_owner(&instances[..1], &busy, now, &policy(), EvictionStrategy::OldestFirst, &mut idle);
        assert_eq!(plan[0].1, Decision::Busy);
    }

    #[test]
    fn idle_slots_go_by_eviction_strategy_and_are_shared() {
        let now = at(3600);
        let instances = vec![instance("i-a", 100, &[]), instance("i-b", 200, &[]), instance("i-c", 300, &[])];
        let runners = vec![runner(1, "ci-i-a", false), runner(2, "ci-i-b", false), runner(3, "ci-i-c", false)];
        let mut idle = 2;
        let plan: std::collections::BTreeMap<_, _> =
            plan_owner(&instances, &runners, now, &policy(), EvictionStrategy::OldestFirst, &mut idle)
                .into_iter()
                .collect();
        assert_eq!(idle, 0);
        assert_eq!(
            (&plan["i-c"], &plan["i-b"], &plan["i-a"]),
            (&Decision::IdleKept, &Decision::IdleKept, &Decision::Remove { runner_id: 1 })
        );
        let mut idle = 1;
        let plan: std::collections::BTreeMap<_, _> =
            plan_owner(&instances, &runners, now, &policy(), EvictionStrategy::NewestFirst, &mut idle)
                .into_iter()
                .collect();
        assert_eq!(plan["i-a"], Decision::IdleKept, "newest_first keeps the oldest");
        assert_eq!(plan["i-c"], Decision::Remove { runner_id: 3 });
        // A busy runner does not use an idle slot.
        let busy = vec![runner(1, "ci-i-a", true), runner(2, "ci-i-b", false), runner(3, "ci-i-c", false)];
        let mut idle = 1;
        let plan: std::collections::BTreeMap<_, _> =
            plan_owner(&instances, &busy, now, &policy(), EvictionStrategy::NewestFirst, &mut idle)
                .into_iter()
                .collect();
        assert_eq!((&plan["i-a"], &plan["i-b"]), (&Decision::Busy, &Decision::IdleKept));
    }

    #[test]
    fn markers() {
        let now = at(10_000);
        let i = |started: Option<i64>, completed: Option<i64>| {
            let mut t = vec![];
            let s = started.map(|v| at(v).timestamp().to_string());
            let c = completed.map(|v| at(v).timestamp().to_string());
            if let Some(s) = &s {
                t.push((JOB_STARTED_TAG, s.as_str()));
            }
            if let Some(c) = &c {
                t.push((JOB_COMPLETED_TAG, c.as_str()));
            }
            instance("i-x", 0, &t)
        };
        assert!(!job_in_flight(&i(None, None), now));
        assert!(job_in_flight(&i(Some(9000), None), now));
        assert!(job_in_flight(&i(Some(9000), Some(8000)), now), "a new job after the last one");
        assert!(!job_in_flight(&i(Some(8000), Some(9000)), now));
        let stale = DateTime::from_timestamp(at(0).timestamp() + MAX_JOB_DURATION.num_seconds() + 1, 0).unwrap();
        assert!(!job_in_flight(&i(Some(0), None), stale), "older than any job can run");
        // The completed marker names the start it closes: a job done within its second is done.
        assert!(!job_in_flight(&i(Some(9000), Some(9000)), now), "equal stamps: that job completed");
        // Milliseconds (current hooks) and seconds (older hooks) compare on one scale.
        let ms = |v: i64| (at(v).timestamp_millis() + 250).to_string();
        let mixed =
            instance("i-x", 0, &[(JOB_STARTED_TAG, &ms(9000)), (JOB_COMPLETED_TAG, &at(9000).timestamp().to_string())]);
        assert!(job_in_flight(&mixed, now), "started 250 ms after a completion in the same second");
        let done = instance("i-x", 0, &[(JOB_STARTED_TAG, &ms(9000)), (JOB_COMPLETED_TAG, &ms(9000))]);
        assert!(!job_in_flight(&done, now));
    }

    #[test]
    fn removal_steps() {
        let now = at(1_000);
        let wait = Duration::seconds(10);
        let gpu = vec!["gpu".to_string()];
        let plain = instance("i-a", 0, &[]);
        assert_eq!(removal_step(&plain, &gpu, now, wait), RemovalStep::Withdraw);
        assert_eq!(removal_step(&plain, &[], now, wait), RemovalStep::Deregister, "nothing to withdraw");
        let recent = at(995).timestamp().to_string();
        let withdrawn_recently = instance("i-b", 0, &[(tags::WITHDRAWN_AT, &recent)]);
        assert_eq!(removal_step(&withdrawn_recently, &[], now, wait), RemovalStep::Withdraw, "waits again");
        let long_ago = at(900).timestamp().to_string();
        let withdrawn = instance("i-c", 0, &[(tags::WITHDRAWN_AT, &long_ago)]);
        assert_eq!(removal_step(&withdrawn, &[], now, wait), RemovalStep::Deregister);
        assert_eq!(removal_step(&withdrawn, &gpu, now, wait), RemovalStep::Withdraw, "labelled again: withdrawn again");
        // A withdrawn runner takes no idle slot.
        let runners = vec![runner(1, "i-c", false)];
        let policy = Policy { name_prefix: String::new(), ..policy() };
        let mut idle_left = 1;
        let plan = plan_owner(
            std::slice::from_ref(&withdrawn),
            &runners,
            now,
            &policy,
            EvictionStrategy::OldestFirst,
            &mut idle_left,
        );
        assert_eq!(plan, vec![("i-c".to_string(), Decision::Remove { runner_id: 1 })]);
        assert_eq!(idle_left, 1);
    }

    #[test]
    fn a_runner_offline_with_a_job_marked_is_crashed_after_the_offline_timeout() {
        let now = at(10_000);
        let started = at(9_000).timestamp_millis().to_string();
        let offline = |id: u64, name: &str, busy: bool| GithubRunner {
            id,
            name: name.into(),
            status: "offline".into(),
            busy,
            labels: vec![],
            custom_labels: vec![],
        };
        let since = |s: i64| at(s).timestamp().to_string();
        let instances = vec![
            instance("i-new", 0, &[(JOB_STARTED_TAG, &started)]),
            instance("i-recent", 0, &[(JOB_STARTED_TAG, &started), (OFFLINE_SINCE_TAG, &since(9_900))]),
            instance("i-dead", 0, &[(JOB_STARTED_TAG, &started), (OFFLINE_SINCE_TAG, &since(9_000))]),
            instance("i-busyflag", 0, &[(OFFLINE_SINCE_TAG, &since(9_000))]),
            instance("i-idle", 0, &[]),
            instance("i-back", 0, &[(OFFLINE_SINCE_TAG, &since(9_000))]),
        ];
        let runners = vec![
            offline(1, "ci-i-new", false),
            offline(2, "ci-i-recent", false),
            offline(3, "ci-i-dead", false),
            offline(4, "ci-i-busyflag", true),
            offline(5, "ci-i-idle", false),
            runner(6, "ci-i-back", false),
        ];
        let mut idle = 0;
        let plan: std::collections::BTreeMap<String, Decision> =
            plan_owner(&instances, &runners, now, &policy(), EvictionStrategy::OldestFirst, &mut idle)
                .into_iter()
                .collect();
        assert_eq!(plan["i-new"], Decision::OfflineBusy { first_seen: true });
        assert_eq!(plan["i-recent"], Decision::OfflineBusy { first_seen: false });
        assert_eq!(plan["i-dead"], Decision::Crashed { runner_id: 3 });
        assert_eq!(plan["i-busyflag"], Decision::Crashed { runner_id: 4 });
        assert_eq!(plan["i-idle"], Decision::Remove { runner_id: 5 }, "offline and idle: removed as before");
        assert_eq!(plan["i-back"], Decision::Remove { runner_id: 6 });
        assert_eq!(offline_marks_to_clear(&instances, &runners, "ci-"), vec!["i-back"]);
    }

    #[test]
    fn draining_instances_wait_for_late_markers_then_go() {
        let now = at(1_000);
        let hold = Duration::seconds(180);
        let drained = |deregistered: i64, extra: &[(&str, &str)]| {
            let mut tags = vec![(super::tags::DEREGISTERED_AT, at(deregistered).timestamp().to_string())];
            tags.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
            instance("i-d", 0, &tags)
        };
        assert_eq!(drain_decision(&drained(900, &[]), now, hold), DrainDecision::Wait);
        assert_eq!(drain_decision(&drained(800, &[]), now, hold), DrainDecision::Terminate);
        let started = at(950).timestamp_millis().to_string();
        assert_eq!(
            drain_decision(&drained(800, &[(JOB_STARTED_TAG, &started)]), now, hold),
            DrainDecision::JobInFlight,
            "a job handed out just before the deregistration keeps its instance"
        );
        assert_eq!(
            drain_decision(&drained(800, &[(JOB_STARTED_TAG, &started), (JOB_COMPLETED_TAG, &started)]), now, hold),
            DrainDecision::Terminate
        );
        assert_eq!(drain_decision(&drained(800, &[("ghr:bypass-removal", "true")]), now, hold), DrainDecision::Bypass);
    }

    #[test]
    fn orphans_and_ghosts() {
        let now = at(100);
        assert_eq!(
            orphan_decision(&instance("i-1", 0, &[("ghr:bypass-removal", "true")]), now),
            OrphanDecision::Bypass
        );
        assert_eq!(orphan_decision(&instance("i-1", 0, &[]), now), OrphanDecision::Terminate);
        assert_eq!(
            orphan_decision(&instance("i-1", 0, &[("ghr:github_runner_id", "9")]), now),
            OrphanDecision::LastChance { runner_id: 9 }
        );
        assert_eq!(
            orphan_decision(&instance("i-1", 0, &[(JOB_STARTED_TAG, &at(50).timestamp().to_string())]), now),
            OrphanDecision::JobInFlight
        );
        assert!(orphan_confirmed(None));
        assert!(orphan_confirmed(Some(&GithubRunner { status: "offline".into(), busy: true, ..runner(1, "x", true) })));
        assert!(!orphan_confirmed(Some(&runner(1, "x", false))));
        assert!(!orphan_confirmed(Some(&GithubRunner { status: "offline".into(), ..runner(1, "x", false) })));

        let offline = |id, name: &str| GithubRunner {
            id,
            name: name.into(),
            status: "offline".into(),
            busy: false,
            labels: vec![],
            custom_labels: vec![],
        };
        let runners = vec![
            offline(1, "ci-i-0123456789abcdef0"),
            offline(2, "ci-i-0aaaaaaaaaaaaaaaa"),
            runner(3, "ci-i-0bbbbbbbbbbbbbbbb", false),
            offline(4, "laptop"),
            offline(5, "other-i-0cccccccccccccccc"),
        ];
        let live: HashSet<String> = ["i-0aaaaaaaaaaaaaaaa".to_string()].into();
        assert_eq!(ghost_candidates(&runners, &live, "ci-"), vec![(1, "i-0123456789abcdef0".to_string())]);
    }

    #[test]
    fn idle_schedule() {
        let s = IdleSchedule::parse(r#"[{"cron":"* * 9-17 * * 1-5","timeZone":"Europe/Amsterdam","idleCount":2},{"cron":"* * * * * *","timeZone":"UTC","idleCount":1,"evictionStrategy":"newest_first"}]"#).unwrap();
        let friday_ten = DateTime::parse_from_rfc3339("2026-11-27T09:00:00Z").unwrap().with_timezone(&Utc);
        let saturday = DateTime::parse_from_rfc3339("2026-11-28T09:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(s.at(friday_ten), (2, EvictionStrategy::OldestFirst), "first active entry wins");
        assert_eq!(s.at(saturday), (1, EvictionStrategy::NewestFirst));
        assert_eq!(IdleSchedule::parse("[]").unwrap().at(saturday), (0, EvictionStrategy::OldestFirst));
        for bad in [
            r#"[{"cron":"x","idleCount":1}]"#,
            r#"[{"cron":"* * * * * *","timeZone":"Mars/Olympus"}]"#,
            r#"[{"cron":"* * * * * *","evictionStrategy":"random"}]"#,
            "{}",
        ] {
            assert!(IdleSchedule::parse(bad).is_err(), "{bad}");
        }
    }
}
