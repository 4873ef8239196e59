//! A fault-injecting proxy between the AWS SDK and moto (decisions.md #22).
//!
//! moto cannot throttle, run out of capacity or fail partially. This proxy forwards everything
//! to moto and, for the calls a test names, answers the way AWS does instead: EC2 error XML
//! (`RequestLimitExceeded`, `InsufficientInstanceCapacity`...), AWS JSON errors for SSM/SQS
//! (`ThrottlingException`), or a CreateFleet that launches fewer instances than asked with a real
//! `errorSet`. So the SDK's parsing and the project's classification are what the tests exercise.
//!
//! Point a function at it with `AWS_ENDPOINT_URL=<proxy url>`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What to do with matching calls.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Answer with an AWS error.
    Error { status: u16, code: String, message: String },
    /// CreateFleet launches only `fulfil` instances and reports `code` for the rest.
    FleetShortfall { fulfil: usize, code: String },
    /// Forward after a delay.
    Delay(Duration),
    /// Forward at once, answer after a delay: the call takes effect but its caller may have
    /// timed out by then (and retries a call that already succeeded).
    DelayResponse(Duration),
    /// `DescribeInstances` does not list instances launched (through this proxy) less than
    /// this long ago: EC2's eventual consistency.
    HideNewInstances(Duration),
    /// `DescribeInstances` does not list these instances.
    HideInstances(Vec<String>),
}

/// A fault for calls to `action` (`ec2:CreateFleet`, `ssm:PutParameter`, `sqs:SendMessage`...).
#[derive(Debug, Clone)]
pub struct AwsFault {
    pub action: String,
    pub kind: FaultKind,
    /// How many calls it applies to; `None` for all.
    pub times: Option<u32>,
    /// Only calls whose request body contains this text (e.g. a parameter name).
    pub body_contains: Option<String>,
}

impl AwsFault {
    pub fn error(action: &str, status: u16, code: &str) -> Self {
        Self {
            action: action.into(),
            kind: FaultKind::Error { status, code: code.into(), message: format!("injected {code}") },
            times: None,
            body_contains: None,
        }
    }

    /// EC2's throttling answer (HTTP 503, `RequestLimitExceeded`).
    pub fn ec2_throttled(action: &str) -> Self {
        Self::error(action, 503, "RequestLimitExceeded")
    }

    pub fn fleet_shortfall(fulfil: usize, code: &str) -> Self {
        Self {
            action: "ec2:CreateFleet".into(),
            kind: FaultKind::FleetShortfall { fulfil, code: code.into() },
            times: None,
            body_contains: None,
        }
    }

    /// A call to `action` forwarded only after `delay`.
    pub fn delayed(action: &str, delay: Duration) -> Self {
        Self { action: action.into(), kind: FaultKind::Delay(delay), times: None, body_contains: None }
    }

    /// A call to `action` that takes effect but is answered only after `delay`.
    pub fn slow_answer(action: &str, delay: Duration) -> Self {
        Self { action: action.into(), kind: FaultKind::DelayResponse(delay), times: None, body_contains: None }
    }

    /// Instances listed by `DescribeInstances` only `lag` after their launch.
    pub fn visibility_lag(lag: Duration) -> Self {
        Self {
            action: "ec2:DescribeInstances".into(),
            kind: FaultKind::HideNewInstances(lag),
            times: None,
            body_contains: None,
        }
    }

    /// `DescribeInstances` leaves these instances out.
    pub fn hide_instances(ids: &[String]) -> Self {
        Self {
            action: "ec2:DescribeInstances".into(),
            kind: FaultKind::HideInstances(ids.to_vec()),
            times: None,
            body_contains: None,
        }
    }

