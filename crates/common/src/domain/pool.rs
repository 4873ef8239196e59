//! The pool (upstream §1.7): how many idle runners an organization has, and how many to add.
//!
//! As upstream, a pool runner is available when GitHub lists it online and not busy (busy too
//! with `INCLUDE_BUSY_RUNNERS`), or when its instance is still within the boot time. Beyond
//! upstream: a young instance whose runner GitHub lists offline (a JIT registration before the
//! runner starts) counts as booting, not as missing (else every run would launch again); a
//! runner whose job-started marker says a job runs counts as busy even while GitHub's flag
//! lags; an instance scale-down is draining counts for nothing; and the top-up never takes the
//! owner past the maximum.

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::runner::{GithubRunner, RunnerInstance};
use crate::domain::scale_down::{expected_runner_name, job_in_flight};

/// The owner's runners as the pool sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolCount {
    /// Instances whose runner is online and idle.
    pub idle: Vec<String>,
    /// Instances whose runner is online and runs a job (GitHub's flag or the job marker).
    pub busy: Vec<String>,
    /// Instances not registered yet, within the boot time.
    pub booting: Vec<String>,
    /// Live instances that count toward the maximum (not draining).
    pub live: usize,
}

impl PoolCount {
    /// The pool's size now.
    pub fn available(&self, include_busy: bool) -> usize {
        self.idle.len() + self.booting.len() + if include_busy { self.busy.len() } else { 0 }
    }

    /// The instances the pool counts (and so wants kept).
    pub fn counted(&self, include_busy: bool) -> Vec<String> {
        let mut ids: Vec<String> = self.idle.iter().chain(&self.booting).cloned().collect();
        if include_busy {
            ids.extend(self.busy.iter().cloned());
        }
        ids
    }
}

/// Counts the owner's live instances against its GitHub runners.
pub fn count_pool(
    instances: &[RunnerInstance],
    runners: &[GithubRunner],
    now: DateTime<Utc>,
    boot_time: TimeDelta,
    name_prefix: &str,
) -> PoolCount {
    let mut count = PoolCount::default();
    for instance in instances.iter().filter(|i| !i.is_draining()) {
        count.live += 1;
        let name = expected_runner_name(instance, name_prefix);
        match runners.iter().find(|r| r.name == name) {
            Some(r) if r.status == "online" => {
                if r.busy || job_in_flight(instance, now) {
                    count.busy.push(instance.id.clone());
                } else {
                    count.idle.push(instance.id.clone());
                }
            }
            // Registered (a JIT config is a registration) or not, a young instance is still
            // booting; a missing launch time counts as booting too: unknown is never "gone".
            // Past the boot time, an offline or missing runner is neither available nor about
            // to be.
            _ if instance.started_at().is_none_or(|t| t + boot_time > now) => {
                count.booting.push(instance.id.clone());
            }
            _ => {}
        }
    }
    count
}

/// Runners to launch: up to `size` available, never past `maximum` live (`-1`: none).
pub fn top_up(size: usize, available: usize, live: usize, maximum: i64) -> usize {
    let wanted = size.saturating_sub(available);
    if maximum < 0 { wanted } else { wanted.min((maximum as usize).saturating_sub(live)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn instance(id: &str, launched: Option<i64>, extra: &[(&str, &str)]) -> RunnerInstance {
        RunnerInstance {
            image_id: None,
            id: id.into(),
            launch_time: launched.map(at),
            state: "running".into(),
            tags: extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn runner(name: &str, status: &str, busy: bool) -> GithubRunner {
        GithubRunner { id: 1, name: name.into(), status: status.into(), busy, labels: vec![], custom_labels: vec![] }
    }

    #[test]
    fn counts_idle_busy_and_booting_runners() {
        let now = at(3600);
        let started = (now.timestamp_millis() - 1000).to_string();
        let instances = vec![
            instance("i-idle", Some(0), &[]),
            instance("i-busy", Some(0), &[]),
            instance("i-marked", Some(0), &[("ghr:job_started", started.as_str())]),
            instance("i-offline", Some(0), &[]),
            instance("i-booting", Some(3500), &[]),
            instance("i-jit-booting", Some(3500), &[]),
            instance("i-unknown-age", None, &[]),
            instance("i-never-registered", Some(0), &[]),
            instance("i-draining", Some(0), &[("ghr:deregistered_at", "1")]),
        ];
        let runners = vec![
            runner("i-idle", "online", false),
            runner("i-busy", "online", true),
            runner("i-marked", "online", false),
            runner("i-offline", "offline", false),
            runner("i-jit-booting", "offline", false),
            runner("i-draining", "online", false),
        ];
        let count = count_pool(&instances, &runners, now, TimeDelta::minutes(5), "");
        assert_eq!(count.idle, vec!["i-idle"]);
        assert_eq!(count.busy, vec!["i-busy", "i-marked"]);
        assert_eq!(count.booting, vec!["i-booting", "i-jit-booting", "i-unknown-age"]);
        assert_eq!(count.live, 8);
        assert_eq!(count.available(false), 4);
        assert_eq!(count.available(true), 6);
        assert_eq!(count.counted(false), vec!["i-idle", "i-booting", "i-jit-booting", "i-unknown-age"]);
    }

    #[test]
    fn top_up_never_passes_the_maximum() {
        assert_eq!(top_up(5, 2, 2, -1), 3);
        assert_eq!(top_up(5, 5, 9, -1), 0);
        assert_eq!(top_up(5, 7, 9, -1), 0);
        // Upstream #5186: pool 40, maximum 10.
        assert_eq!(top_up(40, 0, 0, 10), 10);
        assert_eq!(top_up(40, 0, 8, 10), 2);
        assert_eq!(top_up(40, 0, 12, 10), 0);
    }
}
