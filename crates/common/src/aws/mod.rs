//! AWS adapters: the only code that knows the AWS SDK.
//!
//! Clients are built from `aws-config`'s standard chain, so the standard `AWS_ENDPOINT_URL`
//! reaches moto in tests and the local stack without any test-only code path.

pub mod ec2;
pub mod events;
pub mod images;
pub mod s3;
pub mod sqs;
pub mod ssm;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::deadline::{Deadline, backoff};
use crate::error::{AWS_THROTTLING_CODES, AWS_TRANSIENT_CODES, AwsError, AwsErrorKind, Retryable};

pub use aws_config::SdkConfig;

/// Loads the shared SDK configuration. `attempt_timeout` bounds each HTTP attempt so that a
/// hung connection cannot eat the invocation's deadline; the SDK retries throttling and
/// transient errors up to `max_attempts` times with jittered backoff.
pub async fn load_sdk_config(attempt_timeout: Duration, max_attempts: u32) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
        .load()
        .await
}

/// Runs an AWS call (with whatever retries its client makes) only until `deadline`: past it the
/// call is dropped and a transient `DeadlineExceeded` error returned, so that a slow AWS service
/// hands the work back instead of letting Lambda time the whole invocation out.
pub async fn within<T>(
    deadline: Deadline,
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, AwsError>>,
) -> Result<T, AwsError> {
    match tokio::time::timeout(deadline.remaining(), call).await {
        Ok(result) => result,
        Err(_) => Err(AwsError::new(
            operation,
            AwsErrorKind::Transient,
            Some("DeadlineExceeded".into()),
            "no answer before the invocation's deadline",
        )),
    }
}

/// Runs an AWS call with up to three retries, jittered, only for retryable errors (or error
/// codes in `extra_retryable`, e.g. `SCALE_ERRORS`) and only while the deadline allows. For
/// clients built without SDK retries, so that no retry passes the invocation's deadline.
pub async fn with_retries<T, F, Fut>(deadline: Deadline, extra_retryable: &[String], op: F) -> Result<T, AwsError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, AwsError>>,
{
    let mut attempt = 0;
    loop {
        match within(deadline, "aws", op()).await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let retryable =
                    e.is_retryable() || e.code.as_deref().is_some_and(|c| extra_retryable.iter().any(|x| x == c));
                let wait = backoff(attempt, Duration::from_millis(200), Duration::from_secs(2));
                if retryable && attempt < 3 && deadline.allows(wait, Duration::from_secs(3)) {
                    attempt += 1;
                    tracing::warn!(
                        operation = e.operation,
                        code = e.code.as_deref().unwrap_or(""),
                        attempt,
                        "AWS call failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(e);
            }
        }
    }
}

/// Converts an SDK error into a classified [`AwsError`].
pub fn aws_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_string);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let kind = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            AwsErrorKind::Transient
        }
        SdkError::ConstructionFailure(_) => AwsErrorKind::Client,
        _ => classify(code.as_deref(), status),
    };
    let message = match (&err, err.message()) {
        (SdkError::ServiceError(_), Some(m)) => m.to_string(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    AwsError::new(operation, kind, code, message)
}

/// Classifies a service error by its code and HTTP status.
pub fn classify(code: Option<&str>, status: Option<u16>) -> AwsErrorKind {
    match (code, status) {
        (Some(c), _) if AWS_THROTTLING_CODES.contains(&c) => AwsErrorKind::Throttled,
        (_, Some(429)) => AwsErrorKind::Throttled,
        (Some(c), _) if AWS_TRANSIENT_CODES.contains(&c) => AwsErrorKind::Transient,
        (_, Some(s)) if s >= 500 => AwsErrorKind::Transient,
        (Some(c), _)
            if c.ends_with("NotFound")
                || c.ends_with("NotFoundException")
                || c == "NoSuchKey"
                || c == "NoSuchBucket" =>
        {
            AwsErrorKind::NotFound
        }
        _ => AwsErrorKind::Client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let cases = [
            (Some("RequestLimitExceeded"), Some(503), AwsErrorKind::Throttled),
            (Some("ThrottlingException"), Some(400), AwsErrorKind::Throttled),
            (None, Some(429), AwsErrorKind::Throttled),
            (Some("InternalError"), Some(500), AwsErrorKind::Transient),
            (None, Some(502), AwsErrorKind::Transient),
            (Some("ParameterNotFound"), Some(400), AwsErrorKind::NotFound),
            (Some("InvalidInstanceID.NotFound"), Some(400), AwsErrorKind::NotFound),
            (Some("AccessDeniedException"), Some(400), AwsErrorKind::Client),
            (Some("InsufficientInstanceCapacity"), Some(500), AwsErrorKind::Transient),
            (Some("InsufficientInstanceCapacity"), Some(400), AwsErrorKind::Client),
        ];
        for (code, status, kind) in cases {
            assert_eq!(classify(code, status), kind, "{code:?} {status:?}");
        }
    }
}
