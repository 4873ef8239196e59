//! The GitHub REST client: App and installation authentication, bounded retries, rate limits.
//!
//! octocrab is the transport (base URL, connection pool, TLS); authentication and retry policy
//! are ours, because they must follow rules octocrab does not know:
//! - every request carries its own `Authorization` header (octocrab drops auth on absolute
//!   pagination URLs for hosts other than api.github.com, which breaks GHES);
//! - installation tokens are minted once per App installation and reused until five minutes
//!   before they expire, across invocations of a warm container;
//! - 5xx answers and transport errors are retried a bounded number of times with jittered
//!   backoff; rate-limit answers (403/429 with `retry-after` or an exhausted
//!   `x-ratelimit-remaining`) are waited out only when the wait fits before the invocation's
//!   deadline — otherwise the caller gets a retryable `RateLimited` error and hands the work
//!   back (SQS retry), never sleeping past the deadline;
//! - a rate limit is remembered for the container's life: until it passes, no request goes to
//!   that endpoint for that App (a secondary limit, `retry-after`) or to any endpoint of that App
//!   (the primary limit, `x-ratelimit-reset`); such a request fails at once with `RateLimited`.
//!   GitHub warns that requests made while limited can get an integration banned;
//! - `ghes_ssl_verify = false` turns off certificate checks for this client only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use http::{Method, Uri};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::service::middleware::base_uri::BaseUriLayer;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::GithubUrls;
use super::app::GithubApp;
use super::owner_path;
use super::pacing::{WritePacer, endpoint_template};
use crate::clock::{Clock, SystemClock};
use crate::config::Secret;
use crate::deadline::{Deadline, backoff};
use crate::domain::runner::RunnerOwner;
use crate::error::GithubError;

/// Transport settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub urls: GithubUrls,
    /// `false` only for GHES with `ghes_ssl_verify = false`.
    pub verify_tls: bool,
    pub user_agent: String,
    /// Bound on one request (connect + answer).
    pub request_timeout: Duration,
    /// Retries of 5xx answers and transport errors.
    pub max_retries: u32,
    /// Rate-limit waits per request (each only when it fits before the deadline).
    pub max_rate_limit_waits: u32,
    /// Requests in flight at once (GitHub's secondary limit is 100 per App).
    pub max_concurrency: usize,
    /// Writes per endpoint per App: burst and sustained rate (see `pacing`).
    pub write_burst: u32,
    pub writes_per_second: f64,
}

impl ClientSettings {
    pub fn new(urls: GithubUrls) -> Self {
        Self {
            urls,
            verify_tls: true,
            user_agent: "github-aws-runners".into(),
            request_timeout: Duration::from_secs(10),
            max_retries: 3,
            max_rate_limit_waits: 2,
            max_concurrency: 50,
            write_burst: 12,
            writes_per_second: 2.8,
        }
    }
}

/// Who a request is made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No credentials (public endpoints such as runner releases).
    None,
    /// The App itself, with a JWT (`/app/...`, installation lookups).
    App(usize),
    /// An App installation, with an installation token.
    Installation { app: usize, id: u64 },
}

/// A GitHub answer with a success status.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `METHOD /path` for error messages.
    pub endpoint: String,
}

impl ApiResponse {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, GithubError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| GithubError::Decode { endpoint: self.endpoint.clone(), message: e.to_string() })
    }

    /// The `rel="next"` link, as a path and query relative to the host.
    pub fn next_page(&self) -> Option<String> {
        let link = self.headers.get("link")?.to_str().ok()?;
        next_link(link)
    }
}

/// Parses a `Link` header and returns the path and query of its `rel="next"` target.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        if !params.split(';').any(|p| p.trim() == r#"rel="next""#) {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        let uri: Uri = url.parse().ok()?;
        uri.path_and_query().map(|pq| pq.as_str().to_string())
    })
}

/// The latest primary rate-limit state seen for an App.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
    /// Unix seconds when the window resets.
    pub reset: u64,
}

