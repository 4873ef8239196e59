//! The current time, injectable.
//!
//! Functions ask a [`Clock`] instead of the system, so that time-based rules (minimum running
//! time, boot time, idle schedules) run in simulated time in tests. The only other clock than
//! the system's is the test-only file clock (decisions.md #18).

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Test-only: the time written (RFC 3339) in a file, read at every call so that a test can move
/// a running function through time. Falls back to the system clock when the file is unreadable.
pub struct FileClock(pub std::path::PathBuf);

impl Clock for FileClock {
    fn now(&self) -> DateTime<Utc> {
        std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| {
                tracing::warn!(file = %self.0.display(), "test clock unreadable, using the system clock");
                Utc::now()
            })
    }
}

/// The clock a function uses: the file clock when the test-only variable names one.
pub fn from_config(clock_file: Option<&str>) -> Box<dyn Clock> {
    match clock_file {
        Some(path) => Box::new(FileClock(path.into())),
        None => Box::new(SystemClock),
    }
}
