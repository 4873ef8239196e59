//! The fake's HTTP surface: GitHub REST routes behind a gate that authenticates, injects
//! faults, enforces rate limits and records every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{MatchedPath, OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{RecordedRequest, Runner, Scope, State as FakeState, account_json, lock};

type Shared = Arc<Mutex<FakeState>>;

/// Who is calling, as established by the gate.
#[derive(Debug, Clone)]
enum Caller {
    Anonymous,
    App(u64),
    Installation(u64),
    Invalid(String),
}

impl Caller {
    fn principal(&self) -> String {
        match self {
            Caller::Anonymous | Caller::Invalid(_) => "anonymous".into(),
            Caller::App(id) => format!("app:{id}"),
            Caller::Installation(id) => format!("installation:{id}"),
        }
    }
}

pub(super) fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/app/installations/{id}/access_tokens", post(create_installation_token))
        .route("/app/hook/config", get(get_hook_config).patch(update_hook_config))
        .route("/app/hook/deliveries", get(list_deliveries))
        .route("/app/hook/deliveries/{id}/attempts", post(redeliver))
        .route("/orgs/{org}/installation", get(org_installation))
        .route("/repos/{owner}/{repo}/installation", get(repo_installation))
        .route("/repos/{owner}/{repo}/actions/jobs/{job_id}", get(get_job))
        .route("/repos/{owner}/{repo}/actions/jobs/{job_id}/rerun", post(rerun_job))
        .route("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", get(run_jobs))
        .route("/orgs/{org}/actions/runners/registration-token", post(org_registration_token))
        .route("/repos/{owner}/{repo}/actions/runners/registration-token", post(repo_registration_token))
        .route("/orgs/{org}/actions/runners/generate-jitconfig", post(org_jit_config))
        .route("/repos/{owner}/{repo}/actions/runners/generate-jitconfig", post(repo_jit_config))
        .route("/orgs/{org}/actions/runner-groups", get(runner_groups))
        .route("/orgs/{org}/actions/runners", get(org_runners))
        .route("/repos/{owner}/{repo}/actions/runners", get(repo_runners))
        .route("/orgs/{org}/actions/runners/{id}", get(org_runner).delete(delete_org_runner))
        .route("/repos/{owner}/{repo}/actions/runners/{id}", get(repo_runner).delete(delete_repo_runner))
        .route("/orgs/{org}/actions/runners/{id}/labels", delete(delete_org_runner_labels))
        .route("/repos/{owner}/{repo}/actions/runners/{id}/labels", delete(delete_repo_runner_labels))
        .route("/repos/actions/runner/releases/latest", get(latest_release))
        .route("/repos/actions/runner/releases", get(list_releases))
        .route("/repos/actions/runner/releases/tags/{tag}", get(release_by_tag))
        .route_layer(middleware::from_fn_with_state(state.clone(), gate));
    let downloads = Router::new().route("/actions/runner/releases/download/{tag}/{name}", get(download_asset));
    let admin = Router::new()
        .route("/_fake/state", get(admin_state))
        .route("/_fake/requests", get(admin_requests))
        .route("/_fake/runners/register", post(admin_register_runner))
        .route("/_fake/runners/jit", post(admin_start_jit_runner))
        .route("/_fake/runners/{id}/job", post(admin_take_job))
        .route("/_fake/jobs/{id}/finish", post(admin_finish_job));
    Router::new()
        .merge(api.clone())
        .nest("/api/v3", api)
        .merge(downloads)
        .merge(admin)
        .fallback(not_found)
        .with_state(state)
}

fn github_error(status: u16, message: &str) -> Response {
    let body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": status.to_string(),
    });
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body)).into_response()
}

async fn not_found() -> Response {
    github_error(404, "Not Found")
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn authenticate(state: &FakeState, headers: &HeaderMap) -> Caller {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Caller::Anonymous;
    };
    let credential = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("token ")).unwrap_or("").trim();
    if credential.matches('.').count() == 2 {
        return verify_jwt(state, credential);
    }
    match state.tokens.get(credential) {
        Some(t) if t.expires_at > SystemTime::now() => Caller::Installation(t.installation),
        Some(_) => Caller::Invalid("token expired".into()),
        None => Caller::Invalid("Bad credentials".into()),
    }
}

