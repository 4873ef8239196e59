//! The warm pool (beyond upstream): stopped runner instances, booted once and prepared (the
//! runner installed and unpacked, the image's first-boot work done, not registered), that
//! scale-up starts for a job instead of launching a fresh instance.
//!
//! An instance's place in the pool is its `ghr:warm` tag:
//! - `preparing`: launched by the warm-pool function; its boot script installs the runner, tags
//!   it `ready` and stops it (or hibernates it). It has no owner yet: any owner of the
//!   configuration can take it.
//! - `ready`: prepared. Once `stopped`, scale-up may claim it.
//! - `claimed`: scale-up claimed it for a job. The claim itself is the instance's token
//!   parameter written without overwrite: two invocations can never both write it, so they can
//!   never both start the instance. From then on it is an ordinary runner of its owner.
//!
//! Stopped instances cost their EBS volumes, not compute: they count toward
//! `RUNNERS_MAXIMUM_COUNT` only while running (preparing, or started for a job).

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use crate::domain::runner::RunnerInstance;

/// `ghr:warm`: the instance's place in the warm pool (see the module docs).
pub const WARM_TAG: &str = "ghr:warm";
/// `ghr:warm_hibernate`: `true` when the instance hibernates rather than stops once prepared.
pub const HIBERNATE_TAG: &str = "ghr:warm_hibernate";
/// `ghr:warm_claimed_at`: when scale-up claimed the instance (unix seconds).
pub const CLAIMED_AT_TAG: &str = "ghr:warm_claimed_at";

/// `ghr:warm_returned_at`: when scale-down put a runner that came from the pool back into it
/// (unix seconds).
pub const RETURNED_AT_TAG: &str = "ghr:warm_returned_at";

/// The tags an instance sheds when it goes back to the pool: its owner, its runner, its jobs
/// and scale-down's marks. What stays is the launch's (environment, labels, config path).
pub const RETURN_UNTAG: &[&str] = &[
    crate::domain::runner::tags::TYPE,
    crate::domain::runner::tags::OWNER,
    crate::domain::runner::tags::GITHUB_RUNNER_ID,
    crate::domain::runner::tags::LAUNCHED_FOR_JOB,
    crate::domain::runner::tags::DEREGISTERED_AT,
    crate::domain::runner::tags::WITHDRAWN_AT,
    crate::domain::runner::tags::POOL_HOLD_UNTIL,
    crate::domain::runner::tags::ORPHAN,
    crate::domain::scale_down::JOB_STARTED_TAG,
    crate::domain::scale_down::JOB_COMPLETED_TAG,
    crate::domain::scale_down::OFFLINE_SINCE_TAG,
    crate::domain::termination::JOB_RUN_TAG,
    CLAIMED_AT_TAG,
];

/// How long a claimed instance may stay stopped before the warm-pool function decides its
/// claimant died between the claim and the start, and retires it.
pub const CLAIM_START_LIMIT: TimeDelta = TimeDelta::minutes(10);

/// The value of a claim's placeholder token parameter: never read by the instance (it is
/// stopped until the real configuration replaces it), unique per claimant so that a write the
/// SDK retried is recognised as ours.
pub fn claim_placeholder(claimant: &str) -> String {
    format!("ghr-warm-claim:{claimant}")
}

/// `WARM_POOL_CONFIG`: `{"size": 3, "maxAgeHours": 24, "hibernate": false}` (Terraform's
/// `warm_pool`; `{}` or a size of 0 is off).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarmPoolConfig {
    #[serde(default)]
    pub size: usize,
    /// A prepared instance older than this is replaced (its image and packages age).
    #[serde(default = "one_day")]
    pub max_age_hours: u32,
    /// Hibernate rather than stop once prepared (the launch template must allow it).
    #[serde(default)]
    pub hibernate: bool,
}

fn one_day() -> u32 {
    24
}

