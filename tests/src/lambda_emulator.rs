//! A Lambda Runtime API emulator that runs a real function binary as Lambda does.
//!
//! The binary is started with a clean environment: the variables Lambda sets
//! (`AWS_LAMBDA_RUNTIME_API`, function name, memory, JSON log format...) plus the function's own
//! environment as Terraform would set it. It polls this emulator for events
//! (`GET /2018-06-01/runtime/invocation/next`) and posts results back, so end-to-end tests
//! exercise the same code path, event parsing and error reporting as in AWS.
//!
//! Everything the binary prints is captured (logs, EMF metrics) for assertions.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, oneshot, watch};

/// What an invocation returned.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeError {
    /// The function reported an error (`/invocation/{id}/error`).
    Function { error_type: String, message: String },
    /// No answer within the function timeout.
    Timeout,
    /// The process exited.
    Exited(String),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

type Outcome = Result<Value, InvokeError>;

struct Pending {
    id: String,
    event: Value,
    deadline_ms: u64,
    responder: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Runtime {
    queue: Mutex<VecDeque<Pending>>,
    notify: Notify,
    in_flight: Mutex<HashMap<String, (oneshot::Sender<Outcome>, Instant)>>,
    first_poll: Mutex<Option<Instant>>,
    last_handler_time: Mutex<Option<Duration>>,
    init_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A function binary running under the emulator.
pub struct LambdaFunction {
    pub name: String,
    pub pid: u32,
    pub spawned_at: Instant,
    timeout: Duration,
    runtime: Arc<Runtime>,
    logs: Arc<Mutex<Vec<String>>>,
    exit: watch::Receiver<Option<String>>,
    kill: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        self.server.abort();
    }
}

impl LambdaFunction {
    /// Starts `binary` as function `name` with `env` (its Terraform environment plus AWS
    /// credentials/endpoint) and a `timeout` per invocation.
    pub async fn spawn(binary: &Path, name: &str, env: &[(String, String)], timeout: Duration) -> Self {
        let runtime = Arc::new(Runtime::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the runtime API");
        let address = listener.local_addr().expect("runtime API address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]0000")
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let spawned_at = Instant::now();
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let pid = child.id().unwrap_or(0);
        let logs = Arc::new(Mutex::new(Vec::new()));
        let echo = std::env::var("E2E_ECHO_LOGS").is_ok();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            let tag = name.to_string();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if echo {
                        eprintln!("[{tag}] {line}");
                    }
                    lock(&logs).push(line);
                }
            });
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                _ = kill_rx => {
                    let _ = child.kill().await;
                    "killed".to_string()
                }
            };
            let _ = exit_tx.send(Some(status));
        });
        Self {
            name: name.to_string(),
            pid,
            spawned_at,
            timeout,
            runtime,
            logs,
            exit: exit_rx,
            kill: Some(kill_tx),
            server,
        }
    }

    /// Waits until the function asks for its first event (its init is done) and returns the
    /// time from spawning it.
    pub async fn ready(&self, within: Duration) -> Result<Duration, InvokeError> {
        let started = Instant::now();
        loop {
            if let Some(t) = *lock(&self.runtime.first_poll) {
                return Ok(t.duration_since(self.spawned_at));
            }
            if let Some(status) = self.exit.borrow().clone() {
                return Err(InvokeError::Exited(format!("{status}; init error: {:?}", lock(&self.runtime.init_error))));
            }
            if started.elapsed() > within {
                return Err(InvokeError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Invokes the function with `event` and waits for its answer, then for the lines it
    /// printed: they travel through a pipe that another task reads, and may trail the answer.
    pub async fn invoke(&self, event: Value) -> Outcome {
        let outcome = self.invoke_unsettled(event).await;
        self.settle_logs().await;
        outcome
    }

    /// Waits until the captured output stops growing (50 ms without a new line, at most 2 s).
    pub async fn settle_logs(&self) {
        let until = Instant::now() + Duration::from_secs(2);
        let mut seen = lock(&self.logs).len();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = lock(&self.logs).len();
            if now == seen || Instant::now() > until {
                return;
            }
            seen = now;
        }
    }

    /// Waits (at most `within`) until a captured line contains `needle`.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            if lock(&self.logs).iter().any(|l| l.contains(needle)) {
                return true;
            }
            if Instant::now() > until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Invokes the function and returns as soon as its answer arrives, without waiting for its
    /// output: for timing measurements (the benchmarks).
    pub async fn invoke_unsettled(&self, event: Value) -> Outcome {
        let (tx, rx) = oneshot::channel();
        let deadline = SystemTime::now() + self.timeout;
        let deadline_ms = deadline.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        lock(&self.runtime.queue).push_back(Pending {
            id: format!("req-{:016x}", fastrand::u64(..)),
            event,
            deadline_ms,
            responder: tx,
        });
        self.runtime.notify.notify_one();
        let mut exit = self.exit.clone();
        tokio::select! {
            r = rx => r.unwrap_or(Err(InvokeError::Exited("runtime dropped the invocation".into()))),
            _ = tokio::time::sleep(self.timeout + Duration::from_secs(1)) => Err(InvokeError::Timeout),
            status = exit.wait_for(Option::is_some) => {
                let status = status.map(|s| s.clone().unwrap_or_default()).unwrap_or_default();
                Err(InvokeError::Exited(status))
            }
        }
    }

    /// How long the handler took for the last answered invocation (from handing out the event
    /// to receiving the answer).
    pub fn last_handler_time(&self) -> Option<Duration> {
        *lock(&self.runtime.last_handler_time)
    }

    /// Waits for the process to exit (it failed at init) and returns its status.
    pub async fn exited(&self, within: Duration) -> Option<String> {
        let mut exit = self.exit.clone();
        let waited = tokio::time::timeout(within, exit.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(status)) => status.clone(),
            _ => None,
        }
    }

    /// Every line the function printed so far.
    pub fn logs(&self) -> Vec<String> {
        lock(&self.logs).clone()
    }

    /// Log lines that are JSON objects.
    pub fn json_logs(&self) -> Vec<Value> {
        self.logs().iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(Value::is_object).collect()
    }

    /// EMF lines for `metric`: (value, the whole line).
    pub fn metric(&self, metric: &str) -> Vec<(f64, Value)> {
        self.json_logs()
            .into_iter()
            .filter(|v| v.get("_aws").is_some() && v.get(metric).is_some())
            .map(|v| (v[metric].as_f64().unwrap_or(0.0), v))
            .collect()
    }

    /// Peak resident memory of the process so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }
}

