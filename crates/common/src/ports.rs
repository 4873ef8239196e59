//! Ports: the small capability traits the functions use to reach AWS and GitHub.
//!
//! They speak domain types only; the adapters in `aws` and `github` are the only code that knows
//! the SDK and wire formats, and `testing` holds in-memory fakes for unit tests.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::config::Secret;
use crate::error::AwsError;

/// SSM Parameter Store, read side.
#[async_trait]
pub trait ParameterStore: Send + Sync {
    /// The decrypted values of `names`. Fails, naming them, when any does not exist.
    async fn get_parameters(&self, names: &[String]) -> Result<BTreeMap<String, Secret<String>>, AwsError>;
}

/// A job queue (SQS), send side.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends `body` to the queue at `queue_url`. FIFO queues need `fifo_group`, which is also
    /// used as the deduplication id so that a redelivered webhook is not queued twice.
    async fn send(&self, queue_url: &str, body: &str, fifo_group: Option<&str>) -> Result<(), AwsError>;
}
