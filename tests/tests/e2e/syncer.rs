//! The syncer through its built binary, against moto S3 (behind the fault proxy) and the fake
//! GitHub serving generated runner tarballs.

use std::time::Duration;

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tests::aws::Aws;
use tests::aws_proxy::{AwsFault, AwsProxy};
use tests::fake_github::{AssetContent, FakeGithub};
use tests::lambda_emulator::{InvokeError, LambdaFunction};
use tests::moto::{Moto, unique};

use crate::support::{binary, env};

const MIB: u64 = 1024 * 1024;

struct World {
    aws: Aws,
    github: FakeGithub,
    proxy: AwsProxy,
    bucket: String,
}

impl World {
    async fn new() -> Self {
        let moto = Moto::shared();
        let aws = Aws::new(moto).await;
        let bucket = unique("dist");
        aws.s3
            .create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(
                CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::EuWest1).build(),
            )
            .send()
            .await
            .unwrap();
        Self { aws, github: FakeGithub::start().await, proxy: AwsProxy::start(&moto.endpoint).await, bucket }
    }

    /// Publishes a release with linux x64/arm64/arm, win x64 and osx arm64 assets.
    fn release(&self, version: &str, size: u64, digests: bool) {
        let assets: Vec<(String, AssetContent)> = ["linux-x64", "linux-arm64", "linux-arm", "osx-arm64"]
            .iter()
            .map(|p| {
                (
                    format!("actions-runner-{p}-{version}.tar.gz"),
                    AssetContent::Generated { size, seed: fastrand::u64(..) },
                )
            })
            .chain([(format!("actions-runner-win-x64-{version}.zip"), AssetContent::Generated { size, seed: 9 })])
            .chain([(
                format!("actions-runner-linux-x64-{version}-noexternals.tar.gz"),
                AssetContent::Generated { size: 10, seed: 1 },
            )])
            .collect();
        self.github.add_release(
            &format!("v{version}"),
            assets.iter().map(|(n, c)| (n.as_str(), c.clone())).collect(),
            digests,
        );
    }

    async fn function(&self, os: &str, arch: &str, key: &str, extra: &[(&str, &str)]) -> LambdaFunction {
        let mut vars = env(&[
            ("GITHUB_RUNNER_OS", os),
            ("GITHUB_RUNNER_ARCHITECTURE", arch),
            ("S3_BUCKET_NAME", &self.bucket),
            ("S3_OBJECT_KEY", key),
            ("S3_SSE_ALGORITHM", "AES256"),
            ("ENVIRONMENT", "syncer-test"),
            (common::config::test_overrides::GITHUB_API_URL, &self.github.url),
        ]);
        for (k, v) in extra {
            vars.retain(|(n, _)| n != k);
            if !v.is_empty() {
                vars.push((k.to_string(), v.to_string()));
            }
        }
        vars.extend(Moto::shared().lambda_env());
        vars.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        vars.push(("AWS_ENDPOINT_URL".into(), self.proxy.url.clone()));
        LambdaFunction::spawn(&binary("syncer"), &unique("syncer"), &vars, Duration::from_secs(120)).await
    }

    /// (sha256, size, name tag) of the object, if any.
    async fn object(&self, key: &str) -> Option<(String, u64, Option<String>)> {
        let out = self.aws.s3.get_object().bucket(&self.bucket).key(key).send().await.ok()?;
        let data = out.body.collect().await.unwrap().into_bytes();
        let tags = self.aws.s3.get_object_tagging().bucket(&self.bucket).key(key).send().await.unwrap();
        let name = tags.tag_set().iter().find(|t| t.key() == "name").map(|t| t.value().to_string());
        Some((tests::fake_github::hex(&Sha256::digest(&data)), data.len() as u64, name))
    }

    async fn pending_uploads(&self) -> usize {
        self.aws.s3.list_multipart_uploads().bucket(&self.bucket).send().await.unwrap().uploads().len()
    }
}