async fn next(State(rt): State<Arc<Runtime>>) -> Response {
    {
        let mut first = lock(&rt.first_poll);
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }
    loop {
        let notified = rt.notify.notified();
        let pending = lock(&rt.queue).pop_front();
        if let Some(p) = pending {
            lock(&rt.in_flight).insert(p.id.clone(), (p.responder, Instant::now()));
            let mut headers = HeaderMap::new();
            let mut put = |k: &'static str, v: String| {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    headers.insert(k, v);
                }
            };
            put("lambda-runtime-aws-request-id", p.id.clone());
            put("lambda-runtime-deadline-ms", p.deadline_ms.to_string());
            put("lambda-runtime-invoked-function-arn", "arn:aws:lambda:eu-west-1:123456789012:function:fn".into());
            put(
                "lambda-runtime-trace-id",
                format!("Root=1-{:08x}-{:024x};Sampled=0", 0x6000_0000u32, fastrand::u64(..)),
            );
            put("content-type", "application/json".into());
            return (StatusCode::OK, headers, p.event.to_string()).into_response();
        }
        notified.await;
    }
}

fn complete(rt: &Runtime, id: &str, outcome: Outcome) -> Response {
    match lock(&rt.in_flight).remove(id) {
        Some((tx, handed_out)) => {
            *lock(&rt.last_handler_time) = Some(handed_out.elapsed());
            let _ = tx.send(outcome);
            (StatusCode::ACCEPTED, "{\"status\":\"OK\"}").into_response()
        }
        None => (StatusCode::BAD_REQUEST, "{\"errorMessage\":\"unknown request id\"}").into_response(),
    }
}

async fn response(State(rt): State<Arc<Runtime>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    let value =
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    complete(&rt, &id, Ok(value))
}

async fn error(State(rt): State<Arc<Runtime>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let err = InvokeError::Function {
        error_type: v["errorType"].as_str().unwrap_or("").to_string(),
        message: v["errorMessage"].as_str().unwrap_or("").to_string(),
    };
    complete(&rt, &id, Err(err))
}

async fn init_error(State(rt): State<Arc<Runtime>>, body: Bytes) -> Response {
    *lock(&rt.init_error) = Some(String::from_utf8_lossy(&body).into_owned());
    (StatusCode::ACCEPTED, "{\"status\":\"OK\"}").into_response()
}