impl WarmPoolConfig {
    /// `None` when the warm pool is off.
    pub fn parse(json: &str) -> Result<Option<Self>, String> {
        if json.trim().is_empty() {
            return Ok(None);
        }
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("not a valid warm pool config: {e}"))?;
        if !value.is_object() {
            return Err("not a valid warm pool config: not a JSON object".into());
        }
        let config: Self = serde_json::from_value(value).map_err(|e| format!("not a valid warm pool config: {e}"))?;
        if config.max_age_hours == 0 {
            return Err("not a valid warm pool config: maxAgeHours must be at least 1".into());
        }
        Ok((config.size > 0).then_some(config))
    }

    pub fn max_age(&self) -> TimeDelta {
        TimeDelta::hours(i64::from(self.max_age_hours))
    }
}

/// An instance's `ghr:warm` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmState {
    Preparing,
    Ready,
    Claimed,
}

impl WarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            WarmState::Preparing => "preparing",
            WarmState::Ready => "ready",
            WarmState::Claimed => "claimed",
        }
    }

    pub fn of(instance: &RunnerInstance) -> Option<Self> {
        match instance.tag(WARM_TAG)? {
            "preparing" => Some(WarmState::Preparing),
            "ready" => Some(WarmState::Ready),
            "claimed" => Some(WarmState::Claimed),
            _ => None,
        }
    }
}

/// Whether scale-down and the orphan rules must leave the instance alone: it belongs to the
/// warm pool and has no runner by design (preparing, or prepared and waiting).
pub fn is_unclaimed(instance: &RunnerInstance) -> bool {
    matches!(WarmState::of(instance), Some(WarmState::Preparing | WarmState::Ready))
}

/// Whether a stopped instance is a claim about to start (its runner registered, its start
/// seconds away): its offline runner is not a ghost. Past `CLAIM_START_LIMIT` the claim is
/// abandoned and the warm-pool function retires the instance.
pub fn claim_starting(instance: &RunnerInstance, now: DateTime<Utc>) -> bool {
    WarmState::of(instance) == Some(WarmState::Claimed)
        && instance
            .tag(CLAIMED_AT_TAG)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .is_some_and(|t| now - t < CLAIM_START_LIMIT)
}

fn age(instance: &RunnerInstance, now: DateTime<Utc>) -> Option<TimeDelta> {
    instance.launch_time.map(|t| now - t)
}

/// The instances scale-up may claim, in the order to try them: stopped and `ready`, within
/// the maximum age, oldest first (they are the nearest to being replaced anyway).
pub fn claim_order(instances: &[RunnerInstance], now: DateTime<Utc>, max_age: TimeDelta) -> Vec<String> {
    let mut ready: Vec<&RunnerInstance> = instances
        .iter()
        .filter(|i| i.state == "stopped" && WarmState::of(i) == Some(WarmState::Ready))
        .filter(|i| age(i, now).is_some_and(|a| a < max_age))
        .collect();
    ready.sort_by(|a, b| a.launch_time.cmp(&b.launch_time).then_with(|| a.id.cmp(&b.id)));
    ready.into_iter().map(|i| i.id.clone()).collect()
}

/// Prepared instances the pool holds or is about to hold (ready, or preparing), whatever
/// their state: against the size.
pub fn pool_count(pool: &[RunnerInstance]) -> usize {
    pool.iter()
        .filter(|i| !matches!(i.state.as_str(), "terminated" | "shutting-down"))
        .filter(|i| matches!(WarmState::of(i), Some(WarmState::Ready | WarmState::Preparing)))
        .count()
}

/// Of the idle runners scale-down is about to terminate (drained: deregistered, no job started
/// since), the ones that go back to the pool instead: those that came from it (claimed: the
/// instance has the unit that resumes it), younger than `maxAgeHours`, oldest last, as long as
/// the pool has room.
pub fn returns_to_pool(
    drained: &[&RunnerInstance],
    pool: &[RunnerInstance],
    config: &WarmPoolConfig,
    now: DateTime<Utc>,
) -> Vec<String> {
    let room = config.size.saturating_sub(pool_count(pool));
    let mut candidates: Vec<&&RunnerInstance> = drained
        .iter()
        .filter(|i| WarmState::of(i) == Some(WarmState::Claimed) && !i.bypass_removal())
        .filter(|i| age(i, now).is_some_and(|a| a < config.max_age()))
        .collect();
    // The youngest first: they stay in the pool the longest.
    candidates.sort_by(|a, b| b.launch_time.cmp(&a.launch_time).then_with(|| a.id.cmp(&b.id)));
    candidates.into_iter().take(room).map(|i| i.id.clone()).collect()
}

