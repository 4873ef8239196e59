//! The scale-down function: remove idle, orphaned and ghost runners, never a busy one.
//!
//! - **Trigger**: EventBridge schedule (default every 5 minutes); the event is ignored.
//! - **Per run**: lists the environment's live runner instances once, then per owner: one
//!   paginated list of the owner's GitHub runners, then the decisions of
//!   `common::domain::scale_down::plan_owner`. Idle runners past their minimum running time and
//!   beyond the idle config's count are deregistered; only when GitHub answered 204 (or 404) is
//!   the instance terminated. Instances whose runner never registered within the boot time are
//!   tagged `ghr:orphan` and terminated on a later run after a last-chance check. Offline runners
//!   whose instance EC2 shows terminated are deregistered (ghosts), and so are those whose
//!   instance EC2 no longer knows once still offline a boot time later (owners are visited
//!   again while they may have ghosts, even with no instance left). A runner offline with a job
//!   marked for longer than `RUNNER_OFFLINE_TIMEOUT_IN_MINUTES` crashed: it is deregistered and
//!   its instance terminated.
//! - **A busy runner is never killed**: a runner GitHub reports busy is kept; so is one whose
//!   instance carries a job-started marker later than its job-completed marker (written by the
//!   runner's hooks, because GitHub's `busy` flag lags by up to a minute); a DELETE answered 422
//!   keeps it. Removal has two phases: a run deregisters an idle runner and tags its instance
//!   `ghr:deregistered_at`; a later run, at least `RUNNER_JOB_START_GRACE_SECONDS` (the hold,
//!   default 180) after, reads its markers again and terminates it only when no job started
//!   on it, so a job GitHub handed out just before the deregistration (upstream #5085) is never
//!   killed, however long its "Set up job" delays the hook. See ARCHITECTURE.md.
//! - **No job lost to a removal**: an idle runner with custom labels is first withdrawn (its
//!   custom labels removed: GitHub hands it no new job that asks for one; tagged
//!   `ghr:withdrawn_at`) and deregistered `RUNNER_WITHDRAWAL_WAIT_SECONDS` later, after every
//!   owner's pass, when a job handed out just before has started and GitHub refuses the
//!   deletion (422) instead of the job losing its runner.
//! - **Time budget**: deregistrations are paced to GitHub's write limit (about three a second
//!   per App), so a run starts one only while it still has time for it and the terminations
//!   after it; the other idle runners are left for the next run (`deferred`, not an error). Each owner's GitHub calls end by its share of the run (`OwnerBudget`), so an owner
//!   whose API hangs leaves the others, before or after it, their time.
//! - **Unknown is never idle**: any GitHub or EC2 error about an owner stops removals for that
//!   owner in this run; the other owners are still handled, and the error is counted.
//! - **Warm pool** (`WARM_POOL_CONFIG`, beyond upstream): an idle runner that came from the
//!   warm pool goes back to it instead of being terminated, at the point where it would be
//!   terminated (drained: deregistered, no job since), while the pool has room and the
//!   instance is younger than `maxAgeHours`: tagged `ghr:warm=ready`, stripped of its owner,
//!   runner and job tags, stopped. `preparing`/`ready` instances have no owner and are left
//!   alone.
//! - **Environment**: `ENVIRONMENT`, `SCALE_DOWN_CONFIG`, `MINIMUM_RUNNING_TIME_IN_MINUTES`,
//!   `RUNNER_BOOT_TIME_IN_MINUTES`, `RUNNER_NAME_PREFIX`, `RUNNER_JOB_START_GRACE_SECONDS`,
//!   `RUNNER_OFFLINE_TIMEOUT_IN_MINUTES`, `RUNNER_WITHDRAWAL_WAIT_SECONDS`, the App
//!   parameters, `GHES_URL`, see [`Config`].
//! - **IAM**: `ec2:DescribeInstances`; `ec2:TerminateInstances`, `ec2:CreateTags`,
//!   `ec2:DeleteTags` (keys `ghr:orphan`, `ghr:offline_since`, `ghr:deregistered_at`,
//!   `ghr:withdrawn_at`) conditioned on the runner tags; `ssm:GetParameters` on the App parameters.

pub mod config;

use common::config::FromEnv;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::clock::Clock;
use common::deadline::Deadline;
use common::domain::runner::{InstanceFilter, RunnerInstance, RunnerOwner, tags};
use common::domain::scale_down::{
    Decision, DrainDecision, OFFLINE_SINCE_TAG, OrphanDecision, Policy, RemovalStep, drain_decision,
    expected_runner_name, ghost_candidates, offline_marks_to_clear, orphan_confirmed, orphan_decision, plan_owner,
    removal_step,
};
use common::domain::warm_pool::{RETURN_UNTAG, RETURNED_AT_TAG, WARM_TAG, WarmState, claim_starting, returns_to_pool};
use common::error::GithubError;
use common::ports::{GithubApi, GithubOwner, RunnerInstances, RunnerRemoval, Withdrawal};
use common::telemetry::Metrics;
use common::telemetry::metrics::{
    GITHUB_APP_RATE_LIMIT_REMAINING, RUNNERS_IDLE_KEPT, RUNNERS_SEEN, RUNNERS_SKIPPED, RUNNERS_TERMINATED,
    SCALE_DOWN_ERRORS, WARM_POOL_RETURNED,
};

pub use config::Config;

