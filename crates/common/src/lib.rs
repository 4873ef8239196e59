//! Shared code of the four Lambda functions.
//!
//! - [`domain`]: the pure core (label matching, routing, runner rules); no I/O.
//! - [`ports`]: the capability traits through which functions reach AWS and GitHub.
//! - [`aws`], [`github`]: the adapters, the only code that knows the SDKs and wire formats.
//! - [`config`]: reading a function's environment, [`config::Secret`].
//! - [`error`]: boundary errors, classified retryable or not.
//! - [`telemetry`]: JSON logs and EMF metrics (the metric catalogue).
//! - [`deadline`]: the time an invocation has left.
//! - `testing` (feature `test-util`): in-memory fakes of the ports.

pub mod aws;
pub mod clock;
pub mod config;
pub mod deadline;
pub mod dispatch;
pub mod domain;
pub mod error;
pub mod github;
pub mod lambda;
pub mod ports;
pub mod telemetry;

#[cfg(any(test, feature = "test-util"))]
pub mod testing;
