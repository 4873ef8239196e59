//! The termination-watcher function binary, built by `cargo test` for the end-to-end tests (decisions.md #19).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    termination_watcher::run().await
}