    /// Only for calls whose body contains `text`.
    pub fn when_body_contains(mut self, text: &str) -> Self {
        self.body_contains = Some(text.to_string());
        self
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

#[derive(Default)]
struct ProxyState {
    faults: Vec<AwsFault>,
    /// (action, status) of every call.
    calls: Vec<(String, u16)>,
    /// Request bodies of EC2 calls (query protocol), by action.
    ec2_requests: Vec<(String, String)>,
    /// (action, access key id) of every signed call.
    signers: Vec<(String, String)>,
    /// Instances launched through the proxy, and when their launch was answered.
    launched: Vec<(String, std::time::Instant)>,
}

struct Shared {
    upstream: String,
    state: Mutex<ProxyState>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A running proxy.
pub struct AwsProxy {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(m: &Mutex<ProxyState>) -> std::sync::MutexGuard<'_, ProxyState> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl AwsProxy {
    /// Starts a proxy in front of `upstream` (moto's endpoint).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            state: Mutex::new(ProxyState::default()),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let app = Router::new().fallback(proxy).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, shared, server }
    }

    pub fn inject(&self, fault: AwsFault) {
        lock(&self.shared.state).faults.push(fault);
    }

    pub fn clear(&self) {
        lock(&self.shared.state).faults.clear();
    }

    /// Calls seen for `action`, and how many of them were answered with an error.
    pub fn count(&self, action: &str) -> usize {
        lock(&self.shared.state).calls.iter().filter(|(a, _)| a == action).count()
    }

    /// Every call seen: (action, status).
    pub fn calls(&self) -> Vec<(String, u16)> {
        lock(&self.shared.state).calls.clone()
    }

    /// Calls seen, by action.
    pub fn counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for (action, _) in self.calls() {
            *out.entry(action).or_insert(0) += 1;
        }
        out
    }

    /// The access key ids that signed the calls for `action`, in order.
    pub fn access_keys(&self, action: &str) -> Vec<String> {
        lock(&self.shared.state).signers.iter().filter(|(a, _)| a == action).map(|(_, k)| k.clone()).collect()
    }

    pub fn clear_calls(&self) {
        lock(&self.shared.state).calls.clear();
    }

    /// The form parameters of every EC2 request for `action` (e.g. `ec2:CreateFleet`).
    pub fn ec2_requests(&self, action: &str) -> Vec<Vec<(String, String)>> {
        lock(&self.shared.state)
            .ec2_requests
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, body)| {
                body.split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (url_decode(k), url_decode(v)))
                    .collect()
            })
            .collect()
    }
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 2;
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `ec2:CreateFleet` for EC2's query protocol, `ssm:PutParameter` for the JSON protocols,
/// `s3:UploadPart` for S3's REST protocol.
fn action_of(method: &axum::http::Method, query: &str, headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (service, operation) = target.split_once('.').unwrap_or(("", target));
        let service = match service {
            s if s.starts_with("AmazonSSM") => "ssm",
            s if s.starts_with("AmazonSQS") => "sqs",
            "AWSEvents" => "events",
            other => other,
        };
        return format!("{service}:{operation}");
    }
    if method == axum::http::Method::POST
        && (body.starts_with(b"Action=") || String::from_utf8_lossy(body).contains("&Action="))
    {
        let text = String::from_utf8_lossy(body);
        for pair in text.split('&') {
            if let Some(action) = pair.strip_prefix("Action=") {
                return format!("ec2:{action}");
            }
        }
    }
    let has = |k: &str| query.split('&').any(|p| p == k || p.starts_with(&format!("{k}=")));
    let operation = match *method {
        axum::http::Method::POST if has("uploads") => "CreateMultipartUpload",
        axum::http::Method::POST if has("uploadId") => "CompleteMultipartUpload",
        axum::http::Method::PUT if has("partNumber") => "UploadPart",
        axum::http::Method::DELETE if has("uploadId") => "AbortMultipartUpload",
        axum::http::Method::GET if has("tagging") => "GetObjectTagging",
        axum::http::Method::PUT if has("tagging") => "PutObjectTagging",
        axum::http::Method::GET if has("uploads") => "ListMultipartUploads",
        axum::http::Method::PUT => "PutObject",
        axum::http::Method::GET => "GetObject",
        axum::http::Method::HEAD => "HeadObject",
        _ => "other",
    };
    format!("s3:{operation}")
}

