//! The runner boot scripts (`terraform/modules/runners/templates/*.sh`) run by bash against
//! real components: the real AWS CLI talking to moto, a fake IMDSv2, and a runner tarball from
//! S3 whose `config.sh`/`run.sh`/`svc.sh` are stand-ins that record how they were called and run
//! the job hooks. The instance and its token parameter come from the real scale-up binary, so
//! the contract between scale-up and the boot script (paths, JIT config, quoted `config.sh`
//! arguments) is what is tested.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use serde_json::json;
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::aws_proxy::{AwsFault, AwsProxy};
use tests::fake_github::FakeGithub;
use tests::imds::{FakeImds, INSTANCE_PROFILE_ACCESS_KEY};
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{Moto, REGION, project_root, python, unique};
use tests::stack::RunnerStack;

use crate::support::binary;

const TEMPLATES: &str = "terraform/modules/runners/templates";

struct World {
    aws: Aws,
    stack: RunnerStack,
    github: FakeGithub,
    installation: u64,
    bucket: String,
}

struct Boot {
    dir: PathBuf,
    status: std::process::ExitStatus,
    log: String,
    imds: FakeImds,
}

impl Boot {
    fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }

    fn lines(&self, name: &str) -> Vec<String> {
        self.file(name).map(|s| s.lines().map(str::to_string).collect()).unwrap_or_default()
    }
}

impl World {
    async fn new() -> Self {
        let moto = Moto::shared();
        moto.warm_ec2().await;
        let aws = Aws::new(moto).await;
        let github = FakeGithub::start().await;
        let app = TestApp::new(1, 1000);
        github.add_app(app.id, app.public_pem.as_bytes());
        let installation = github.add_installation(app.id, "acme", "Organization");
        let stack = RunnerStack::create(&aws, &unique("boot"), &[app]).await;
        let bucket = format!("{}-dist", stack.prefix);
        let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
            .build();
        aws.s3.create_bucket().bucket(&bucket).create_bucket_configuration(location).send().await.unwrap();
        let world = Self { aws, stack, github, installation, bucket };
        world.upload_runner_tarball().await;
        world
    }

    /// The runner tarball, as the syncer leaves it in S3, with the stand-in runner scripts.
    async fn upload_runner_tarball(&self) {
        let body = aws_sdk_s3::primitives::ByteStream::from(tests::fixtures::runner_stub_tarball());
        self.aws
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key("actions-runner-linux.tar.gz")
            .body(body)
            .send()
            .await
            .unwrap();
    }

    /// The runner configuration Terraform writes (modules/runners `aws_ssm_parameter.runner_config`).
    async fn put_runner_config(&self, agent_mode: &str, jit: bool, disable_default_labels: bool) {
        let user = whoami();
        let config = self.stack.config_path();
        for (name, value) in [
            ("run_as", user.as_str()),
            ("agent_mode", agent_mode),
            ("disable_default_labels", if disable_default_labels { "true" } else { "false" }),
            ("enable_jit_config", if jit { "true" } else { "false" }),
            ("enable_cloudwatch", "false"),
            ("token_path", &self.stack.token_path()),
            ("metrics_namespace", "GitHub Runners"),
        ] {
            self.aws
                .ssm
                .put_parameter()
                .name(format!("{config}/{name}"))
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .overwrite(true)
                .send()
                .await
                .unwrap();
        }
    }

    /// A built function (scale-up, or the warm-pool function, which reads scale-up's
    /// variables) with Terraform's environment for this stack plus `overrides`.
    async fn function(&self, name: &str, overrides: &[(&str, &str)]) -> LambdaFunction {
        let mut env = self.stack.scale_up_env(&self.github.url, overrides);
        env.extend(Moto::shared().lambda_env());
        let function_name = format!("{}-{name}", self.stack.prefix);
        LambdaFunction::spawn(&binary(name), &function_name, &env, Duration::from_secs(30)).await
    }

    /// Runs scale-up for one job and returns the instance it launched.
    async fn scale_up_one(&self, overrides: &[(&str, &str)]) -> String {
        let before = self.instance_ids().await;
        let f = self.function("scale-up", overrides).await;
        let event = self.job_event(1, "m1");
        let response = f.invoke(event).await.unwrap();
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
        let new: Vec<String> = self.instance_ids().await.into_iter().filter(|id| !before.contains(id)).collect();
        assert_eq!(new.len(), 1, "{new:?}");
        new[0].clone()
    }

