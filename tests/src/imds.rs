//! A fake EC2 instance metadata service (IMDSv2 only) for the runner boot script tests.
//!
//! It speaks the real paths: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`,
//! then `GET /latest/meta-data/<path>` with `X-aws-ec2-metadata-token`. Requests without a valid
//! token get 401, as on an instance whose launch template requires IMDSv2, so a script that
//! falls back to IMDSv1 fails the test. Instance tags are served under
//! `meta-data/tags/instance/<key>` (launch template `instance_metadata_tags = enabled`), and the
//! instance profile's credentials under `meta-data/iam/security-credentials/<role>`, with the
//! access key [`INSTANCE_PROFILE_ACCESS_KEY`] (so a test can tell them from any other).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};

const TOKEN: &str = "imds-session-token";
/// The instance role's name.
pub const INSTANCE_ROLE: &str = "ghr-runner-role";
/// The access key of the instance profile's credentials.
pub const INSTANCE_PROFILE_ACCESS_KEY: &str = "ASIAINSTANCEPROFILE1";

#[derive(Default)]
struct Metadata {
    values: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    requests: Vec<String>,
}

pub struct FakeImds {
    pub url: String,
    state: Arc<Mutex<Metadata>>,
}

impl FakeImds {
    /// Serves `instance_id` in `region` with these instance tags.
    pub async fn start(instance_id: &str, region: &str, tags: BTreeMap<String, String>) -> Self {
        let mut values = BTreeMap::new();
        values.insert("instance-id".to_string(), instance_id.to_string());
        values.insert("placement/region".to_string(), region.to_string());
        values.insert("ami-id".to_string(), "ami-0123456789abcdef0".to_string());
        values.insert("instance-type".to_string(), "m5.large".to_string());
        values.insert("iam/security-credentials/".to_string(), INSTANCE_ROLE.to_string());
        let expiration = (chrono::Utc::now() + chrono::Duration::hours(6)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
        values.insert(
            format!("iam/security-credentials/{INSTANCE_ROLE}"),
            serde_json::json!({
                "Code": "Success",
                "LastUpdated": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "Type": "AWS-HMAC",
                "AccessKeyId": INSTANCE_PROFILE_ACCESS_KEY,
                "SecretAccessKey": "instance-profile-secret",
                "Token": "instance-profile-session-token",
                "Expiration": expiration,
            })
            .to_string(),
        );
        let state = Arc::new(Mutex::new(Metadata { values, tags, requests: Vec::new() }));
        let app = Router::new()
            .route("/latest/api/token", put(token))
            .route("/latest/meta-data/{*path}", get(metadata))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state }
    }

    /// Metadata paths read so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().map(|s| s.requests.clone()).unwrap_or_default()
    }
}

async fn token(headers: HeaderMap) -> (StatusCode, String) {
    match headers.get("x-aws-ec2-metadata-token-ttl-seconds").and_then(|v| v.to_str().ok()) {
        Some(ttl) if ttl.parse::<u32>().is_ok_and(|t| (1..=21600).contains(&t)) => (StatusCode::OK, TOKEN.to_string()),
        _ => (StatusCode::BAD_REQUEST, String::new()),
    }
}

async fn metadata(
    State(state): State<Arc<Mutex<Metadata>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    if headers.get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    let Ok(mut state) = state.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
    };
    state.requests.push(path.clone());
    let found = match path.strip_prefix("tags/instance/") {
        Some(key) => state.tags.get(key).cloned(),
        None => state.values.get(&path).or_else(|| state.values.get(&format!("{path}/"))).cloned(),
    };
    match found {
        Some(value) => (StatusCode::OK, value),
        None => (StatusCode::NOT_FOUND, String::new()),
    }
}