fn scheduled() -> Value {
    json!({"version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
           "time": "2026-11-27T00:27:00Z", "region": "eu-west-1", "resources": [], "detail": {}})
}

fn asset_sha(github: &FakeGithub, name: &str) -> String {
    let release = github.lock_releases();
    release.into_iter().flat_map(|r| r.assets).find(|a| a.name == name).map(|a| a.sha256).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_bucket_gets_the_tagged_encrypted_tarball_once() {
    let w = World::new().await;
    w.release("2.320.0", 20 * MIB + 123, true);
    let key = "actions-runner-linux.tar.gz";
    let f = w.function("linux", "x64", key, &[]).await;
    let out = f.invoke(scheduled()).await.unwrap();
    assert_eq!(out["result"], "synced", "{out}");
    let name = "actions-runner-linux-x64-2.320.0.tar.gz";
    let (sha, size, tag) = w.object(key).await.expect("the object exists");
    assert_eq!((size, tag.as_deref()), (20 * MIB + 123, Some(name)));
    assert_eq!(sha, asset_sha(&w.github, name), "the bytes GitHub published");
    let head = w.aws.s3.head_object().bucket(&w.bucket).key(key).send().await.unwrap();
    assert_eq!(head.server_side_encryption().map(|e| e.as_str()), Some("AES256"));
    assert_eq!(w.proxy.count("s3:UploadPart"), 3, "8 MiB parts");
    // Same version: no upload.
    let out = f.invoke(scheduled()).await.unwrap();
    assert_eq!(out["result"], "up_to_date");
    assert_eq!(w.proxy.count("s3:CreateMultipartUpload"), 1);
    // A new version replaces it (checksum from the release notes this time).
    w.release("2.321.0", 3 * MIB, false);
    let out = f.invoke(scheduled()).await.unwrap();
    assert_eq!(out["version"], "2.321.0", "{out}");
    let (sha, size, tag) = w.object(key).await.unwrap();
    assert_eq!((size, tag.as_deref()), (3 * MIB, Some("actions-runner-linux-x64-2.321.0.tar.gz")));
    assert_eq!(sha, asset_sha(&w.github, "actions-runner-linux-x64-2.321.0.tar.gz"));
    let results: Vec<String> =
        f.metric("RunnerBinarySync").iter().map(|m| m.1["Result"].as_str().unwrap().to_string()).collect();
    assert_eq!(results, vec!["synced", "up_to_date", "synced"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_os_and_architecture_picks_its_asset_and_kms_encryption_applies() {
    let w = World::new().await;
    w.release("2.321.0", 64 * 1024, true);
    for (os, arch, key, asset) in [
        ("linux", "arm64", "actions-runner-linux-arm64.tar.gz", "actions-runner-linux-arm64-2.321.0.tar.gz"),
        ("linux", "arm", "actions-runner-linux-arm.tar.gz", "actions-runner-linux-arm-2.321.0.tar.gz"),
        ("win", "x64", "actions-runner-win.zip", "actions-runner-win-x64-2.321.0.zip"),
        ("osx", "arm64", "actions-runner-osx.tar.gz", "actions-runner-osx-arm64-2.321.0.tar.gz"),
    ] {
        let f = w
            .function(os, arch, key, &[("S3_SSE_ALGORITHM", "aws:kms"), ("S3_SSE_KMS_KEY_ID", "alias/github-runners")])
            .await;
        let out = f.invoke(scheduled()).await.unwrap();
        assert_eq!(out["asset"], asset, "{os}-{arch}: {out}");
        let (_, _, tag) = w.object(key).await.unwrap();
        assert_eq!(tag.as_deref(), Some(asset));
        let head = w.aws.s3.head_object().bucket(&w.bucket).key(key).send().await.unwrap();
        assert_eq!(head.server_side_encryption().map(|e| e.as_str()), Some("aws:kms"));
        assert!(head.ssekms_key_id().is_some_and(|k| k.contains("github-runners")), "{:?}", head.ssekms_key_id());
    }
    // A pinned version.
    w.release("2.322.0", 1024, true);
    let f = w.function("linux", "arm64", "pinned.tar.gz", &[("GITHUB_RUNNER_VERSION", "2.321.0")]).await;
    let out = f.invoke(scheduled()).await.unwrap();
    assert_eq!(out["asset"], "actions-runner-linux-arm64-2.321.0.tar.gz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_abort_the_upload_and_keep_the_old_object() {
    let w = World::new().await;
    let key = "actions-runner-linux.tar.gz";
    w.release("2.320.0", 2 * MIB, true);
    let f = w.function("linux", "x64", key, &[]).await;
    assert_eq!(f.invoke(scheduled()).await.unwrap()["result"], "synced");
    let old = w.object(key).await.unwrap();

    let failed = |r: Result<Value, InvokeError>| matches!(r, Err(InvokeError::Function { .. }));
    // No asset for this OS/arch: a clear error.
    let f_none = w.function("osx", "x64", key, &[]).await;
    let r = f_none.invoke(scheduled()).await;
    assert!(
        matches!(&r, Err(InvokeError::Function { message, .. }) if message.contains("has no asset `actions-runner-osx-x64-")),
        "{r:?}"
    );

    // A download cut short, then a corrupted one, then S3 failing mid-upload.
    w.release("2.321.0", 10 * MIB, true);
    let name = "actions-runner-linux-x64-2.321.0.tar.gz";
    w.github.damage_asset(name, Some(9 * MIB), None);
    assert!(failed(f.invoke(scheduled()).await));
    w.github.damage_asset(name, None, Some(9 * MIB + 5));
    let r = f.invoke(scheduled()).await;
    assert!(matches!(&r, Err(InvokeError::Function { message, .. }) if message.contains("SHA-256")), "{r:?}");
    w.github.damage_asset(name, None, None);
    w.proxy.inject(AwsFault::error("s3:UploadPart", 500, "InternalError"));
    assert!(failed(f.invoke(scheduled()).await));
    w.proxy.clear();

    assert_eq!(w.object(key).await.unwrap(), old, "the old object is untouched");
    assert_eq!(w.pending_uploads().await, 0, "every multipart upload was aborted");
    assert!(w.proxy.count("s3:AbortMultipartUpload") >= 3);
    // Healed: the next run syncs.
    assert_eq!(f.invoke(scheduled()).await.unwrap()["result"], "synced");
    assert_eq!(w.object(key).await.unwrap().2.as_deref(), Some(name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_short_stops_its_part_uploads_before_the_abort() {
    // Issue 12 item 14: the first part's upload is still running (S3 slowed) when the download
    // breaks. It must be stopped before AbortMultipartUpload, not land after it.
    let w = World::new().await;
    let key = "actions-runner-linux.tar.gz";
    w.release("2.322.0", 10 * MIB, true);
    w.github.damage_asset("actions-runner-linux-x64-2.322.0.tar.gz", Some(9 * MIB), None);
    w.proxy.inject(AwsFault::delayed("s3:UploadPart", Duration::from_secs(2)).times(1));
    let f = w.function("linux", "x64", key, &[]).await;
    assert!(matches!(f.invoke(scheduled()).await, Err(InvokeError::Function { .. })));
    // Past the slowed part's delay: had it kept running, it would have reached S3 by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = w.proxy.calls();
    let abort = calls.iter().rposition(|(a, _)| a == "s3:AbortMultipartUpload").expect("the upload was aborted");
    let late: Vec<_> = calls[abort..].iter().filter(|(a, _)| a == "s3:UploadPart").collect();
    assert!(late.is_empty(), "part uploads after the abort: {late:?} (calls {calls:?})");
    assert_eq!(w.pending_uploads().await, 0);
    assert!(w.object(key).await.is_none(), "nothing was published");
}
