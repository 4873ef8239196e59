//! Real GitHub webhook payloads (copied from `../shared/fixtures`, see their README), and
//! helpers to derive variants with other labels or ids while keeping the real structure.

use std::path::PathBuf;

use serde_json::Value;

pub const QUEUED: &str = "workflow_job.queued.json";
pub const IN_PROGRESS: &str = "workflow_job.in_progress.json";
pub const COMPLETED: &str = "workflow_job.completed.success.with-organization.json";
pub const CHECK_RUN: &str = "check_run.created.json";
pub const WORKFLOW_RUN: &str = "workflow_run.requested.json";
pub const PING: &str = "ping.json";

/// Every payload file with the `X-GitHub-Event` GitHub sends it with.
pub const ALL: &[(&str, &str)] = &[
    (QUEUED, "workflow_job"),
    (IN_PROGRESS, "workflow_job"),
    (COMPLETED, "workflow_job"),
    (CHECK_RUN, "check_run"),
    (WORKFLOW_RUN, "workflow_run"),
    (PING, "ping"),
];

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/github-webhooks")
}

/// The exact bytes of a payload file.
pub fn webhook(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A `workflow_job` payload derived from a real one with another job id, labels, repository
/// and installation.
pub fn workflow_job(action: &str, job_id: u64, labels: &[&str], owner: &str, repo: &str, installation: u64) -> String {
    let mut v: Value = serde_json::from_str(&webhook(QUEUED)).expect("fixture is JSON");
    v["action"] = action.into();
    v["workflow_job"]["id"] = job_id.into();
    v["workflow_job"]["status"] = action.into();
    v["workflow_job"]["labels"] = labels.iter().map(|l| Value::from(*l)).collect();
    v["repository"]["name"] = repo.into();
    v["repository"]["full_name"] = format!("{owner}/{repo}").into();
    v["repository"]["owner"]["login"] = owner.into();
    v["installation"]["id"] = installation.into();
    serde_json::to_string_pretty(&v).expect("serialise")
}

/// The stand-in runner (`tests/fixtures/runner-stub`: `config.sh`, `run.sh`, `svc.sh`) packed as
/// the runner release tarball the syncer mirrors and the boot script unpacks.
pub fn runner_stub_tarball() -> Vec<u8> {
    let stub = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/runner-stub");
    let output = std::process::Command::new("tar")
        .arg("czf")
        .arg("-")
        .arg("-C")
        .arg(&stub)
        .args(["config.sh", "run.sh", "svc.sh"])
        .output()
        .unwrap_or_else(|e| panic!("tar: {e}"));
    assert!(output.status.success(), "tar: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}
