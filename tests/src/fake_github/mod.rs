//! A stateful fake of the GitHub REST API, for tests, benchmarks and the local demo.
//!
//! It speaks the real paths and JSON shapes of every endpoint the functions use (upstream
//! §1.13), on a free loopback port, both at the root (github.com mode) and under `/api/v3`
//! (GHES mode). It is *not* a mock with canned answers: runners created by a JIT config show up
//! in the runner list, deleting a runner that is running a job answers 422, installation tokens
//! expire, and App JWTs are verified against the App's public key.
//!
//! Control (decisions.md #21) is in-process through the methods of [`FakeGithub`], and over HTTP
//! under `/_fake/...` (a prefix the real API never uses) for processes outside the test.
//!
//! What it enforces, as GitHub does:
//! - primary rate limit per installation (5,000 requests per hour by default, `x-ratelimit-*`);
//! - secondary limits per App (decisions.md #23): 900 points per minute per endpoint (GET 1
//!   point, writes 5) and 100 concurrent requests; beyond them, 403 with `retry-after`;
//! - the `busy` flag of a runner lags what the runner really does by a configurable time (the
//!   API *reports* the old value), while DELETE of a runner really running a job answers 422.

mod hooks;
mod routes;

pub use hooks::DeliveryAttempt;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Whose runners: an organization or a repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Scope {
    Org(String),
    Repo(String, String),
}

impl Scope {
    pub fn org(org: &str) -> Self {
        Scope::Org(org.to_string())
    }

    pub fn repo(owner: &str, repo: &str) -> Self {
        Scope::Repo(owner.to_string(), repo.to_string())
    }

    /// The account login that owns the scope.
    pub fn account(&self) -> &str {
        match self {
            Scope::Org(o) | Scope::Repo(o, _) => o,
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Route template, e.g. `POST /orgs/{org}/actions/runners/generate-jitconfig`.
    pub endpoint: String,
    pub status: u16,
    pub caller: String,
    #[serde(skip)]
    pub at: Instant,
}

/// An injected failure for requests matching an endpoint.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Matches when the route template (`GET /orgs/{org}/actions/runners`) or the concrete
    /// path contains this text.
    pub matches: String,
    pub method: Option<String>,
    /// Answer with this status (and headers, body); `None` only delays the real answer.
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub delay: Duration,
    /// Handle the request for real, then hold the answer this long: the write takes effect,
    /// but a client that gives up first sees a timeout (and may retry a write that succeeded).
    pub answer_delay: Duration,
    /// How many requests it applies to; `None` for all.
    pub times: Option<u32>,
}

impl Fault {
    pub fn status(method: &str, matches: &str, status: u16) -> Self {
        Self {
            matches: matches.to_string(),
            method: Some(method.to_string()),
            status: Some(status),
            headers: Vec::new(),
            body: json!({"message": format!("injected {status}")}),
            delay: Duration::ZERO,
            answer_delay: Duration::ZERO,
            times: None,
        }
    }

    /// A secondary-rate-limit answer with `retry-after`.
    pub fn rate_limited(method: &str, matches: &str, retry_after_secs: u64) -> Self {
        let mut f = Self::status(method, matches, 403);
        f.headers.push(("retry-after".into(), retry_after_secs.to_string()));
        f.body = json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"});
        f
    }

    /// Delays the real answer (a timeout when longer than the client waits).
    pub fn delay(method: &str, matches: &str, delay: Duration) -> Self {
        let mut f = Self::status(method, matches, 0);
        f.status = None;
        f.delay = delay;
        f
    }

