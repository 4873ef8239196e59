//! The scale-down function. Not built yet: the binary starts, says so and exits with an error
//! (decisions.md #28); it is wired into neither Terraform nor the demo.

/// Exits with a clear "not implemented yet" error.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_logging();
    tracing::error!("the scale-down function is not implemented yet");
    Err("the scale-down function is not implemented yet".into())
}