fn verify_jwt(state: &FakeState, jwt: &str) -> Caller {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iat"]);
    validation.leeway = 0;
    for (app_id, app) in &state.apps {
        let Ok(key) = DecodingKey::from_rsa_pem(&app.public_key_pem) else { continue };
        if let Ok(data) = decode::<Value>(jwt, &key, &validation) {
            let claims = data.claims;
            let iss_matches = match &claims["iss"] {
                Value::Number(n) => n.as_u64() == Some(*app_id),
                Value::String(s) => s == &app_id.to_string(),
                _ => false,
            };
            let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
            if !iss_matches {
                return Caller::Invalid("'Issuer' claim ('iss') must be the App id".into());
            }
            if iat > unix_now() + 60 {
                return Caller::Invalid(
                    "'Issued at' claim ('iat') must be an Integer representing a time in the past".into(),
                );
            }
            if exp.saturating_sub(iat) > 600 || exp > unix_now() + 600 {
                return Caller::Invalid("'Expiration time' claim ('exp') is too far in the future".into());
            }
            return Caller::App(*app_id);
        }
    }
    Caller::Invalid("A JSON web token could not be decoded".into())
}

/// Runs before every API route: authentication, faults, rate limits, recording.
async fn gate(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    // The path as sent (nesting under /api/v3 rewrites request.uri()).
    let original = request.extensions().get::<OriginalUri>().map_or_else(|| request.uri().clone(), |o| o.0.clone());
    let path = original.path().to_string();
    let query = original.query().unwrap_or("").to_string();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().trim_start_matches("/api/v3").to_string())
        .unwrap_or_else(|| path.clone());
    let endpoint = format!("{method} {template}");
    let caller = authenticate(&lock(&state), request.headers());
    let principal = match &caller {
        Caller::Installation(id) => {
            let s = lock(&state);
            s.installations.get(id).map_or_else(|| caller.principal(), |i| format!("app:{}", i.app_id))
        }
        other => other.principal(),
    };

    // Injected faults.
    let fault = {
        let mut s = lock(&state);
        let mut chosen = None;
        for f in s.faults.iter_mut() {
            let method_ok = f.method.as_deref().is_none_or(|m| m == method);
            if method_ok
                && (endpoint.contains(&f.matches) || path.contains(&f.matches))
                && f.times.is_none_or(|t| t > 0)
            {
                if let Some(t) = f.times.as_mut() {
                    *t -= 1;
                }
                chosen = Some(f.clone());
                break;
            }
        }
        chosen
    };
    let mut response = None;
    if let Some(f) = &fault {
        if !f.delay.is_zero() {
            tokio::time::sleep(f.delay).await;
        }
        if let Some(status) = f.status {
            let mut r =
                (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(f.body.clone()))
                    .into_response();
            for (k, v) in &f.headers {
                if let (Ok(name), Ok(value)) = (axum::http::HeaderName::try_from(k.as_str()), HeaderValue::from_str(v))
                {
                    r.headers_mut().insert(name, value);
                }
            }
            response = Some(r);
        }
    }

    // Secondary limits: concurrency and points per endpoint per minute, per App.
    let mut counted_in_flight = false;
    if response.is_none() {
        let mut s = lock(&state);
        if s.secondary_limits && principal != "anonymous" {
            let in_flight = s.limits.in_flight.entry(principal.clone()).or_insert(0);
            if *in_flight >= 100 {
                response = Some(secondary_limit_response(60));
            } else {
                *in_flight += 1;
                counted_in_flight = true;
                let cost = if method == "GET" || method == "HEAD" { 1 } else { 5 };
                let now = Instant::now();
                let window = s.limits.windows.entry((principal.clone(), endpoint.clone())).or_default();
                while window.front().is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_secs(60)) {
                    window.pop_front();
                }
                let used: u32 = window.iter().map(|(_, p)| p).sum();
                if used + cost > 900 {
                    // Wait until enough points leave the window.
                    let mut freed = 0;
                    let mut wait = Duration::from_secs(60);
                    for (t, p) in window.iter() {
                        freed += p;
                        if used - freed + cost <= 900 {
                            wait = Duration::from_secs(60).saturating_sub(now.duration_since(*t));
                            break;
                        }
                    }
                    response = Some(secondary_limit_response(wait.as_secs_f64().ceil() as u64));
                } else {
                    window.push_back((now, cost));
                }
            }
        }
    }

    // Primary limit per installation.
    let mut rate_headers = None;
    if let Caller::Installation(inst) = caller
        && response.is_none()
    {
        let mut s = lock(&state);
        let limit = s.primary_limit;
        let now = unix_now();
        let entry = s.limits.primary.entry(inst).or_insert((limit, now + 3600));
        if entry.1 <= now {
            *entry = (limit, now + 3600);
        }
        if entry.0 == 0 {
            let mut r = github_error(403, &format!("API rate limit exceeded for installation ID {inst}."));
            add_rate_headers(r.headers_mut(), limit, 0, entry.1);
            response = Some(r);
        } else {
            entry.0 -= 1;
            rate_headers = Some((limit, entry.0, entry.1));
        }
    }

    let mut response = match response {
        Some(r) => r,
        None => {
            request.extensions_mut().insert(caller.clone());
            next.run(request).await
        }
    };

    if let Some((limit, remaining, reset)) = rate_headers {
        add_rate_headers(response.headers_mut(), limit, remaining, reset);
    }
    {
        let mut s = lock(&state);
        if counted_in_flight && let Some(n) = s.limits.in_flight.get_mut(&principal) {
            *n = n.saturating_sub(1);
        }
        s.requests.push(RecordedRequest {
            method,
            path,
            query,
            endpoint,
            status: response.status().as_u16(),
            caller: caller.principal(),
            at: Instant::now(),
        });
    }
    // Handled and logged; only the answer is late.
    if let Some(f) = &fault
        && !f.answer_delay.is_zero()
    {
        tokio::time::sleep(f.answer_delay).await;
    }
    response
}

