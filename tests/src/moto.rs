//! moto (the AWS emulator) in server mode, one per test process.
//!
//! Started on first use from the project virtualenv that `make setup` creates, on a free
//! loopback port that moto binds itself (no port race). It stops when the test process ends:
//! it reads its stdin until EOF, and this process holds the pipe's other end.
//!
//! A missing virtualenv is a test failure with instructions, never a skip (decisions.md #20).
//! Tests that share the server use unique resource names ([`unique`]) and never reset it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::config::{Credentials, Region};

pub const REGION: &str = "eu-west-1";
pub const ACCOUNT: &str = "123456789012";

pub struct Moto {
    pub endpoint: String,
    _child: Mutex<Child>,
    _stdin: Mutex<ChildStdin>,
    /// Time from spawning moto to its first answer.
    pub startup: Duration,
}

/// The project root (the workspace folder).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// The Python of the project virtualenv (or `MOTO_PYTHON`).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_PYTHON") {
        return PathBuf::from(p);
    }
    project_root().join(".venv/bin/python")
}

impl Moto {
    /// The shared server of this test process.
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(Moto::start)
    }

    /// A server of its own, with extra environment for moto (e.g. `MOTO_IAM_LOAD_MANAGED_POLICIES`),
    /// for a test that compares everything in moto before and after (the apply test).
    pub fn dedicated(env: &[(&str, &str)]) -> Moto {
        Self::start_with(env)
    }

    fn start() -> Moto {
        Self::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Moto {
        let python = python();
        assert!(
            python.exists(),
            "moto is not installed: `{}` does not exist. Run `make setup` (it creates the project virtualenv with moto[server]).",
            python.display()
        );
        let script = project_root().join("tests/scripts/moto_server.py");
        // moto's own errors (tracebacks behind its 500 answers) go to a log beside the build.
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log_path = project_root().join("target").join(format!("moto-{}-{n}.log", std::process::id()));
        let stderr = std::fs::File::create(&log_path).map(Stdio::from).unwrap_or_else(|_| Stdio::null());
        let started = Instant::now();
        let mut child = Command::new(&python)
            .arg(&script)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto with {}: {e}", python.display()));
        let stdout = child.stdout.take().expect("moto stdout");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).expect("read moto's port");
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("moto did not start (it printed {line:?}); run `make setup`"));
        // moto prints warnings later (its Lambda looks for Docker): keep the pipe drained.
        std::thread::spawn(move || {
            let mut rest = reader;
            let _ = std::io::copy(&mut rest, &mut std::io::sink());
        });
        let endpoint = format!("http://127.0.0.1:{port}");
        let stdin = child.stdin.take().expect("moto stdin");
        Moto { endpoint, _child: Mutex::new(child), _stdin: Mutex::new(stdin), startup: started.elapsed() }
    }

    /// SDK configuration for test-side clients. Standard retries ride over moto's rare 500s
    /// under concurrent tests; the functions under test keep their own retry policy.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .load()
            .await
    }

    /// The environment that points a function binary at moto, exactly as Lambda would provide
    /// credentials and region, plus the standard `AWS_ENDPOINT_URL`.
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_DEFAULT_REGION".into(), REGION.into()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ]
    }

    /// Warms the EC2 backend (its first call takes seconds while moto loads AMIs).
    pub async fn warm_ec2(&self) {
        let ec2 = aws_sdk_ec2::Client::new(&self.sdk_config().await);
        let _ = ec2.describe_instances().send().await;
    }
}

/// A name no other test uses: `<prefix>-<counter>-<random>`.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{:04x}", N.fetch_add(1, Ordering::SeqCst), fastrand::u16(..))
}