    /// One SQS record of a `workflow_job` message for `job_id` (acme/web, this stack's queue),
    /// as Lambda hands a batch to scale-up.
    fn job_event(&self, job_id: u64, message_id: &str) -> serde_json::Value {
        let message = json!({"id": job_id, "repositoryName": "web", "repositoryOwner": "acme", "eventType": "workflow_job",
            "installationId": self.installation, "queueId": self.stack.queue_url, "repoOwnerType": "Organization",
            "labels": ["self-hosted", "linux"]});
        json!({"Records": [{"messageId": message_id, "receiptHandle": "h", "body": message.to_string(),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q", "awsRegion": REGION}]})
    }

    async fn instance_ids(&self) -> Vec<String> {
        self.instances().await.into_iter().filter_map(|i| i.instance_id().map(str::to_string)).collect()
    }

    async fn instances(&self) -> Vec<aws_sdk_ec2::types::Instance> {
        let out = self
            .aws
            .ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:ghr:environment").values(&self.stack.prefix).build())
            .send()
            .await
            .unwrap();
        out.reservations().iter().flat_map(|r| r.instances().to_vec()).collect()
    }

    async fn instance(&self, id: &str) -> aws_sdk_ec2::types::Instance {
        self.instances().await.into_iter().find(|i| i.instance_id() == Some(id)).expect("the instance")
    }

    async fn tags(&self, id: &str) -> BTreeMap<String, String> {
        self.instance(id)
            .await
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect()
    }

    async fn state(&self, id: &str) -> String {
        self.instance(id).await.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default()
    }

    async fn token(&self, id: &str) -> Option<String> {
        let name = format!("{}/{id}", self.stack.token_path());
        let out = self.aws.ssm.get_parameter().name(name).with_decryption(true).send().await.ok()?;
        out.parameter().and_then(|p| p.value()).map(str::to_string)
    }

    /// Boots `instance_id` as its user data does: installs the runner from S3, writes the hook
    /// configuration and a user hook, then runs start-runner.sh.
    async fn boot(&self, instance_id: &str, token_wait_seconds: u32) -> Boot {
        self.boot_with(instance_id, token_wait_seconds, &[]).await
    }

    /// `boot`, with more environment for start-runner.sh.
    async fn boot_with(&self, instance_id: &str, token_wait_seconds: u32, extra: &[(&str, &str)]) -> Boot {
        let dir = scratch("runner");
        let tags = self.tags(instance_id).await;
        let imds = FakeImds::start(instance_id, REGION, tags).await;
        let tarball = format!("s3://{}/actions-runner-linux.tar.gz", self.bucket);
        let (installed, install_log) =
            self.bash("install-runner.sh", &dir, &imds, &[("RUNNER_TARBALL_S3", &tarball)]).await;
        assert!(installed.success(), "install-runner.sh failed:\n{install_log}");

        // What user-data.sh adds after the install.
        let hooks = dir.join("hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        for (template, hook) in [
            ("job-marker.sh", "job-marker.sh"),
            ("job-started-hook.sh", "job-started.sh"),
            ("job-completed-hook.sh", "job-completed.sh"),
        ] {
            std::fs::copy(project_root().join(TEMPLATES).join(template), hooks.join(hook)).unwrap();
        }
        std::fs::write(
            hooks.join("user-job-started.sh"),
            format!("echo user hook >{}\n", dir.join("user-hook.ran").display()),
        )
        .unwrap();
        std::fs::write(
            dir.join(".env"),
            format!(
                "ACTIONS_RUNNER_HOOK_JOB_STARTED={}\nACTIONS_RUNNER_HOOK_JOB_COMPLETED={}\n",
                hooks.join("job-started.sh").display(),
                hooks.join("job-completed.sh").display()
            ),
        )
        .unwrap();

        let wait = token_wait_seconds.to_string();
        let hooks_dir = hooks.display().to_string();
        let mut env = vec![("TOKEN_WAIT_SECONDS", wait.as_str()), ("HOOKS_DIR", hooks_dir.as_str())];
        env.extend_from_slice(extra);
        let (status, start_log) = self.bash("start-runner.sh", &dir, &imds, &env).await;
        Boot { dir, status, log: format!("{install_log}{start_log}"), imds }
    }

    async fn bash(
        &self,
        script: &str,
        dir: &Path,
        imds: &FakeImds,
        env: &[(&str, &str)],
    ) -> (std::process::ExitStatus, String) {
        let venv_bin = python().parent().map(Path::to_path_buf).unwrap_or_default();
        assert!(
            venv_bin.join("aws").exists(),
            "the AWS CLI is not installed in {}: run `make setup`",
            venv_bin.display()
        );
        let path = format!("{}:{}", venv_bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut command = tokio::process::Command::new("bash");
        command
            .arg(project_root().join(TEMPLATES).join(script))
            .current_dir(dir)
            .env("PATH", path)
            .env("RUNNER_DIR", dir)
            .env("IMDS_URL", &imds.url)
            .env("TERMINATE_DELAY", "0")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .kill_on_drop(true);
        for (k, v) in Moto::shared().lambda_env() {
            command.env(k, v);
        }
        // The job markers reach AWS with the instance profile only, through this endpoint.
        command.env("GHR_AWS_ENDPOINT_URL", &Moto::shared().endpoint);
        // The instance's region comes from IMDS, not the environment.
        command.env_remove("AWS_REGION").env_remove("AWS_DEFAULT_REGION");
        for (k, v) in env {
            command.env(k, v);
        }
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .unwrap_or_else(|_| panic!("{script} did not finish in 120 s"))
            .unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status, log)
    }
}

fn whoami() -> String {
    let out = std::process::Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("ghr-{name}")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_jit_runner_boots_runs_one_job_and_terminates_its_instance() {
    let w = World::new().await;
    w.put_runner_config("ephemeral", true, false).await;
    let id = w.scale_up_one(&[]).await;
    let jit = w.token(&id).await.expect("scale-up stored the JIT config");
    assert!(FakeGithub::decode_jit_config(&jit).is_some());

    let boot = w.boot(&id, 30).await;
    assert!(boot.status.success(), "start-runner.sh failed:\n{}", boot.log);

    assert_eq!(boot.lines("run.args"), vec!["--jitconfig".to_string(), jit], "run.sh --jitconfig <the stored config>");
    assert!(boot.file("config.args").is_none(), "a JIT runner is not configured with config.sh");
    assert_eq!(w.token(&id).await, None, "the instance deleted its token parameter after reading it");
    assert_eq!(boot.file("job.log").as_deref(), Some("job ran\n"));

    // The job hooks marked the instance busy, then done: the start in unix milliseconds, and
    // the completion naming the start it closes (a quick job can never look in flight).
    let tags = w.tags(&id).await;
    let started: u64 = tags.get("ghr:job_started").expect("job started marker").parse().unwrap();
    let completed: u64 = tags.get("ghr:job_completed").expect("job completed marker").parse().unwrap();
    assert!(started > 1_700_000_000_000, "milliseconds: {tags:?}");
    assert_eq!(completed, started, "{tags:?}");
    assert!(boot.file("user-hook.ran").is_some(), "the user's job-started hook ran too");

    // One job, then the instance terminates itself.
    let state = w.state(&id).await;
    assert!(state == "terminated" || state == "shutting-down", "state {state}:\n{}", boot.log);
    // IMDSv2 only: every metadata read carried the session token (the fake answers 401 otherwise).
    let reads = boot.imds.requests();
    assert!(
        reads.iter().any(|r| r == "instance-id") && reads.iter().any(|r| r == "tags/instance/ghr:ssm_config_path"),
        "{reads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusable_runner_registers_with_quoted_labels_and_runs_as_a_service() {
    let w = World::new().await;
    w.put_runner_config("persistent", false, true).await;
    let id = w
        .scale_up_one(&[
            ("ENABLE_EPHEMERAL_RUNNERS", "false"),
            ("ENABLE_JIT_CONFIG", "false"),
            ("RUNNER_LABELS", "self-hosted,my label,it's;fine"),
            ("RUNNER_NAME_PREFIX", "ci-"),
            ("DISABLE_RUNNER_AUTOUPDATE", "true"),
        ])
        .await;
    // Terraform's launch template tags instances with the same prefix it gives scale-up.
    w.aws
        .ec2
        .create_tags()
        .resources(&id)
        .tags(aws_sdk_ec2::types::Tag::builder().key("ghr:runner_name_prefix").value("ci-").build())
        .send()
        .await
        .unwrap();
    let stored = w.token(&id).await.expect("scale-up stored the config.sh arguments");
    let token = w.github.registration_tokens().pop().expect("a registration token");

    let boot = w.boot(&id, 30).await;
    assert!(boot.status.success(), "start-runner.sh failed:\n{}", boot.log);

    // config.sh gets exactly these arguments: the labels arrive as one argument, spaces,
    // quote and semicolon intact.
    let expected: Vec<String> = [
        "--no-default-labels",
        "--unattended",
        "--name",
        &format!("ci-{id}"),
        "--work",
        "_work",
        "--url",
        "https://github.com/acme",
        "--token",
        &token,
        "--labels",
        "self-hosted,my label,it's;fine",
        "--disableupdate",
        "--runnergroup",
        "Default",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(boot.lines("config.args"), expected, "stored arguments: {stored}");
    assert_eq!(w.token(&id).await, None, "the token parameter is deleted once read");

    // The registered runner's id is tagged on the instance (scale-down matches runners by it).
    assert_eq!(w.tags(&id).await.get("ghr:github_runner_id").map(String::as_str), Some("4242"));
    // Installed and started as a service, which ran a job with the hooks.
    assert_eq!(boot.lines("svc.args"), vec![format!("install {}", whoami()), "start".to_string()]);
    assert!(w.tags(&id).await.contains_key("ghr:job_completed"));
    assert_eq!(w.state(&id).await, "running", "a reusable runner's instance stays up:\n{}", boot.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_its_configuration_gives_up_and_terminates() {
    let w = World::new().await;
    w.put_runner_config("persistent", false, false).await;
    // An instance scale-up did not (or not yet) write a token for.
    let id =
        w.stack.launch_instances(&w.aws, &common::domain::runner::RunnerOwner::Org("acme".into()), 1).await.remove(0);

    let boot = w.boot(&id, 2).await;
    assert!(!boot.status.success(), "start-runner.sh must fail:\n{}", boot.log);
    assert!(boot.log.contains("no runner configuration after 2s"), "{}", boot.log);
    assert!(boot.file("config.args").is_none() && boot.file("run.args").is_none(), "nothing registered");
    let state = w.state(&id).await;
    assert!(state == "terminated" || state == "shutting-down", "a stuck instance does not linger: {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_hooks_never_fail_the_job() {
    // No metadata service and no AWS: the markers cannot be written, the job goes on.
    let dir = scratch("hooks");
    std::fs::copy(project_root().join(TEMPLATES).join("job-marker.sh"), dir.join("job-marker.sh")).unwrap();
    for hook in ["job-started-hook.sh", "job-completed-hook.sh"] {
        let output = tokio::process::Command::new("bash")
            .arg(project_root().join(TEMPLATES).join(hook))
            .env("IMDS_URL", "http://127.0.0.1:9")
            .env("HOOKS_DIR", &dir)
            .env("GHR_MARKER_ATTEMPTS", "2")
            .env("GHR_AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("PATH", format!("{}:/usr/bin:/bin", python().parent().unwrap().display()))
            .output()
            .await
            .unwrap();
        let log = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{hook} failed the job:\n{log}");
        assert!(log.contains("could not write the job marker"), "{hook}:\n{log}");
    }
}

/// The boot script reads exactly the settings Terraform writes, and the tags the launch
/// template sets.
#[test]
fn boot_script_settings_are_the_ones_terraform_writes() {
    let script = std::fs::read_to_string(project_root().join(TEMPLATES).join("start-runner.sh")).unwrap();
    let read: std::collections::BTreeSet<String> = script
        .match_indices("$(setting ")
        .map(|(i, _)| script[i + 10..].split(')').next().unwrap_or_default().to_string())
        .collect();
    let main = std::fs::read_to_string(project_root().join("terraform/modules/runners/main.tf")).unwrap();
    let body: hcl::Body = hcl::from_str(&main).unwrap();
    let written: std::collections::BTreeSet<String> = body
        .blocks()
        .filter(|b| {
            b.identifier() == "resource"
                && b.labels().iter().map(|l| l.as_str()).eq(["aws_ssm_parameter", "runner_config"])
        })
        .flat_map(|b| {
            b.body().attributes().filter(|a| a.key() == "for_each").map(|a| a.expr().clone()).collect::<Vec<_>>()
        })
        .flat_map(|expr| match expr {
            hcl::Expression::Object(o) => o.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    assert!(!read.is_empty() && !written.is_empty());
    assert_eq!(read, written, "start-runner.sh settings vs the runner_config parameters in modules/runners/main.tf");
    for tag in ["ghr:ssm_config_path", "ghr:runner_name_prefix"] {
        assert!(script.contains(&format!("tag {tag}")), "{tag}");
        assert!(main.contains(&format!("\"{tag}\"")), "the launch template sets {tag}");
    }
}

/// Installs the hook files into `<runner_dir>/hooks` as `(template, installed name)` pairs.
fn install_hooks(runner_dir: &Path, files: &[(String, String)]) {
    let hooks = runner_dir.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    for (template, installed) in files {
        std::fs::copy(project_root().join(TEMPLATES).join(template), hooks.join(installed)).unwrap();
    }
}

fn default_hook_files() -> Vec<(String, String)> {
    [
        ("job-marker.sh", "job-marker.sh"),
        ("job-started-hook.sh", "job-started.sh"),
        ("job-completed-hook.sh", "job-completed.sh"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// A command for a runner-side script: the venv's AWS CLI on the PATH, nothing else of the
/// test process's AWS environment.
fn runner_command(script: &Path, dir: &Path, imds: &FakeImds, aws_endpoint: &str) -> tokio::process::Command {
    let venv_bin = python().parent().map(Path::to_path_buf).unwrap_or_default();
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(script)
        .current_dir(dir)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", venv_bin.display()))
        .env("HOME", dir)
        .env("IMDS_URL", &imds.url)
        .env("GHR_AWS_ENDPOINT_URL", aws_endpoint)
        .kill_on_drop(true);
    command
}

async fn output_log(command: &mut tokio::process::Command) -> (std::process::ExitStatus, String) {
    let output = tokio::time::timeout(Duration::from_secs(120), command.output()).await.expect("finished").unwrap();
    (output.status, format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_markers_use_the_instance_profile_and_outlast_throttling() {
    // Issue 12 item 8: the job's environment carries its own AWS credentials, profile and
    // endpoint (as configure-aws-credentials leaves them for later steps, hooks included), and
    // EC2 throttles the first two CreateTags. The markers are still written, with the instance
    // profile's credentials, and the failed attempts are in the runner's diagnostics.
    let w = World::new().await;
    let id = w.scale_up_one(&[]).await;
    let imds = FakeImds::start(&id, REGION, w.tags(&id).await).await;
    let proxy = AwsProxy::start(&Moto::shared().endpoint).await;
    proxy.inject(AwsFault::ec2_throttled("ec2:CreateTags").times(2));
    let dir = scratch("markers");
    install_hooks(&dir, &default_hook_files());
    for hook in ["job-started.sh", "job-completed.sh"] {
        let mut command = runner_command(&dir.join("hooks").join(hook), &dir, &imds, &proxy.url);
        command
            .env("AWS_ACCESS_KEY_ID", "AKIAJOBCREDENTIALS00")
            .env("AWS_SECRET_ACCESS_KEY", "job-secret")
            .env("AWS_SESSION_TOKEN", "job-session")
            .env("AWS_PROFILE", "job-profile")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_REGION", "us-east-1");
        let (status, log) = output_log(&mut command).await;
        assert!(status.success(), "{hook}:\n{log}");
    }
    let tags = w.tags(&id).await;
    let started = tags.get("ghr:job_started").expect("the started marker despite the throttling");
    assert_eq!(tags.get("ghr:job_completed"), Some(started), "{tags:?}");
    let keys = proxy.access_keys("ec2:CreateTags");
    assert_eq!(keys.len(), 4, "two throttled attempts, then one per marker: {keys:?}");
    assert!(keys.iter().all(|k| k == INSTANCE_PROFILE_ACCESS_KEY), "signed with the job's credentials: {keys:?}");
    let diag = std::fs::read_to_string(dir.join("_diag/ghr-job-markers.log")).expect("the diagnostics log");
    assert!(diag.contains("attempt 1/5 to write ghr:job_started failed"), "{diag}");
    assert!(diag.contains("written on attempt 3"), "{diag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_image_installs_the_hooks_as_the_readme_says() {
    // Issue 12 item 11: an image used with enable_userdata = false installs the hook files and
    // the runner `.env` lines exactly as README.md "Custom images" lists them (read from the
    // README here, so the documentation cannot drift); a job run by the stand-in runner then
    // writes both markers.
    let readme = std::fs::read_to_string(project_root().join("README.md")).unwrap();
    let section =
        readme.split("## Custom images").nth(1).expect("a Custom images section").split("\n## ").next().unwrap();
    let runner_root = "/opt/actions-runner";
    let files: Vec<(String, String)> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(|c| c.trim().trim_matches('`')).collect();
            (cells.len() >= 3 && cells[2].starts_with(runner_root)).then(|| {
                (cells[1].to_string(), cells[2].trim_start_matches(&format!("{runner_root}/hooks/")).to_string())
            })
        })
        .collect();
    let env_lines: Vec<&str> = section.lines().filter(|l| l.starts_with("ACTIONS_RUNNER_HOOK_")).collect();
    assert_eq!(files.len(), 3, "{section}");
    assert_eq!(env_lines.len(), 2, "{section}");

    let w = World::new().await;
    let id = w.scale_up_one(&[]).await;
    let imds = FakeImds::start(&id, REGION, w.tags(&id).await).await;
    let dir = scratch("image");
    install_hooks(&dir, &files);
    let runner_dir = dir.display().to_string();
    let env: String = env_lines.iter().map(|l| format!("{}\n", l.replace(runner_root, &runner_dir))).collect();
    std::fs::write(dir.join(".env"), env).unwrap();
    let stub = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/runner-stub/run.sh");
    std::fs::copy(&stub, dir.join("run.sh")).unwrap();
    let (status, log) =
        output_log(&mut runner_command(&dir.join("run.sh"), &dir, &imds, &Moto::shared().endpoint)).await;
    assert!(status.success(), "{log}");
    assert_eq!(std::fs::read_to_string(dir.join("job.log")).ok().as_deref(), Some("job ran\n"), "{log}");
    let tags = w.tags(&id).await;
    let started = tags.get("ghr:job_started").expect("the started marker");
    assert_eq!(tags.get("ghr:job_completed"), Some(started), "{tags:?}\n{log}");
}

/// The warm pool through its three real pieces: the built warm-pool function launches an
/// instance in prepare mode; start-runner.sh prepares it (no registration), tags it ready and
/// stops it; the built scale-up claims it for a job, writes its JIT config and starts it; on
/// resume start-runner.sh (run again, as the unit it installed does at boot) registers and runs
/// the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_pool_instance_prepares_stops_and_runs_a_job_once_claimed() {
    let w = World::new().await;
    w.put_runner_config("ephemeral", true, false).await;
    let warm_config = r#"{"size":1,"maxAgeHours":24,"hibernate":false}"#;
    let warm_pool = w.function("warm-pool", &[("WARM_POOL_CONFIG", warm_config)]).await;
    let summary = warm_pool.invoke(json!({})).await.unwrap();
    assert_eq!(summary["launched"].as_array().map(Vec::len), Some(1), "{summary}");
    let id = summary["launched"][0].as_str().unwrap().to_string();
    let tags = w.tags(&id).await;
    assert_eq!(tags.get("ghr:warm").map(String::as_str), Some("preparing"));
    assert_eq!(tags.get("ghr:Owner"), None, "no owner until claimed");

    // Prepare mode.
    let systemd = scratch("systemd");
    let systemd_dir = systemd.display().to_string();
    let boot = w.boot_with(&id, 5, &[("SYSTEMD_DIR", systemd_dir.as_str()), ("SYSTEMCTL", "true")]).await;
    assert!(boot.status.success(), "prepare mode failed:\n{}", boot.log);
    assert!(boot.log.contains("prepared, stopping until claimed"), "{}", boot.log);
    assert!(matches!(w.state(&id).await.as_str(), "stopping" | "stopped"), "the instance stopped itself");
    assert_eq!(w.tags(&id).await.get("ghr:warm").map(String::as_str), Some("ready"));
    assert!(boot.file("config.args").is_none() && boot.file("run.args").is_none(), "no registration");
    assert!(w.github.runners().is_empty(), "nothing registered with GitHub");
    assert_eq!(w.token(&id).await, None);
    let unit = std::fs::read_to_string(systemd.join("ghr-warm-runner.service")).expect("the resume unit");
    assert!(unit.contains(&format!("ExecStart=/bin/bash {}/start-runner.sh", boot.dir.display())), "{unit}");
    // The warm-pool function now counts it ready (moto stops at once) and launches no more.
    let summary = warm_pool.invoke(json!({})).await.unwrap();
    assert_eq!((summary["ready"].as_u64(), summary["requested"].as_u64()), (Some(1), Some(0)), "{summary}");

    // Scale-up claims it for a job.
    let scale_up = w.function("scale-up", &[("WARM_POOL_CONFIG", warm_config)]).await;
    let event = w.job_event(7, "m1");
    let before = w.instance_ids().await;
    let response = scale_up.invoke(event).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    assert_eq!(w.instance_ids().await, before, "no fresh instance");
    assert!(matches!(w.state(&id).await.as_str(), "pending" | "running"), "started");
    let tags = w.tags(&id).await;
    assert_eq!(tags.get("ghr:warm").map(String::as_str), Some("claimed"));
    assert_eq!(tags.get("ghr:Owner").map(String::as_str), Some("acme"));
    assert_eq!(tags.get("ghr:launched_for_job").map(String::as_str), Some("7"));
    let jit = w.token(&id).await.expect("the JIT config replaced the claim");
    assert!(FakeGithub::decode_jit_config(&jit).is_some(), "{jit}");
    assert!(scale_up.logs().iter().any(|l| l.contains("claimed warm instances")));
    assert_eq!(scale_up.metric("WarmPoolClaims").iter().map(|(v, _)| v).sum::<f64>(), 1.0);

    // Resume: the unit runs start-runner.sh in the prepared runner directory.
    let imds = FakeImds::start(&id, REGION, tags).await;
    let hooks_dir = boot.dir.join("hooks").display().to_string();
    let (status, log) = w
        .bash(
            "start-runner.sh",
            &boot.dir,
            &imds,
            &[
                ("TOKEN_WAIT_SECONDS", "10"),
                ("HOOKS_DIR", hooks_dir.as_str()),
                ("SYSTEMD_DIR", systemd_dir.as_str()),
                ("SYSTEMCTL", "true"),
            ],
        )
        .await;
    assert!(status.success(), "resume failed:\n{log}");
    assert!(log.contains("from the warm pool claim to the runner's start"), "{log}");
    // The metric reached CloudWatch (moto), in the functions' namespace.
    let listed = std::process::Command::new(python().parent().unwrap().join("aws"))
        .args([
            "cloudwatch",
            "list-metrics",
            "--namespace",
            "GitHub Runners",
            "--metric-name",
            "WarmPoolClaimToRunnerStart",
        ])
        .args(["--region", REGION, "--output", "json"])
        .envs(Moto::shared().lambda_env())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&w.stack.prefix), "the metric with its Environment: {listed}");
    assert_eq!(boot.lines("run.args"), vec!["--jitconfig".to_string(), jit], "run.sh --jitconfig <the stored config>");
    assert_eq!(boot.file("job.log").as_deref(), Some("job ran\n"));
    assert_eq!(w.token(&id).await, None, "the instance deleted its configuration after reading it");
    assert!(
        matches!(w.state(&id).await.as_str(), "shutting-down" | "terminated"),
        "ephemeral: terminated after its job"
    );
}

/// A reusable runner scale-down put back into the warm pool (stopped, owner and runner tags
/// gone, its registration deleted) is claimed again: on resume, start-runner.sh forgets the old
/// registration and service (config.sh refuses to configure over them) and registers anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_back_from_the_warm_pool_forgets_its_old_registration_when_claimed_again() {
    let w = World::new().await;
    w.put_runner_config("persistent", false, false).await;
    let reusable = [("ENABLE_EPHEMERAL_RUNNERS", "false"), ("ENABLE_JIT_CONFIG", "false")];
    let id = w.scale_up_one(&reusable).await;
    let boot = w.boot(&id, 30).await;
    assert!(boot.status.success(), "start-runner.sh failed:\n{}", boot.log);
    assert!(boot.file(".runner").is_some() && boot.file(".service").is_some());

    // What scale-down does when the idle runner goes back to the pool.
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    w.aws.ec2.create_tags().resources(&id).tags(tag("ghr:warm", "ready")).send().await.unwrap();
    let gone = [
        "ghr:Owner",
        "ghr:Type",
        "ghr:github_runner_id",
        "ghr:launched_for_job",
        "ghr:job_started",
        "ghr:job_completed",
    ];
    let untag: Vec<_> = gone.iter().map(|k| aws_sdk_ec2::types::Tag::builder().key(*k).build()).collect();
    w.aws.ec2.delete_tags().resources(&id).set_tags(Some(untag)).send().await.unwrap();
    w.aws.ec2.stop_instances().instance_ids(&id).send().await.unwrap();

    // A new job: scale-up claims the instance and writes new config.sh arguments.
    let mut overrides = reusable.to_vec();
    overrides.push(("WARM_POOL_CONFIG", r#"{"size":1}"#));
    let scale_up = w.function("scale-up", &overrides).await;
    let event = w.job_event(8, "m2");
    let response = scale_up.invoke(event).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    assert!(matches!(w.state(&id).await.as_str(), "pending" | "running"), "claimed and started");
    let token = w.github.registration_tokens().pop().expect("a new registration token");

    // The resume, in the runner folder the first runner left.
    let imds = FakeImds::start(&id, REGION, w.tags(&id).await).await;
    let hooks_dir = boot.dir.join("hooks").display().to_string();
    let (status, log) = w
        .bash("start-runner.sh", &boot.dir, &imds, &[("TOKEN_WAIT_SECONDS", "10"), ("HOOKS_DIR", hooks_dir.as_str())])
        .await;
    assert!(status.success(), "the resumed runner failed:\n{log}");
    assert!(log.contains("forgetting the registration of an earlier runner"), "{log}");
    let user = whoami();
    assert_eq!(
        boot.lines("svc.args"),
        vec![
            format!("install {user}"),
            "start".into(),
            "stop".into(),
            "uninstall".into(),
            format!("install {user}"),
            "start".into()
        ],
        "the old service removed, the new one installed"
    );
    let args = boot.lines("config.args");
    let at = args.iter().position(|a| a == "--token").expect("--token");
    assert_eq!(args[at + 1], token, "registered with the new token");
}

/// Hibernation: the prepared instance hibernates instead of stopping, and the start-runner.sh
/// that prepared it carries on after the resume (memory is kept: no second boot). Here the
/// script runs on while moto stops the instance at once; scale-up claims and starts it, and the
/// waiting script reads its configuration and runs the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hibernated_warm_instance_carries_on_in_the_same_boot_once_claimed() {
    let w = World::new().await;
    w.put_runner_config("ephemeral", true, false).await;
    let warm_config = r#"{"size":1,"hibernate":true}"#;
    let warm_pool = w.function("warm-pool", &[("WARM_POOL_CONFIG", warm_config)]).await;
    let summary = warm_pool.invoke(json!({})).await.unwrap();
    let id = summary["launched"][0].as_str().expect("one instance launched").to_string();
    assert_eq!(w.tags(&id).await.get("ghr:warm_hibernate").map(String::as_str), Some("true"));
    let scale_up = w.function("scale-up", &[("WARM_POOL_CONFIG", warm_config)]).await;
    let systemd = scratch("systemd");
    let systemd_dir = systemd.display().to_string();
    let boot_env = [("SYSTEMD_DIR", systemd_dir.as_str()), ("SYSTEMCTL", "true")];
    let boot = w.boot_with(&id, 90, &boot_env);
    let claim = async {
        // Once it is prepared and stopped (hibernated), a job claims it.
        let ready_by = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ready = w.tags(&id).await.get("ghr:warm").map(String::as_str) == Some("ready");
            if ready && w.state(&id).await == "stopped" {
                break;
            }
            assert!(std::time::Instant::now() < ready_by, "the instance never hibernated");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let event = w.job_event(9, "m1");
        scale_up.invoke(event).await.unwrap()
    };
    let (boot, response) = tokio::join!(boot, claim);
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    assert!(boot.status.success(), "start-runner.sh failed:\n{}", boot.log);
    assert!(boot.log.contains("prepared, hibernating until claimed"), "{}", boot.log);
    assert_eq!(boot.file("job.log").as_deref(), Some("job ran\n"), "the same run registered and ran the job");
    assert_eq!(boot.lines("run.args").first().map(String::as_str), Some("--jitconfig"));
    let state = w.state(&id).await;
    assert!(state == "terminated" || state == "shutting-down", "ephemeral: ended after its job: {state}");
}