fn add_rate_headers(headers: &mut HeaderMap, limit: u64, remaining: u64, reset: u64) {
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    put("x-ratelimit-limit", limit.to_string());
    put("x-ratelimit-remaining", remaining.to_string());
    put("x-ratelimit-used", limit.saturating_sub(remaining).to_string());
    put("x-ratelimit-reset", reset.to_string());
    put("x-ratelimit-resource", "core".to_string());
}

fn secondary_limit_response(retry_after: u64) -> Response {
    let mut r = github_error(
        403,
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

/// A GitHub error answer, built only when it is sent.
struct ApiError(u16, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        github_error(self.0, &self.1)
    }
}

/// The installation a token belongs to, if it may act on `scope`.
fn require_installation(state: &FakeState, caller: &Caller, scope: &Scope) -> Result<u64, ApiError> {
    match caller {
        Caller::Installation(id) => {
            let inst = state.installations.get(id).ok_or_else(|| ApiError(401, "Bad credentials".to_string()))?;
            if inst.account.eq_ignore_ascii_case(scope.account()) {
                Ok(*id)
            } else {
                Err(ApiError(403, "Resource not accessible by integration".to_string()))
            }
        }
        Caller::App(_) => Err(ApiError(
            403,
            "A JSON web token cannot be used to access this resource; use an installation token.".into(),
        )),
        Caller::Invalid(reason) => Err(ApiError(401, reason.clone())),
        Caller::Anonymous => Err(ApiError(401, "Requires authentication".to_string())),
    }
}

fn require_app(caller: &Caller) -> Result<u64, ApiError> {
    match caller {
        Caller::App(id) => Ok(*id),
        Caller::Installation(_) => Err(ApiError(401, "A JSON web token could not be decoded".to_string())),
        Caller::Invalid(reason) => Err(ApiError(401, reason.clone())),
        Caller::Anonymous => Err(ApiError(401, "A JSON web token is required to access this endpoint.".to_string())),
    }
}

/// The App's webhook configuration, as GitHub shows it: the secret masked.
fn hook_config_json(config: &serde_json::Map<String, Value>) -> Value {
    let mut shown = config.clone();
    if shown.contains_key("secret") {
        shown.insert("secret".into(), json!("********"));
    }
    for (key, default) in [("content_type", "form"), ("insecure_ssl", "0")] {
        shown.entry(key).or_insert(json!(default));
    }
    Value::Object(shown)
}

async fn get_hook_config(State(state): State<Shared>, Extension(caller): Extension<Caller>) -> Response {
    let app = match require_app(&caller) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let s = lock(&state);
    let config = s.apps.get(&app).map(|a| a.hook_config.clone()).unwrap_or_default();
    Json(hook_config_json(&config)).into_response()
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    per_page: Option<usize>,
    cursor: Option<String>,
    redelivery: Option<bool>,
}

/// `GET /app/hook/deliveries`: App JWT; newest first; `cursor` pagination (`v1_<id>`: the
/// entries older than that one) with a `Link: rel="next"` header.
async fn list_deliveries(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<DeliveriesQuery>,
) -> Response {
    let app = match require_app(&caller) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let per_page = q.per_page.unwrap_or(30).clamp(1, 100);
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => u64::MAX,
        Some(c) => match c.strip_prefix("v1_").and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => n,
            None => return github_error(400, "Invalid cursor"),
        },
    };
    let s = lock(&state);
    let mut items: Vec<&super::DeliveryAttempt> = s
        .deliveries
        .iter()
        .filter(|d| d.app_id == app && d.id < before && q.redelivery.is_none_or(|r| d.redelivery == r))
        .collect();
    items.sort_by_key(|d| std::cmp::Reverse(d.id));
    let more = items.len() > per_page;
    let page: Vec<Value> = items.iter().take(per_page).map(|d| d.json()).collect();
    let mut r = Json(Value::Array(page)).into_response();
    if more && let Some(last) = items.get(per_page - 1) {
        let path = uri.path();
        let link = format!("<{}{path}?per_page={per_page}&cursor=v1_{}>; rel=\"next\"", s.base_url, last.id);
        if let Ok(v) = HeaderValue::from_str(&link) {
            r.headers_mut().insert("link", v);
        }
    }
    r
}