/// Why the warm-pool function terminates a pool instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retirement {
    /// Prepared longer ago than `maxAgeHours`.
    Expired,
    /// Still not prepared a boot time after its launch (or stopped without being prepared).
    PreparationFailed,
    /// Claimed, but still stopped long after: its claimant died before starting it.
    ClaimAbandoned,
    /// Prepared from another image than the one the configuration launches now (a new AMI).
    ImageChanged,
}

impl Retirement {
    /// The metric dimension.
    pub fn as_str(self) -> &'static str {
        match self {
            Retirement::Expired => "expired",
            Retirement::PreparationFailed => "preparation_failed",
            Retirement::ClaimAbandoned => "claim_abandoned",
            Retirement::ImageChanged => "image_changed",
        }
    }
}

/// What one warm-pool run does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmPlan {
    /// Prepared and stopped: scale-up can claim them now.
    pub ready: Vec<String>,
    /// On their way into the pool (preparing, or ready and still stopping).
    pub preparing: Vec<String>,
    pub retire: Vec<(String, Retirement)>,
    /// Instances to launch in prepare mode.
    pub launch: usize,
}

/// What a warm-pool run knows of its environment.
#[derive(Debug, Clone, Copy)]
pub struct PoolContext<'a> {
    /// The environment's running and pending instances (runners and instances preparing
    /// alike): the top-up never takes them past `maximum` (`-1`: no maximum).
    pub running: usize,
    pub maximum: i64,
    pub boot_time: TimeDelta,
    /// The image the configuration launches now, when it could be read: a ready instance of
    /// another image is replaced. Unknown rotates nothing.
    pub current_image: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Plans one run of the warm-pool function. `pool` is every instance of the environment with a