fn error_response(action: &str, status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    if action.starts_with("s3:") {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{:08x}</RequestId></Error>",
            fastrand::u32(..)
        );
        return (status, [("content-type", "application/xml")], body).into_response();
    }
    if action.starts_with("ec2:") {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{:08x}-proxy</RequestID></Response>",
            fastrand::u32(..)
        );
        (status, [("content-type", "text/xml;charset=UTF-8")], body).into_response()
    } else {
        let body = serde_json::json!({"__type": code, "message": message}).to_string();
        let mut r = (status, [("content-type", "application/x-amz-json-1.1")], body).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("{code}:Sender")) {
            r.headers_mut().insert("x-amzn-query-error", v);
        }
        r
    }
}

fn fleet_error_set(code: &str) -> String {
    format!(
        "<errorSet><item><errorCode>{code}</errorCode><errorMessage>There is no Spot capacity available that matches your request.</errorMessage><lifecycle>spot</lifecycle></item></errorSet>"
    )
}

async fn proxy(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let action = action_of(&parts.method, parts.uri.query().unwrap_or(""), &parts.headers, &body);
    if let Some(key) = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split('/').next())
    {
        lock(&shared.state).signers.push((action.clone(), key.to_string()));
    }
    if action.starts_with("ec2:") {
        lock(&shared.state).ec2_requests.push((action.clone(), String::from_utf8_lossy(&body).into_owned()));
    }
    let fault = {
        let mut s = lock(&shared.state);
        let mut chosen = None;
        for f in s.faults.iter_mut() {
            let body_ok = f.body_contains.as_ref().is_none_or(|t| String::from_utf8_lossy(&body).contains(t.as_str()));
            if f.action == action && body_ok && f.times.is_none_or(|t| t > 0) {
                if let Some(t) = f.times.as_mut() {
                    *t -= 1;
                }
                chosen = Some(f.kind.clone());
                break;
            }
        }
        chosen
    };
    let mut body = body;
    let mut shortfall_code = None;
    let mut answer_delay = None;
    let mut hide_younger_than = None;
    let mut hidden: Vec<String> = Vec::new();
    match &fault {
        Some(FaultKind::Error { status, code, message }) => {
            lock(&shared.state).calls.push((action.clone(), *status));
            return error_response(&action, *status, code, message);
        }
        Some(FaultKind::Delay(d)) => tokio::time::sleep(*d).await,
        Some(FaultKind::DelayResponse(d)) => answer_delay = Some(*d),
        Some(FaultKind::HideNewInstances(lag)) => hide_younger_than = Some(*lag),
        Some(FaultKind::HideInstances(ids)) => hidden = ids.clone(),
        Some(FaultKind::FleetShortfall { fulfil, code }) => {
            if *fulfil == 0 {
                lock(&shared.state).calls.push((action.clone(), 200));
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateFleetResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>{:08x}-proxy</requestId><fleetId>fleet-{:08x}</fleetId>{}<fleetInstanceSet/></CreateFleetResponse>",
                    fastrand::u32(..),
                    fastrand::u32(..),
                    fleet_error_set(code)
                );
                return (StatusCode::OK, [("content-type", "text/xml;charset=UTF-8")], xml).into_response();
            }
            let text = String::from_utf8_lossy(&body).into_owned();
            let rewritten: Vec<String> = text
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some(("TargetCapacitySpecification.TotalTargetCapacity", n)) => {
                        let asked: usize = n.parse().unwrap_or(0);
                        format!("TargetCapacitySpecification.TotalTargetCapacity={}", asked.min(*fulfil))
                    }
                    _ => pair.to_string(),
                })
                .collect();
            body = Bytes::from(rewritten.join("&"));
            shortfall_code = Some(code.clone());
        }
        None => {}
    }
    let uri = format!("{}{}", shared.upstream, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut forward = hyper::Request::builder().method(parts.method.clone()).uri(&uri);
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            forward = forward.header(k, v);
        }
    }
    let Ok(forward) = forward.body(Full::new(body)) else {
        return (StatusCode::BAD_GATEWAY, "bad request").into_response();
    };
    let response = match shared.client.request(forward).await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let (rparts, rbody) = response.into_parts();
    let mut bytes = rbody.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if let Some(code) = shortfall_code {
        let xml = String::from_utf8_lossy(&bytes).into_owned();
        bytes = Bytes::from(xml.replacen(
            "<fleetInstanceSet>",
            &format!("{}<fleetInstanceSet>", fleet_error_set(&code)),
            1,
        ));
    }
    if action == "ec2:CreateFleet" || action == "ec2:RunInstances" {
        let now = std::time::Instant::now();
        let ids = instance_ids_in(&String::from_utf8_lossy(&bytes));
        lock(&shared.state).launched.extend(ids.into_iter().map(|id| (id, now)));
    }
    if let Some(lag) = hide_younger_than {
        hidden
            .extend(lock(&shared.state).launched.iter().filter(|(_, at)| at.elapsed() < lag).map(|(id, _)| id.clone()));
    }
    if !hidden.is_empty() {
        let mut xml = String::from_utf8_lossy(&bytes).into_owned();
        for id in hidden {
            xml = without_instance(&xml, &id);
        }
        bytes = Bytes::from(xml);
    }
    lock(&shared.state).calls.push((action, rparts.status.as_u16()));
    if let Some(delay) = answer_delay {
        tokio::time::sleep(delay).await;
    }
    let mut out = Response::builder().status(rparts.status);
    for (k, v) in &rparts.headers {
        if k != "content-length" && k != "transfer-encoding" {
            out = out.header(k, v);
        }
    }
    out.body(Body::from(bytes)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// The instance ids (`>i-...<`) in an EC2 response.
fn instance_ids_in(xml: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(">i-") {
        let tail = &rest[at + 1..];
        let end = tail.find('<').unwrap_or(tail.len());
        let id = &tail[..end];
        if id.len() > 2 && id[2..].chars().all(|c| c.is_ascii_hexdigit()) && !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
        rest = &tail[end..];
    }
    ids
}

/// A `DescribeInstances` response without the instance `id`: its `<item>` in `instancesSet`
/// (found around its `<instanceId>`, counting nested items) is cut out.
fn without_instance(xml: &str, id: &str) -> String {
    let needle = format!("<instanceId>{id}</instanceId>");
    let Some(at) = xml.find(&needle) else {
        return xml.to_string();
    };
    // Back to the `<item>` that encloses it.
    let mut depth = 0usize;
    let mut start = None;
    let mut cursor = at;
    while let Some(pos) = xml[..cursor].rfind("item>") {
        if pos >= 2 && &xml[pos - 2..pos] == "</" {
            depth += 1;
            cursor = pos - 2;
        } else if pos >= 1 && &xml[pos - 1..pos] == "<" {
            if depth == 0 {
                start = Some(pos - 1);
                break;
            }
            depth -= 1;
            cursor = pos - 1;
        } else {
            cursor = pos;
        }
    }
    let Some(start) = start else {
        return xml.to_string();
    };
    // Forward to its `</item>`.
    let mut depth = 0usize;
    let mut cursor = start + "<item>".len();
    while let Some(offset) = xml[cursor..].find("item>") {
        let pos = cursor + offset;
        if &xml[pos - 2..pos] == "</" {
            if depth == 0 {
                let end = pos + "item>".len();
                return format!("{}{}", &xml[..start], &xml[end..]);
            }
            depth -= 1;
        } else if &xml[pos - 1..pos] == "<" {
            depth += 1;
        }
        cursor = pos + "item>".len();
    }
    xml.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_cut_out_of_a_listing() {
        let xml = "<r><reservationSet><item><reservationId>r-1</reservationId><instancesSet>\
<item><blockDeviceMapping><item><x>1</x></item></blockDeviceMapping><instanceId>i-0a</instanceId><tagSet><item><key>k</key></item></tagSet></item>\
<item><instanceId>i-0b</instanceId></item></instancesSet></item></reservationSet></r>";
        let cut = without_instance(xml, "i-0a");
        assert_eq!(
            cut,
            "<r><reservationSet><item><reservationId>r-1</reservationId><instancesSet><item><instanceId>i-0b</instanceId></item></instancesSet></item></reservationSet></r>"
        );
        assert_eq!(instance_ids_in(xml), vec!["i-0a", "i-0b"]);
        assert_eq!(without_instance(xml, "i-0c"), xml);
    }
}