/// `POST /app/hook/deliveries/{id}/attempts`: App JWT; 202, then the payload is sent again
/// (same GUID, `redelivery: true`) and logged, as GitHub does it, in the background.
async fn redeliver(State(state): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<u64>) -> Response {
    let app = match require_app(&caller) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let original = {
        let s = lock(&state);
        s.deliveries.iter().find(|d| d.id == id && d.app_id == app).cloned()
    };
    let Some(original) = original else { return github_error(404, "Not Found") };
    if chrono::Utc::now() - original.delivered_at > chrono::TimeDelta::days(3) {
        return github_error(422, "Validation Failed: deliveries older than 3 days cannot be redelivered");
    }
    tokio::spawn(super::hooks::send_attempt(state.clone(), app, original.guid, original.event, original.payload, true));
    (StatusCode::ACCEPTED, Json(json!({}))).into_response()
}

/// `PATCH /app/hook/config`: App JWT only; `url`, `content_type`, `secret`, `insecure_ssl`.
async fn update_hook_config(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let app = match require_app(&caller) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(&body) else {
        return github_error(400, "Problems parsing JSON");
    };
    let known = ["url", "content_type", "secret", "insecure_ssl"];
    if let Some(key) = changes.keys().find(|k| !known.contains(&k.as_str())) {
        return github_error(422, &format!("Invalid request. \"{key}\" is not a permitted key."));
    }
    if changes.values().any(|v| !v.is_string()) {
        return github_error(422, "Invalid request. Values must be strings.");
    }
    let mut s = lock(&state);
    let Some(entry) = s.apps.get_mut(&app) else { return github_error(404, "Not Found") };
    entry.hook_config.extend(changes);
    Json(hook_config_json(&entry.hook_config)).into_response()
}

async fn create_installation_token(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    let app = match require_app(&caller) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let mut s = lock(&state);
    match s.installations.get(&id) {
        Some(inst) if inst.app_id == app => {}
        _ => return github_error(404, "Not Found"),
    }
    let token = format!("ghs_{}", random_string(36));
    let expires_at = SystemTime::now() + s.token_lifetime;
    s.tokens.insert(token.clone(), super::Token { installation: id, expires_at });
    (
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "expires_at": rfc3339(expires_at),
            "permissions": {"actions": "read", "checks": "read", "metadata": "read", "administration": "write", "organization_self_hosted_runners": "write"},
            "repository_selection": "all"
        })),
    )
        .into_response()
}

fn installation_json(s: &FakeState, inst: &super::Installation) -> Value {
    let base = &s.base_url;
    json!({
        "id": inst.id,
        "account": account_json(base, &inst.account, inst.account_id, &inst.account_type),
        "access_tokens_url": format!("{base}/app/installations/{}/access_tokens", inst.id),
        "repositories_url": format!("{base}/installation/repositories"),
        "html_url": format!("https://github.com/organizations/{}/settings/installations/{}", inst.account, inst.id),
        "app_id": inst.app_id,
        "app_slug": "runners",
        "target_id": inst.account_id,
        "target_type": inst.account_type,
        "permissions": {"actions": "read", "checks": "read", "metadata": "read", "administration": "write", "organization_self_hosted_runners": "write"},
        "events": ["workflow_job"],
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "repository_selection": "all",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "suspended_by": null,
        "suspended_at": null
    })
}

fn find_installation(state: &Shared, caller: &Caller, account: &str) -> Response {
    let app = match require_app(caller) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let s = lock(state);
    match s.installations.values().find(|i| i.app_id == app && i.account.eq_ignore_ascii_case(account)) {
        Some(inst) => Json(installation_json(&s, inst)).into_response(),
        None => github_error(404, "Not Found"),
    }
}

async fn org_installation(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
) -> Response {
    find_installation(&state, &caller, &org)
}

async fn repo_installation(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, _repo)): Path<(String, String)>,
) -> Response {
    find_installation(&state, &caller, &owner)
}

fn job_json(base: &str, job: &super::Job) -> Value {
    let repo_url = format!("{base}/repos/{}/{}", job.owner, job.repo);
    json!({
        "id": job.id, "run_id": job.run_id,
        "run_url": format!("{repo_url}/actions/runs/{}", job.run_id),
        "run_attempt": job.run_attempt, "node_id": format!("CR_kwDO{}", job.id),
        "head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625", "head_branch": "main",
        "url": format!("{repo_url}/actions/jobs/{}", job.id),
        "html_url": format!("https://github.com/{}/{}/actions/runs/{}/job/{}", job.owner, job.repo, job.run_id, job.id),
        "status": job.status, "conclusion": job.conclusion,
        "created_at": "2024-01-01T00:00:00Z", "started_at": "2024-01-01T00:00:00Z", "completed_at": null,
        "name": job.name, "steps": [],
        "check_run_url": format!("{repo_url}/check-runs/{}", job.id),
        "labels": job.labels,
        "runner_id": job.runner_id, "runner_name": job.runner_name,
        "runner_group_id": job.runner_id.map(|_| 1), "runner_group_name": job.runner_id.map(|_| "Default"),
        "workflow_name": "CI"
    })
}