/// `ghr:warm` tag, in any state but terminated.
pub fn plan(pool: &[RunnerInstance], config: &WarmPoolConfig, context: PoolContext<'_>) -> WarmPlan {
    let PoolContext { running, maximum, boot_time, current_image, now } = context;
    let mut plan = WarmPlan::default();
    let stale = |i: &RunnerInstance| match (current_image, i.image_id.as_deref()) {
        (Some(current), Some(image)) => current != image,
        _ => false,
    };
    let claimable = claim_order(pool, now, config.max_age());
    for instance in pool {
        if matches!(instance.state.as_str(), "terminated" | "shutting-down") {
            continue;
        }
        let id = instance.id.clone();
        // Unknown age is young: never retire what cannot be judged.
        let older_than = |limit: TimeDelta| age(instance, now).is_some_and(|a| a >= limit);
        // Since its launch, or its return to the pool by scale-down.
        let since_transition = |i: &RunnerInstance| {
            let returned = i
                .tag(RETURNED_AT_TAG)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .and_then(|s| DateTime::from_timestamp(s, 0));
            match (i.launch_time, returned) {
                (Some(l), Some(r)) => now - l.max(r),
                (l, r) => l.or(r).map_or(TimeDelta::zero(), |t| now - t),
            }
        };
        match WarmState::of(instance) {
            Some(WarmState::Ready) if instance.state == "stopped" && stale(instance) => {
                plan.retire.push((id, Retirement::ImageChanged))
            }
            Some(WarmState::Ready) if claimable.contains(&id) => plan.ready.push(id),
            Some(WarmState::Ready) if older_than(config.max_age()) => plan.retire.push((id, Retirement::Expired)),
            // Tagged ready but never stopped (its stop failed): it runs for nothing.
            Some(WarmState::Ready)
                if matches!(instance.state.as_str(), "pending" | "running")
                    && since_transition(instance) >= boot_time =>
            {
                plan.retire.push((id, Retirement::PreparationFailed))
            }
            // Prepared and still stopping.
            Some(WarmState::Ready) => plan.preparing.push(id),
            Some(WarmState::Preparing) if instance.state == "stopped" || older_than(boot_time) => {
                plan.retire.push((id, Retirement::PreparationFailed))
            }
            Some(WarmState::Preparing) => plan.preparing.push(id),
            Some(WarmState::Claimed) if instance.state == "stopped" => {
                let claimed_at = instance
                    .tag(CLAIMED_AT_TAG)
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .and_then(|s| DateTime::from_timestamp(s, 0));
                if claimed_at.is_some_and(|t| now - t >= CLAIM_START_LIMIT) {
                    plan.retire.push((id, Retirement::ClaimAbandoned));
                }
            }
            // A claimed instance that runs is a runner: scale-down's business.
            Some(WarmState::Claimed) | None => {}
        }
    }
    let wanted = config.size.saturating_sub(plan.ready.len() + plan.preparing.len());
    // The instances retired now stop counting toward the maximum.
    let retiring = plan
        .retire
        .iter()
        .filter(|(id, _)| pool.iter().any(|i| &i.id == id && matches!(i.state.as_str(), "pending" | "running")))
        .count();
    let room = (maximum.max(0) as usize).saturating_sub(running.saturating_sub(retiring));
    plan.launch = if maximum < 0 { wanted } else { wanted.min(room) };
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + minutes * 60, 0).unwrap()
    }

    fn instance(id: &str, state: &str, warm: Option<&str>, launched: Option<i64>) -> RunnerInstance {
        let mut tags = std::collections::BTreeMap::new();
        if let Some(w) = warm {
            tags.insert(WARM_TAG.to_string(), w.to_string());
        }
        RunnerInstance { image_id: None, id: id.into(), launch_time: launched.map(at), state: state.into(), tags }
    }

    fn config(size: usize) -> WarmPoolConfig {
        WarmPoolConfig { size, max_age_hours: 24, hibernate: false }
    }

    fn context(running: usize, maximum: i64, now: DateTime<Utc>) -> PoolContext<'static> {
        PoolContext { running, maximum, boot_time: TimeDelta::minutes(5), current_image: None, now }
    }

    #[test]
    fn parses_terraform_s_config() {
        assert_eq!(WarmPoolConfig::parse("").unwrap(), None);
        assert_eq!(WarmPoolConfig::parse("{}").unwrap(), None);
        assert_eq!(WarmPoolConfig::parse(r#"{"size":0,"maxAgeHours":4}"#).unwrap(), None);
        assert_eq!(
            WarmPoolConfig::parse(r#"{"size":3,"maxAgeHours":4,"hibernate":true}"#).unwrap(),
            Some(WarmPoolConfig { size: 3, max_age_hours: 4, hibernate: true })
        );
        assert_eq!(WarmPoolConfig::parse(r#"{"size":2}"#).unwrap().unwrap().max_age_hours, 24);
        assert!(WarmPoolConfig::parse(r#"{"size":2,"maxAgeHours":0}"#).unwrap_err().contains("maxAgeHours"));
        assert!(WarmPoolConfig::parse(r#"{"sise":2}"#).unwrap_err().contains("sise"));
        assert!(WarmPoolConfig::parse("[]").is_err());
    }

    #[test]
    fn claims_stopped_ready_instances_within_their_age_oldest_first() {
        let now = at(60 * 30);
        let pool = vec![
            instance("i-young", "stopped", Some("ready"), Some(60 * 29)),
            instance("i-old", "stopped", Some("ready"), Some(60 * 10)),
            instance("i-expired", "stopped", Some("ready"), Some(0)),
            instance("i-stopping", "stopping", Some("ready"), Some(60 * 29)),
            instance("i-preparing", "running", Some("preparing"), Some(60 * 30 - 1)),
            instance("i-claimed", "stopped", Some("claimed"), Some(60 * 10)),
            instance("i-unknown-age", "stopped", Some("ready"), None),
        ];
        assert_eq!(claim_order(&pool, now, config(3).max_age()), vec!["i-old", "i-young"]);
    }

    #[test]
    fn plans_the_top_up_and_the_retirements() {
        let now = at(60 * 30);
        let mut claimed = instance("i-abandoned", "stopped", Some("claimed"), Some(60 * 20));
        claimed.tags.insert(CLAIMED_AT_TAG.into(), at(60 * 30 - 11).timestamp().to_string());
        let mut fresh_claim = instance("i-claim-starting", "stopped", Some("claimed"), Some(60 * 20));
        fresh_claim.tags.insert(CLAIMED_AT_TAG.into(), at(60 * 30 - 1).timestamp().to_string());
        let pool = vec![
            instance("i-ready", "stopped", Some("ready"), Some(60 * 29)),
            instance("i-expired", "stopped", Some("ready"), Some(0)),
            instance("i-stopping", "stopping", Some("ready"), Some(60 * 30 - 3)),
            instance("i-preparing", "running", Some("preparing"), Some(60 * 30 - 2)),
            instance("i-stuck", "running", Some("preparing"), Some(60 * 30 - 6)),
            instance("i-stopped-unprepared", "stopped", Some("preparing"), Some(60 * 30 - 2)),
            instance("i-unknown-age", "running", Some("preparing"), None),
            claimed,
            fresh_claim,
            instance("i-runner", "running", Some("claimed"), Some(60 * 29)),
            instance("i-gone", "terminated", Some("preparing"), Some(0)),
        ];
        let plan = plan(&pool, &config(6), context(4, -1, now));
        assert_eq!(plan.ready, vec!["i-ready"]);
        assert_eq!(plan.preparing, vec!["i-stopping", "i-preparing", "i-unknown-age"]);
        assert_eq!(
            plan.retire,
            vec![
                ("i-expired".to_string(), Retirement::Expired),
                ("i-stuck".to_string(), Retirement::PreparationFailed),
                ("i-stopped-unprepared".to_string(), Retirement::PreparationFailed),
                ("i-abandoned".to_string(), Retirement::ClaimAbandoned),
            ]
        );
        assert_eq!(plan.launch, 2, "6 wanted, 1 ready and 3 on their way");
    }

    #[test]
    fn the_top_up_never_passes_the_maximum() {
        let now = at(60);
        let pool = vec![instance("i-ready", "stopped", Some("ready"), Some(59))];
        assert_eq!(plan(&pool, &config(5), context(0, -1, now)).launch, 4);
        assert_eq!(plan(&pool, &config(5), context(7, 10, now)).launch, 3);
        assert_eq!(plan(&pool, &config(5), context(10, 10, now)).launch, 0);
        assert_eq!(plan(&pool, &config(5), context(12, 10, now)).launch, 0);
        assert_eq!(plan(&pool, &config(1), context(0, 10, now)).launch, 0, "full");
        // An instance retired now frees its place.
        let stuck = vec![instance("i-stuck", "running", Some("preparing"), Some(0))];
        assert_eq!(plan(&stuck, &config(5), context(10, 10, now)).launch, 1);
    }

    #[test]
    fn a_new_image_rotates_the_ready_instances() {
        let now = at(60);
        let mut old = instance("i-old-image", "stopped", Some("ready"), Some(50));
        old.image_id = Some("ami-old".into());
        let mut new = instance("i-new-image", "stopped", Some("ready"), Some(50));
        new.image_id = Some("ami-new".into());
        let mut unknown = instance("i-unknown-image", "stopped", Some("ready"), Some(50));
        unknown.image_id = None;
        let mut preparing = instance("i-preparing-old", "running", Some("preparing"), Some(59));
        preparing.image_id = Some("ami-old".into());
        let pool = vec![old, new, unknown, preparing];
        let context = PoolContext { current_image: Some("ami-new"), ..context(0, -1, now) };
        let plan = plan(&pool, &config(4), context);
        assert_eq!(plan.retire, vec![("i-old-image".to_string(), Retirement::ImageChanged)]);
        assert_eq!(plan.ready, vec!["i-new-image", "i-unknown-image"]);
        assert_eq!(plan.launch, 1, "4 wanted: 2 ready, 1 preparing (retired once ready, if still old)");
        // The image unknown: nothing is rotated.
        let unknown = plan_with_unknown_image(&pool, now);
        assert!(unknown.retire.is_empty());
    }

    fn plan_with_unknown_image(pool: &[RunnerInstance], now: DateTime<Utc>) -> WarmPlan {
        plan(pool, &config(4), context(0, -1, now))
    }

    #[test]
    fn only_unclaimed_pool_instances_are_left_alone_by_scale_down() {
        assert!(is_unclaimed(&instance("a", "running", Some("preparing"), None)));
        assert!(is_unclaimed(&instance("b", "stopped", Some("ready"), None)));
        assert!(!is_unclaimed(&instance("c", "running", Some("claimed"), None)));
        assert!(!is_unclaimed(&instance("d", "running", None, None)));
        assert!(!is_unclaimed(&instance("e", "running", Some("bogus"), None)));
    }

    #[test]
    fn claimed_runners_go_back_while_the_pool_has_room_and_they_are_young() {
        let now = at(60 * 30);
        let pool = vec![
            instance("i-ready", "stopped", Some("ready"), Some(60 * 29)),
            instance("i-preparing", "running", Some("preparing"), Some(60 * 30 - 1)),
            instance("i-gone", "terminated", Some("ready"), Some(0)),
        ];
        let young = instance("i-young", "running", Some("claimed"), Some(60 * 29));
        let younger = instance("i-younger", "running", Some("claimed"), Some(60 * 29 + 30));
        let old = instance("i-old", "running", Some("claimed"), Some(0));
        let fresh = instance("i-fresh-runner", "running", None, Some(60 * 29));
        let mut bypass = instance("i-bypass", "running", Some("claimed"), Some(60 * 29));
        bypass.tags.insert("ghr:bypass-removal".into(), "true".into());
        let drained = [&young, &younger, &old, &fresh, &bypass];
        assert_eq!(pool_count(&pool), 2);
        assert_eq!(returns_to_pool(&drained, &pool, &config(3), now), vec!["i-younger"], "room for one");
        assert_eq!(returns_to_pool(&drained, &pool, &config(9), now), vec!["i-younger", "i-young"]);
        assert!(returns_to_pool(&drained, &pool, &config(2), now).is_empty(), "full");
    }

    #[test]
    fn a_ready_instance_that_never_stopped_is_retired() {
        let now = at(60 * 30);
        let mut returned = instance("i-returned", "running", Some("ready"), Some(60 * 29));
        returned.tags.insert(RETURNED_AT_TAG.into(), at(60 * 30 - 1).timestamp().to_string());
        let mut stuck = instance("i-stuck", "running", Some("ready"), Some(60 * 29));
        stuck.tags.insert(RETURNED_AT_TAG.into(), at(60 * 30 - 6).timestamp().to_string());
        let plan = plan(&[returned, stuck], &config(3), context(0, -1, now));
        assert_eq!(plan.preparing, vec!["i-returned"], "still stopping");
        assert_eq!(plan.retire, vec![("i-stuck".to_string(), Retirement::PreparationFailed)]);
    }

    #[test]
    fn a_fresh_claim_is_starting_an_old_one_is_not() {
        let now = at(60);
        let mut claim = instance("i-claimed", "stopped", Some("claimed"), Some(0));
        claim.tags.insert(CLAIMED_AT_TAG.into(), at(59).timestamp().to_string());
        assert!(claim_starting(&claim, now));
        claim.tags.insert(CLAIMED_AT_TAG.into(), at(45).timestamp().to_string());
        assert!(!claim_starting(&claim, now), "abandoned");
        assert!(!claim_starting(&instance("i-ready", "stopped", Some("ready"), Some(0)), now));
    }

    #[test]
    fn claim_placeholders_name_their_claimant() {
        assert_eq!(claim_placeholder("0a/m1"), "ghr-warm-claim:0a/m1");
    }
}