struct InstallationToken {
    token: Secret<String>,
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// Installation tokens are refreshed this long before they expire.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// A JWT is reused this long (it is valid for 10 minutes).
const JWT_REUSE: Duration = Duration::from_secs(300);

/// Counts of requests sent, for call-count benchmarks and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestStats {
    pub requests: u64,
    pub retries: u64,
    pub rate_limit_waits: u64,
    /// Rate-limit answers received (403/429 with a limit).
    pub rate_limits_hit: u64,
    /// Requests not sent because a remembered limit had not passed.
    pub requests_held: u64,
}

/// Which requests a rate-limit answer holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LimitScope {
    /// A secondary limit (`retry-after`, or GitHub's message): this endpoint of this App.
    Endpoint,
    /// The primary limit is exhausted (`x-ratelimit-remaining: 0`): every endpoint of this App.
    App,
}

/// The key of a remembered limit: the App and the endpoint template (`*` for the whole App).
type LimitKey = (usize, String);

/// The route key every endpoint-scoped limit of an App shares.
const WHOLE_APP: &str = "*";

pub struct GithubClient {
    http: Octocrab,
    /// For absolute URLs (release downloads): no base path to prefix.
    downloads: Octocrab,
    settings: ClientSettings,
    apps: Vec<GithubApp>,
    jwts: Mutex<HashMap<usize, (Secret<String>, Instant)>>,
    tokens: tokio::sync::Mutex<HashMap<(usize, u64), InstallationToken>>,
    installations: Mutex<HashMap<(usize, RunnerOwner), u64>>,
    rate_limits: Mutex<HashMap<usize, RateLimit>>,
    /// Rate limits GitHub answered with, until they pass.
    held_until: Mutex<HashMap<LimitKey, (Instant, u16)>>,
    /// Rate-limit answers since the caller last asked (`take_rate_limits_hit`), by App.
    hits: Mutex<HashMap<usize, u64>>,
    stats: Mutex<RequestStats>,
    in_flight: Arc<Semaphore>,
    pacer: WritePacer,
    /// Decides when a cached installation token is too close to its expiry.
    clock: Arc<dyn Clock>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl GithubClient {
    /// The client a function builds from its configuration: github.com, or GHES at
    /// `GHES_URL` (or the test-only API URL), with the default limits.
    pub fn configured(connection: &crate::config::GithubConnection, apps: Vec<GithubApp>) -> Result<Self, String> {
        let urls = super::GithubUrls::new(connection.ghes_url.as_deref(), connection.api_override.as_deref())?;
        let mut settings = ClientSettings::new(urls);
        settings.verify_tls = connection.verify_tls;
        settings.user_agent = connection.user_agent.clone();
        Self::new(settings, apps).map_err(|e| e.to_string())
    }

    pub fn new(settings: ClientSettings, apps: Vec<GithubApp>) -> Result<Self, GithubError> {
        let http = build_transport(&settings.urls.api, settings.verify_tls)?;
        let downloads = build_transport("https://github.com", settings.verify_tls)?;
        Ok(Self {
            http,
            downloads,
            in_flight: Arc::new(Semaphore::new(settings.max_concurrency.max(1))),
            pacer: WritePacer::new(settings.write_burst, settings.writes_per_second),
            settings,
            apps,
            jwts: Mutex::new(HashMap::new()),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            installations: Mutex::new(HashMap::new()),
            rate_limits: Mutex::new(HashMap::new()),
            held_until: Mutex::new(HashMap::new()),
            hits: Mutex::new(HashMap::new()),
            stats: Mutex::new(RequestStats::default()),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same client on another clock (tests move time instead of sleeping).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn apps(&self) -> &[GithubApp] {
        &self.apps
    }

    pub fn urls(&self) -> &GithubUrls {
        &self.settings.urls
    }

    pub fn stats(&self) -> RequestStats {
        lock(&self.stats).clone()
    }

    /// The latest rate-limit state seen for an App.
    pub fn rate_limit(&self, app: usize) -> Option<RateLimit> {
        lock(&self.rate_limits).get(&app).copied()
    }

    /// Picks the App for this invocation: the one with the most requests left in its rate limit,
    /// at random among Apps not seen yet (upstream picks at random).
    pub fn choose_app(&self) -> usize {
        let n = self.apps.len().max(1);
        let limits = lock(&self.rate_limits);
        let unseen: Vec<usize> = (0..n).filter(|i| !limits.contains_key(i)).collect();
        if !unseen.is_empty() {
            return unseen[fastrand::usize(0..unseen.len())];
        }
        (0..n).max_by_key(|i| limits.get(i).map_or(0, |r| r.remaining)).unwrap_or(0)
    }

    fn app(&self, index: usize) -> Result<&GithubApp, GithubError> {
        self.apps.get(index).ok_or_else(|| GithubError::Credentials(format!("no GitHub App with index {index}")))
    }

    fn jwt(&self, app: usize) -> Result<Secret<String>, GithubError> {
        if let Some((jwt, at)) = lock(&self.jwts).get(&app)
            && at.elapsed() < JWT_REUSE
        {
            return Ok(jwt.clone());
        }
        let jwt = self.app(app)?.jwt(SystemTime::now())?;
        lock(&self.jwts).insert(app, (jwt.clone(), Instant::now()));
        Ok(jwt)
    }

    /// An installation token for `installation`, minted when none is cached or it expires soon.
    pub async fn installation_token(
        &self,
        app: usize,
        installation: u64,
        deadline: Deadline,
    ) -> Result<Secret<String>, GithubError> {
        let mut tokens = self.tokens.lock().await;
        if let Some(t) = tokens.get(&(app, installation))
            && t.expires_at > self.clock.now() + TOKEN_REFRESH_MARGIN
        {
            return Ok(t.token.clone());
        }
        #[derive(Deserialize)]
        struct Minted {
            token: String,
            expires_at: chrono::DateTime<chrono::Utc>,
        }
        let path = format!("/app/installations/{installation}/access_tokens");
        let response = self.send(Auth::App(app), Method::POST, &path, Some(&serde_json::json!({})), deadline).await?;
        let minted: Minted = response.json()?;
        let token = Secret::new(minted.token);
        tokens.insert((app, installation), InstallationToken { token: token.clone(), expires_at: minted.expires_at });
        Ok(token)
    }

    async fn forget_token(&self, app: usize, installation: u64) {
        self.tokens.lock().await.remove(&(app, installation));
    }

    /// The installation of `app` on `owner`: the App's stored id, a cached lookup, the id from
    /// the webhook payload (`hint`, primary App only: other Apps have other installations), or
    /// an API lookup.
    pub async fn installation_id(
        &self,
        app: usize,
        owner: &RunnerOwner,
        hint: Option<u64>,
        deadline: Deadline,
    ) -> Result<u64, GithubError> {
        if let Some(id) = self.app(app)?.installation_id {
            return Ok(id);
        }
        if let Some(id) = lock(&self.installations).get(&(app, owner.clone())) {
            return Ok(*id);
        }
        if let Some(id) = hint.filter(|id| *id != 0 && app == 0) {
            lock(&self.installations).insert((app, owner.clone()), id);
            return Ok(id);
        }
        self.lookup_installation(app, owner, deadline).await
    }

    async fn lookup_installation(
        &self,
        app: usize,
        owner: &RunnerOwner,
        deadline: Deadline,
    ) -> Result<u64, GithubError> {
        #[derive(Deserialize)]
        struct Installation {
            id: u64,
        }
        let path = format!("{}/installation", owner_path(owner));
        let found: Installation = self.send(Auth::App(app), Method::GET, &path, None, deadline).await?.json()?;
        lock(&self.installations).insert((app, owner.clone()), found.id);
        Ok(found.id)
    }

    /// A client for one owner's installation, with a token ready. A stale installation id (the
    /// token mint answers 404) is looked up again once.
    pub async fn for_owner(
        &self,
        app: usize,
        owner: &RunnerOwner,
        hint: Option<u64>,
        deadline: Deadline,
    ) -> Result<Installation<'_>, GithubError> {
        let id = self.installation_id(app, owner, hint, deadline).await?;
        match self.installation_token(app, id, deadline).await {
            Ok(_) => Ok(Installation { client: self, app, id, deadline }),
            Err(e) if e.is_not_found() => {
                lock(&self.installations).remove(&(app, owner.clone()));
                let fresh = self.lookup_installation(app, owner, deadline).await?;
                if fresh == id {
                    return Err(e);
                }
                self.installation_token(app, fresh, deadline).await?;
                Ok(Installation { client: self, app, id: fresh, deadline })
            }
            Err(e) => Err(e),
        }
    }

    /// Remembers a rate limit: no request for `template` (or the whole App) until it passes.
    fn hold(&self, app: usize, template: &str, scope: LimitScope, wait: Duration, status: u16) {
        let key = match scope {
            LimitScope::Endpoint => template.to_string(),
            LimitScope::App => WHOLE_APP.to_string(),
        };
        let until = Instant::now() + wait;
        let mut held = lock(&self.held_until);
        let entry = held.entry((app, key.clone())).or_insert((until, status));
        if entry.0 < until {
            *entry = (until, status);
        }
        drop(held);
        lock(&self.stats).rate_limits_hit += 1;
        *lock(&self.hits).entry(app).or_default() += 1;
        let app_id = self.apps.get(app).map_or(0, |a| a.app_id);
        tracing::warn!(
            app_id,
            endpoint = %key,
            status,
            retry_after_s = wait.as_secs(),
            "GitHub rate limit hit: no request goes there for this App until it passes"
        );
    }

    /// The time left on a remembered limit covering `template` for `app`, and the status it came with.
    fn held(&self, app: usize, template: &str) -> Option<(Duration, u16)> {
        let now = Instant::now();
        let mut held = lock(&self.held_until);
        held.retain(|_, (until, _)| *until > now);
        [template, WHOLE_APP]
            .iter()
            .filter_map(|key| held.get(&(app, key.to_string())))
            .max_by_key(|(until, _)| *until)
            .map(|(until, status)| (until.saturating_duration_since(now), *status))
    }

    /// How long requests to `method path` for `app` are held back by a remembered limit.
    pub fn held_for(&self, app: usize, method: &Method, path: &str) -> Option<Duration> {
        self.held(app, &format!("{method} {}", endpoint_template(path))).map(|(wait, _)| wait)
    }

    /// Rate-limit answers since the last call, for `app`.
    pub fn take_rate_limits_hit(&self, app: usize) -> u64 {
        lock(&self.hits).remove(&app).unwrap_or(0)
    }

    /// Sends one request with the retry policy described in the module docs.
    pub async fn send(
        &self,
        auth: Auth,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        deadline: Deadline,
    ) -> Result<ApiResponse, GithubError> {
        let endpoint = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let template = format!("{method} {}", endpoint_template(path));
        let app = match auth {
            Auth::App(app) | Auth::Installation { app, .. } => Some(app),
            Auth::None => None,
        };
        let mut rate_limit_waits = 0u32;
        if let Some(app) = app
            && let Some((wait, status)) = self.held(app, &template)
        {
            // Waited out only when it fits, as an answered limit is; otherwise the work goes
            // back at once, and GitHub sees no request.
            if self.settings.max_rate_limit_waits > 0 && deadline.allows(wait, Duration::from_secs(1)) {
                rate_limit_waits += 1;
                lock(&self.stats).rate_limit_waits += 1;
                tokio::time::sleep(wait).await;
            } else {
                lock(&self.stats).requests_held += 1;
                return Err(GithubError::RateLimited { endpoint, status, retry_after: Some(wait) });
            }
        }
        if method != Method::GET
            && let Some(app) = app
        {
            let wait = self.pacer.reserve(app, &template);
            if !wait.is_zero() {
                if !deadline.allows(wait, Duration::from_secs(1)) {
                    self.pacer.refund(app, &template);
                    return Err(GithubError::Deadline {
                        endpoint,
                        message: format!("the write pace needs {} ms more than is left", wait.as_millis()),
                    });
                }
                tokio::time::sleep(wait).await;
            }
        }
        let mut retries = 0u32;
        let mut reauthenticated = false;
        loop {
            if deadline.is_past() {
                return Err(GithubError::Deadline { endpoint, message: "no time left to send the request".into() });
            }
            let authorization = match auth {
                Auth::None => None,
                Auth::App(app) => Some(self.jwt(app)?),
                Auth::Installation { app, id } => Some(Box::pin(self.installation_token(app, id, deadline)).await?),
            };
            let outcome = self.attempt(&method, path, body, authorization.as_ref(), deadline).await;
            lock(&self.stats).requests += 1;
            let (status, headers, bytes) = match outcome {
                Ok(r) => r,
                Err(message) => {
                    if retries < self.settings.max_retries {
                        let wait = backoff(retries, Duration::from_millis(200), Duration::from_secs(3));
                        if deadline.allows(wait, Duration::from_secs(1)) {
                            retries += 1;
                            lock(&self.stats).retries += 1;
                            tracing::warn!(endpoint = %endpoint, error = %message, attempt = retries, "GitHub request failed, retrying");
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                    }
                    return Err(GithubError::Transport { endpoint, message });
                }
            };
            if let Auth::App(app) | Auth::Installation { app, .. } = auth {
                self.record_rate_limit(app, &headers);
            }
            if (200..400).contains(&status) {
                return Ok(ApiResponse { status, headers, body: bytes, endpoint });
            }
            if let Some((wait, scope)) = rate_limit_wait(status, &headers, &bytes) {
                if let Some(app) = app {
                    self.hold(app, &template, scope, wait, status);
                }
                if rate_limit_waits < self.settings.max_rate_limit_waits
                    && deadline.allows(wait, Duration::from_secs(1))
                {
                    rate_limit_waits += 1;
                    lock(&self.stats).rate_limit_waits += 1;
                    tracing::warn!(endpoint = %endpoint, wait_ms = wait.as_millis() as u64, "GitHub rate limit, waiting");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(GithubError::RateLimited { endpoint, status, retry_after: Some(wait) });
            }
            if status == 401
                && !reauthenticated
                && let Auth::Installation { app, id } = auth
            {
                // The token was revoked or expired early: mint a new one, once.
                reauthenticated = true;
                self.forget_token(app, id).await;
                continue;
            }
            if status >= 500 && retries < self.settings.max_retries {
                let wait = backoff(retries, Duration::from_millis(200), Duration::from_secs(3));
                if deadline.allows(wait, Duration::from_secs(1)) {
                    retries += 1;
                    lock(&self.stats).retries += 1;
                    tracing::warn!(endpoint = %endpoint, status, attempt = retries, "GitHub server error, retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Err(GithubError::Status { endpoint, status, message: error_message(&bytes) });
        }
    }

    /// One HTTP exchange; `Err` is a transport problem (no status).
    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
        authorization: Option<&Secret<String>>,
        deadline: Deadline,
    ) -> Result<(u16, HeaderMap, Bytes), String> {
        let _permit = self.in_flight.acquire().await.map_err(|e| e.to_string())?;
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(USER_AGENT, &self.settings.user_agent)
            .header(ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(token) = authorization {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| "invalid credential characters".to_string())?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        let request = match body {
            Some(b) => {
                builder.header(CONTENT_TYPE, "application/json").body(b.to_string()).map_err(|e| e.to_string())?
            }
            None => builder.body(String::new()).map_err(|e| e.to_string())?,
        };
        let limit = self.settings.request_timeout.min(deadline.remaining());
        let exchange = async {
            let response = self.http.execute(request).await.map_err(|e| transport_message(&e))?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(|e| transport_message(&e))?.to_bytes();
            Ok::<_, String>((parts.status.as_u16(), parts.headers, bytes))
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
        }
    }

    /// Starts downloading an absolute URL without credentials, following redirects (release
    /// assets redirect from github.com to their storage host).
    pub async fn download(&self, url: &str, deadline: Deadline) -> Result<Download, GithubError> {
        let mut url = url.to_string();
        for _ in 0..5 {
            let request = http::Request::builder()
                .method(Method::GET)
                .uri(&url)
                .header(USER_AGENT, &self.settings.user_agent)
                .header(ACCEPT, "application/octet-stream")
                .body(String::new())
                .map_err(|e| GithubError::Transport { endpoint: format!("GET {url}"), message: e.to_string() })?;
            let limit = self.settings.request_timeout.min(deadline.remaining());
            let response = match tokio::time::timeout(limit, self.downloads.execute(request)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    return Err(GithubError::Transport {
                        endpoint: format!("GET {url}"),
                        message: transport_message(&e),
                    });
                }
                Err(_) => {
                    return Err(GithubError::Transport { endpoint: format!("GET {url}"), message: "no answer".into() });
                }
            };
            let status = response.status().as_u16();
            if (300..400).contains(&status)
                && let Some(location) = response.headers().get(http::header::LOCATION).and_then(|v| v.to_str().ok())
            {
                url = location.to_string();
                continue;
            }
            if status != 200 {
                return Err(GithubError::Status {
                    endpoint: format!("GET {url}"),
                    status,
                    message: "download failed".into(),
                });
            }
            let length = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            return Ok(Download { body: response.into_body(), length, deadline, endpoint: format!("GET {url}") });
        }
        Err(GithubError::Transport { endpoint: format!("GET {url}"), message: "too many redirects".into() })
    }

    fn record_rate_limit(&self, app: usize, headers: &HeaderMap) {
        let num = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
        if let (Some(limit), Some(remaining), Some(reset)) =
            (num("x-ratelimit-limit"), num("x-ratelimit-remaining"), num("x-ratelimit-reset"))
        {
            lock(&self.rate_limits).insert(app, RateLimit { limit, remaining, reset });
        }
    }
}

/// A download in progress: the body, read chunk by chunk.
pub struct Download {
    body: http_body_util::combinators::BoxBody<Bytes, octocrab::Error>,
    /// `Content-Length`, when the server sent it.
    pub length: Option<u64>,
    deadline: Deadline,
    endpoint: String,
}

impl Download {
    /// The next chunk; `None` at the end. Waits at most 30 s for a chunk, and never past the
    /// deadline.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, GithubError>> {
        let limit = Duration::from_secs(30).min(self.deadline.remaining());
        loop {
            let frame = match tokio::time::timeout(limit, self.body.frame()).await {
                Err(_) => {
                    return Some(Err(GithubError::Transport {
                        endpoint: self.endpoint.clone(),
                        message: "the download stalled".into(),
                    }));
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    return Some(Err(GithubError::Transport {
                        endpoint: self.endpoint.clone(),
                        message: transport_message(&e),
                    }));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                return Some(Ok(data));
            }
        }
    }
}

/// How long GitHub asks us to wait, when the answer is a rate limit.
fn rate_limit_wait(status: u16, headers: &HeaderMap, body: &[u8]) -> Option<(Duration, LimitScope)> {
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some((Duration::from_secs(secs), LimitScope::Endpoint));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())?;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        return Some((Duration::from_secs(reset.saturating_sub(now) + 1), LimitScope::App));
    }
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    if status == 429 || text.contains("secondary rate limit") || text.contains("rate limit exceeded") {
        // GitHub's advice when it gives no retry-after: wait at least a minute.
        return Some((Duration::from_secs(60), LimitScope::Endpoint));
    }
    None
}

fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct GithubMessage {
        message: String,
    }
    match serde_json::from_slice::<GithubMessage>(body) {
        Ok(m) => m.message,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            text.chars().take(200).collect()
        }
    }
}

fn transport_message(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Builds the octocrab transport for `api_base`. With `verify_tls = false` the server
/// certificate is not checked (GHES with a private CA, `ghes_ssl_verify = false`).
pub fn build_transport(api_base: &str, verify_tls: bool) -> Result<Octocrab, GithubError> {
    let base: Uri = api_base
        .parse()
        .map_err(|_| GithubError::Credentials(format!("`{api_base}` is not a valid GitHub API URL")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let connector = if verify_tls {
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider.clone())
            .map_err(|e| GithubError::Credentials(format!("cannot load the system's root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build()
    } else {
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| GithubError::Credentials(format!("TLS setup failed: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCertificate(provider)))
            .with_no_client_auth();
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_or_http().enable_http1().build()
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(50))
        .build::<_, octocrab::OctoBody>(connector);
    Ok(octocrab::OctocrabBuilder::new_empty()
        .with_service(client)
        .with_layer(&BaseUriLayer::new(base))
        .with_auth(octocrab::AuthState::None)
        .build()
        .unwrap_or_else(|never| match never {}))
}

mod insecure {
    //! Certificate checks switched off, for GHES with `ghes_ssl_verify = false` only.

    use std::sync::Arc;

    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    pub struct AcceptAnyCertificate(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

/// Requests made as one App installation, within one invocation's deadline.
pub struct Installation<'a> {
    client: &'a GithubClient,
    pub app: usize,
    pub id: u64,
    pub deadline: Deadline,
}

impl Installation<'_> {
    pub fn client(&self) -> &GithubClient {
        self.client
    }

    fn auth(&self) -> Auth {
        Auth::Installation { app: self.app, id: self.id }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, GithubError> {
        self.client.send(self.auth(), Method::GET, path, None, self.deadline).await?.json()
    }

    pub async fn get_response(&self, path: &str) -> Result<ApiResponse, GithubError> {
        self.client.send(self.auth(), Method::GET, path, None, self.deadline).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T, GithubError> {
        self.client.send(self.auth(), Method::POST, path, Some(body), self.deadline).await?.json()
    }

    /// POST whose answer has no body worth reading; Ok carries the success status.
    pub async fn post_status(&self, path: &str, body: &serde_json::Value) -> Result<u16, GithubError> {
        Ok(self.client.send(self.auth(), Method::POST, path, Some(body), self.deadline).await?.status)
    }

    /// DELETE; Ok carries the success status (204).
    pub async fn delete(&self, path: &str) -> Result<u16, GithubError> {
        Ok(self.client.send(self.auth(), Method::DELETE, path, None, self.deadline).await?.status)
    }

    /// Every item of a paginated list, following `Link: rel="next"` with this installation's
    /// token (never losing auth on absolute URLs). `field` names the array in each page.
    pub async fn get_all_pages<T: DeserializeOwned>(
        &self,
        first_path: &str,
        field: &str,
    ) -> Result<Vec<T>, GithubError> {
        let mut items = Vec::new();
        let mut next = Some(first_path.to_string());
        while let Some(path) = next {
            let response = self.get_response(&path).await?;
            let mut page: serde_json::Value = response.json()?;
            let list = page.get_mut(field).map(serde_json::Value::take).ok_or_else(|| GithubError::Decode {
                endpoint: response.endpoint.clone(),
                message: format!("no `{field}` array in the page"),
            })?;
            let mut parsed: Vec<T> = serde_json::from_value(list)
                .map_err(|e| GithubError::Decode { endpoint: response.endpoint.clone(), message: e.to_string() })?;
            items.append(&mut parsed);
            next = response.next_page();
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header() {
        let link = r#"<https://api.github.com/organizations/1/actions/runners?per_page=100&page=2>; rel="next", <https://api.github.com/organizations/1/actions/runners?per_page=100&page=3>; rel="last""#;
        assert_eq!(next_link(link).as_deref(), Some("/organizations/1/actions/runners?per_page=100&page=2"));
        let ghes = r#"<https://ghes.example.com/api/v3/orgs/a/actions/runners?page=3>; rel="next""#;
        assert_eq!(next_link(ghes).as_deref(), Some("/api/v3/orgs/a/actions/runners?page=3"));
        assert_eq!(next_link(r#"<https://x/y?page=1>; rel="prev""#), None);
    }

    #[test]
    fn rate_limit_detection() {
        let mut h = HeaderMap::new();
        assert_eq!(rate_limit_wait(500, &h, b""), None);
        assert_eq!(rate_limit_wait(403, &h, br#"{"message":"Resource not accessible by integration"}"#), None);
        assert_eq!(
            rate_limit_wait(403, &h, br#"{"message":"You have exceeded a secondary rate limit."}"#),
            Some((Duration::from_secs(60), LimitScope::Endpoint))
        );
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(rate_limit_wait(429, &h, b""), Some((Duration::from_secs(7), LimitScope::Endpoint)));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        let reset = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 30;
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&reset.to_string()).unwrap());
        let (wait, scope) = rate_limit_wait(403, &h, b"").unwrap();
        assert!(wait >= Duration::from_secs(29) && wait <= Duration::from_secs(32), "{wait:?}");
        assert_eq!(scope, LimitScope::App, "the primary limit covers every endpoint");
    }

    #[test]
    fn error_messages_come_from_github_json() {
        assert_eq!(error_message(br#"{"message":"Not Found","documentation_url":"x"}"#), "Not Found");
        assert_eq!(error_message(b"<html>bad gateway</html>"), "<html>bad gateway</html>");
    }
}