async fn get_job(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, job_id)): Path<(String, String, u64)>,
) -> Response {
    let s = lock(&state);
    if let Err(r) = require_installation(&s, &caller, &Scope::repo(&owner, &repo)) {
        return r.into_response();
    }
    match s.jobs.get(&job_id) {
        Some(job) if job.owner.eq_ignore_ascii_case(&owner) && job.repo.eq_ignore_ascii_case(&repo) => {
            Json(job_json(&s.base_url, job)).into_response()
        }
        _ => github_error(404, "Not Found"),
    }
}

/// `GET /repos/{o}/{r}/actions/runs/{run_id}/jobs`: `filter=latest` (the default) lists the
/// latest attempt of each job, `filter=all` every attempt; one page (`per_page` up to 100).
async fn run_jobs(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, run_id)): Path<(String, String, u64)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let s = lock(&state);
    if let Err(r) = require_installation(&s, &caller, &Scope::repo(&owner, &repo)) {
        return r.into_response();
    }
    let run: Vec<&super::Job> = s
        .jobs
        .values()
        .filter(|j| j.run_id == run_id && j.owner.eq_ignore_ascii_case(&owner) && j.repo.eq_ignore_ascii_case(&repo))
        .collect();
    if run.is_empty() {
        return github_error(404, "Not Found");
    }
    let all = query.get("filter").is_some_and(|f| f == "all");
    let jobs: Vec<Value> = run
        .iter()
        .filter(|j| all || !run.iter().any(|o| o.name == j.name && o.run_attempt > j.run_attempt))
        .map(|j| job_json(&s.base_url, j))
        .collect();
    Json(json!({"total_count": jobs.len(), "jobs": jobs})).into_response()
}

/// `POST /repos/{o}/{r}/actions/jobs/{job_id}/rerun`: 201; 403 when the job is not the latest
/// attempt or has not completed, as GitHub refuses those.
async fn rerun_job(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, job_id)): Path<(String, String, u64)>,
) -> Response {
    {
        let s = lock(&state);
        if let Err(r) = require_installation(&s, &caller, &Scope::repo(&owner, &repo)) {
            return r.into_response();
        }
        if !s
            .jobs
            .get(&job_id)
            .is_some_and(|j| j.owner.eq_ignore_ascii_case(&owner) && j.repo.eq_ignore_ascii_case(&repo))
        {
            return github_error(404, "Not Found");
        }
    }
    match super::FakeGithub::from_state(state).rerun_job(job_id) {
        Some(_) => (StatusCode::CREATED, Json(json!({}))).into_response(),
        None => github_error(403, "This job cannot be re-run"),
    }
}

fn registration_token(state: &Shared, caller: &Caller, scope: Scope) -> Response {
    let mut s = lock(state);
    if let Err(r) = require_installation(&s, caller, &scope) {
        return r.into_response();
    }
    let token = random_string(29).to_uppercase();
    let expires = SystemTime::now() + Duration::from_secs(3600);
    s.registration_tokens.insert(token.clone(), (scope, expires));
    (StatusCode::CREATED, Json(json!({"token": token, "expires_at": rfc3339(expires)}))).into_response()
}

async fn org_registration_token(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
) -> Response {
    registration_token(&state, &caller, Scope::org(&org))
}

async fn repo_registration_token(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    registration_token(&state, &caller, Scope::repo(&owner, &repo))
}

/// The labels GitHub gives every self-hosted runner; the rest are custom.
pub(super) fn is_read_only_label(label: &str) -> bool {
    ["self-hosted", "linux", "x64", "arm", "arm64", "windows", "macos"].contains(&label.to_lowercase().as_str())
}

fn labels_json(labels: &[String]) -> Vec<Value> {
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let kind = if is_read_only_label(l) { "read-only" } else { "custom" };
            json!({"id": i + 1, "name": l, "type": kind})
        })
        .collect()
}

fn runner_json(r: &Runner, now: Instant) -> Value {
    let labels = labels_json(&r.labels);
    json!({
        "id": r.id, "runner_group_id": r.group_id, "name": r.name, "os": r.os,
        "status": if r.online { "online" } else { "offline" },
        "busy": r.busy_reported(now), "ephemeral": r.ephemeral, "labels": labels
    })
}

