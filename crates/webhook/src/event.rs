//! HTTP requests and responses as Lambda delivers them: API Gateway REST (payload 1.0),
//! HTTP API (payload 1.0 or 2.0) and function URLs (2.0).

use std::collections::HashMap;

use base64::Engine;
use serde::Deserialize;

/// An HTTP request, headers lower-cased, body decoded to the bytes GitHub sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Option<String>,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// The answer, as both payload formats accept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

impl HttpResponse {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self { status, body: body.into() }
    }

    pub fn to_event(&self) -> serde_json::Value {
        serde_json::json!({
            "statusCode": self.status,
            "headers": {"content-type": "text/plain; charset=utf-8"},
            "body": self.body,
            "isBase64Encoded": false,
        })
    }
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    headers: Option<HashMap<String, Option<String>>>,
    #[serde(default, rename = "multiValueHeaders")]
    multi_value_headers: Option<HashMap<String, Option<Vec<String>>>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default, rename = "isBase64Encoded")]
    is_base64_encoded: bool,
    #[serde(default, rename = "httpMethod")]
    http_method: Option<String>,
    #[serde(default, rename = "requestContext")]
    request_context: Option<RequestContext>,
}

#[derive(Deserialize)]
struct RequestContext {
    #[serde(default)]
    http: Option<HttpContext>,
    #[serde(default, rename = "httpMethod")]
    http_method: Option<String>,
}

#[derive(Deserialize)]
struct HttpContext {
    #[serde(default)]
    method: Option<String>,
}

/// Why a Lambda event could not be read as an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not an HTTP request: {0}")]
    NotHttp(String),
    #[error("the body is marked base64 but is not valid base64")]
    BadBase64,
}

/// Reads an API Gateway / function URL event. Header names are lower-cased; a base64 body is
/// decoded first (the signature is over the decoded bytes, decisions.md #2).
pub fn parse_event(event: &serde_json::Value) -> Result<HttpRequest, EventError> {
    let raw: RawEvent = RawEvent::deserialize(event).map_err(|e| EventError::NotHttp(e.to_string()))?;
    if raw.headers.is_none() && raw.multi_value_headers.is_none() && raw.body.is_none() {
        return Err(EventError::NotHttp("no headers and no body".into()));
    }
    let mut headers = HashMap::new();
    for (k, vs) in raw.multi_value_headers.unwrap_or_default() {
        if let Some(v) = vs.and_then(|vs| vs.into_iter().next()) {
            headers.insert(k.to_ascii_lowercase(), v);
        }
    }
    for (k, v) in raw.headers.unwrap_or_default() {
        if let Some(v) = v {
            headers.insert(k.to_ascii_lowercase(), v);
        }
    }
    let body = raw.body.unwrap_or_default();
    let body = if raw.is_base64_encoded {
        base64::engine::general_purpose::STANDARD.decode(body.as_bytes()).map_err(|_| EventError::BadBase64)?
    } else {
        body.into_bytes()
    };
    let method = raw
        .request_context
        .as_ref()
        .and_then(|c| c.http.as_ref().and_then(|h| h.method.clone()).or_else(|| c.http_method.clone()))
        .or(raw.http_method);
    Ok(HttpRequest { method, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_api_v1() {
        let e = serde_json::json!({
            "resource": "/webhook", "path": "/webhook", "httpMethod": "POST",
            "headers": {"X-GitHub-Event": "workflow_job", "Content-Type": "application/json", "Nullable": null},
            "multiValueHeaders": {"X-GitHub-Event": ["workflow_job"]},
            "requestContext": {"httpMethod": "POST"},
            "body": "{}", "isBase64Encoded": false
        });
        let r = parse_event(&e).unwrap();
        assert_eq!(r.header("x-github-event"), Some("workflow_job"));
        assert_eq!(r.method.as_deref(), Some("POST"));
        assert_eq!(r.body, b"{}");
    }

    #[test]
    fn http_api_v2_and_function_url_base64() {
        let e = serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
            "headers": {"x-hub-signature-256": "sha256=00"},
            "requestContext": {"http": {"method": "POST", "path": "/"}},
            "body": "eyJhIjoxfQ==", "isBase64Encoded": true
        });
        let r = parse_event(&e).unwrap();
        assert_eq!(r.body, br#"{"a":1}"#);
        assert_eq!(r.method.as_deref(), Some("POST"));
        let bad = serde_json::json!({"headers": {}, "body": "***", "isBase64Encoded": true});
        assert_eq!(parse_event(&bad), Err(EventError::BadBase64));
        assert!(matches!(parse_event(&serde_json::json!({"Records": []})), Err(EventError::NotHttp(_))));
        assert!(matches!(parse_event(&serde_json::json!("text")), Err(EventError::NotHttp(_))));
    }
}
