//! The runner binaries syncer: mirrors the GitHub Actions runner release to S3, streaming.
//!
//! - **Triggers**: an EventBridge schedule, and S3 object-created events on `triggers/*.json`
//!   (Terraform drops one at deploy so the first sync runs at once); the event is ignored.
//! - **Per run**: reads the latest `actions/runner` release (or `GITHUB_RUNNER_VERSION`) from the
//!   GitHub API (GHES when `GHES_URL` is set), picks the asset for `GITHUB_RUNNER_OS` and
//!   `GITHUB_RUNNER_ARCHITECTURE`, and compares it with the object's `name` tag. When they differ
//!   it streams the download into an S3 multipart upload (8 MiB parts, at most two in flight:
//!   memory stays flat whatever the size), tagged `name=<asset>` and encrypted as configured.
//!   Before completing the upload it checks the length and the SHA-256 GitHub publishes (the
//!   asset's `digest`, else the checksum in the release notes); a failed, short or corrupted
//!   download aborts the upload, so the old object stays in place.
//! - **Retries**: transient GitHub, download and S3 errors retry the whole sync with backoff while
//!   the deadline allows.
//! - **Environment**: `GITHUB_RUNNER_OS`, `GITHUB_RUNNER_ARCHITECTURE`, `S3_BUCKET_NAME`,
//!   `S3_OBJECT_KEY`, `S3_SSE_ALGORITHM`, `S3_SSE_KMS_KEY_ID`, `GITHUB_RUNNER_VERSION`, `GHES_URL`.
//! - **IAM**: `s3:GetObjectTagging`, `s3:PutObject`, `s3:PutObjectTagging`,
//!   `s3:AbortMultipartUpload` on the object; `kms:GenerateDataKey` with SSE-KMS.

pub mod config;

use common::config::FromEnv;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::deadline::{Deadline, backoff};
use common::domain::syncer::Release;
use common::error::{AwsError, GithubError, Retryable};
use common::github::client::{Auth, GithubClient};
use common::ports::ObjectStore;
use common::telemetry::Metrics;
use common::telemetry::metrics::SYNCER_RESULT;
use http::Method;
use sha2::{Digest, Sha256};

pub use config::Config;

/// S3 parts: at least 5 MiB except the last.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploading while the next one downloads.
const PARTS_IN_FLIGHT: usize = 2;

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    UpToDate { asset: String },
    Synced { asset: String, version: String, bytes: u64 },
}

