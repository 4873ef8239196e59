//! The App's webhook as GitHub runs it: deliveries signed with the hook's secret and POSTed to
//! the hook's URL, one log entry per attempt (`GET /app/hook/deliveries`), and redelivery
//! (`POST /app/hook/deliveries/{id}/attempts`) that really sends the payload again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::{State, lock};

/// GitHub gives an endpoint 10 s to answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One delivery attempt in an App's log.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    pub id: u64,
    pub guid: String,
    pub app_id: u64,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<u64>,
    pub repository_id: Option<u64>,
    pub delivered_at: chrono::DateTime<chrono::Utc>,
    pub redelivery: bool,
    /// The endpoint's status; 0 when it gave none.
    pub status_code: u16,
    /// GitHub's words for the outcome (`OK`, `Invalid HTTP Response: 503`, `failed to connect to host`).
    pub status: String,
    pub duration: f64,
    pub payload: String,
}

impl DeliveryAttempt {
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }

    /// The log item as `GET /app/hook/deliveries` lists it.
    pub fn json(&self) -> Value {
        json!({
            "id": self.id, "guid": self.guid,
            "delivered_at": self.delivered_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "redelivery": self.redelivery, "duration": self.duration, "status": self.status,
            "status_code": self.status_code, "event": self.event, "action": self.action,
            "installation_id": self.installation_id, "repository_id": self.repository_id,
            "throttled_at": null,
        })
    }
}

/// Sends one attempt of `payload` to the App's hook URL and logs it; returns the log entry.
pub(crate) async fn send_attempt(
    state: Arc<Mutex<State>>,
    app_id: u64,
    guid: String,
    event: String,
    payload: String,
    redelivery: bool,
) -> DeliveryAttempt {
    let (url, secret) = {
        let s = lock(&state);
        let config = s.apps.get(&app_id).map(|a| a.hook_config.clone()).unwrap_or_default();
        let text = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        (text("url"), text("secret"))
    };
    let parsed: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
    let delivered_at = chrono::Utc::now();
    let started = Instant::now();
    let (status_code, status) = if url.is_empty() {
        (0, "no webhook URL configured".to_string())
    } else {
        post(&url, &secret, &guid, &event, app_id, &payload).await
    };
    let mut s = lock(&state);
    let attempt = DeliveryAttempt {
        id: s.id(),
        guid,
        app_id,
        event,
        action: parsed["action"].as_str().map(str::to_string),
        installation_id: parsed["installation"]["id"].as_u64(),
        repository_id: parsed["repository"]["id"].as_u64(),
        delivered_at,
        redelivery,
        status_code,
        status,
        duration: started.elapsed().as_secs_f64(),
        payload,
    };
    s.deliveries.push(attempt.clone());
    attempt
}

async fn post(url: &str, secret: &str, guid: &str, event: &str, app_id: u64, payload: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let signature = common::github::signature::sign(secret.as_bytes(), payload.as_bytes());
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/fake")
        .header("x-github-event", event)
        .header("x-github-delivery", guid)
        .header("x-github-hook-id", "1")
        .header("x-github-hook-installation-target-type", "integration")
        .header("x-github-hook-installation-target-id", app_id.to_string())
        .header("x-hub-signature-256", signature)
        .body(Full::new(bytes::Bytes::from(payload.to_string())));
    let Ok(request) = request else { return (0, "invalid webhook URL".into()) };
    match tokio::time::timeout(DELIVERY_TIMEOUT, async {
        let response = client.request(request).await?;
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        Ok::<_, hyper_util::client::legacy::Error>(status)
    })
    .await
    {
        Ok(Ok(status)) if (200..300).contains(&status) => (status, "OK".into()),
        Ok(Ok(status)) => (status, format!("Invalid HTTP Response: {status}")),
        Ok(Err(_)) => (0, "failed to connect to host".into()),
        Err(_) => (0, "timed out".into()),
    }
}

/// A GUID as GitHub's (`X-GitHub-Delivery`).
pub(crate) fn new_guid() -> String {
    let n = fastrand::u128(..);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (n >> 96) as u32,
        (n >> 80) as u16,
        (n >> 64) as u16,
        (n >> 48) as u16,
        n as u64 & 0xffff_ffff_ffff
    )
}
