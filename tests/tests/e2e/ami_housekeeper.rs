//! The AMI housekeeper through its built binary against moto, in simulated time (the test-only
//! clock file): images used by a launch template's default and latest versions, by a
//! `resolve:ssm:` reference, by a listed and a wildcard parameter are kept; old unused ones go
//! with their snapshots; recent ones and ones outside the filters stay; a dry run changes nothing.

use std::time::Duration;

use aws_sdk_ec2::types::{Filter, RequestLaunchTemplateData};
use aws_sdk_ssm::types::ParameterType;
use chrono::Utc;
use serde_json::{Value, json};
use tests::aws::Aws;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};

use crate::support::{binary, env};

struct World {
    aws: Aws,
    prefix: String,
    clock_file: std::path::PathBuf,
}

impl World {
    fn clock_in_days(&self, days: i64) {
        std::fs::write(&self.clock_file, (Utc::now() + chrono::Duration::days(days)).to_rfc3339()).unwrap();
    }

    async fn housekeeper(&self, dry_run: bool) -> LambdaFunction {
        let options = json!({
            "amiFilters": [{"Name": "name", "Values": [format!("{}-*", self.prefix)]}, {"Name": "state", "Values": ["available"]}],
            "dryRun": dry_run,
            "launchTemplateNames": null,
            "maxItems": null,
            "minimumDaysOld": 30,
            "ssmParameterNames": [format!("/{}/listed-ami", self.prefix), format!("*{}/golden", self.prefix), format!("/{}/missing", self.prefix)],
        })
        .to_string();
        let clock = self.clock_file.to_string_lossy();
        let mut vars = env(&[
            ("AMI_CLEANUP_OPTIONS", &options),
            ("ENVIRONMENT", &self.prefix),
            ("LOG_LEVEL", "debug"),
            ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
            (common::config::test_overrides::CLOCK_FILE, &clock),
        ]);
        vars.extend(Moto::shared().lambda_env());
        let name = format!("{}-ami-housekeeper-{}", self.prefix, if dry_run { "dry" } else { "real" });
        LambdaFunction::spawn(&binary("ami-housekeeper"), &name, &vars, Duration::from_secs(60)).await
    }

    /// An image of a fresh instance (moto gives it one EBS snapshot), and that snapshot.
    async fn image(&self, name: &str) -> (String, Vec<String>) {
        let run = self.aws.ec2.run_instances().image_id("ami-12c6146b").min_count(1).max_count(1).send().await.unwrap();
        let instance = run.instances()[0].instance_id().unwrap().to_string();
        let image = self.aws.ec2.create_image().instance_id(&instance).name(name).send().await.unwrap();
        self.aws.ec2.terminate_instances().instance_ids(&instance).send().await.unwrap();
        let id = image.image_id().unwrap().to_string();
        (id.clone(), self.snapshots_of(&id).await)
    }

    async fn snapshots_of(&self, image: &str) -> Vec<String> {
        let out = self.aws.ec2.describe_images().image_ids(image).send().await.unwrap();
        out.images()[0]
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
            .collect()
    }

    async fn put(&self, name: &str, value: &str) {
        let put = self.aws.ssm.put_parameter().name(name).value(value).r#type(ParameterType::String);
        put.send().await.unwrap();
    }

    /// The images with this test's names still registered.
    async fn registered(&self) -> Vec<String> {
        let out = self
            .aws
            .ec2
            .describe_images()
            .owners("self")
            .filters(Filter::builder().name("name").values(format!("{}-*", self.prefix)).build())
            .send()
            .await
            .unwrap();
        let mut ids: Vec<String> = out.images().iter().filter_map(|i| i.image_id().map(str::to_string)).collect();
        ids.sort();
        ids
    }

