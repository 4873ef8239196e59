//! Errors at the AWS and GitHub boundaries, classified retryable or not.
//!
//! The classification drives behaviour: scale-up returns retryable failures to SQS
//! (`batchItemFailures`), scale-down keeps whatever it could not read for the next run, and the
//! webhook answers 5xx so that GitHub shows a failed delivery that can be redelivered.
//! Messages never carry secrets: they name the operation, the status and the service's own
//! error code and message, never request bodies or headers.

use std::time::Duration;

/// Whether the same operation may succeed when tried again later.
pub trait Retryable {
    fn is_retryable(&self) -> bool;
}

/// What kind of failure an AWS call had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// Throttling (`RequestLimitExceeded`, `ThrottlingException`, HTTP 429...).
    Throttled,
    /// Server faults, timeouts, network failures, unparsable responses.
    Transient,
    /// The named resource does not exist.
    NotFound,
    /// Any other client-side error (validation, permissions...): retrying will not help.
    Client,
}

/// A failed AWS call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct AwsError {
    /// Service and operation, e.g. `ec2:CreateFleet`.
    pub operation: &'static str,
    /// The service's error code, e.g. `InsufficientInstanceCapacity`.
    pub code: Option<String>,
    pub message: String,
    pub kind: AwsErrorKind,
}

impl AwsError {
    pub fn new(operation: &'static str, kind: AwsErrorKind, code: Option<String>, message: impl Into<String>) -> Self {
        Self { operation, code, message: message.into(), kind }
    }
}

impl Retryable for AwsError {
    fn is_retryable(&self) -> bool {
        matches!(self.kind, AwsErrorKind::Throttled | AwsErrorKind::Transient)
    }
}

/// AWS error codes that mean "slow down" whatever the service (upstream's built-in list).
pub const AWS_THROTTLING_CODES: &[&str] = &[
    "EC2ThrottledException",
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
];

/// AWS error codes that are transient server-side problems (upstream's built-in list).
pub const AWS_TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailable",
    "Unavailable",
];

/// A failed GitHub API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GithubError {
    /// GitHub answered with an error status.
    #[error("GitHub `{endpoint}` answered {status}: {message}")]
    Status { endpoint: String, status: u16, message: String },
    /// Primary or secondary rate limit; `retry_after` when GitHub said how long to wait.
    #[error("GitHub `{endpoint}` is rate limited ({status}){}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { endpoint: String, status: u16, retry_after: Option<Duration> },
    /// The request did not get an answer (connection, TLS, timeout).
    #[error("GitHub `{endpoint}` could not be reached: {message}")]
    Transport { endpoint: String, message: String },
    /// Waiting any longer would pass the function's deadline.
    #[error("GitHub `{endpoint}`: stopped before the function's deadline ({message})")]
    Deadline { endpoint: String, message: String },
    /// The answer did not have the expected shape.
    #[error("GitHub `{endpoint}` returned an unexpected body: {message}")]
    Decode { endpoint: String, message: String },
    /// The GitHub App credentials cannot be used (bad key, bad id).
    #[error("GitHub App credentials are unusable: {0}")]
    Credentials(String),
}

impl GithubError {
    pub fn status(&self) -> Option<u16> {
        match self {
            GithubError::Status { status, .. } | GithubError::RateLimited { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

impl Retryable for GithubError {
    fn is_retryable(&self) -> bool {
        match self {
            GithubError::Status { status, .. } => *status >= 500 || *status == 408,
            GithubError::RateLimited { .. } | GithubError::Transport { .. } | GithubError::Deadline { .. } => true,
            GithubError::Decode { .. } | GithubError::Credentials(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let throttled =
            AwsError::new("ec2:CreateFleet", AwsErrorKind::Throttled, Some("RequestLimitExceeded".into()), "slow");
        assert!(throttled.is_retryable());
        assert_eq!(throttled.to_string(), "ec2:CreateFleet failed (RequestLimitExceeded): slow");
        let client = AwsError::new("ssm:GetParameters", AwsErrorKind::Client, None, "denied");
        assert!(!client.is_retryable());

        let cases = [
            (GithubError::Status { endpoint: "GET /x".into(), status: 502, message: String::new() }, true),
            (GithubError::Status { endpoint: "GET /x".into(), status: 404, message: String::new() }, false),
            (GithubError::Status { endpoint: "DELETE /x".into(), status: 422, message: String::new() }, false),
            (
                GithubError::RateLimited {
                    endpoint: "POST /x".into(),
                    status: 403,
                    retry_after: Some(Duration::from_secs(60)),
                },
                true,
            ),
            (GithubError::Transport { endpoint: "GET /x".into(), message: "reset".into() }, true),
            (GithubError::Credentials("bad key".into()), false),
        ];
        for (err, retryable) in cases {
            assert_eq!(err.is_retryable(), retryable, "{err}");
        }
    }
}
