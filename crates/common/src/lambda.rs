//! Glue shared by the functions' Lambda entry points.

use crate::deadline::Deadline;

/// Reads the process environment (what `Config::from_lookup` gets in Lambda).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The invocation's deadline, less the safety margin.
pub fn deadline_of(context: &lambda_runtime::Context) -> Deadline {
    Deadline::from_lambda(context.deadline())
}
