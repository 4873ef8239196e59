//! Pacing of GitHub writes, per App and endpoint, to stay inside the secondary rate limit.
//!
//! GitHub allows 900 points per minute per endpoint, and a write costs 5: 180 writes a minute.
//! A token bucket of `burst` tokens refilled at `per_second` keeps every rolling minute at or
//! below `burst + 60 × per_second`; the defaults (12 + 60 × 2.8 = 180) sit exactly at the limit
//! while creating JIT configs at 2.8 a second. Reservations are taken in arrival order, so
//! concurrent writers share the rate fairly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

pub struct WritePacer {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<(usize, String), Bucket>>,
}

impl WritePacer {
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self { burst: f64::from(burst.max(1)), per_second: per_second.max(0.01), buckets: Mutex::new(HashMap::new()) }
    }

    /// Reserves one write and returns how long to wait before sending it.
    pub fn reserve(&self, app: usize, endpoint: &str) -> Duration {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        let bucket = buckets.entry((app, endpoint.to_string())).or_insert(Bucket { tokens: self.burst, refilled: now });
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.refilled = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-bucket.tokens / self.per_second) }
    }

    /// Gives back a reservation that will not be used.
    pub fn refund(&self, app: usize, endpoint: &str) {
        if let Ok(mut buckets) = self.buckets.lock()
            && let Some(bucket) = buckets.get_mut(&(app, endpoint.to_string()))
        {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }
}

/// The route template of a path: `/orgs/acme/actions/runners/7` → `/orgs/{org}/actions/runners/{id}`.
pub fn endpoint_template(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let path = path.strip_prefix("/api/v3").unwrap_or(path);
    let mut out = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if let Some(name) = pending.pop() {
            out.push(name.to_string());
            continue;
        }
        match segment {
            "orgs" => pending = vec!["{org}"],
            "repos" => pending = vec!["{repo}", "{owner}"],
            s if s.chars().all(|c| c.is_ascii_digit()) => {
                out.push("{id}".to_string());
                continue;
            }
            _ => {}
        }
        out.push(segment.to_string());
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(
            endpoint_template("/orgs/acme/actions/runners/generate-jitconfig"),
            "/orgs/{org}/actions/runners/generate-jitconfig"
        );
        assert_eq!(
            endpoint_template("/api/v3/repos/a/b/actions/runners/17?x=1"),
            "/repos/{owner}/{repo}/actions/runners/{id}"
        );
        assert_eq!(endpoint_template("/app/installations/99/access_tokens"), "/app/installations/{id}/access_tokens");
    }

    #[test]
    fn a_minute_never_exceeds_the_limit() {
        let pacer = WritePacer::new(12, 2.8);
        // 200 writes reserved at once: the first 12 go now, then one every 1/2.8 s.
        let waits: Vec<Duration> = (0..200).map(|_| pacer.reserve(0, "/x")).collect();
        assert!(waits[..12].iter().all(|w| w.is_zero()));
        let within_minute = waits.iter().filter(|w| **w < Duration::from_secs(60)).count();
        assert!(within_minute <= 180, "{within_minute} writes in the first minute");
        assert!(within_minute >= 179, "the pace reaches the limit: {within_minute}");
        // Another endpoint and another App have their own buckets.
        assert!(pacer.reserve(0, "/y").is_zero());
        assert!(pacer.reserve(1, "/x").is_zero());
        pacer.refund(0, "/x");
    }
}