fn jit_config(state: &Shared, caller: &Caller, scope: Scope, body: Value) -> Response {
    let mut s = lock(state);
    if let Err(r) = require_installation(&s, caller, &scope) {
        return r.into_response();
    }
    let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()).map(str::to_string) else {
        return github_error(422, "Invalid request.\n\n\"name\" wasn't supplied.");
    };
    let Some(group_id) = body["runner_group_id"].as_u64() else {
        return github_error(422, "Invalid input: object is missing required key: runner_group_id.");
    };
    let labels: Vec<String> = body["labels"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if labels.is_empty() || labels.len() > 100 {
        return github_error(422, "Invalid request.\n\n\"labels\" must have between 1 and 100 items.");
    }
    if let Scope::Org(org) = &scope
        && !s.runner_groups.get(&org.to_lowercase()).is_some_and(|g| g.iter().any(|(id, _)| *id == group_id))
    {
        return github_error(404, "Not Found");
    }
    if s.runners.values().any(|r| r.scope == scope && r.name == name) {
        return github_error(409, &format!("Already exists - A runner with the name {name} already exists."));
    }
    let id = s.id();
    let now = Instant::now();
    let mut all_labels = vec!["self-hosted".to_string()];
    all_labels.extend(labels.iter().cloned());
    let claims = json!({"fake_jit": true, "runner_id": id, "name": name, "scope": scope, "labels": labels});
    let mut encoded = base64::engine::general_purpose::STANDARD.encode(claims.to_string());
    let pad = s.jit_config_size.saturating_sub(encoded.len());
    if pad > 0 {
        // Real JIT configs are a few KB; pad inside the JSON so decoding still works.
        let padded = json!({"fake_jit": true, "runner_id": id, "name": name, "scope": scope, "labels": labels, "pad": "x".repeat(pad * 3 / 4)});
        encoded = base64::engine::general_purpose::STANDARD.encode(padded.to_string());
    }
    let runner = Runner {
        id,
        name,
        scope,
        group_id,
        labels: all_labels,
        os: "unknown".into(),
        online: false,
        ephemeral: true,
        busy_actual: false,
        busy_previous: false,
        busy_changed_at: now,
        busy_lag: Duration::ZERO,
        job: None,
        registered_with: encoded.clone(),
    };
    let runner_value = runner_json(&runner, now);
    s.runners.insert(id, runner);
    s.jit_configs.insert(encoded.clone(), id);
    (StatusCode::CREATED, Json(json!({"runner": runner_value, "encoded_jit_config": encoded}))).into_response()
}

async fn org_jit_config(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    jit_config(&state, &caller, Scope::org(&org), body)
}

async fn repo_jit_config(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    jit_config(&state, &caller, Scope::repo(&owner, &repo), body)
}

#[derive(Deserialize)]
struct PageQuery {
    per_page: Option<usize>,
    page: Option<usize>,
    name: Option<String>,
}

/// One page of `items` with GitHub's `Link` header.
fn paginate(base: &str, path: &str, q: &PageQuery, field: &str, items: Vec<Value>) -> Response {
    let per_page = q.per_page.unwrap_or(30).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let mut links = Vec::new();
    let link = |p: usize, rel: &str| format!("<{base}{path}?per_page={per_page}&page={p}>; rel=\"{rel}\"");
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
        links.push(link(page - 1, "prev"));
    }
    let mut r = Json(json!({"total_count": total, field: slice})).into_response();
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(", "))
    {
        r.headers_mut().insert("link", v);
    }
    r
}

fn list_runners(state: &Shared, caller: &Caller, scope: Scope, path: String, q: PageQuery) -> Response {
    let s = lock(state);
    if let Err(r) = require_installation(&s, caller, &scope) {
        return r.into_response();
    }
    let now = Instant::now();
    let items: Vec<Value> = s
        .runners
        .values()
        .filter(|r| r.scope == scope && q.name.as_ref().is_none_or(|n| &r.name == n))
        .map(|r| runner_json(r, now))
        .collect();
    paginate(&s.base_url, &path, &q, "runners", items)
}

async fn org_runners(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
    Query(q): Query<PageQuery>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    list_runners(&state, &caller, Scope::org(&org), uri.path().to_string(), q)
}

async fn repo_runners(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    list_runners(&state, &caller, Scope::repo(&owner, &repo), uri.path().to_string(), q)
}