    /// The request takes effect; its answer comes `delay` later.
    pub fn slow_answer(method: &str, matches: &str, delay: Duration) -> Self {
        let mut f = Self::status(method, matches, 0);
        f.status = None;
        f.answer_delay = delay;
        f
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

/// A runner as the fake keeps it.
#[derive(Debug, Clone)]
pub struct Runner {
    pub id: u64,
    pub name: String,
    pub scope: Scope,
    pub group_id: u64,
    pub labels: Vec<String>,
    pub os: String,
    /// Online: the runner process is connected (set by the simulated instance side).
    pub online: bool,
    pub ephemeral: bool,
    /// What the runner is really doing.
    pub busy_actual: bool,
    busy_previous: bool,
    busy_changed_at: Instant,
    busy_lag: Duration,
    pub job: Option<u64>,
    /// The JIT config or registration token it was created from.
    pub registered_with: String,
}

impl Runner {
    /// The `busy` value the API reports now: the real one once the lag has passed.
    pub fn busy_reported(&self, now: Instant) -> bool {
        if now.duration_since(self.busy_changed_at) >= self.busy_lag { self.busy_actual } else { self.busy_previous }
    }

    fn set_busy(&mut self, busy: bool, lag: Duration, now: Instant) {
        self.busy_previous = self.busy_reported(now);
        self.busy_actual = busy;
        self.busy_changed_at = now;
        self.busy_lag = lag;
    }
}

/// A workflow job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    pub run_id: u64,
    /// 1, then one more for each re-run of the job.
    pub run_attempt: u32,
    pub name: String,
    pub owner: String,
    pub repo: String,
    pub labels: Vec<String>,
    pub status: String,
    pub conclusion: Option<String>,
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
}

/// A release asset's content: given bytes, or bytes generated from a seed (no memory held).
#[derive(Debug, Clone)]
pub enum AssetContent {
    Bytes(bytes::Bytes),
    Generated { size: u64, seed: u64 },
}

impl AssetContent {
    pub fn len(&self) -> u64 {
        match self {
            AssetContent::Bytes(b) => b.len() as u64,
            AssetContent::Generated { size, .. } => *size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `[offset, offset + len)` of the content.
    pub fn chunk(&self, offset: u64, len: usize) -> bytes::Bytes {
        match self {
            AssetContent::Bytes(b) => {
                let start = (offset as usize).min(b.len());
                let end = (start + len).min(b.len());
                b.slice(start..end)
            }
            AssetContent::Generated { size, seed } => {
                let end = (offset + len as u64).min(*size);
                let mut out = Vec::with_capacity((end - offset) as usize);
                let mut i = offset;
                while i < end {
                    // One hash gives the 8 bytes of a block.
                    let word = generated_word(*seed, i / 8).to_le_bytes();
                    let from = (i % 8) as usize;
                    let take = (8 - from).min((end - i) as usize);
                    out.extend_from_slice(&word[from..from + take]);
                    i += take as u64;
                }
                bytes::Bytes::from(out)
            }
        }
    }

    pub fn sha256_hex(&self) -> String {
        let mut hasher = Sha256::new();
        let mut offset = 0;
        while offset < self.len() {
            let chunk = self.chunk(offset, 1 << 20);
            hasher.update(&chunk);
            offset += chunk.len() as u64;
        }
        hex(&hasher.finalize())
    }
}

/// splitmix64 of (seed, block): any offset of the content can be produced on its own.
fn generated_word(seed: u64, block: u64) -> u64 {
    let mut z = seed.wrapping_add(block.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One release asset.
#[derive(Debug, Clone)]
pub struct Asset {
    pub id: u64,
    pub name: String,
    pub content: AssetContent,
    pub sha256: String,
    /// Publish `digest: sha256:...` on the asset (GitHub does for assets uploaded since 2025).
    pub publish_digest: bool,
    /// Serve only this many bytes, then end the body early (a cut download).
    pub cut_after: Option<u64>,
    /// Flip the byte at this offset (a corrupted download).
    pub corrupt_at: Option<u64>,
}

/// One `actions/runner` release.
#[derive(Debug, Clone)]
pub struct Release {
    pub id: u64,
    pub tag: String,
    pub assets: Vec<Asset>,
    pub body: String,
}

struct App {
    public_key_pem: Vec<u8>,
    /// The App's webhook configuration (`/app/hook/config`): url, content_type, secret, insecure_ssl.
    hook_config: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone)]
struct Installation {
    id: u64,
    app_id: u64,
    account: String,
    account_type: String,
    account_id: u64,
}

struct Token {
    installation: u64,
    expires_at: SystemTime,
}

#[derive(Default)]
struct Limits {
    /// Per caller principal and endpoint: (time, points).
    windows: HashMap<(String, String), VecDeque<(Instant, u32)>>,
    in_flight: HashMap<String, usize>,
    /// Per installation: (remaining, window reset unix seconds).
    primary: HashMap<u64, (u64, u64)>,
}

pub(crate) struct State {
    base_url: String,
    apps: HashMap<u64, App>,
    installations: BTreeMap<u64, Installation>,
    tokens: HashMap<String, Token>,
    registration_tokens: HashMap<String, (Scope, SystemTime)>,
    jit_configs: HashMap<String, u64>,
    runner_groups: BTreeMap<String, Vec<(u64, String)>>,
    runners: BTreeMap<u64, Runner>,
    jobs: BTreeMap<u64, Job>,
    releases: Vec<Release>,
    requests: Vec<RecordedRequest>,
    faults: Vec<Fault>,
    limits: Limits,
    next_id: u64,
    busy_lag: Duration,
    token_lifetime: Duration,
    primary_limit: u64,
    secondary_limits: bool,
    jit_config_size: usize,
    /// Every webhook delivery attempt of every App, oldest first.
    deliveries: Vec<hooks::DeliveryAttempt>,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Settings chosen when starting the fake.
#[derive(Debug, Clone)]
pub struct FakeGithubOptions {
    /// Lifetime of installation tokens (GitHub: 1 hour).
    pub token_lifetime: Duration,
    /// Primary rate limit per installation per hour.
    pub primary_limit: u64,
    /// Enforce the secondary rate limits (decisions.md #23).
    pub secondary_limits: bool,
    /// Length of the `encoded_jit_config` strings (GitHub's are a few KB).
    pub jit_config_size: usize,
    /// Serve HTTPS with a self-signed certificate (a GHES with a private CA).
    pub tls: bool,
}

impl Default for FakeGithubOptions {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(3600),
            primary_limit: 5000,
            secondary_limits: true,
            jit_config_size: 2200,
            tls: false,
        }
    }
}

/// A running fake GitHub.
pub struct FakeGithub {
    /// Base URL, e.g. `http://127.0.0.1:41234` (github.com mode API base).
    pub url: String,
    state: Arc<Mutex<State>>,
    /// The HTTP server; `None` for a handle on the state only ([`FakeGithub::from_state`]).
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

impl FakeGithub {
    pub async fn start() -> Self {
        Self::start_with(FakeGithubOptions::default()).await
    }

    pub async fn start_with(options: FakeGithubOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let scheme = if options.tls { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().expect("local address"));
        let state = Arc::new(Mutex::new(State {
            base_url: url.clone(),
            apps: HashMap::new(),
            installations: BTreeMap::new(),
            tokens: HashMap::new(),
            registration_tokens: HashMap::new(),
            jit_configs: HashMap::new(),
            runner_groups: BTreeMap::new(),
            runners: BTreeMap::new(),
            jobs: BTreeMap::new(),
            releases: Vec::new(),
            requests: Vec::new(),
            faults: Vec::new(),
            limits: Limits::default(),
            next_id: 1000,
            busy_lag: Duration::ZERO,
            token_lifetime: options.token_lifetime,
            primary_limit: options.primary_limit,
            secondary_limits: options.secondary_limits,
            jit_config_size: options.jit_config_size,
            deliveries: Vec::new(),
        }));
        let app = routes::router(state.clone());
        let server = if options.tls {
            tokio::spawn(serve_tls(listener, app))
        } else {
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            })
        };
        Self { url, state, server: Some(server) }
    }

    /// A handle on the state behind the routes (the admin routes use the same control methods
    /// as the tests).
    pub(crate) fn from_state(state: Arc<Mutex<State>>) -> Self {
        Self { url: String::new(), state, server: None }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The API base in GHES mode (`GHES_URL` is `self.url`).
    pub fn ghes_api_url(&self) -> String {
        format!("{}/api/v3", self.url)
    }

    /// Registers an App with its public key (PEM).
    pub fn add_app(&self, app_id: u64, public_key_pem: &[u8]) {
        self.lock()
            .apps
            .insert(app_id, App { public_key_pem: public_key_pem.to_vec(), hook_config: Default::default() });
    }

    /// Sets the App's webhook (as registering the App does): where deliveries go, and the
    /// secret they are signed with.
    pub fn set_app_hook(&self, app_id: u64, url: &str, secret: &str) {
        if let Some(app) = self.lock().apps.get_mut(&app_id) {
            app.hook_config.insert("url".into(), json!(url));
            app.hook_config.insert("secret".into(), json!(secret));
            app.hook_config.insert("content_type".into(), json!("json"));
        }
    }

    /// Delivers an event of `app_id` to its webhook, as GitHub does when it happens: signed,
    /// POSTed, logged (whatever the endpoint answers). Returns the log entry.
    pub async fn deliver(&self, app_id: u64, event: &str, payload: &str) -> DeliveryAttempt {
        hooks::send_attempt(
            self.state.clone(),
            app_id,
            hooks::new_guid(),
            event.to_string(),
            payload.to_string(),
            false,
        )
        .await
    }

    /// Every delivery attempt, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryAttempt> {
        self.lock().deliveries.clone()
    }

    /// Adds an attempt to the log without sending anything (history from before the test).
    pub fn log_attempt(&self, attempt: DeliveryAttempt) -> u64 {
        let mut s = self.lock();
        let id = s.id();
        s.deliveries.push(DeliveryAttempt { id, ..attempt });
        id
    }

    /// Installs `app_id` on an account (`Organization` or `User`); returns the installation id.
    pub fn add_installation(&self, app_id: u64, account: &str, account_type: &str) -> u64 {
        let mut s = self.lock();
        let id = s.id();
        let account_id = s.id();
        s.installations.insert(
            id,
            Installation {
                id,
                app_id,
                account: account.to_string(),
                account_type: account_type.to_string(),
                account_id,
            },
        );
        if account_type == "Organization" {
            s.runner_groups.entry(account.to_lowercase()).or_insert_with(|| vec![(1, "Default".to_string())]);
        }
        id
    }

    pub fn add_runner_group(&self, org: &str, name: &str) -> u64 {
        let mut s = self.lock();
        let id = s.id();
        s.runner_groups
            .entry(org.to_lowercase())
            .or_insert_with(|| vec![(1, "Default".to_string())])
            .push((id, name.to_string()));
        id
    }

    /// Adds a queued workflow job.
    pub fn add_job(&self, owner: &str, repo: &str, labels: &[&str]) -> u64 {
        let mut s = self.lock();
        let id = s.id();
        let run_id = s.id();
        s.jobs.insert(
            id,
            Job {
                id,
                run_id,
                run_attempt: 1,
                name: "build".into(),
                owner: owner.to_string(),
                repo: repo.to_string(),
                labels: labels.iter().map(|l| l.to_string()).collect(),
                status: "queued".into(),
                conclusion: None,
                runner_id: None,
                runner_name: None,
            },
        );
        id
    }

    pub fn job(&self, id: u64) -> Option<Job> {
        self.lock().jobs.get(&id).cloned()
    }

    pub fn jobs(&self) -> Vec<Job> {
        self.lock().jobs.values().cloned().collect()
    }

    pub fn set_job_status(&self, id: u64, status: &str) {
        if let Some(j) = self.lock().jobs.get_mut(&id) {
            j.status = status.to_string();
        }
    }

    /// Adds a runner directly (as if registered earlier).
    pub fn add_runner(&self, scope: Scope, name: &str, online: bool, busy: bool) -> u64 {
        let mut s = self.lock();
        let id = s.id();
        let now = Instant::now();
        s.runners.insert(
            id,
            Runner {
                id,
                name: name.to_string(),
                scope,
                group_id: 1,
                labels: vec!["self-hosted".into(), "linux".into(), "x64".into()],
                os: "Linux".into(),
                online,
                ephemeral: false,
                busy_actual: busy,
                busy_previous: busy,
                busy_changed_at: now,
                busy_lag: Duration::ZERO,
                job: None,
                registered_with: String::new(),
            },
        );
        id
    }

    /// Sets a runner's labels (its custom ones, as `runner_extra_labels` give them, after the
    /// read-only `self-hosted`, `linux`, `x64`).
    pub fn set_custom_labels(&self, runner_id: u64, custom: &[&str]) {
        if let Some(r) = self.lock().runners.get_mut(&runner_id) {
            r.labels = ["self-hosted", "linux", "x64"].iter().chain(custom).map(|l| l.to_string()).collect();
        }
    }

    /// What GitHub's broker checks before handing `job` to a runner: the runner is registered
    /// and has every label the job asks for (case-insensitive). The job is not assigned here.
    pub fn can_take(&self, runner_id: u64, job_labels: &[&str]) -> bool {
        let s = self.lock();
        s.runners
            .get(&runner_id)
            .is_some_and(|r| job_labels.iter().all(|want| r.labels.iter().any(|have| have.eq_ignore_ascii_case(want))))
    }

    /// The runner process starts with a JIT config: the runner created by generate-jitconfig
    /// goes online. Returns its id.
    pub fn start_jit_runner(&self, encoded_jit_config: &str) -> Result<u64, String> {
        let mut s = self.lock();
        let id = *s.jit_configs.get(encoded_jit_config).ok_or("unknown JIT config")?;
        let r = s.runners.get_mut(&id).ok_or("the JIT runner was deleted")?;
        if r.online {
            return Err("this JIT config was already used".into());
        }
        r.online = true;
        Ok(id)
    }

    /// Registration tokens handed out so far.
    pub fn registration_tokens(&self) -> Vec<String> {
        self.lock().registration_tokens.keys().cloned().collect()
    }

    /// `config.sh --token <t> --name <n> --labels <l> [--ephemeral]` then `run.sh`: a runner is
    /// created and goes online. Returns its id.
    pub fn register_with_token(
        &self,
        token: &str,
        name: &str,
        labels: &[String],
        ephemeral: bool,
    ) -> Result<u64, String> {
        let mut s = self.lock();
        let (scope, expires) = s.registration_tokens.get(token).cloned().ok_or("unknown registration token")?;
        if expires < SystemTime::now() {
            return Err("registration token expired".into());
        }
        if s.runners.values().any(|r| r.scope == scope && r.name == name) {
            return Err(format!("a runner named {name} already exists"));
        }
        let id = s.id();
        let now = Instant::now();
        let mut all_labels = vec!["self-hosted".to_string(), "Linux".to_string(), "X64".to_string()];
        all_labels.extend(labels.iter().cloned());
        s.runners.insert(
            id,
            Runner {
                id,
                name: name.to_string(),
                scope,
                group_id: 1,
                labels: all_labels,
                os: "Linux".into(),
                online: true,
                ephemeral,
                busy_actual: false,
                busy_previous: false,
                busy_changed_at: now,
                busy_lag: Duration::ZERO,
                job: None,
                registered_with: token.to_string(),
            },
        );
        Ok(id)
    }

    pub fn set_runner_online(&self, id: u64, online: bool) {
        if let Some(r) = self.lock().runners.get_mut(&id) {
            r.online = online;
        }
    }

    /// Sets what a runner really does (its job started or ended), reported at once.
    pub fn set_runner_busy(&self, id: u64, busy: bool) {
        if let Some(r) = self.lock().runners.get_mut(&id) {
            r.set_busy(busy, Duration::ZERO, Instant::now());
        }
    }

    /// Removes a runner as GitHub does by itself (an ephemeral runner after its job).
    pub fn remove_runner(&self, id: u64) {
        self.lock().runners.remove(&id);
    }

    pub fn runner(&self, id: u64) -> Option<Runner> {
        self.lock().runners.get(&id).cloned()
    }

    /// The App's webhook configuration as `PATCH /app/hook/config` left it (`url`, `secret`...).
    pub fn app_hook_config(&self, app_id: u64) -> Option<serde_json::Map<String, Value>> {
        self.lock().apps.get(&app_id).map(|a| a.hook_config.clone())
    }

    pub fn runners(&self) -> Vec<Runner> {
        self.lock().runners.values().cloned().collect()
    }

    pub fn runner_by_name(&self, name: &str) -> Option<Runner> {
        self.lock().runners.values().find(|r| r.name == name).cloned()
    }

    /// The runner picks up the job: it is busy at once, the API reports it after `lag`.
    pub fn assign_job(&self, job_id: u64, runner_id: u64, lag: Duration) -> Result<(), String> {
        let mut s = self.lock();
        let now = Instant::now();
        let runner = s.runners.get_mut(&runner_id).ok_or("no such runner")?;
        if runner.busy_actual {
            return Err("runner already busy".into());
        }
        runner.set_busy(true, lag, now);
        runner.job = Some(job_id);
        let name = runner.name.clone();
        let job = s.jobs.get_mut(&job_id).ok_or("no such job")?;
        job.status = "in_progress".into();
        job.runner_id = Some(runner_id);
        job.runner_name = Some(name);
        Ok(())
    }

    /// The job ends: the runner is idle (reported after `lag`); an ephemeral runner is removed.
    pub fn finish_job(&self, job_id: u64, lag: Duration) {
        self.end_job(job_id, "success", lag);
    }

    /// The job fails, as when its runner's instance is reclaimed mid-job.
    pub fn fail_job(&self, job_id: u64, lag: Duration) {
        self.end_job(job_id, "failure", lag);
    }

    /// Re-runs a completed job as `POST /repos/{o}/{r}/actions/jobs/{id}/rerun` does: a new job
    /// (new id, same run and name, the next attempt), queued. `None` when the job cannot be re-run.
    pub fn rerun_job(&self, job_id: u64) -> Option<u64> {
        let mut s = self.lock();
        let old = s.jobs.get(&job_id).filter(|j| j.status == "completed")?.clone();
        let latest =
            s.jobs.values().filter(|j| j.run_id == old.run_id && j.name == old.name).map(|j| j.run_attempt).max();
        if latest != Some(old.run_attempt) {
            return None;
        }
        let id = s.id();
        s.jobs.insert(
            id,
            Job {
                id,
                run_attempt: old.run_attempt + 1,
                status: "queued".into(),
                conclusion: None,
                runner_id: None,
                runner_name: None,
                ..old
            },
        );
        Some(id)
    }

    fn end_job(&self, job_id: u64, conclusion: &str, lag: Duration) {
        let mut s = self.lock();
        let now = Instant::now();
        let runner_id = match s.jobs.get_mut(&job_id) {
            Some(job) => {
                job.status = "completed".into();
                job.conclusion = Some(conclusion.into());
                job.runner_id
            }
            None => None,
        };
        if let Some(rid) = runner_id {
            let remove = match s.runners.get_mut(&rid) {
                Some(r) => {
                    r.set_busy(false, lag, now);
                    r.job = None;
                    r.ephemeral
                }
                None => false,
            };
            if remove {
                s.runners.remove(&rid);
            }
        }
    }

    /// Sets the default lag of the reported `busy` flag.
    pub fn set_busy_lag(&self, lag: Duration) {
        self.lock().busy_lag = lag;
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Sets an installation's primary rate-limit state.
    pub fn set_primary_remaining(&self, installation: u64, remaining: u64, reset_unix: u64) {
        self.lock().limits.primary.insert(installation, (remaining, reset_unix));
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Requests recorded, by endpoint template (`GET /orgs/{org}/actions/runners`).
    pub fn request_counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.requests() {
            *out.entry(r.endpoint).or_insert(0) += 1;
        }
        out
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Requests whose endpoint template contains `pattern` (and method, when given).
    pub fn count(&self, method: &str, pattern: &str) -> usize {
        self.lock().requests.iter().filter(|r| r.method == method && r.endpoint.contains(pattern)).count()
    }

    /// Publishes an `actions/runner` release; the newest added is `latest`.
    pub fn add_release(&self, tag: &str, assets: Vec<(&str, AssetContent)>, publish_digests: bool) -> u64 {
        let mut s = self.lock();
        let id = s.id();
        let mut list = Vec::new();
        let mut body = String::from("## Release notes\n\n");
        for (name, content) in assets {
            let aid = s.id();
            let sha = content.sha256_hex();
            if let Some(platform) = platform_of(name) {
                body.push_str(&format!("- {name} <!-- BEGIN SHA {platform} -->{sha}<!-- END SHA {platform} -->\n"));
            }
            list.push(Asset {
                id: aid,
                name: name.to_string(),
                content,
                sha256: sha,
                publish_digest: publish_digests,
                cut_after: None,
                corrupt_at: None,
            });
        }
        s.releases.push(Release { id, tag: tag.to_string(), assets: list, body });
        id
    }

    /// Changes how an asset is served (cut short, corrupted).
    pub fn damage_asset(&self, name: &str, cut_after: Option<u64>, corrupt_at: Option<u64>) {
        let mut s = self.lock();
        for r in &mut s.releases {
            for a in &mut r.assets {
                if a.name == name {
                    a.cut_after = cut_after;
                    a.corrupt_at = corrupt_at;
                }
            }
        }
    }

    /// The published releases.
    pub fn lock_releases(&self) -> Vec<Release> {
        self.lock().releases.clone()
    }

    /// Decodes an `encoded_jit_config` the fake produced.
    pub fn decode_jit_config(encoded: &str) -> Option<Value> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Serves `app` over TLS with the test certificate for 127.0.0.1.
async fn serve_tls(listener: tokio::net::TcpListener, app: axum::Router) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("ghes-tls-cert.pem"))
        .expect("test certificate")
        .filter_map(Result::ok)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("ghes-tls-key.pem")).expect("test key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    while let Ok((stream, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            }
        });
    }
}

/// `actions-runner-linux-x64-2.321.0.tar.gz` → `linux-x64`.
fn platform_of(asset_name: &str) -> Option<String> {
    let rest = asset_name.strip_prefix("actions-runner-")?;
    let mut parts = rest.split('-');
    let os = parts.next()?;
    let arch = parts.next()?;
    Some(format!("{os}-{arch}"))
}

pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    match state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// GitHub's `simple-user` shape for an account.
pub(crate) fn account_json(base: &str, login: &str, id: u64, kind: &str) -> Value {
    json!({
        "login": login, "id": id, "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"), "gravatar_id": "",
        "url": format!("{base}/users/{login}"), "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{base}/users/{login}/followers"),
        "following_url": format!("{base}/users/{login}/following{{/other_user}}"),
        "gists_url": format!("{base}/users/{login}/gists{{/gist_id}}"),
        "starred_url": format!("{base}/users/{login}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{base}/users/{login}/subscriptions"),
        "organizations_url": format!("{base}/users/{login}/orgs"),
        "repos_url": format!("{base}/users/{login}/repos"),
        "events_url": format!("{base}/users/{login}/events{{/privacy}}"),
        "received_events_url": format!("{base}/users/{login}/received_events"),
        "type": kind, "site_admin": false
    })
}
