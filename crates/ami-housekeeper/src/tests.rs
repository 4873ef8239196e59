use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::deadline::Deadline;
use common::domain::ami_housekeeper::{AmiCleanupConfig, MachineImage};
use common::error::{AwsError, AwsErrorKind};
use common::telemetry::{MemorySink, Metrics, TelemetryConfig};
use common::testing::{ManualClock, MemoryMachineImages, MemoryParameterStore};

use super::*;

struct World {
    images: Arc<MemoryMachineImages>,
    store: Arc<MemoryParameterStore>,
    sink: Arc<MemorySink>,
    housekeeper: AmiHousekeeper,
}

fn telemetry() -> TelemetryConfig {
    TelemetryConfig { environment: "acme".into(), namespace: "GitHub Runners".into(), log_level: "info".into() }
}

fn world(options: &str) -> World {
    let images = Arc::new(MemoryMachineImages::default());
    let store = Arc::new(MemoryParameterStore::default());
    let sink = Arc::new(MemorySink::default());
    let config =
        Config { cleanup: AmiCleanupConfig::parse(options).unwrap(), clock_file: None, telemetry: telemetry() };
    let housekeeper = AmiHousekeeper::new(
        config,
        images.clone(),
        store.clone(),
        Arc::new(ManualClock::at(Utc::now())),
        Metrics::new(&telemetry(), sink.clone()),
    );
    World { images, store, sink, housekeeper }
}

fn image(id: &str, days_old: i64) -> MachineImage {
    MachineImage {
        id: id.into(),
        name: Some(format!("runner-{id}")),
        created: Some(Utc::now() - TimeDelta::days(days_old)),
        snapshot_ids: vec![format!("snap-{id}-root"), format!("snap-{id}-data")],
    }
}

/// Images used every way there is, one unused old one, a recent one.
fn seed(w: &World) {
    for (id, days) in [
        ("ami-default", 90),
        ("ami-ssm-ref", 80),
        ("ami-listed", 70),
        ("ami-wildcard", 60),
        ("ami-unused", 50),
        ("ami-unused-older", 55),
        ("ami-recent", 3),
    ] {
        w.images.add(image(id, days));
    }
    w.images.template("acme-action-runner", &["ami-default", "resolve:ssm:/acme/runner/ami"]);
    w.store.put("/acme/runner/ami", "ami-ssm-ref");
    w.store.put("/images/listed", "ami-listed\n");
    w.store.put("/team/build_ami_id", "ami-wildcard");
}

const OPTIONS: &str = r#"{"minimumDaysOld":30,"ssmParameterNames":["/images/listed","*_ami_id","/images/missing"]}"#;

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

#[tokio::test]
async fn deregisters_old_unused_images_and_their_snapshots_oldest_first() {
    let w = world(OPTIONS);
    seed(&w);
    let summary = w.housekeeper.run_once(deadline()).await.unwrap();
    assert_eq!(summary.deregistered, ["ami-unused-older", "ami-unused"]);
    assert_eq!(*w.images.deregistered.lock().unwrap(), ["ami-unused-older", "ami-unused"]);
    assert_eq!(
        *w.images.snapshots_deleted.lock().unwrap(),
        ["snap-ami-unused-older-root", "snap-ami-unused-older-data", "snap-ami-unused-root", "snap-ami-unused-data"]
    );
    let mut in_use = summary.in_use.clone();
    in_use.sort();
    assert_eq!(in_use, ["ami-default", "ami-listed", "ami-ssm-ref", "ami-wildcard"]);
    assert_eq!((summary.listed, summary.recent), (7, 1));
    w.housekeeper.report(&summary);
    assert_eq!(w.sink.sum("AmisDeregistered"), 2.0);
    assert_eq!(w.sink.sum("AmiSnapshotsDeleted"), 4.0);
    // The default filters reached EC2.
    let filters = w.images.filters_seen.lock().unwrap()[0].clone();
    assert_eq!(filters.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["state", "image-type"]);
}

#[tokio::test]
async fn dry_run_deregisters_nothing() {
    let w = world(r#"{"dryRun":true,"ssmParameterNames":["/images/listed","*_ami_id"]}"#);
    seed(&w);
    let summary = w.housekeeper.run_once(deadline()).await.unwrap();
    assert_eq!(summary.deregistered, ["ami-unused-older", "ami-unused"]);
    assert!(w.images.deregistered.lock().unwrap().is_empty());
    assert!(w.images.snapshots_deleted.lock().unwrap().is_empty());
    w.housekeeper.report(&summary);
    assert_eq!(w.sink.sum("AmisDeregistered"), 0.0);
}

#[tokio::test]
async fn nothing_is_deregistered_when_a_use_cannot_be_read() {
    let denied = |op| AwsError::new(op, AwsErrorKind::Client, Some("UnauthorizedOperation".into()), "denied");
    let w = world(OPTIONS);
    seed(&w);
    w.images.fail_templates(Some(denied("ec2:DescribeLaunchTemplates")));
    assert!(w.housekeeper.run_once(deadline()).await.is_err());
    w.images.fail_templates(None);
    w.store.fail_with(Some(denied("ssm:GetParameters")));
    assert!(w.housekeeper.run_once(deadline()).await.is_err());
    assert!(w.images.deregistered.lock().unwrap().is_empty());
}

#[tokio::test]
async fn only_the_listed_templates_keep_images_and_max_items_bounds_the_run() {
    let w = world(r#"{"launchTemplateNames":["acme-action-runner"],"maxItems":3}"#);
    w.images.add(image("ami-a", 40));
    w.images.add(image("ami-b", 41));
    w.images.add(image("ami-c", 42));
    w.images.add(image("ami-d", 43));
    w.images.template("acme-action-runner", &["ami-a"]);
    w.images.template("someone-elses", &["ami-b"]);
    let summary = w.housekeeper.run_once(deadline()).await.unwrap();
    assert_eq!(summary.listed, 3);
    assert_eq!(summary.deregistered, ["ami-c", "ami-b"]);
    assert_eq!(summary.in_use, ["ami-a"]);
}

#[tokio::test]
async fn a_failed_deregistration_is_left_for_the_next_run() {
    let w = world("{}");
    w.images.add(image("ami-stuck", 40));
    w.images.add(image("ami-ok", 41));
    w.images.fail_deregister("ami-stuck", AwsError::new("ec2:DeregisterImage", AwsErrorKind::Client, None, "no"));
    let summary = w.housekeeper.run_once(deadline()).await.unwrap();
    assert_eq!(summary.deregistered, ["ami-ok"]);
    assert_eq!(summary.not_deregistered, ["ami-stuck"]);
    assert_eq!(*w.images.snapshots_deleted.lock().unwrap(), ["snap-ami-ok-root", "snap-ami-ok-data"]);
}
