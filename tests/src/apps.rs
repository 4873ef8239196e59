//! Test GitHub Apps with real RSA keys (test-only keys under `fixtures/keys`).

use base64::Engine;

/// A GitHub App the fake knows.
#[derive(Clone)]
pub struct TestApp {
    pub id: u64,
    pub private_pem: String,
    pub public_pem: String,
}

impl TestApp {
    /// App `n` (1 to 3) of the committed test keys.
    pub fn new(n: u8, id: u64) -> Self {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys");
        let read = |f: String| std::fs::read_to_string(dir.join(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        Self { id, private_pem: read(format!("app-{n}.pem")), public_pem: read(format!("app-{n}.pub.pem")) }
    }

    /// The private key as stored in SSM by Terraform: base64 of the PEM.
    pub fn key_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.private_pem)
    }
}
