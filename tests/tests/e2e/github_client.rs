//! The common GitHub client against the fake GitHub: App JWTs, installation tokens, GHES and
//! github.com base URLs, pagination, retries, rate limits and deadlines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::deadline::Deadline;
use common::domain::runner::RunnerOwner;
use common::error::{GithubError, Retryable};
use common::github::GithubUrls;
use common::github::app::GithubApp;
use common::github::client::{Auth, ClientSettings, GithubClient};
use common::testing::ManualClock;
use http::Method;
use serde::Deserialize;
use tests::apps::TestApp;
use tests::fake_github::{FakeGithub, FakeGithubOptions, Fault, Scope};

fn client_for(fake: &FakeGithub, apps: &[&TestApp], ghes: bool) -> GithubClient {
    let urls =
        if ghes { GithubUrls::new(Some(&fake.url), None) } else { GithubUrls::new(None, Some(&fake.url)) }.unwrap();
    let apps = apps.iter().enumerate().map(|(i, a)| GithubApp::new(i, a.id, &a.key_base64(), None).unwrap()).collect();
    let mut settings = ClientSettings::new(urls);
    settings.request_timeout = Duration::from_secs(2);
    GithubClient::new(settings, apps).unwrap()
}

fn deadline(secs: u64) -> Deadline {
    Deadline::after(Duration::from_secs(secs))
}

#[derive(Deserialize)]
struct RunnerJson {
    id: u64,
    name: String,
}

