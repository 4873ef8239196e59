//! The warm-pool function binary, built by `cargo test` for the end-to-end tests (decisions.md #19).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    warm_pool::run().await
}
