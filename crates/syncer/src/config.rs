//! Syncer configuration, from its environment (upstream §1.10 names).

use common::config::{Env, FromEnv, GithubConnection};
use common::ports::Encryption;
use common::telemetry::TelemetryConfig;

#[derive(Debug, Clone)]
pub struct Config {
    /// `linux`, `win` or `osx` (GitHub's asset names).
    pub os: String,
    /// `x64`, `arm64` or `arm`.
    pub arch: String,
    pub bucket: String,
    pub key: String,
    pub encryption: Encryption,
    /// `GITHUB_RUNNER_VERSION`: mirror this version (`2.321.0`) instead of the latest.
    pub pinned_version: Option<String>,
    pub github: GithubConnection,
    pub telemetry: TelemetryConfig,
}

impl FromEnv for Config {
    fn load(env: &mut Env<'_>) -> Self {
        let os = env.string_or("GITHUB_RUNNER_OS", "linux");
        if !["linux", "win", "osx"].contains(&os.as_str()) {
            env.problem("GITHUB_RUNNER_OS", format!("`{os}` is not linux, win or osx"));
        }
        let arch = env.string_or("GITHUB_RUNNER_ARCHITECTURE", "x64");
        if !["x64", "arm64", "arm"].contains(&arch.as_str()) {
            env.problem("GITHUB_RUNNER_ARCHITECTURE", format!("`{arch}` is not x64, arm64 or arm"));
        }
        let algorithm = env.optional("S3_SSE_ALGORITHM");
        let kms_key = env.optional("S3_SSE_KMS_KEY_ID");
        let encryption = match algorithm.as_deref() {
            None => Encryption::BucketDefault,
            Some("AES256") => Encryption::S3,
            Some("aws:kms") => Encryption::Kms { key_id: kms_key },
            Some(other) => {
                env.problem("S3_SSE_ALGORITHM", format!("`{other}` is not AES256 or aws:kms"));
                Encryption::BucketDefault
            }
        };
        Self {
            os,
            arch,
            bucket: env.required("S3_BUCKET_NAME"),
            key: env.required("S3_OBJECT_KEY"),
            encryption,
            pinned_version: env.optional("GITHUB_RUNNER_VERSION").map(|v| v.trim().trim_start_matches('v').to_string()),
            github: GithubConnection::load(env),
            telemetry: TelemetryConfig::load(env),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn encryption_and_defaults() {
        let base = [("S3_BUCKET_NAME", "b"), ("S3_OBJECT_KEY", "actions-runner-linux.tar.gz")];
        let c = Config::from_lookup(&lookup(&base)).unwrap();
        assert_eq!((c.os.as_str(), c.arch.as_str(), &c.encryption), ("linux", "x64", &Encryption::BucketDefault));
        let mut kms = base.to_vec();
        kms.extend([
            ("S3_SSE_ALGORITHM", "aws:kms"),
            ("S3_SSE_KMS_KEY_ID", "alias/runners"),
            ("GITHUB_RUNNER_VERSION", "v2.321.0"),
        ]);
        let c = Config::from_lookup(&lookup(&kms)).unwrap();
        assert_eq!(c.encryption, Encryption::Kms { key_id: Some("alias/runners".into()) });
        assert_eq!(c.pinned_version.as_deref(), Some("2.321.0"));
        let err = Config::from_lookup(&lookup(&[("GITHUB_RUNNER_OS", "linux64"), ("S3_SSE_ALGORITHM", "rot13")]))
            .unwrap_err()
            .to_string();
        for name in ["GITHUB_RUNNER_OS", "S3_SSE_ALGORITHM", "S3_BUCKET_NAME", "S3_OBJECT_KEY"] {
            assert!(err.contains(name), "{name}: {err}");
        }
    }
}