/// Behaviour switches that are not configuration: the Lambda always runs with the defaults.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Two-phase removal: deregister an idle runner in one run, terminate its instance in a
    /// later one once its job markers are read again. Only the busy-runner simulation turns it
    /// off (terminate right after the deregistration), to show that busy runners get killed
    /// without it.
    pub two_phase: bool,
    /// Withdraw an idle runner (remove its custom labels) and wait before deregistering it.
    /// Only the simulation's negative control turns it off.
    pub withdraw: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { two_phase: true, withdraw: true }
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub seen: usize,
    pub idle_kept: usize,
    /// Idle runners kept because the pool holds them.
    pub pool_kept: usize,
    /// Terminated instance ids by reason (`idle`, `orphan`, `crashed`), and deregistered ghost
    /// runners.
    pub terminated: BTreeMap<&'static str, Vec<String>>,
    pub ghosts_removed: Vec<u64>,
    pub marked_orphan: Vec<String>,
    pub orphans_cleared: Vec<String>,
    pub skipped_busy: Vec<String>,
    pub skipped_unknown: Vec<String>,
    /// Idle runners deregistered this run; their instances drain until a later run.
    pub deregistered: Vec<String>,
    /// Draining instances not yet past the hold after their deregistration.
    pub draining: Vec<String>,
    /// Idle runners withdrawn this run (custom labels removed) before their deregistration.
    pub withdrawn: Vec<String>,
    /// Instances whose runner was first seen offline with a job marked (tagged `ghr:offline_since`).
    pub marked_offline: Vec<String>,
    /// Idle runners left for the next run because this run's time ran out (GitHub's write pace
    /// allows about three deregistrations a second per App).
    pub deferred: Vec<String>,
    /// Idle runners put back into the warm pool (stopped) instead of terminated.
    pub returned_to_pool: Vec<String>,
    pub errors: usize,
}

pub struct ScaleDown {
    config: Config,
    github: Arc<dyn GithubApi>,
    ec2: Arc<dyn RunnerInstances>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    options: Options,
    /// Ghost candidates whose instance EC2 does not know (terminated over an hour ago, or an
    /// instance of another region), by runner id, with the time first seen so. Deregistered
    /// only when still offline a boot time later: a runner registered by another region's
    /// scale-up is offline only while its instance boots. Kept for the container's life; a
    /// new container starts over, which only delays the removal.
    unknown_ghosts: std::sync::Mutex<UnknownGhosts>,
    /// Owners visited in earlier runs that may still have ghost runners: visited again even
    /// with no instance left, so that their last runners' ghosts are removed too.
    owners_with_ghosts: std::sync::Mutex<std::collections::BTreeSet<RunnerOwner>>,
}

#[derive(Default)]
struct UnknownGhosts {
    first_seen: HashMap<u64, chrono::DateTime<chrono::Utc>>,
    /// Seen in the current run: the others are forgotten at its end (back online, or gone).
    this_run: HashSet<u64>,
}

/// The time one owner may use: its GitHub calls end by `owner`, an equal share of what the
/// run has left for the owners not handled yet (after the time kept for the terminations),
/// so that a hanging owner leaves the others their time whatever the order; what an owner does
/// not use passes on to the next ones.
#[derive(Debug, Clone, Copy)]
struct OwnerBudget {
    run: Deadline,
    owner: Deadline,
}

/// The least an owner gets when the run has that much left: a listing and a few deletions.
const MIN_OWNER_SHARE: Duration = Duration::from_secs(5);

impl OwnerBudget {
    fn share(run: Deadline, termination_reserve: Duration, owners_left: usize) -> Self {
        let available = run.remaining().saturating_sub(termination_reserve);
        let share = (available / owners_left.max(1) as u32).max(MIN_OWNER_SHARE).min(run.remaining());
        Self { run, owner: Deadline::after(share).min(run) }
    }
}

/// What one owner's pass leaves to terminate.
#[derive(Default)]
struct OwnerOutcome {
    /// Idle runners deregistered this run, to terminate at once (two-phase removal off).
    deregistered: Vec<String>,
    /// Idle runners withdrawn this run, to deregister after the wait.
    withdrawn: Vec<Withdrawn>,
    /// Draining instances past their hold with no job: terminated now (reason `idle`).
    drained: Vec<String>,
    /// Confirmed orphans.
    orphans: Vec<String>,
    /// Crashed runners (offline past the timeout with a job marked): terminated at once.
    crashed: Vec<String>,
    /// Ghost candidates remain (or could not be checked): visit the owner again next run.
    ghosts_left: bool,
}

/// The time one deregistration takes at GitHub's write pace (about three a second per App),
/// with room for a slow answer.
const DEREGISTRATION_TIME: Duration = Duration::from_millis(500);

/// A runner withdrawn this run, to deregister after the wait.
struct Withdrawn {
    instance_id: String,
    runner_id: u64,
    at: tokio::time::Instant,
}

/// One runner to deregister.
struct Removal {
    instance_id: String,
    runner_id: u64,
    /// Offline past the offline timeout with a job marked: its instance is terminated at once.
    crashed: bool,
}

/// One owner's deregistrations so far.
#[derive(Default)]
struct Removals {
    deregistered: Vec<String>,
    crashed: Vec<String>,
    /// A GitHub error: no more removals for this owner this run.
    stop: bool,
    /// No time left for more this run: the rest are deferred.
    out_of_time: bool,
}

