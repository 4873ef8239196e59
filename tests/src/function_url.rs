//! A Lambda function URL in front of a function binary: each HTTP request becomes the payload
//! 2.0 event AWS builds, the function's answer becomes the HTTP response. The endpoint can be
//! taken down (answering a status without invoking the function), like an outage or a deploy.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::lambda_emulator::LambdaFunction;

struct Front {
    function: Arc<LambdaFunction>,
    outage: Mutex<Option<u16>>,
    /// The function runs, but the caller gets this status (a gateway timing out on a function
    /// that finished).
    answer_override: Mutex<Option<u16>>,
}

/// The function URL of a function binary.
pub struct FunctionUrl {
    pub url: String,
    front: Arc<Front>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FunctionUrl {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FunctionUrl {
    pub async fn start(function: Arc<LambdaFunction>) -> Self {
        let front = Arc::new(Front { function, outage: Mutex::new(None), answer_override: Mutex::new(None) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}/", listener.local_addr().expect("local address"));
        let app = axum::Router::new().fallback(handle).with_state(front.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, front, server }
    }

    /// `Some(status)`: the function handles each request, and the caller gets `status`.
    pub fn set_answer_override(&self, status: Option<u16>) {
        *self.front.answer_override.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// `Some(status)`: every request is answered `status` without reaching the function.
    pub fn set_outage(&self, status: Option<u16>) {
        *self.front.outage.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }
}

async fn handle(State(front): State<Arc<Front>>, headers: HeaderMap, body: Bytes) -> Response {
    let outage = *front.outage.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(status) = outage {
        return (StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), "endpoint down")
            .into_response();
    }
    let headers: serde_json::Map<String, Value> =
        headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), json!(v.to_str().ok()?)))).collect();
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "140.82.115.1"}},
        "body": base64::engine::general_purpose::STANDARD.encode(&body), "isBase64Encoded": true
    });
    let outcome = front.function.invoke(event).await;
    let answer_override = *front.answer_override.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(status) = answer_override {
        return (StatusCode::from_u16(status).unwrap_or(StatusCode::GATEWAY_TIMEOUT), "gateway timeout")
            .into_response();
    }
    match outcome {
        Ok(answer) => {
            let status = answer["statusCode"].as_u64().and_then(|s| StatusCode::from_u16(s as u16).ok());
            let body = answer["body"].as_str().unwrap_or_default().to_string();
            (status.unwrap_or(StatusCode::OK), body).into_response()
        }
        // Lambda answers a failed invocation with 502 through a function URL.
        Err(_) => (StatusCode::BAD_GATEWAY, "Internal Server Error").into_response(),
    }
}