async fn runner_groups(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
    Query(q): Query<PageQuery>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let s = lock(&state);
    if let Err(r) = require_installation(&s, &caller, &Scope::org(&org)) {
        return r.into_response();
    }
    let base = s.base_url.clone();
    let items: Vec<Value> = s
        .runner_groups
        .get(&org.to_lowercase())
        .map(|groups| {
            groups
                .iter()
                .map(|(id, name)| {
                    json!({
                        "id": id, "name": name, "visibility": "all", "default": *id == 1,
                        "runners_url": format!("{base}/orgs/{org}/actions/runner-groups/{id}/runners"),
                        "inherited": false, "allows_public_repositories": true,
                        "restricted_to_workflows": false, "selected_workflows": [],
                        "workflow_restrictions_read_only": false
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    paginate(&base, uri.path(), &q, "runner_groups", items)
}

fn get_runner(state: &Shared, caller: &Caller, scope: Scope, id: u64) -> Response {
    let s = lock(state);
    if let Err(r) = require_installation(&s, caller, &scope) {
        return r.into_response();
    }
    match s.runners.get(&id) {
        Some(r) if r.scope == scope => Json(runner_json(r, Instant::now())).into_response(),
        _ => github_error(404, "Not Found"),
    }
}

/// `DELETE .../actions/runners/{id}/labels`: removes every custom label; answers the remaining
/// read-only ones. The broker then hands the runner only jobs those match.
fn delete_runner_labels(state: &Shared, caller: &Caller, scope: Scope, id: u64) -> Response {
    let mut s = lock(state);
    if let Err(r) = require_installation(&s, caller, &scope) {
        return r.into_response();
    }
    match s.runners.get_mut(&id) {
        Some(r) if r.scope == scope => {
            r.labels.retain(|l| is_read_only_label(l));
            Json(json!({"total_count": r.labels.len(), "labels": labels_json(&r.labels)})).into_response()
        }
        _ => github_error(404, "Not Found"),
    }
}

async fn delete_org_runner_labels(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((org, id)): Path<(String, u64)>,
) -> Response {
    delete_runner_labels(&state, &caller, Scope::org(&org), id)
}

async fn delete_repo_runner_labels(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    delete_runner_labels(&state, &caller, Scope::repo(&owner, &repo), id)
}

fn delete_runner(state: &Shared, caller: &Caller, scope: Scope, id: u64) -> Response {
    let mut s = lock(state);
    if let Err(r) = require_installation(&s, caller, &scope) {
        return r.into_response();
    }
    match s.runners.get(&id) {
        Some(r) if r.scope == scope => {
            // What the runner really does decides, whatever the API reports (decisions.md #21).
            if r.busy_actual {
                return github_error(422, &format!("Bad request - Runner \"{}\" is still running a job\"", r.name));
            }
            s.runners.remove(&id);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => github_error(404, "Not Found"),
    }
}

async fn org_runner(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((org, id)): Path<(String, u64)>,
) -> Response {
    get_runner(&state, &caller, Scope::org(&org), id)
}

async fn repo_runner(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    get_runner(&state, &caller, Scope::repo(&owner, &repo), id)
}

async fn delete_org_runner(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((org, id)): Path<(String, u64)>,
) -> Response {
    delete_runner(&state, &caller, Scope::org(&org), id)
}

async fn delete_repo_runner(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    delete_runner(&state, &caller, Scope::repo(&owner, &repo), id)
}

fn release_json(base: &str, r: &super::Release) -> Value {
    let author = account_json(base, "github-actions[bot]", 41898282, "Bot");
    let assets: Vec<Value> = r
        .assets
        .iter()
        .map(|a| {
            let mut v = json!({
                "url": format!("{base}/repos/actions/runner/releases/assets/{}", a.id),
                "id": a.id, "node_id": format!("RA_kwDO{}", a.id), "name": a.name, "label": "",
                "uploader": author, "content_type": "application/octet-stream", "state": "uploaded",
                "size": a.content.len(), "download_count": 0,
                "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
                "browser_download_url": format!("{base}/actions/runner/releases/download/{}/{}", r.tag, a.name)
            });
            if a.publish_digest {
                v["digest"] = json!(format!("sha256:{}", a.sha256));
            }
            v
        })
        .collect();
    json!({
        "url": format!("{base}/repos/actions/runner/releases/{}", r.id),
        "html_url": format!("https://github.com/actions/runner/releases/tag/{}", r.tag),
        "assets_url": format!("{base}/repos/actions/runner/releases/{}/assets", r.id),
        "upload_url": format!("https://uploads.github.com/repos/actions/runner/releases/{}/assets{{?name,label}}", r.id),
        "tarball_url": format!("{base}/repos/actions/runner/tarball/{}", r.tag),
        "zipball_url": format!("{base}/repos/actions/runner/zipball/{}", r.tag),
        "id": r.id, "node_id": format!("RE_kwDO{}", r.id), "tag_name": r.tag,
        "target_commitish": "main", "name": r.tag, "draft": false, "prerelease": false,
        "created_at": "2024-01-01T00:00:00Z", "published_at": "2024-01-01T00:00:00Z",
        "author": author, "assets": assets, "body": r.body
    })
}

async fn latest_release(State(state): State<Shared>) -> Response {
    let s = lock(&state);
    match s.releases.last() {
        Some(r) => Json(release_json(&s.base_url, r)).into_response(),
        None => github_error(404, "Not Found"),
    }
}

async fn list_releases(State(state): State<Shared>) -> Response {
    let s = lock(&state);
    let list: Vec<Value> = s.releases.iter().rev().map(|r| release_json(&s.base_url, r)).collect();
    Json(list).into_response()
}

async fn release_by_tag(State(state): State<Shared>, Path(tag): Path<String>) -> Response {
    let s = lock(&state);
    match s.releases.iter().find(|r| r.tag == tag) {
        Some(r) => Json(release_json(&s.base_url, r)).into_response(),
        None => github_error(404, "Not Found"),
    }
}

/// Streams an asset in 64 KiB chunks (cut short or corrupted when the test asks).
async fn download_asset(State(state): State<Shared>, Path((tag, name)): Path<(String, String)>) -> Response {
    let asset = {
        let s = lock(&state);
        s.releases.iter().find(|r| r.tag == tag).and_then(|r| r.assets.iter().find(|a| a.name == name)).cloned()
    };
    let Some(asset) = asset else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let total = asset.content.len();
    let serve = asset.cut_after.unwrap_or(total).min(total);
    let stream = futures::stream::unfold(0u64, move |offset| {
        let asset = asset.clone();
        async move {
            if offset >= serve {
                if serve < total {
                    // Cut short: end the body with an error so the connection breaks.
                    return Some((Err(std::io::Error::other("connection reset")), u64::MAX));
                }
                return None;
            }
            let len = (64 * 1024).min((serve - offset) as usize);
            let mut chunk = asset.content.chunk(offset, len).to_vec();
            if let Some(at) = asset.corrupt_at
                && at >= offset
                && at < offset + chunk.len() as u64
            {
                chunk[(at - offset) as usize] ^= 0xff;
            }
            let next = offset + chunk.len() as u64;
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)), next))
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        r.headers_mut().insert("content-length", v);
    }
    r
}

async fn admin_state(State(state): State<Shared>) -> Response {
    let s = lock(&state);
    let now = Instant::now();
    let runners: Vec<Value> = s.runners.values().map(|r| runner_json(r, now)).collect();
    let jobs: Vec<Value> = s.jobs.values().map(|j| json!(j)).collect();
    Json(json!({"runners": runners, "jobs": jobs})).into_response()
}

async fn admin_requests(State(state): State<Shared>) -> Response {
    let s = lock(&state);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &s.requests {
        *counts.entry(r.endpoint.clone()).or_default() += 1;
    }
    Json(json!({"total": s.requests.len(), "by_endpoint": counts})).into_response()
}

fn random_string(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char).collect()
}

// The runner side, for the stand-in runner scripts (tests/fixtures/runner-stub) run by the boot
// script on a test "instance": what the real runner does against GitHub's own runner service.

#[derive(Deserialize)]
struct RegisterRunner {
    token: String,
    name: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    ephemeral: bool,
}

fn admin_answer(result: Result<Value, String>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(message) => (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": message}))).into_response(),
    }
}

/// `config.sh --token ... --name ... --labels ...`: registers and brings the runner online.
async fn admin_register_runner(State(state): State<Shared>, Json(r): Json<RegisterRunner>) -> Response {
    let fake = super::FakeGithub::from_state(state);
    admin_answer(fake.register_with_token(&r.token, &r.name, &r.labels, r.ephemeral).map(|id| json!({"id": id})))
}

#[derive(Deserialize)]
struct StartJit {
    jitconfig: String,
}

/// `run.sh --jitconfig ...`: the runner created by generate-jitconfig goes online.
async fn admin_start_jit_runner(State(state): State<Shared>, Json(r): Json<StartJit>) -> Response {
    let fake = super::FakeGithub::from_state(state);
    admin_answer(fake.start_jit_runner(&r.jitconfig).map(|id| json!({"id": id})))
}

/// The runner asks for work: the oldest queued job is assigned to it (`{"job": null}` if none).
async fn admin_take_job(State(state): State<Shared>, Path(id): Path<u64>) -> Response {
    let fake = super::FakeGithub::from_state(state);
    let queued = fake.jobs().into_iter().filter(|j| j.status == "queued").map(|j| j.id).min();
    admin_answer(match queued {
        Some(job) => fake.assign_job(job, id, Duration::ZERO).map(|()| {
            // What the runner gives the job's hooks: GITHUB_REPOSITORY and GITHUB_RUN_ID.
            let j = fake.job(job);
            json!({"job": job, "repository": j.as_ref().map(|j| format!("{}/{}", j.owner, j.repo)), "run_id": j.map(|j| j.run_id)})
        }),
        None => Ok(json!({"job": null})),
    })
}

/// The job ends; an ephemeral runner is removed, as GitHub does.
async fn admin_finish_job(State(state): State<Shared>, Path(id): Path<u64>) -> Response {
    let fake = super::FakeGithub::from_state(state);
    fake.finish_job(id, Duration::ZERO);
    Json(json!({"job": id})).into_response()
}
