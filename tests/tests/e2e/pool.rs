//! The pool through its built binary against moto and the fake GitHub: top-up from empty, a
//! partial pool, busy runners counted or not, the maximum (pool 40, maximum 10), GitHub down,
//! and the pool and scale-down over several scheduled runs (the hold keeps them from fighting).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use chrono::Utc;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::fake_github::{FakeGithub, Fault};
use tests::lambda_emulator::{InvokeError, LambdaFunction};
use tests::moto::{Moto, unique};
use tests::stack::RunnerStack;

use crate::support::binary;

struct World {
    aws: Aws,
    stack: RunnerStack,
    github: FakeGithub,
    clock_file: std::path::PathBuf,
}

impl World {
    async fn new() -> Self {
        let moto = Moto::shared();
        moto.warm_ec2().await;
        let aws = Aws::new(moto).await;
        let github = FakeGithub::start().await;
        let app = TestApp::new(1, 4242);
        github.add_app(app.id, app.public_pem.as_bytes());
        github.add_installation(app.id, "acme", "Organization");
        let stack = RunnerStack::create(&aws, &unique("pool"), std::slice::from_ref(&app)).await;
        let clock_file = std::env::temp_dir().join(format!("{}-clock", stack.prefix));
        std::fs::write(&clock_file, Utc::now().to_rfc3339()).unwrap();
        Self { aws, stack, github, clock_file }
    }

    /// The pool function with Terraform's environment (scale-up's, plus the pool's).
    async fn pool(&self, overrides: &[(&str, &str)]) -> LambdaFunction {
        let mut all = vec![("RUNNER_OWNER", "acme"), ("RUNNER_BOOT_TIME_IN_MINUTES", "5"), ("POOL_HOLD_MINUTES", "30")];
        all.extend_from_slice(overrides);
        let mut env = self.stack.scale_up_env(&self.github.url, &all);
        env.extend(Moto::shared().lambda_env());
        LambdaFunction::spawn(&binary("pool"), &format!("{}-pool", self.stack.prefix), &env, Duration::from_secs(60))
            .await
    }

    async fn scale_down(&self) -> LambdaFunction {
        let mut env = self.stack.scale_down_env(
            &self.github.url,
            &self.clock_file.to_string_lossy(),
            &[("MINIMUM_RUNNING_TIME_IN_MINUTES", "5"), ("SCALE_DOWN_CONFIG", "[]")],
        );
        env.extend(Moto::shared().lambda_env());
        LambdaFunction::spawn(
            &binary("scale-down"),
            &format!("{}-scale-down", self.stack.prefix),
            &env,
            Duration::from_secs(60),
        )
        .await
    }

    /// Live instances of this stack, with their tags.
    async fn instances(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let out = self
            .aws
            .ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
            .filters(Filter::builder().name("instance-state-name").values("running").values("pending").build())
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                let tags = i.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()));
                (i.instance_id().unwrap().to_string(), tags.collect())
            })
            .collect()
    }

    /// What the instance's boot does: its runner starts with the JIT config scale-up stored.
    async fn boot(&self, instance: &str) -> u64 {
        let name = format!("{}/{instance}", self.stack.token_path());
        let out = self.aws.ssm.get_parameter().name(&name).with_decryption(true).send().await.unwrap();
        self.github.start_jit_runner(out.parameter().unwrap().value().unwrap()).unwrap()
    }

    fn clock_in(&self, minutes: i64) {
        std::fs::write(&self.clock_file, (Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339()).unwrap();
    }
}