    async fn snapshot_exists(&self, id: &str) -> bool {
        self.aws.ec2.describe_snapshots().snapshot_ids(id).send().await.is_ok_and(|o| !o.snapshots().is_empty())
    }
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_unused_images_go_with_their_snapshots_images_in_use_stay() {
    let moto = Moto::shared();
    moto.warm_ec2().await;
    let aws = Aws::new(moto).await;
    let prefix = unique("ami");
    let clock_file = std::env::temp_dir().join(format!("{prefix}-clock"));
    let w = World { aws, prefix: prefix.clone(), clock_file };
    w.clock_in_days(0);

    let (by_default, _) = w.image(&format!("{prefix}-default")).await;
    let (by_latest, _) = w.image(&format!("{prefix}-latest")).await;
    let (by_reference, _) = w.image(&format!("{prefix}-resolve-ssm")).await;
    let (by_listed, _) = w.image(&format!("{prefix}-listed")).await;
    let (by_wildcard, _) = w.image(&format!("{prefix}-wildcard")).await;
    let (unused_a, snapshots_a) = w.image(&format!("{prefix}-unused-a")).await;
    let (unused_b, snapshots_b) = w.image(&format!("{prefix}-unused-b")).await;
    let (outside, _) = w.image(&format!("other-{prefix}")).await;
    assert!(!snapshots_a.is_empty() && !snapshots_b.is_empty(), "moto gives an image of an instance a snapshot");

    // The runner template: version 1 (default) and version 2 (latest, not yet the default).
    let data = |image: &str| {
        RequestLaunchTemplateData::builder()
            .image_id(image)
            .instance_type(aws_sdk_ec2::types::InstanceType::M5Large)
            .build()
    };
    let template = format!("{prefix}-action-runner");
    w.aws
        .ec2
        .create_launch_template()
        .launch_template_name(&template)
        .launch_template_data(data(&by_default))
        .send()
        .await
        .unwrap();
    w.aws
        .ec2
        .create_launch_template_version()
        .launch_template_name(&template)
        .launch_template_data(data(&by_latest))
        .send()
        .await
        .unwrap();
    // A template that names its image through SSM (`ami_id_ssm_parameter_name`).
    let reference = format!("/{prefix}/runner-ami");
    w.put(&reference, &by_reference).await;
    w.aws
        .ec2
        .create_launch_template()
        .launch_template_name(format!("{prefix}-ssm-runner"))
        .launch_template_data(data(&format!("resolve:ssm:{reference}")))
        .send()
        .await
        .unwrap();
    w.put(&format!("/{prefix}/listed-ami"), &by_listed).await;
    w.put(&format!("/team/{prefix}/golden-ami-id"), &by_wildcard).await;

    let all = sorted(vec![
        by_default.clone(),
        by_latest.clone(),
        by_reference.clone(),
        by_listed.clone(),
        by_wildcard.clone(),
        unused_a.clone(),
        unused_b.clone(),
    ]);
    let housekeeper = w.housekeeper(false).await;

    // Today every image is recent: nothing goes.
    let today = housekeeper.invoke(json!({})).await.unwrap();
    assert_eq!(today["listed"], 7, "{today}");
    assert_eq!(today["recent"], 2, "{today}");
    assert_eq!(strings(&today["deregistered"]), Vec::<String>::new(), "{today}");

    // A month on, a dry run names the two unused images and changes nothing.
    w.clock_in_days(31);
    let dry = w.housekeeper(true).await.invoke(json!({})).await.unwrap();
    assert_eq!(strings(&dry["deregistered"]), sorted(vec![unused_a.clone(), unused_b.clone()]), "{dry}");
    assert_eq!(w.registered().await, all);

    // The real run: the two unused images and their snapshots go, the rest stay.
    let run = housekeeper.invoke(json!({})).await.unwrap();
    assert_eq!(strings(&run["deregistered"]), sorted(vec![unused_a.clone(), unused_b.clone()]), "{run}");
    assert_eq!(
        strings(&run["inUse"]),
        sorted(vec![
            by_default.clone(),
            by_latest.clone(),
            by_reference.clone(),
            by_listed.clone(),
            by_wildcard.clone()
        ]),
        "{run}"
    );
    assert_eq!(strings(&run["snapshotsDeleted"]), sorted([snapshots_a.clone(), snapshots_b.clone()].concat()), "{run}");
    assert_eq!(w.registered().await, sorted(vec![by_default, by_latest, by_reference, by_listed.clone(), by_wildcard]));
    let outside_left = w.aws.ec2.describe_images().image_ids(&outside).send().await.unwrap();
    assert_eq!(outside_left.images().len(), 1, "an image outside the filters is never touched");
    for snapshot in snapshots_a.iter().chain(&snapshots_b) {
        assert!(!w.snapshot_exists(snapshot).await, "{snapshot} still exists");
    }
    let deregistered = housekeeper.metric("AmisDeregistered");
    assert!(deregistered.iter().any(|(n, _)| *n == 2.0), "{deregistered:?}");
    let logs = housekeeper.logs().join("\n");
    assert!(logs.contains("parameter not found"), "a listed parameter that does not exist is reported");
    assert!(!logs.contains(&by_listed), "parameter values are compared, never logged");
}