impl Outcome {
    /// The answer of one run, as the Lambda function returns it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Outcome::UpToDate { asset } => serde_json::json!({"result": "up_to_date", "asset": asset}),
            Outcome::Synced { asset, version, bytes } => {
                serde_json::json!({"result": "synced", "asset": asset, "version": version, "bytes": bytes})
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Github(#[from] GithubError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{0}")]
    NoAsset(String),
    #[error("the download ended after {got} of {expected} bytes")]
    Short { got: u64, expected: u64 },
    #[error("the download's SHA-256 is {got}, GitHub publishes {expected}")]
    Checksum { got: String, expected: String },
    #[error("an upload task failed: {0}")]
    Task(String),
}

impl Retryable for SyncError {
    fn is_retryable(&self) -> bool {
        match self {
            SyncError::Github(e) => e.is_retryable(),
            SyncError::Aws(e) => e.is_retryable(),
            SyncError::NoAsset(_) => false,
            SyncError::Short { .. } | SyncError::Checksum { .. } | SyncError::Task(_) => true,
        }
    }
}

pub struct Syncer {
    config: Config,
    github: GithubClient,
    store: Arc<dyn ObjectStore>,
    metrics: Metrics,
}

impl Syncer {
    pub fn new(config: Config, github: GithubClient, store: Arc<dyn ObjectStore>, metrics: Metrics) -> Self {
        Self { config, github, store, metrics }
    }

    /// One run: up to three attempts while the deadline allows. Logs and counts the result.
    pub async fn run_once(&self, deadline: Deadline) -> Result<Outcome, SyncError> {
        let mut attempt = 0;
        let result = loop {
            match self.attempt(deadline).await {
                Ok(outcome) => break Ok(outcome),
                Err(e) => {
                    let wait = backoff(attempt, Duration::from_secs(1), Duration::from_secs(10));
                    if e.is_retryable() && attempt < 2 && deadline.allows(wait, Duration::from_secs(30)) {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, "sync failed, retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    break Err(e);
                }
            }
        };
        let label = match &result {
            Ok(Outcome::Synced { asset, version, bytes }) => {
                tracing::info!(asset, version, bytes, bucket = %self.config.bucket, key = %self.config.key, "runner binary synced");
                "synced"
            }
            Ok(Outcome::UpToDate { asset }) => {
                tracing::info!(asset, "runner binary up to date");
                "up_to_date"
            }
            Err(e) => {
                tracing::error!(error = %e, "runner binary sync failed; the object in S3 is unchanged");
                "failed"
            }
        };
        self.metrics.count(&SYNCER_RESULT, 1, &[("Result", label)]);
        result
    }

    async fn release(&self, deadline: Deadline) -> Result<Release, SyncError> {
        let path = match &self.config.pinned_version {
            Some(v) => format!("/repos/actions/runner/releases/tags/v{v}"),
            None => "/repos/actions/runner/releases/latest".to_string(),
        };
        Ok(self.github.send(Auth::None, Method::GET, &path, None, deadline).await?.json()?)
    }

    async fn attempt(&self, deadline: Deadline) -> Result<Outcome, SyncError> {
        let (bucket, key) = (self.config.bucket.as_str(), self.config.key.as_str());
        let release = self.release(deadline).await?;
        let asset = release.asset_for(&self.config.os, &self.config.arch).map_err(SyncError::NoAsset)?;
        match self.store.tag_value(bucket, key, "name").await {
            Ok(Some(current)) if current == asset.name => return Ok(Outcome::UpToDate { asset: asset.name.clone() }),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the current object's tag; syncing anyway"),
        }
        let expected_sha = release.sha256_for(asset, &self.config.os, &self.config.arch);
        if expected_sha.is_none() {
            tracing::warn!(asset = %asset.name, "GitHub publishes no SHA-256 for this asset; only its length is checked");
        }
        let upload_id = self
            .store
            .start_upload(bucket, key, &[("name".to_string(), asset.name.clone())], &self.config.encryption)
            .await?;
        match self.stream(&upload_id, &asset.browser_download_url, asset.size, expected_sha.as_deref(), deadline).await
        {
            Ok((parts, bytes)) => {
                if let Err(e) = self.store.complete_upload(bucket, key, &upload_id, &parts).await {
                    self.abort(&upload_id).await;
                    return Err(e.into());
                }
                Ok(Outcome::Synced { asset: asset.name.clone(), version: release.version().to_string(), bytes })
            }
            Err(e) => {
                self.abort(&upload_id).await;
                Err(e)
            }
        }
    }

    async fn abort(&self, upload_id: &str) {
        if let Err(e) = self.store.abort_upload(&self.config.bucket, &self.config.key, upload_id).await {
            // S3's lifecycle rule (abort incomplete uploads after 7 days) cleans up behind us.
            tracing::warn!(error = %e, "aborting the multipart upload failed");
        }
    }

    /// Downloads `url` into the upload's parts, hashing as it goes; returns the parts and size.
    async fn stream(
        &self,
        upload_id: &str,
        url: &str,
        expected_size: u64,
        expected_sha: Option<&str>,
        deadline: Deadline,
    ) -> Result<(Vec<(i32, String)>, u64), SyncError> {
        let mut download = self.github.download(url, deadline).await?;
        let expected = download.length.unwrap_or(expected_size).max(expected_size);
        let mut in_flight = InFlight::default();
        let result = self.stream_parts(&mut in_flight, &mut download, upload_id, expected, expected_sha).await;
        if result.is_err() {
            // Stop the part uploads still running before the caller aborts the upload: a part
            // that lands after the abort would keep its storage until the lifecycle rule.
            in_flight.cancel().await;
        }
        result
    }

    async fn stream_parts(
        &self,
        in_flight: &mut InFlight,
        download: &mut common::github::client::Download,
        upload_id: &str,
        expected: u64,
        expected_sha: Option<&str>,
    ) -> Result<(Vec<(i32, String)>, u64), SyncError> {
        let mut hasher = Sha256::new();
        let mut pool = PartPool::default();
        let mut buffer = pool.take();
        let mut total: u64 = 0;
        let mut number = 0;
        let mut parts = Vec::new();
        loop {
            let chunk = download.chunk().await.transpose()?;
            let done = chunk.is_none();
            let mut rest = chunk.unwrap_or_default();
            if !rest.is_empty() {
                hasher.update(&rest);
                total += rest.len() as u64;
            }
            // Fill the part up to exactly PART_SIZE (a buffer never grows past its allocation),
            // send each full part, and the last one (or an empty first part for an empty asset).
            loop {
                let room = PART_SIZE - buffer.len();
                let now = rest.split_to(rest.len().min(room));
                buffer.extend_from_slice(&now);
                let full = buffer.len() == PART_SIZE;
                let last = done && (!buffer.is_empty() || number == 0);
                if !full && !last {
                    break;
                }
                number += 1;
                if in_flight.0.len() >= PARTS_IN_FLIGHT
                    && let Some(oldest) = in_flight.0.pop_front()
                {
                    let (n, etag, sent) = oldest.await.map_err(|e| SyncError::Task(e.to_string()))??;
                    parts.push((n, etag));
                    pool.give_back(sent);
                }
                let part = std::mem::replace(&mut buffer, pool.take()).freeze();
                let (store, bucket, key, id) =
                    (self.store.clone(), self.config.bucket.clone(), self.config.key.clone(), upload_id.to_string());
                in_flight.0.push_back(tokio::spawn(async move {
                    let etag = store.upload_part(&bucket, &key, &id, number, part.clone()).await?;
                    Ok((number, etag, part))
                }));
                if last {
                    break;
                }
            }
            if done {
                break;
            }
        }
        while let Some(task) = in_flight.0.pop_front() {
            let (n, etag, _) = task.await.map_err(|e| SyncError::Task(e.to_string()))??;
            parts.push((n, etag));
        }
        if total != expected {
            return Err(SyncError::Short { got: total, expected });
        }
        if let Some(expected) = expected_sha {
            let got = hex(&hasher.finalize());
            if got != expected {
                return Err(SyncError::Checksum { got, expected: expected.to_string() });
            }
        }
        parts.sort_by_key(|(n, _)| *n);
        Ok((parts, total))
    }
}

/// An uploaded part: its number, its ETag and its buffer (back for reuse).
type SentPart = (i32, String, Bytes);

/// The part uploads running, oldest first. Dropped (the invocation's future cancelled), it
/// cancels them: no upload outlives the sync that started it.
#[derive(Default)]
struct InFlight(std::collections::VecDeque<tokio::task::JoinHandle<Result<SentPart, AwsError>>>);

impl InFlight {
    /// Cancels every upload and waits until each has stopped.
    async fn cancel(&mut self) {
        for task in &self.0 {
            task.abort();
        }
        while let Some(task) = self.0.pop_front() {
            let _ = task.await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Part buffers of exactly `PART_SIZE`, reused once their upload is done: the download holds at
/// most `PARTS_IN_FLIGHT + 1` parts whatever the asset's size, and no allocation is repeated
/// (fresh 8 MiB allocations per part let the allocator's high-water mark creep up with size).
#[derive(Default)]
struct PartPool {
    spare: Vec<BytesMut>,
}

impl PartPool {
    fn take(&mut self) -> BytesMut {
        self.spare.pop().unwrap_or_else(|| BytesMut::with_capacity(PART_SIZE))
    }

    /// Keeps the part's buffer when the upload released it (the S3 client holds no clone).
    fn give_back(&mut self, sent: Bytes) {
        if let Ok(mut buffer) = sent.try_into_mut()
            && buffer.capacity() >= PART_SIZE
        {
            buffer.clear();
            self.spare.push(buffer);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The syncer with real clients, as Lambda runs it (S3 through `sdk`, GitHub through the
/// configured URLs). `run()` and the local runner (`crates/local`) both build it here.
pub fn build(config: &Config, sdk: &common::aws::SdkConfig, metrics: Metrics) -> Result<Syncer, String> {
    let store = Arc::new(common::aws::s3::S3ObjectStore::new(sdk));
    let github = GithubClient::configured(&config.github, Vec::new())?;
    Ok(Syncer::new(config.clone(), github, store, metrics))
}

/// Starts the function: reads its configuration, then serves scheduled and S3 events.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_logging();
    let config = Config::from_lookup(&common::lambda::process_env)
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let sdk = common::aws::load_sdk_config(Duration::from_secs(30), 3).await;
    let syncer = build(&config, &sdk, Metrics::stdout(&config.telemetry))?;
    let syncer = &syncer;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let deadline = common::lambda::deadline_of(&event.context);
            syncer.run_once(deadline).await.map(|o| o.to_json()).map_err(|e| lambda_runtime::Error::from(e.to_string()))
        },
    ))
    .await
}