/// An owner's instances: draining (runner deregistered), tagged orphans and the others.
#[derive(Default)]
struct OwnerInstances {
    draining: Vec<RunnerInstance>,
    orphans: Vec<RunnerInstance>,
    regular: Vec<RunnerInstance>,
}

impl ScaleDown {
    pub fn new(
        config: Config,
        github: Arc<dyn GithubApi>,
        ec2: Arc<dyn RunnerInstances>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        options: Options,
    ) -> Self {
        Self {
            config,
            github,
            ec2,
            clock,
            metrics,
            options,
            unknown_ghosts: Default::default(),
            owners_with_ghosts: Default::default(),
        }
    }

    fn policy(&self) -> Policy {
        Policy {
            minimum_running_time: chrono::Duration::minutes(self.config.minimum_running_minutes),
            boot_time: chrono::Duration::minutes(self.config.boot_time_minutes),
            offline_timeout: chrono::Duration::minutes(self.config.offline_timeout_minutes),
            name_prefix: self.config.name_prefix.clone(),
        }
    }

    /// One scheduled run.
    pub async fn run_once(&self, deadline: Deadline) -> Summary {
        let mut summary = Summary::default();
        let now = self.clock.now();
        let live = InstanceFilter::live(&self.config.environment);
        let instances = match common::aws::with_retries(deadline, &[], || self.ec2.list(&live)).await {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the runner instances; nothing is removed this run");
                summary.errors += 1;
                self.report(&summary);
                return summary;
            }
        };
        summary.seen = instances.len();
        let live_ids: HashSet<String> = instances.iter().map(|i| i.id.clone()).collect();
        let known: HashMap<String, RunnerInstance> = if self.config.warm_pool.is_some() {
            instances.iter().map(|i| (i.id.clone(), i.clone())).collect()
        } else {
            HashMap::new()
        };
        let mut owners: BTreeMap<RunnerOwner, OwnerInstances> = BTreeMap::new();
        for instance in instances {
            match instance.owner() {
                Some(owner) => {
                    let entry = owners.entry(owner).or_default();
                    if instance.is_draining() {
                        entry.draining.push(instance)
                    } else if instance.is_orphan() {
                        entry.orphans.push(instance)
                    } else {
                        entry.regular.push(instance)
                    }
                }
                // The warm pool's instances have no owner until claimed, and no runner by
                // design: the warm-pool function looks after them.
                None if common::domain::warm_pool::is_unclaimed(&instance) => {}
                None => {
                    tracing::warn!(instance_id = %instance.id, "runner instance without ghr:Type/ghr:Owner tags, left alone")
                }
            }
        }
        if let Ok(remembered) = self.owners_with_ghosts.lock() {
            for owner in remembered.iter() {
                owners.entry(owner.clone()).or_default();
            }
        }
        let mut owners_with_ghosts = std::collections::BTreeSet::new();
        let (idle_count, strategy) = self.config.idle.at(now);
        let mut idle_left = idle_count;
        let app = self.github.choose_app();
        let mut deregistered: Vec<String> = Vec::new();
        let mut orphans_to_terminate: Vec<String> = Vec::new();
        let mut crashed: Vec<String> = Vec::new();
        let mut drained: Vec<String> = Vec::new();
        let mut withdrawn: Vec<(RunnerOwner, Vec<Withdrawn>)> = Vec::new();
        let owner_count = owners.len();
        for (k, (owner, group)) in owners.iter().enumerate() {
            if deadline.remaining() < Duration::from_secs(5) {
                tracing::warn!(owner = %owner, "no time left; the remaining owners wait for the next run");
                break;
            }
            let budget = OwnerBudget::share(deadline, self.termination_reserve(), owner_count - k);
            let outcome = self
                .scale_owner(app, owner, group, &live_ids, now, strategy, &mut idle_left, budget, &mut summary)
                .await;
            deregistered.extend(outcome.deregistered);
            if !outcome.withdrawn.is_empty() {
                withdrawn.push((owner.clone(), outcome.withdrawn));
            }
            drained.extend(outcome.drained);
            orphans_to_terminate.extend(outcome.orphans);
            crashed.extend(outcome.crashed);
            if outcome.ghosts_left
                || !group.regular.is_empty()
                || !group.orphans.is_empty()
                || !group.draining.is_empty()
            {
                owners_with_ghosts.insert(owner.clone());
            }
        }
        if let Ok(mut remembered) = self.owners_with_ghosts.lock() {
            *remembered = owners_with_ghosts;
        }
        if !withdrawn.is_empty() {
            deregistered.extend(self.deregister_withdrawn(app, withdrawn, now, deadline, &mut summary).await);
        }
        if !orphans_to_terminate.is_empty() {
            self.terminate(&orphans_to_terminate, "orphan", deadline, &mut summary).await;
        }
        if !crashed.is_empty() {
            self.terminate(&crashed, "crashed", deadline, &mut summary).await;
        }
        if let Ok(mut seen) = self.unknown_ghosts.lock() {
            let this_run = std::mem::take(&mut seen.this_run);
            seen.first_seen.retain(|id, _| this_run.contains(id));
        }
        drained.extend(deregistered);
        let drained = self.return_to_warm_pool(drained, &known, now, deadline, &mut summary).await;
        if !drained.is_empty() {
            self.terminate(&drained, "idle", deadline, &mut summary).await;
        }
        if self.config.rate_limit_metric
            && let Some(remaining) = self.github.rate_limit_remaining(app)
        {
            let app_id = self.github.app_id(app).to_string();
            self.metrics.count(&GITHUB_APP_RATE_LIMIT_REMAINING, remaining as usize, &[("AppId", &app_id)]);
        }
        self.report(&summary);
        summary
    }

    /// Of the idle runners about to be terminated, puts those that came from the warm pool back
    /// into it while it has room (`warm_pool::returns_to_pool`): tagged ready, stripped of their
    /// owner, runner and job tags, stopped. One that cannot be put back is terminated as before.
    /// Returns what is still to terminate.
    async fn return_to_warm_pool(
        &self,
        drained: Vec<String>,
        known: &HashMap<String, RunnerInstance>,
        now: chrono::DateTime<chrono::Utc>,
        deadline: Deadline,
        summary: &mut Summary,
    ) -> Vec<String> {
        let Some(warm) = &self.config.warm_pool else {
            return drained;
        };
        let candidates: Vec<&RunnerInstance> = drained.iter().filter_map(|id| known.get(id)).collect();
        if !candidates.iter().any(|i| WarmState::of(i) == Some(WarmState::Claimed)) {
            return drained;
        }
        let filter = InstanceFilter::warm_pool(&self.config.environment);
        let pool = match common::aws::with_retries(deadline, &[], || self.ec2.list(&filter)).await {
            Ok(pool) => pool,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the warm pool; idle runners are terminated");
                return drained;
            }
        };
        let chosen = returns_to_pool(&candidates, &pool, warm, now);
        let mut returned = Vec::new();
        for id in &chosen {
            let ids = std::slice::from_ref(id);
            let ready = [
                (WARM_TAG.to_string(), WarmState::Ready.as_str().to_string()),
                (RETURNED_AT_TAG.to_string(), now.timestamp().to_string()),
            ];
            let untag: Vec<String> = RETURN_UNTAG.iter().map(|k| k.to_string()).collect();
            let outcome = async {
                common::aws::within(deadline, "ec2:CreateTags", self.ec2.tag(ids, &ready)).await?;
                common::aws::within(deadline, "ec2:DeleteTags", self.ec2.untag(ids, &untag)).await?;
                common::aws::within(deadline, "ec2:StopInstances", self.ec2.stop(ids)).await
            };
            match outcome.await {
                Ok(()) => {
                    tracing::info!(instance_id = %id, "idle runner from the warm pool put back into it (stopped)");
                    returned.push(id.clone());
                }
                Err(e) => {
                    tracing::warn!(instance_id = %id, error = %e, "putting the runner back into the warm pool failed; it is terminated")
                }
            }
        }
        self.metrics.count(&WARM_POOL_RETURNED, returned.len(), &[]);
        summary.returned_to_pool.extend(returned.iter().cloned());
        drained.into_iter().filter(|id| !returned.contains(id)).collect()
    }

    /// Handles one owner; returns what to terminate.
    #[allow(clippy::too_many_arguments)]
    async fn scale_owner(
        &self,
        app: usize,
        owner: &RunnerOwner,
        group: &OwnerInstances,
        live_ids: &HashSet<String>,
        now: chrono::DateTime<chrono::Utc>,
        strategy: common::domain::scale_down::EvictionStrategy,
        idle_left: &mut usize,
        budget: OwnerBudget,
        summary: &mut Summary,
    ) -> OwnerOutcome {
        let deadline = budget.run;
        let all_ids = || {
            group.orphans.iter().chain(&group.regular).chain(&group.draining).map(|i| i.id.clone()).collect::<Vec<_>>()
        };
        // Every GitHub call for this owner ends by its share of the run: an owner whose API
        // hangs cannot starve the others.
        let github = match self.github.for_owner(app, owner, None, budget.owner).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(owner = %owner, error = %e, "cannot reach the owner's installation; its runners are left alone");
                summary.errors += 1;
                summary.skipped_unknown.extend(all_ids());
                return OwnerOutcome { ghosts_left: true, ..OwnerOutcome::default() };
            }
        };
        let runners = match github.list_runners().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(owner = %owner, error = %e, "cannot list the owner's runners; its runners are left alone");
                summary.errors += 1;
                summary.skipped_unknown.extend(all_ids());
                return OwnerOutcome { ghosts_left: true, ..OwnerOutcome::default() };
            }
        };

        // Draining instances: their runner was deregistered on an earlier run (two-phase
        // removal). GitHub cannot hand them a job any more; one it handed out just before the
        // deregistration shows in the markers by now, and keeps its instance until it is done.
        let hold = chrono::Duration::seconds(self.config.job_start_grace_seconds as i64);
        let mut drained = Vec::new();
        for instance in &group.draining {
            match drain_decision(instance, now, hold) {
                DrainDecision::Bypass => {}
                DrainDecision::JobInFlight => {
                    tracing::warn!(owner = %owner, instance_id = %instance.id, "a job started just before the deregistration: the instance is kept until it completes");
                    summary.skipped_busy.push(instance.id.clone());
                }
                DrainDecision::Wait => summary.draining.push(instance.id.clone()),
                DrainDecision::Terminate => drained.push(instance.id.clone()),
            }
        }

        // Orphans tagged on an earlier run.
        let mut orphans = Vec::new();
        let mut cleared = Vec::new();
        for instance in &group.orphans {
            match orphan_decision(instance, now) {
                OrphanDecision::Bypass => {}
                OrphanDecision::JobInFlight => summary.skipped_busy.push(instance.id.clone()),
                OrphanDecision::Terminate => {
                    // No runner id tag, but the runner may have registered late under its name.
                    let name = expected_runner_name(instance, &self.config.name_prefix);
                    match runners.iter().find(|r| r.name == name) {
                        Some(r) if !orphan_confirmed(Some(r)) => cleared.push(instance.id.clone()),
                        _ => orphans.push(instance.id.clone()),
                    }
                }
                OrphanDecision::LastChance { runner_id } => {
                    if orphan_confirmed(runners.iter().find(|r| r.id == runner_id)) {
                        orphans.push(instance.id.clone());
                    } else {
                        cleared.push(instance.id.clone());
                    }
                }
            }
        }
        if !cleared.is_empty() {
            match common::aws::within(deadline, "ec2:DeleteTags", self.ec2.untag(&cleared, &[tags::ORPHAN.to_string()]))
                .await
            {
                Ok(()) => summary.orphans_cleared.extend(cleared),
                Err(e) => tracing::warn!(owner = %owner, error = %e, "clearing orphan tags failed"),
            }
        }

        // Registered and unregistered runners. A deregistration is only started while the run
        // still has time for it and for the tagging and terminations after it; the rest wait
        // for the next run (not an error: removals are paced to GitHub's write limit).
        let mut removals = Removals::default();
        let mut to_withdraw: Vec<(String, u64)> = Vec::new();
        let mut to_mark = Vec::new();
        let mut to_mark_offline = Vec::new();
        let reserve = self.termination_reserve();
        let wait = Duration::from_secs(self.config.withdrawal_wait_seconds);
        for (instance_id, decision) in plan_owner(&group.regular, &runners, now, &self.policy(), strategy, idle_left) {
            match decision {
                Decision::MarkOrphan => to_mark.push(instance_id),
                Decision::Busy | Decision::JobInFlight => summary.skipped_busy.push(instance_id),
                Decision::OfflineBusy { first_seen } => {
                    if first_seen {
                        to_mark_offline.push(instance_id.clone());
                    }
                    summary.skipped_busy.push(instance_id);
                }
                Decision::IdleKept => summary.idle_kept += 1,
                Decision::PoolKept => summary.pool_kept += 1,
                Decision::Remove { runner_id } => {
                    let custom_labels =
                        runners.iter().find(|r| r.id == runner_id).map_or(&[][..], |r| &r.custom_labels[..]);
                    let instance = group.regular.iter().find(|i| i.id == instance_id);
                    let step = match instance {
                        Some(i) if self.options.withdraw => {
                            removal_step(i, custom_labels, now, chrono::Duration::seconds(wait.as_secs() as i64))
                        }
                        _ => RemovalStep::Deregister,
                    };
                    match step {
                        RemovalStep::Withdraw => to_withdraw.push((instance_id, runner_id)),
                        RemovalStep::Deregister => {
                            let at = Removal { instance_id, runner_id, crashed: false };
                            self.deregister(&*github, owner, at, deadline, reserve, &mut removals, summary).await
                        }
                    }
                }
                Decision::Crashed { runner_id } => {
                    let at = Removal { instance_id, runner_id, crashed: true };
                    self.deregister(&*github, owner, at, deadline, reserve, &mut removals, summary).await
                }
                Decision::Bypass | Decision::Booting | Decision::TooYoung => {}
            }
        }
        let withdrawn = if to_withdraw.is_empty() {
            Vec::new()
        } else {
            self.withdraw(&*github, owner, to_withdraw, now, budget, &mut removals, summary).await
        };
        let Removals { deregistered, crashed, stop, .. } = removals;
        if !to_mark.is_empty() {
            match common::aws::within(
                deadline,
                "ec2:CreateTags",
                self.ec2.tag(&to_mark, &[(tags::ORPHAN.to_string(), "true".to_string())]),
            )
            .await
            {
                Ok(()) => summary.marked_orphan.extend(to_mark),
                Err(e) => tracing::warn!(owner = %owner, error = %e, "tagging orphans failed; retried next run"),
            }
        }
        if !to_mark_offline.is_empty() {
            let since = [(OFFLINE_SINCE_TAG.to_string(), now.timestamp().to_string())];
            match common::aws::within(deadline, "ec2:CreateTags", self.ec2.tag(&to_mark_offline, &since)).await {
                Ok(()) => summary.marked_offline.extend(to_mark_offline),
                Err(e) => {
                    tracing::warn!(owner = %owner, error = %e, "tagging offline runners failed; retried next run")
                }
            }
        }
        let back_online = offline_marks_to_clear(&group.regular, &runners, &self.config.name_prefix);
        if !back_online.is_empty()
            && let Err(e) = common::aws::within(
                deadline,
                "ec2:DeleteTags",
                self.ec2.untag(&back_online, &[OFFLINE_SINCE_TAG.to_string()]),
            )
            .await
        {
            tracing::warn!(owner = %owner, error = %e, "clearing offline tags failed; retried next run");
        }

        // Ghosts: offline runners whose instance EC2 shows terminated.
        let candidates = ghost_candidates(&runners, live_ids, &self.config.name_prefix);
        let ghosts_left = !candidates.is_empty();
        if !candidates.is_empty() && !stop {
            let ids: Vec<String> = candidates.iter().map(|(_, i)| i.clone()).collect();
            match common::aws::within(deadline, "ec2:DescribeInstances", self.ec2.find(&ids)).await {
                Ok(found) => {
                    for (runner_id, instance_id) in candidates {
                        let gone = match found.iter().find(|i| i.id == instance_id) {
                            // EC2 lists a terminated instance for about an hour; after that it
                            // is unknown, and a runner still offline a boot time after first
                            // seen so is a ghost just the same.
                            None => self.unknown_ghost_confirmed(runner_id, now),
                            // A warm pool instance claimed seconds ago is stopped until scale-up
                            // starts it, its runner registered and offline meanwhile.
                            Some(i) if i.state == "stopped" && claim_starting(i, now) => false,
                            Some(i) => {
                                i.tag(tags::ENVIRONMENT) == Some(self.config.environment.as_str())
                                    && matches!(i.state.as_str(), "terminated" | "shutting-down" | "stopped")
                            }
                        };
                        if !gone {
                            continue;
                        }
                        match github.delete_runner(runner_id).await {
                            Ok(RunnerRemoval::Deleted | RunnerRemoval::NotFound) => {
                                tracing::info!(owner = %owner, runner_id, instance_id, "ghost runner deregistered");
                                summary.ghosts_removed.push(runner_id);
                            }
                            Ok(RunnerRemoval::Busy) => {}
                            Err(e) => {
                                tracing::warn!(owner = %owner, runner_id, error = %e, "ghost deregistration failed");
                                summary.errors += 1;
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(owner = %owner, error = %e, "cannot confirm ghost runners' instances; left for the next run");
                    summary.errors += 1;
                }
            }
        }
        let deregistered = self.mark_deregistered(owner, deregistered, now, deadline, summary).await;
        OwnerOutcome { deregistered, withdrawn, drained, orphans, crashed, ghosts_left }
    }

    /// Deregisters one runner (idle or crashed), unless an earlier error stopped this owner's
    /// removals or the run is out of time for it.
    #[allow(clippy::too_many_arguments)]
    async fn deregister(
        &self,
        github: &dyn GithubOwner,
        owner: &RunnerOwner,
        removal: Removal,
        deadline: Deadline,
        reserve: Duration,
        removals: &mut Removals,
        summary: &mut Summary,
    ) {
        let Removal { instance_id, runner_id, crashed } = removal;
        if removals.stop {
            summary.skipped_unknown.push(instance_id);
            return;
        }
        if !removals.out_of_time && deadline.remaining() < reserve {
            removals.out_of_time = true;
            tracing::info!(owner = %owner, "out of time for more deregistrations this run; the other idle runners are removed on the next run");
        }
        if removals.out_of_time {
            summary.deferred.push(instance_id);
            return;
        }
        match github.delete_runner(runner_id).await {
            Ok(removal) if crashed => {
                // Offline past the timeout: whatever GitHub still says about its job (a 422
                // while it has not failed the job yet), no job can progress on this instance. A
                // runner left registered is removed as a ghost later.
                tracing::warn!(owner = %owner, instance_id, runner_id, ?removal, "runner offline past the offline timeout with a job marked: crashed, terminating");
                removals.crashed.push(instance_id);
            }
            Ok(RunnerRemoval::Deleted | RunnerRemoval::NotFound) => {
                tracing::info!(owner = %owner, instance_id, runner_id, "runner deregistered");
                removals.deregistered.push(instance_id);
            }
            Ok(RunnerRemoval::Busy) => {
                tracing::info!(owner = %owner, instance_id, runner_id, "runner busy (GitHub refused the deletion), kept");
                summary.skipped_busy.push(instance_id);
            }
            Err(GithubError::Deadline { .. }) => {
                // The write pace would pass the deadline: the runner is untouched.
                removals.out_of_time = true;
                summary.deferred.push(instance_id);
            }
            Err(e) => {
                tracing::error!(owner = %owner, instance_id, runner_id, error = %e, "deregistration failed; no more removals for this owner this run");
                summary.errors += 1;
                summary.skipped_unknown.push(instance_id);
                removals.stop = true;
            }
        }
    }

    /// The first step of removing idle runners that have custom labels: remove those labels,
    /// so that GitHub hands them no new job that asks for one, and tag their instances
    /// `ghr:withdrawn_at`. Their deregistration follows after all owners
    /// (`deregister_withdrawn`), `withdrawal_wait` after each withdrawal: a job GitHub handed
    /// out just before has started by then, and GitHub refuses to delete its runner (422), so
    /// the job is not lost between its assignment and its start. A withdrawn runner whose
    /// deregistration does not happen this run (time, an error) is deregistered by a later run
    /// without a new wait, and never kept as an idle runner (its labels are gone).
    #[allow(clippy::too_many_arguments)]
    async fn withdraw(
        &self,
        github: &dyn GithubOwner,
        owner: &RunnerOwner,
        runners: Vec<(String, u64)>,
        now: chrono::DateTime<chrono::Utc>,
        budget: OwnerBudget,
        removals: &mut Removals,
        summary: &mut Summary,
    ) -> Vec<Withdrawn> {
        let wait = Duration::from_secs(self.config.withdrawal_wait_seconds);
        let reserve = self.termination_reserve();
        let mut withdrawn: Vec<Withdrawn> = Vec::new();
        for (instance_id, runner_id) in runners {
            if removals.stop {
                summary.skipped_unknown.push(instance_id);
                continue;
            }
            // Room for the wait and for the deregistrations after it, paced like these.
            let needed = reserve + wait + DEREGISTRATION_TIME * (withdrawn.len() as u32 + 1);
            if !removals.out_of_time && budget.run.remaining() < needed {
                removals.out_of_time = true;
                tracing::info!(owner = %owner, "out of time for more withdrawals this run; the other idle runners are removed on the next run");
            }
            if removals.out_of_time {
                summary.deferred.push(instance_id);
                continue;
            }
            match github.remove_custom_labels(runner_id).await {
                Ok(Withdrawal::Withdrawn) => {
                    tracing::info!(owner = %owner, instance_id, runner_id, "runner withdrawn (custom labels removed)");
                    withdrawn.push(Withdrawn { instance_id, runner_id, at: tokio::time::Instant::now() });
                }
                Ok(Withdrawal::NotFound) => {
                    // Gone already (an ephemeral runner deregisters itself after its job):
                    // the instance drains like a deregistered one.
                    removals.deregistered.push(instance_id);
                }
                Err(GithubError::Deadline { .. }) => {
                    removals.out_of_time = true;
                    summary.deferred.push(instance_id);
                }
                Err(e) => {
                    tracing::error!(owner = %owner, instance_id, runner_id, error = %e, "withdrawal failed; no more removals for this owner this run");
                    summary.errors += 1;
                    summary.skipped_unknown.push(instance_id);
                    removals.stop = true;
                }
            }
        }
        if !withdrawn.is_empty() {
            let ids: Vec<String> = withdrawn.iter().map(|w| w.instance_id.clone()).collect();
            let at = [(tags::WITHDRAWN_AT.to_string(), now.timestamp().to_string())];
            if let Err(e) = common::aws::within(budget.run, "ec2:CreateTags", self.ec2.tag(&ids, &at)).await {
                // Their runners keep only read-only labels: a later run withdraws them again
                // if this one does not deregister them.
                tracing::warn!(owner = %owner, error = %e, "tagging withdrawn instances failed");
            }
            summary.withdrawn.extend(ids);
        }
        withdrawn
    }

    /// The second step: deregisters the runners withdrawn this run, each at least
    /// `withdrawal_wait` after its withdrawal (the other owners' passes usually took that
    /// long already), owner by owner, each within its share of what is left.
    async fn deregister_withdrawn(
        &self,
        app: usize,
        pending: Vec<(RunnerOwner, Vec<Withdrawn>)>,
        now: chrono::DateTime<chrono::Utc>,
        deadline: Deadline,
        summary: &mut Summary,
    ) -> Vec<String> {
        let wait = Duration::from_secs(self.config.withdrawal_wait_seconds);
        let reserve = self.termination_reserve();
        let mut to_terminate = Vec::new();
        let owners = pending.len();
        for (k, (owner, withdrawn)) in pending.into_iter().enumerate() {
            let budget = OwnerBudget::share(deadline, reserve, owners - k);
            let github = match self.github.for_owner(app, &owner, None, budget.owner).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(owner = %owner, error = %e, "cannot reach the owner's installation; its withdrawn runners are deregistered on the next run");
                    summary.errors += 1;
                    summary.skipped_unknown.extend(withdrawn.into_iter().map(|w| w.instance_id));
                    continue;
                }
            };
            let mut removals = Removals::default();
            for Withdrawn { instance_id, runner_id, at } in withdrawn {
                if !removals.stop && !removals.out_of_time {
                    tokio::time::sleep_until(at + wait).await;
                }
                let removal = Removal { instance_id, runner_id, crashed: false };
                self.deregister(&*github, &owner, removal, budget.run, reserve, &mut removals, summary).await;
            }
            to_terminate.extend(self.mark_deregistered(&owner, removals.deregistered, now, deadline, summary).await);
        }
        to_terminate
    }

    /// Two-phase removal, first phase: the deregistered instances drain until a later run
    /// (tagged `ghr:deregistered_at`). Returns what to terminate at once: nothing, unless
    /// two-phase removal is off.
    async fn mark_deregistered(
        &self,
        owner: &RunnerOwner,
        mut deregistered: Vec<String>,
        now: chrono::DateTime<chrono::Utc>,
        deadline: Deadline,
        summary: &mut Summary,
    ) -> Vec<String> {
        if !self.options.two_phase || deregistered.is_empty() {
            return deregistered;
        }
        let at = [(tags::DEREGISTERED_AT.to_string(), now.timestamp().to_string())];
        if let Err(e) = common::aws::within(deadline, "ec2:CreateTags", self.ec2.tag(&deregistered, &at)).await {
            // Their runners are gone: a later run finds them unregistered, tags them orphans
            // and terminates them after a look at their markers.
            tracing::warn!(owner = %owner, error = %e, "tagging deregistered instances failed; they are removed as orphans later");
        }
        summary.deregistered.append(&mut deregistered);
        Vec::new()
    }

    /// Whether an offline runner whose instance EC2 does not know has been seen so for at least
    /// the boot time (the first sighting is recorded).
    fn unknown_ghost_confirmed(&self, runner_id: u64, now: chrono::DateTime<chrono::Utc>) -> bool {
        let Ok(mut seen) = self.unknown_ghosts.lock() else {
            return false;
        };
        seen.this_run.insert(runner_id);
        let first = *seen.first_seen.entry(runner_id).or_insert(now);
        first < now && first + chrono::Duration::minutes(self.config.boot_time_minutes) <= now
    }

    /// Time a run keeps for what follows its owners: tagging and the terminations.
    fn termination_reserve(&self) -> Duration {
        Duration::from_secs(10)
    }

    async fn terminate(&self, ids: &[String], reason: &'static str, deadline: Deadline, summary: &mut Summary) {
        match common::aws::within(deadline, "ec2:TerminateInstances", self.ec2.terminate(ids)).await {
            Ok(()) => {
                tracing::info!(instances = ?ids, reason, "terminated");
                summary.terminated.entry(reason).or_default().extend(ids.iter().cloned());
            }
            Err(e) => {
                // The runners are deregistered or never registered: the next run finds these
                // instances again (as orphans) and retries.
                tracing::error!(instances = ?ids, error = %e, "termination failed; retried next run");
                summary.errors += 1;
            }
        }
    }

    fn report(&self, s: &Summary) {
        self.metrics.count(&RUNNERS_SEEN, s.seen, &[]);
        self.metrics.count(&RUNNERS_IDLE_KEPT, s.idle_kept, &[]);
        for reason in ["idle", "orphan", "crashed"] {
            self.metrics.count(
                &RUNNERS_TERMINATED,
                s.terminated.get(reason).map_or(0, Vec::len),
                &[("Reason", reason)],
            );
        }
        self.metrics.count(&RUNNERS_TERMINATED, s.ghosts_removed.len(), &[("Reason", "ghost")]);
        self.metrics.count(&RUNNERS_SKIPPED, s.skipped_busy.len(), &[("Reason", "busy")]);
        self.metrics.count(&RUNNERS_SKIPPED, s.skipped_unknown.len(), &[("Reason", "unknown")]);
        self.metrics.count(&RUNNERS_SKIPPED, s.deferred.len(), &[("Reason", "deferred")]);
        self.metrics.count(&RUNNERS_SKIPPED, s.draining.len(), &[("Reason", "draining")]);
        self.metrics.count(&SCALE_DOWN_ERRORS, s.errors, &[]);
        tracing::info!(
            seen = s.seen,
            idle_kept = s.idle_kept,
            pool_kept = s.pool_kept,
            terminated = ?s.terminated,
            ghosts_removed = s.ghosts_removed.len(),
            marked_orphan = s.marked_orphan.len(),
            marked_offline = s.marked_offline.len(),
            deregistered = s.deregistered.len(),
            draining = s.draining.len(),
            skipped_busy = s.skipped_busy.len(),
            skipped_unknown = s.skipped_unknown.len(),
            deferred = s.deferred.len(),
            errors = s.errors,
            "scale-down run"
        );
    }
}