async fn adjust(pool: &LambdaFunction, size: usize) -> Result<Value, InvokeError> {
    pool.invoke(json!({"poolSize": size, "type": "ec2"})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_fills_up_from_empty_then_only_adds_what_it_lacks() {
    let w = World::new().await;
    let pool = w.pool(&[]).await;
    let first = adjust(&pool, 3).await.unwrap();
    assert_eq!((first["available"].as_u64(), first["created"].as_array().map(Vec::len)), (Some(0), Some(3)), "{first}");
    let instances = w.instances().await;
    assert_eq!(instances.len(), 3);
    let hold_floor = Utc::now().timestamp() + 29 * 60;
    for tags in instances.values() {
        assert_eq!(tags.get("ghr:created_by").map(String::as_str), Some("pool-lambda"), "{tags:?}");
        let until: i64 = tags["ghr:pool_hold_until"].parse().unwrap();
        assert!(until >= hold_floor, "held for POOL_HOLD_MINUTES: {until}");
    }
    assert_eq!(w.github.count("POST", "generate-jitconfig"), 3);
    assert!(pool.logs().iter().any(|l| l.contains("pool adjusted")), "the run's summary line is logged");

    // The next run: the three still boot (their JIT runners are offline): nothing more.
    let again = adjust(&pool, 3).await.unwrap();
    assert_eq!((again["booting"].as_u64(), again["requested"].as_u64()), (Some(3), Some(0)), "{again}");

    // Two come online idle, one takes a job; a pool of 4 lacks one (busy ones do not count).
    let ids: Vec<String> = instances.keys().cloned().collect();
    for id in &ids {
        w.boot(id).await;
    }
    let job = w.github.add_job("acme", "web", &["self-hosted", "linux", "x64"]);
    let busy = w.github.runner_by_name(&ids[0]).unwrap();
    w.github.assign_job(job, busy.id, Duration::ZERO).unwrap();
    let partial = adjust(&pool, 4).await.unwrap();
    assert_eq!(
        (partial["idle"].as_u64(), partial["busy"].as_u64(), partial["requested"].as_u64()),
        (Some(2), Some(1), Some(2)),
        "{partial}"
    );
    assert_eq!(w.instances().await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_runners_count_with_include_busy_runners() {
    let w = World::new().await;
    let pool = w.pool(&[("INCLUDE_BUSY_RUNNERS", "true"), ("RUNNER_BOOT_TIME_IN_MINUTES", "0")]).await;
    adjust(&pool, 1).await.unwrap();
    let id = w.instances().await.into_keys().next().unwrap();
    w.boot(&id).await;
    let job = w.github.add_job("acme", "web", &["self-hosted"]);
    let runner = w.github.runner_by_name(&id).unwrap();
    w.github.assign_job(job, runner.id, Duration::ZERO).unwrap();
    let summary = adjust(&pool, 1).await.unwrap();
    assert_eq!((summary["busy"].as_u64(), summary["requested"].as_u64()), (Some(1), Some(0)), "{summary}");
    assert_eq!(w.instances().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_40_with_a_maximum_of_10_launches_10() {
    let w = World::new().await;
    let pool = w.pool(&[("RUNNERS_MAXIMUM_COUNT", "10")]).await;
    let summary = adjust(&pool, 40).await.unwrap();
    assert_eq!(summary["requested"].as_u64(), Some(10), "{summary}");
    assert_eq!(w.instances().await.len(), 10);
    // Run again and again: the maximum holds (upstream #5186 went past it run after run).
    for _ in 0..2 {
        let again = adjust(&pool, 40).await.unwrap();
        assert_eq!(again["requested"].as_u64(), Some(0), "{again}");
    }
    assert_eq!(w.instances().await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_launched_when_github_cannot_list_the_runners() {
    let w = World::new().await;
    w.github.inject(Fault::status("GET", "/orgs/acme/actions/runners", 502));
    let pool = w.pool(&[]).await;
    let error = adjust(&pool, 3).await.unwrap_err();
    assert!(format!("{error:?}").contains("nothing launched"), "{error:?}");
    assert!(w.instances().await.is_empty());
    assert_eq!(w.github.count("POST", "generate-jitconfig"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_and_scale_down_do_not_fight_over_idle_runners() {
    let w = World::new().await;
    let pool = w.pool(&[]).await;
    let scale_down = w.scale_down().await;
    adjust(&pool, 2).await.unwrap();
    let ids: Vec<String> = w.instances().await.into_keys().collect();
    for id in &ids {
        w.boot(id).await;
    }
    // Scheduled runs while the pool keeps running: the idle runners are past their minimum
    // running time and the idle config keeps none, but the pool holds them.
    for minutes in [6, 12] {
        w.clock_in(minutes);
        let summary = scale_down.invoke(json!({})).await.unwrap();
        assert_eq!(summary["poolKept"].as_u64(), Some(2), "{summary}");
        assert_eq!(summary["deregistered"].as_array().map(Vec::len), Some(0), "{summary}");
        let again = adjust(&pool, 2).await.unwrap();
        assert_eq!((again["idle"].as_u64(), again["requested"].as_u64()), (Some(2), Some(0)), "{again}");
    }
    assert_eq!(w.instances().await.len(), 2, "no runner removed and relaunched");
    assert_eq!(w.github.count("POST", "generate-jitconfig"), 2);

    // The pool's schedules stop (evenings): once the hold has passed, scale-down's rules apply.
    w.clock_in(45);
    let summary = scale_down.invoke(json!({})).await.unwrap();
    assert_eq!(summary["poolKept"].as_u64(), Some(0), "{summary}");
    assert_eq!(summary["deregistered"].as_array().map(Vec::len), Some(2), "{summary}");
}
