//! The SSM housekeeper through its built binary against moto, in simulated time (the test-only
//! clock file): old, new, orphaned and foreign parameters, and a dry run.

use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;
use chrono::Utc;
use common::domain::runner::RunnerOwner;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

use crate::support::binary;

struct World {
    aws: Aws,
    stack: RunnerStack,
    clock_file: std::path::PathBuf,
}

impl World {
    fn clock_in(&self, minutes: i64) {
        std::fs::write(&self.clock_file, (Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339()).unwrap();
    }

    async fn housekeeper(&self, dry_run: bool) -> LambdaFunction {
        let config = json!({"tokenPath": self.stack.token_path(), "minimumDaysOld": 1, "dryRun": dry_run}).to_string();
        let mut env: Vec<(String, String)> = [
            ("SSM_CLEANUP_CONFIG", config.as_str()),
            ("RUNNER_BOOT_TIME_IN_MINUTES", "5"),
            ("ENVIRONMENT", self.stack.prefix.as_str()),
            ("LOG_LEVEL", "debug"),
            ("POWERTOOLS_METRICS_NAMESPACE", "GitHub Runners"),
            (common::config::test_overrides::CLOCK_FILE, &self.clock_file.to_string_lossy()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(Moto::shared().lambda_env());
        let name = format!("{}-ssm-housekeeper-{}", self.stack.prefix, if dry_run { "dry" } else { "real" });
        LambdaFunction::spawn(&binary("ssm-housekeeper"), &name, &env, Duration::from_secs(60)).await
    }

    async fn put(&self, name: &str) {
        self.aws
            .ssm
            .put_parameter()
            .name(name)
            .value("jit-config")
            .r#type(ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }

    async fn exists(&self, name: &str) -> bool {
        self.aws.ssm.get_parameter().name(name).send().await.is_ok()
    }
}

fn names(answer: &Value, reason: &str) -> Vec<String> {
    let mut names: Vec<String> = answer["deleted"][reason]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_and_orphaned_token_parameters_go_new_and_foreign_ones_stay() {
    let moto = Moto::shared();
    moto.warm_ec2().await;
    let aws = Aws::new(moto).await;
    let app = TestApp::new(1, 6161);
    let stack = RunnerStack::create(&aws, &unique("hk"), std::slice::from_ref(&app)).await;
    let clock_file = std::env::temp_dir().join(format!("{}-clock", stack.prefix));
    let w = World { aws, stack, clock_file };
    w.clock_in(0);

    // A running runner's parameter, a terminated one's, one of an instance EC2 never knew,
    // something else under the token path, and the App's parameters next door.
    let owner = RunnerOwner::Org("acme".into());
    let ids = w.stack.launch_instances(&w.aws, &owner, 2).await;
    let (running, terminated) = (ids[0].clone(), ids[1].clone());
    w.aws.ec2.terminate_instances().instance_ids(&terminated).send().await.unwrap();
    let tokens = w.stack.token_path();
    let (p_running, p_terminated, p_unknown, p_foreign) = (
        format!("{tokens}/{running}"),
        format!("{tokens}/{terminated}"),
        format!("{tokens}/i-0fedcba9876543210"),
        format!("{tokens}/operator-notes"),
    );
    for name in [&p_running, &p_terminated, &p_unknown, &p_foreign] {
        w.put(name).await;
    }

    // Dry run, 10 minutes on: it names the two orphans and deletes nothing.
    w.clock_in(10);
    let dry = w.housekeeper(true).await.invoke(json!({})).await.unwrap();
    assert_eq!(dry["dryRun"], true);
    let mut orphans = vec![p_terminated.clone(), p_unknown.clone()];
    orphans.sort();
    assert_eq!(names(&dry, "orphaned"), orphans, "{dry}");
    for name in [&p_running, &p_terminated, &p_unknown, &p_foreign] {
        assert!(w.exists(name).await, "dry run deleted {name}");
    }

    let housekeeper = w.housekeeper(false).await;
    // Two minutes on: every parameter is younger than the boot time; nothing goes.
    w.clock_in(2);
    let early = housekeeper.invoke(json!({})).await.unwrap();
    assert_eq!((names(&early, "orphaned"), names(&early, "expired")), (vec![], vec![]), "{early}");
    assert_eq!(early["recent"], 3, "{early}");

    // Ten minutes on: the orphans go; the running instance's and the foreign one stay.
    w.clock_in(10);
    let orphaned = housekeeper.invoke(json!({})).await.unwrap();
    assert_eq!(names(&orphaned, "orphaned"), orphans, "{orphaned}");
    assert_eq!(orphaned["foreign"], 1, "{orphaned}");
    assert!(!w.exists(&p_terminated).await && !w.exists(&p_unknown).await);
    assert!(w.exists(&p_running).await && w.exists(&p_foreign).await);
    assert!(housekeeper.logs().iter().any(|l| l.contains("ssm housekeeping done")), "the run's summary line is logged");
    let deleted = housekeeper.metric("SsmParametersDeleted");
    assert!(deleted.iter().any(|(n, v)| *n == 2.0 && v["Reason"] == "orphaned"), "{deleted:?}");

    // Two days on: the running instance's parameter is past minimumDaysOld (upstream's rule).
    w.clock_in(2 * 24 * 60);
    let expired = housekeeper.invoke(json!({})).await.unwrap();
    assert_eq!(names(&expired, "expired"), vec![p_running.clone()], "{expired}");
    assert!(!w.exists(&p_running).await);
    assert!(w.exists(&p_foreign).await, "foreign parameters are never deleted");
    for app_parameter in [&w.stack.app_id_parameters, &w.stack.app_key_parameters, &w.stack.webhook_secret_parameter] {
        assert!(w.exists(app_parameter).await, "{app_parameter} was touched");
    }
}
