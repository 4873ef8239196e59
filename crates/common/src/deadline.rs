//! The time an invocation has left.
//!
//! Every wait (backoff, `retry-after`, pacing) asks the deadline first: an invocation must
//! answer before Lambda kills it, or the work it did is lost and its messages come back anyway.

use std::time::{Duration, Instant, SystemTime};

/// The moment by which an invocation must have answered, less a safety margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

/// Time kept back from Lambda's deadline to report results.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(1500);

impl Deadline {
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    pub fn after(duration: Duration) -> Self {
        Self(Instant::now() + duration)
    }

    /// From Lambda's wall-clock deadline, keeping [`SAFETY_MARGIN`] back.
    pub fn from_lambda(deadline: SystemTime) -> Self {
        let left = deadline.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).saturating_sub(SAFETY_MARGIN);
        Self(Instant::now() + left)
    }

    pub fn instant(&self) -> Instant {
        self.0
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn is_past(&self) -> bool {
        self.remaining().is_zero()
    }

    /// A deadline `margin` earlier: for a step that must leave time for what follows it.
    pub fn less(&self, margin: Duration) -> Self {
        Self(self.0.checked_sub(margin).unwrap_or(self.0))
    }

    /// True when waiting `wait` still leaves `then_need` before the deadline.
    pub fn allows(&self, wait: Duration, then_need: Duration) -> bool {
        self.remaining() > wait + then_need
    }
}

/// Exponential backoff with full jitter: a random wait in `[base, base * 2^attempt]`, capped.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let max = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let span = max.saturating_sub(base).as_millis() as u64;
    base + Duration::from_millis(if span == 0 { 0 } else { fastrand::u64(0..=span) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_in_bounds() {
        for attempt in 0..20 {
            let d = backoff(attempt, Duration::from_millis(100), Duration::from_secs(2));
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_secs(2), "{d:?}");
        }
    }

    #[test]
    fn lambda_deadline_keeps_margin() {
        let d = Deadline::from_lambda(SystemTime::now() + Duration::from_secs(10));
        let left = d.remaining();
        assert!(left <= Duration::from_secs(10) - SAFETY_MARGIN && left > Duration::from_secs(8), "{left:?}");
        assert!(Deadline::from_lambda(SystemTime::now()).is_past());
        assert!(d.allows(Duration::from_secs(1), Duration::from_secs(1)));
        assert!(!d.allows(Duration::from_secs(8), Duration::from_secs(1)));
    }
}