#[tokio::test]
async fn app_jwt_is_verified_and_tokens_are_cached() {
    let fake = FakeGithub::start().await;
    let app = TestApp::new(1, 101);
    fake.add_app(app.id, app.public_pem.as_bytes());
    let installation = fake.add_installation(app.id, "acme", "Organization");
    let client = client_for(&fake, &[&app], false);
    let owner = RunnerOwner::Org("acme".into());

    let inst = client.for_owner(0, &owner, None, deadline(10)).await.unwrap();
    assert_eq!(inst.id, installation);
    // Two more owners' worth of calls reuse the cached installation id and token.
    for _ in 0..3 {
        let inst = client.for_owner(0, &owner, None, deadline(10)).await.unwrap();
        let _: serde_json::Value = inst.get("/orgs/acme/actions/runners").await.unwrap();
    }
    assert_eq!(fake.count("GET", "/orgs/{org}/installation"), 1);
    assert_eq!(fake.count("POST", "/app/installations/{id}/access_tokens"), 1);
    assert_eq!(fake.count("GET", "/orgs/{org}/actions/runners"), 3);
    // Every request was authenticated.
    assert!(fake.requests().iter().all(|r| r.status < 400), "{:?}", fake.requests());

    // A key the fake does not know for this App: 401, not retried, reported without the key.
    let impostor = TestApp { id: 101, ..TestApp::new(2, 101) };
    let bad = client_for(&fake, &[&impostor], false);
    let err = bad.installation_id(0, &owner, None, deadline(10)).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn installation_tokens_are_minted_again_before_they_expire() {
    let fake =
        FakeGithub::start_with(FakeGithubOptions { token_lifetime: Duration::from_secs(301), ..Default::default() })
            .await;
    let app = TestApp::new(1, 7);
    fake.add_app(app.id, app.public_pem.as_bytes());
    let installation = fake.add_installation(app.id, "acme", "Organization");
    // The client's clock moves, not the test: GitHub's `expires_at` has whole seconds, so a
    // test that slept across the 5-minute margin depended on where in a second the token was
    // minted.
    let clock = Arc::new(ManualClock::at(chrono::Utc::now()));
    let client = client_for(&fake, &[&app], false).with_clock(clock.clone());
    let first = client.installation_token(0, installation, deadline(10)).await.unwrap();
    let again = client.installation_token(0, installation, deadline(10)).await.unwrap();
    assert_eq!(first.expose(), again.expose(), "reused while more than 5 minutes are left");
    // The token lives 301 s (truncated to whole seconds, it still has more than 300 s left at
    // the clock's start, taken before minting); 2 minutes later it has less than 5 minutes.
    clock.advance(chrono::Duration::seconds(120));
    let fresh = client.installation_token(0, installation, deadline(10)).await.unwrap();
    assert_ne!(first.expose(), fresh.expose(), "minted again once less than 5 minutes are left");
    assert_eq!(fake.count("POST", "access_tokens"), 2);
}

#[tokio::test]
async fn ghes_pagination_keeps_authentication_on_every_page() {
    let fake = FakeGithub::start().await;
    let app = TestApp::new(1, 55);
    fake.add_app(app.id, app.public_pem.as_bytes());
    fake.add_installation(app.id, "acme", "Organization");
    for i in 0..250 {
        fake.add_runner(Scope::org("acme"), &format!("runner-{i}"), true, false);
    }
    let client = client_for(&fake, &[&app], true);
    assert!(client.urls().api.ends_with("/api/v3"));
    let inst = client.for_owner(0, &RunnerOwner::Org("acme".into()), None, deadline(10)).await.unwrap();
    let runners: Vec<RunnerJson> =
        inst.get_all_pages("/orgs/acme/actions/runners?per_page=100", "runners").await.unwrap();
    assert_eq!(runners.len(), 250);
    assert_eq!(runners[249].name, "runner-249");
    let mut ids: Vec<u64> = runners.iter().map(|r| r.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 250);
    let pages: Vec<_> =
        fake.requests().into_iter().filter(|r| r.endpoint == "GET /orgs/{org}/actions/runners").collect();
    assert_eq!(pages.len(), 3, "one request per page");
    assert!(
        pages
            .iter()
            .all(|r| r.status == 200 && r.path.starts_with("/api/v3/") && r.caller.starts_with("installation:")),
        "{pages:?}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let fake = FakeGithub::start().await;
    let app = TestApp::new(1, 9);
    fake.add_app(app.id, app.public_pem.as_bytes());
    fake.add_installation(app.id, "acme", "Organization");
    let client = client_for(&fake, &[&app], false);
    let inst = client.for_owner(0, &RunnerOwner::Org("acme".into()), None, deadline(20)).await.unwrap();

    fake.inject(Fault::status("GET", "/actions/runners", 502).times(2));
    let _: serde_json::Value = inst.get("/orgs/acme/actions/runners").await.expect("succeeds on the third try");
    assert_eq!(client.stats().retries, 2);

    fake.inject(Fault::status("GET", "/actions/runners", 503));
    let err = inst.get::<serde_json::Value>("/orgs/acme/actions/runners").await.unwrap_err();
    assert!(matches!(err, GithubError::Status { status: 503, .. }), "{err}");
    assert!(err.is_retryable());
    assert_eq!(client.stats().retries, 2 + 3, "three retries, then the error");
}

#[tokio::test]
async fn rate_limits_are_waited_out_only_within_the_deadline() {
    let fake = FakeGithub::start().await;
    let app = TestApp::new(1, 11);
    fake.add_app(app.id, app.public_pem.as_bytes());
    let installation = fake.add_installation(app.id, "acme", "Organization");
    let client = client_for(&fake, &[&app], false);
    let owner = RunnerOwner::Org("acme".into());
    let inst = client.for_owner(0, &owner, None, deadline(20)).await.unwrap();

    // retry-after 1 s with time to spare: waited out, then success.
    fake.inject(Fault::rate_limited("POST", "registration-token", 1).times(1));
    let started = Instant::now();
    let _: serde_json::Value =
        inst.post("/orgs/acme/actions/runners/registration-token", &serde_json::json!({})).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(client.stats().rate_limit_waits, 1);

    // retry-after 60 s with 5 s left: no sleep past the deadline, a retryable error at once.
    fake.inject(Fault::rate_limited("POST", "registration-token", 60));
    let short = client.for_owner(0, &owner, None, deadline(5)).await.unwrap();
    let started = Instant::now();
    let err = short
        .post::<serde_json::Value>("/orgs/acme/actions/runners/registration-token", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "must not wait: {:?}", started.elapsed());
    assert!(
        matches!(err, GithubError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(60)),
        "{err}"
    );
    assert!(err.is_retryable());
    fake.clear_faults();

    // Primary limit exhausted: 403 with x-ratelimit-remaining 0; the reset is far away.
    let reset = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3000;
    fake.set_primary_remaining(installation, 0, reset);
    let err = inst.get::<serde_json::Value>("/orgs/acme/actions/runners").await.unwrap_err();
    assert!(matches!(err, GithubError::RateLimited { status: 403, .. }), "{err}");
    // The remaining count seen is recorded per App (the GitHubAppRateLimitRemaining metric).
    assert_eq!(client.rate_limit(0).map(|r| r.remaining), Some(0));
}

#[tokio::test]
async fn a_hung_request_times_out_and_is_retryable() {
    let fake = FakeGithub::start().await;
    let app = TestApp::new(1, 12);
    fake.add_app(app.id, app.public_pem.as_bytes());
    fake.add_installation(app.id, "acme", "Organization");
    let client = client_for(&fake, &[&app], false);
    let inst = client.for_owner(0, &RunnerOwner::Org("acme".into()), None, deadline(30)).await.unwrap();
    fake.inject(Fault::delay("GET", "/actions/runners", Duration::from_secs(30)));
    let started = Instant::now();
    let err = inst.get::<serde_json::Value>("/orgs/acme/actions/runners").await.unwrap_err();
    assert!(matches!(err, GithubError::Transport { .. }), "{err}");
    assert!(err.is_retryable());
    // 4 attempts of 2 s each plus backoff, far below the 30 s delay.
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}

#[tokio::test]
async fn several_apps_each_use_their_own_installation() {
    let fake = FakeGithub::start().await;
    let (a, b) = (TestApp::new(1, 201), TestApp::new(2, 202));
    fake.add_app(a.id, a.public_pem.as_bytes());
    fake.add_app(b.id, b.public_pem.as_bytes());
    let ia = fake.add_installation(a.id, "acme", "Organization");
    let ib = fake.add_installation(b.id, "acme", "Organization");
    let client = client_for(&fake, &[&a, &b], false);
    let owner = RunnerOwner::Repo { owner: "acme".into(), repo: "web".into() };
    // The payload's installation id belongs to the primary App only.
    assert_eq!(client.installation_id(0, &owner, Some(ia), deadline(10)).await.unwrap(), ia);
    assert_eq!(client.installation_id(1, &owner, Some(ia), deadline(10)).await.unwrap(), ib);
    assert_eq!(
        fake.count("GET", "/repos/{owner}/{repo}/installation"),
        1,
        "only the second App looked its installation up"
    );
    let chosen: std::collections::BTreeSet<usize> = (0..50).map(|_| client.choose_app()).collect();
    assert_eq!(chosen.len(), 2, "Apps without rate-limit data are chosen at random");
}

#[tokio::test]
async fn the_fake_enforces_secondary_rate_limits_and_busy_lag() {
    let fake = FakeGithub::start().await;
    let app = TestApp::new(1, 301);
    fake.add_app(app.id, app.public_pem.as_bytes());
    fake.add_installation(app.id, "acme", "Organization");
    let mut settings = ClientSettings::new(GithubUrls::new(None, Some(&fake.url)).unwrap());
    settings.max_rate_limit_waits = 0;
    settings.write_burst = 10_000; // no pacing: this test probes the fake's own limit
    let client =
        GithubClient::new(settings, vec![GithubApp::new(0, app.id, &app.key_base64(), None).unwrap()]).unwrap();
    let inst = client.for_owner(0, &RunnerOwner::Org("acme".into()), None, deadline(30)).await.unwrap();
    // 900 points per minute per endpoint, writes cost 5: the 181st write is refused.
    let mut refused = None;
    for i in 0..181 {
        if let Err(e) = inst
            .post::<serde_json::Value>("/orgs/acme/actions/runners/registration-token", &serde_json::json!({}))
            .await
        {
            refused = Some((i, e));
            break;
        }
    }
    let (i, err) = refused.expect("the secondary limit applies");
    assert_eq!(i, 180);
    assert!(matches!(err, GithubError::RateLimited { status: 403, retry_after: Some(_), .. }), "{err}");
    // Reads are another endpoint with their own budget.
    let _: serde_json::Value = inst.get("/orgs/acme/actions/runners").await.unwrap();

    // busy lags the runner's real state; DELETE follows the real state. The lags are chosen so
    // that no timing can change the outcome: an hour (still idle), and none (busy at once).
    let runner = fake.add_runner(Scope::org("acme"), "r1", true, false);
    let job = fake.add_job("acme", "web", &["self-hosted"]);
    fake.assign_job(job, runner, Duration::from_secs(3600)).unwrap();
    let seen: serde_json::Value = inst.get(&format!("/orgs/acme/actions/runners/{runner}")).await.unwrap();
    assert_eq!(seen["busy"], false, "the API still reports idle");
    let err = inst.delete(&format!("/orgs/acme/actions/runners/{runner}")).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
    let prompt = fake.add_runner(Scope::org("acme"), "r2", true, false);
    let job = fake.add_job("acme", "web", &["self-hosted"]);
    fake.assign_job(job, prompt, Duration::ZERO).unwrap();
    let seen: serde_json::Value = inst.get(&format!("/orgs/acme/actions/runners/{prompt}")).await.unwrap();
    assert_eq!(seen["busy"], true, "reported once the lag has passed");
    let _ = client.send(Auth::None, Method::GET, "/repos/actions/runner/releases/latest", None, deadline(5)).await;
}
