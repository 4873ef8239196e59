//! Job retry (upstream §1.8): after scale-up launched a runner for a job, the job's message
//! goes to the job-retry queue with a delay; when it comes out, the job-retry function puts it
//! back on the build queue if the job is still queued, so that a job whose runner never took it
//! (lost to a spot reclaim, a failed boot, another job taking the runner) gets another one.

use serde::Deserialize;

/// SQS delays a message by at most this many seconds.
pub const MAX_DELAY_SECONDS: u32 = 900;

/// `JOB_RETRY_CONFIG`: `{enable, maxAttempts, delayInSeconds, delayBackoff, queueUrl}`
/// (Terraform sends `{}` when the feature is off).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRetryConfig {
    #[serde(default)]
    pub enable: bool,
    #[serde(default = "one")]
    pub max_attempts: u32,
    #[serde(default = "five_minutes")]
    pub delay_in_seconds: u32,
    #[serde(default = "two")]
    pub delay_backoff: f64,
    #[serde(default)]
    pub queue_url: String,
}

fn one() -> u32 {
    1
}
fn five_minutes() -> u32 {
    300
}
fn two() -> f64 {
    2.0
}

/// The next check of a launched job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryCheck {
    /// The message's `retryCounter` on the retry queue.
    pub retry_counter: u32,
    pub delay_seconds: u32,
}

impl JobRetryConfig {
    /// `None` when the feature is off (`{}`, `enable: false`, or unset).
    pub fn parse(json: &str) -> Result<Option<Self>, String> {
        if json.trim().is_empty() {
            return Ok(None);
        }
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("not a valid job retry config: {e}"))?;
        if !value.is_object() {
            return Err("not a valid job retry config: not a JSON object".into());
        }
        let config: Self = serde_json::from_value(value).map_err(|e| format!("not a valid job retry config: {e}"))?;
        if !config.enable {
            return Ok(None);
        }
        if config.queue_url.trim().is_empty() {
            return Err("queueUrl is required when job retry is enabled".into());
        }
        if !(config.delay_backoff.is_finite() && config.delay_backoff >= 1.0) {
            return Err(format!("delayBackoff must be at least 1, not {}", config.delay_backoff));
        }
        Ok(Some(config))
    }

    /// After a runner was launched for a message with `retry_counter` (absent on the first
    /// delivery): when to check the job again, or `None` once `maxAttempts` retries were made.
    pub fn next_check(&self, retry_counter: Option<u32>) -> Option<RetryCheck> {
        let counter = retry_counter.unwrap_or(0);
        if counter >= self.max_attempts {
            return None;
        }
        let delay = f64::from(self.delay_in_seconds) * self.delay_backoff.powi(counter as i32);
        let delay_seconds =
            if delay.is_finite() { delay.min(f64::from(MAX_DELAY_SECONDS)) as u32 } else { MAX_DELAY_SECONDS };
        Some(RetryCheck { retry_counter: counter, delay_seconds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_unless_enabled_with_a_queue() {
        assert_eq!(JobRetryConfig::parse("{}").unwrap(), None);
        assert_eq!(JobRetryConfig::parse("").unwrap(), None);
        assert_eq!(JobRetryConfig::parse(r#"{"enable":false,"queueUrl":"q"}"#).unwrap(), None);
        assert!(JobRetryConfig::parse(r#"{"enable":true}"#).is_err());
        assert!(JobRetryConfig::parse(r#"{"enable":true,"queueUrl":"q","delayBackoff":0.5}"#).is_err());
        assert!(JobRetryConfig::parse("[]").is_err());
        let c = JobRetryConfig::parse(r#"{"enable":true,"queueUrl":"q"}"#).unwrap().unwrap();
        assert_eq!((c.max_attempts, c.delay_in_seconds, c.delay_backoff), (1, 300, 2.0));
    }

    #[test]
    fn backoff_capped_at_sqs_maximum_and_attempts_counted() {
        let c = JobRetryConfig::parse(
            r#"{"enable":true,"queueUrl":"q","maxAttempts":4,"delayInSeconds":100,"delayBackoff":3}"#,
        )
        .unwrap()
        .unwrap();
        let delays: Vec<Option<u32>> = [None, Some(1), Some(2), Some(3), Some(4)]
            .into_iter()
            .map(|n| c.next_check(n).map(|r| r.delay_seconds))
            .collect();
        assert_eq!(delays, vec![Some(100), Some(300), Some(900), Some(900), None]);
        assert_eq!(c.next_check(Some(2)).unwrap().retry_counter, 2);
        let once = JobRetryConfig::parse(r#"{"enable":true,"queueUrl":"q"}"#).unwrap().unwrap();
        assert!(once.next_check(None).is_some());
        assert_eq!(once.next_check(Some(1)), None, "maxAttempts 1: one retry check");
    }
}