/// Scale-down with real clients, as Lambda runs it (the App credentials read from SSM, GitHub
/// through the configured URLs, EC2 through `sdk`). `run()` and the local runner
/// (`crates/local`) both build it here.
pub async fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> Result<ScaleDown, String> {
    let store = common::aws::ssm::SsmParameterStore::new(sdk);
    let ec2 = Arc::new(common::aws::ec2::Ec2RunnerInstances::without_retries(sdk));
    let clock: Arc<dyn Clock> = Arc::from(common::clock::from_config(config.clock_file.as_deref()));
    let apps = common::github::app::load_apps(&store, &config.apps).await.map_err(|e| e.to_string())?;
    let github = common::github::client::GithubClient::configured(&config.github, apps)?;
    Ok(ScaleDown::new(config.clone(), Arc::new(github), ec2, clock, metrics, Options::default()))
}

/// The answer of one run, as the Lambda function returns it.
pub fn summary_json(summary: &Summary) -> serde_json::Value {
    serde_json::json!({
        "seen": summary.seen,
        "idleKept": summary.idle_kept,
        "poolKept": summary.pool_kept,
        "terminated": summary.terminated,
        "ghostsRemoved": summary.ghosts_removed.len(),
        "markedOrphan": summary.marked_orphan.len(),
        "markedOffline": summary.marked_offline.len(),
        "deregistered": summary.deregistered,
        "draining": summary.draining.len(),
        "withdrawn": summary.withdrawn,
        "skippedBusy": summary.skipped_busy.len(),
        "skippedUnknown": summary.skipped_unknown.len(),
        "deferred": summary.deferred.len(),
        "returnedToPool": summary.returned_to_pool,
        "errors": summary.errors,
    })
}

/// Starts the function: reads its configuration, then serves scheduled events.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    // Listing a large fleet takes seconds per page (a page of 200 instances with their tags), so
    // an attempt may take longer than scale-up's single-item calls; a hung connection still
    // leaves most of a scheduled run, and the next run starts over.
    let sdk = common::aws::load_sdk_config(Duration::from_secs(15), 3).await;
    let metrics = Metrics::stdout(&config.telemetry);
    let handler: tokio::sync::OnceCell<ScaleDown> = tokio::sync::OnceCell::new();
    let build = || build(&config, &sdk, metrics.clone());
    let handler = &handler;
    let build = &build;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let deadline = common::lambda::deadline_of(&event.context);
            let scale_down = handler.get_or_try_init(build).await.map_err(|e| {
                tracing::error!(error = %e, "cannot start scale-down");
                lambda_runtime::Error::from(e)
            })?;
            let summary = scale_down.run_once(deadline).await;
            Ok::<_, lambda_runtime::Error>(summary_json(&summary))
        },
    ))
    .await
}

#[cfg(test)]
mod tests;
