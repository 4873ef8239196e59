//! `make tf-apply-test`: every example under `terraform/examples/` is applied by the real
//! Terraform and AWS provider against a moto server of its own, then:
//!
//! 1. a second plan must show no changes;
//! 2. every policy document the apply created is linted by parliament (0 unjustified findings),
//!    trust policies name one service, and the runner role cannot read the App's secrets or
//!    another instance's token (explicit denies cover every allow);
//! 3. the applied dashboard body is checked as CloudWatch would;
//! 4. the deployed system runs: each function's configuration is read back from moto and its
//!    binary run with exactly that environment (plus decisions.md #18's test overrides), and one
//!    signed `workflow_job` delivery per runner configuration goes webhook (→ dispatcher) → the
//!    configuration's applied queue (and no other) → scale-up → an instance of
//!    the applied launch template → the boot script decoded from the template's user data,
//!    registering with the fake GitHub and running the job → scale-down removing what is left;
//! 5. `destroy` leaves nothing behind.
//!
//! Skipped, loudly, where terraform or its provider mirror is missing (decisions.md #20).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use chrono::{Datelike, Duration as ChronoDuration, Utc};
use common::github::signature::sign;
use serde_json::{Value, json};
use tests::apps::TestApp;
use tests::aws::Aws;
use tests::deploy::{
    Terraform, Workspace, dashboard_problems, examples, iam_lint, inventory, leftovers, zip_bootstrap,
};
use tests::event_source::SqsEventSource;
use tests::fake_github::{AssetContent, FakeGithub};
use tests::fixtures;
use tests::imds::FakeImds;
use tests::lambda_emulator::LambdaFunction;
use tests::moto::{ACCOUNT, Moto, REGION, project_root, python};

use crate::support::binary;

/// The functions every example deploys, with the root module input that takes each zip.
const FUNCTIONS: &[(&str, &str)] = &[
    ("webhook", "webhook_lambda_zip"),
    ("dispatcher", "dispatcher_lambda_zip"),
    ("scale-up", "scale_up_lambda_zip"),
    ("scale-down", "scale_down_lambda_zip"),
    ("syncer", "runner_binaries_syncer_lambda_zip"),
    ("pool", "pool_lambda_zip"),
    ("warm-pool", "warm_pool_lambda_zip"),
    ("job-retry", "job_retry_lambda_zip"),
    ("ssm-housekeeper", "ssm_housekeeper_lambda_zip"),
    ("ami-housekeeper", "ami_housekeeper_lambda_zip"),
    ("termination-watcher", "termination_watcher_lambda_zip"),
    ("webhook-redelivery", "webhook_redelivery_lambda_zip"),
];

const WEBHOOK_SECRET: &str = "apply-test-webhook-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_example_applies_runs_and_destroys_against_moto() {
    let _heavy = crate::support::HEAVY.read().await;
    let terraform = match Terraform::locate() {
        Ok(t) => t,
        Err(why) => {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !!!! SKIPPED: the apply-against-moto test ({why})\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            return;
        }
    };
    let zips = lambda_zips();
    let mut names = examples();
    assert!(!names.is_empty(), "no examples under terraform/examples");
    // A developer may apply only some (`make tf-apply-test EXAMPLES=default`); CI applies all.
    if let Ok(only) = std::env::var("TF_APPLY_EXAMPLES")
        && !only.trim().is_empty()
    {
        names.retain(|n| only.split(',').any(|o| o.trim() == n));
        eprintln!("TF_APPLY_EXAMPLES: applying only {names:?}");
    }
    let runs: Vec<_> = names
        .iter()
        .map(|example| tokio::spawn(apply_example(terraform.clone(), example.clone(), zips.clone())))
        .collect();
    let mut failures = Vec::new();
    for (example, run) in names.iter().zip(runs) {
        match run.await {
            Ok(report) => eprintln!("{report}"),
            Err(e) => {
                let message = e
                    .try_into_panic()
                    .ok()
                    .and_then(|p| {
                        p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    })
                    .unwrap_or_else(|| "cancelled".into());
                failures.push(format!("example {example}: {message}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Zips of the test-built function binaries (no release build in CI).
/// Made once per test process: the apply tests run at the same time, and rewriting a zip while
/// another apply reads it gives Lambda an empty file (a changed `source_code_hash` mid-apply).
fn lambda_zips() -> BTreeMap<String, PathBuf> {
    static ZIPS: std::sync::OnceLock<BTreeMap<String, PathBuf>> = std::sync::OnceLock::new();
    ZIPS.get_or_init(|| {
        let dir = project_root().join("target/tf-apply").join(format!("zips-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        FUNCTIONS
            .iter()
            .map(|(function, variable)| {
                let zip = dir.join(format!("{function}.zip"));
                zip_bootstrap(&binary(function), &zip);
                (variable.to_string(), zip)
            })
            .collect()
    })
    .clone()
}

/// The example's calls of the root module (`source = "../../"`) or of the multi-runner module,
/// which take the zips.
fn root_module_calls(dir: &Path) -> Vec<String> {
    let main = std::fs::read_to_string(dir.join("main.tf")).unwrap();
    let body: hcl::Body = hcl::from_str(&main).unwrap();
    body.blocks()
        .filter(|b| b.identifier() == "module")
        .filter(|b| {
            b.body().attributes().any(|a| {
                a.key() == "source"
                    && matches!(a.expr(), hcl::Expression::String(s)
                        if ["../..", "../../modules/multi-runner"].contains(&s.trim_end_matches('/')))
            })
        })
        .filter_map(|b| b.labels().first().map(|l| l.as_str().to_string()))
        .collect()
}

/// Calls of `modules/termination-watcher` on its own (upstream's `termination-watcher`
/// example) get the test zip through their `config`, merged over the example's own.
fn standalone_watcher_zips(dir: &Path, zips: &BTreeMap<String, PathBuf>) -> String {
    let main = std::fs::read_to_string(dir.join("main.tf")).unwrap();
    let body: hcl::Body = hcl::from_str(&main).unwrap();
    // The permissions-boundary example's `setup/` gets no zips: it calls no module of ours.
    let Some(zip) = zips.get("termination_watcher_lambda_zip") else { return String::new() };
    let mut out = String::new();
    for call in body.blocks().filter(|b| b.identifier() == "module") {
        let source = call.body().attributes().find(|a| a.key() == "source").map(|a| a.expr().clone());
        if !matches!(source, Some(hcl::Expression::String(s)) if s.trim_end_matches('/').ends_with("modules/termination-watcher"))
        {
            continue;
        }
        let Some(config) = call.body().attributes().find(|a| a.key() == "config") else { continue };
        let original = hcl::format::to_string(config.expr()).expect("format the example's config");
        let label = call.labels().first().map(|l| l.as_str().to_string()).unwrap_or_default();
        out.push_str(&format!(
            "\nmodule \"{label}\" {{\n  config = merge({original}, {{ zip = \"{}\" }})\n}}\n",
            zip.display()
        ));
    }
    out
}

/// Values for the example's variables, as a user's `terraform.tfvars` would give them.
fn example_variables(dir: &Path, vpc: &str, subnets: &[String]) -> Value {
    let text = std::fs::read_to_string(dir.join("variables.tf")).unwrap_or_default();
    let body: hcl::Body = hcl::from_str(&text).unwrap();
    let declared: BTreeSet<String> = body
        .blocks()
        .filter(|b| b.identifier() == "variable")
        .filter_map(|b| b.labels().first().map(|l| l.as_str().to_string()))
        .collect();
    let app = TestApp::new(1, 1000);
    let all = json!({
        "aws_region": REGION,
        "vpc_id": vpc,
        "subnet_ids": subnets,
        "github_app": {"id": app.id.to_string(), "key_base64": app.key_base64(), "webhook_secret": WEBHOOK_SECRET},
        "pool_organization": "acme",
    });
    let values: serde_json::Map<String, Value> = all
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| declared.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(values)
}

struct Timings(Vec<(String, Duration)>);

impl Timings {
    fn add(&mut self, step: &str, took: Duration) {
        self.0.push((step.to_string(), took));
    }
}

impl std::fmt::Display for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(s, d)| format!("{s} {:.1}s", d.as_secs_f64())).collect();
        write!(f, "{}", parts.join(", "))
    }
}

async fn terraform_ok(terraform: &Terraform, ws: &Workspace, args: &[&str], timings: &mut Timings) -> String {
    let run = terraform.run(&ws.dir, args).await;
    timings.add(args[0], run.took);
    assert_eq!(run.code, Some(0), "terraform {} failed in {}:\n{}", args.join(" "), ws.example, run.output);
    run.output
}

async fn apply_example(terraform: Terraform, example: String, zips: BTreeMap<String, PathBuf>) -> String {
    let started = Instant::now();
    let mut timings = Timings(Vec::new());
    let moto = tokio::task::spawn_blocking(|| Moto::dedicated(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]))
        .await
        .expect("moto");
    let aws = Aws::new(&moto).await;
    let (vpc, subnets) = network(&aws).await;
    let baseline = inventory(&moto.endpoint).await;

    let ws = Workspace::create(&example);
    let modules = root_module_calls(&ws.dir);
    assert!(!modules.is_empty(), "{example}: no call of the root or multi-runner module");
    ws.configure(&moto.endpoint, &modules, &zips, &example_variables(&ws.dir, &vpc, &subnets));

    terraform_ok(&terraform, &ws, &["init", "-input=false", "-no-color"], &mut timings).await;
    let plan =
        terraform_ok(&terraform, &ws, &["plan", "-input=false", "-no-color", "-out=first.tfplan"], &mut timings).await;
    let planned = plan.lines().find(|l| l.starts_with("Plan:")).unwrap_or_default().to_string();
    terraform_ok(
        &terraform,
        &ws,
        &["apply", "-input=false", "-no-color", "-auto-approve", "first.tfplan"],
        &mut timings,
    )
    .await;

    // 1. Re-plan: what was applied is what the configuration says.
    let second = terraform.run(&ws.dir, &["plan", "-input=false", "-no-color", "-detailed-exitcode"]).await;
    timings.add("second plan", second.took);
    assert_eq!(second.code, Some(0), "{example}: the second plan is not empty (or failed):\n{}", second.output);
    let state = terraform_ok(&terraform, &ws, &["state", "list"], &mut timings).await;
    let resources =
        state.lines().filter(|l| !l.trim().is_empty() && !l.contains(".data.") && !l.starts_with("data.")).count();

    let deployed = inventory(&moto.endpoint).await;
    // 2. IAM as IAM would read it.
    let iam = check_iam(&deployed).await;
    // 3. The dashboard as CloudWatch would read it.
    let dashboard = check_dashboard(&deployed);
    // 4. The deployed system runs.
    let drive = drive_through(&moto, &aws, &deployed).await;

    // 5. Destroy leaves nothing.
    terraform_ok(&terraform, &ws, &["destroy", "-input=false", "-no-color", "-auto-approve"], &mut timings).await;
    let after = inventory(&moto.endpoint).await;
    let left = leftovers(&baseline, &after);
    assert!(left.is_empty(), "{example}: destroy left these behind: {left:#?}");

    format!(
        "example {example}: {resources} resources ({planned}); second plan empty; {iam}; {dashboard}; {drive}; \
         destroy left nothing. {timings}; total {:.1}s",
        started.elapsed().as_secs_f64()
    )
}

/// A VPC with two subnets in two zones, as the examples expect the user to have.
async fn network(aws: &Aws) -> (String, Vec<String>) {
    let vpc = aws.ec2.create_vpc().cidr_block("10.42.0.0/16").send().await.unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
    let mut subnets = Vec::new();
    for (i, zone) in ["a", "b"].iter().enumerate() {
        let subnet = aws
            .ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("10.42.{i}.0/24"))
            .availability_zone(format!("{REGION}{zone}"))
            .send()
            .await
            .unwrap();
        subnets.push(subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_string());
    }
    (vpc_id, subnets)
}

// ---------------------------------------------------------------------------------------------
// IAM

async fn check_iam(deployed: &Value) -> String {
    let policies = deployed["policies"].as_array().cloned().unwrap_or_default();
    let lint = iam_lint(&Value::Array(policies.clone())).await;
    let findings = lint["findings"].as_array().cloned().unwrap_or_default();
    assert!(findings.is_empty(), "parliament findings that are neither fixed nor justified: {findings:#?}");

    for trust in policies.iter().filter(|p| p["kind"] == "trust") {
        for statement in statements(&trust["document"]) {
            let service = &statement["Principal"]["Service"];
            assert!(
                statement["Effect"] == "Allow" && actions(&statement) == ["sts:AssumeRole"] && service.is_string(),
                "{}: a trust policy lets one service assume the role, nothing else: {statement}",
                trust["source"]
            );
        }
    }

    // The runner role: whatever else is attached, no allow reaches the App's secrets or another
    // instance's token without an explicit deny that wins.
    let functions = deployed["functions"].as_object().unwrap();
    let scale_up = functions.iter().find(|(name, _)| name.ends_with("-scale-up")).map(|(_, c)| c).unwrap();
    let env = &scale_up["Environment"]["Variables"];
    let parameter_arn = |name: &str| format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}");
    let mut secrets: Vec<String> = ["PARAMETER_GITHUB_APP_ID_NAME", "PARAMETER_GITHUB_APP_KEY_BASE64_NAME"]
        .iter()
        .flat_map(|k| env[*k].as_str().unwrap_or_default().split(':').map(str::to_string).collect::<Vec<_>>())
        .filter(|n| !n.is_empty())
        .map(|n| parameter_arn(&n))
        .collect();
    let webhook = functions.iter().find(|(name, _)| name.ends_with("-webhook")).map(|(_, c)| c).unwrap();
    secrets.push(parameter_arn(
        webhook["Environment"]["Variables"]["PARAMETER_GITHUB_APP_WEBHOOK_SECRET"].as_str().unwrap(),
    ));
    let another_token = parameter_arn(&format!("{}/i-0another0instance", env["SSM_TOKEN_PATH"].as_str().unwrap()));

    let role = scale_up_runner_role(deployed);
    let runner_policies: Vec<&Value> =
        policies.iter().filter(|p| p["kind"] != "trust" && p["role"] == role.as_str()).collect();
    assert!(!runner_policies.is_empty(), "no policies found for the runner role {role}");
    let reads = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory"];
    for policy in &runner_policies {
        for statement in statements(&policy["document"]).iter().filter(|s| s["Effect"] == "Allow") {
            for action in reads.iter().filter(|a| actions(statement).iter().any(|p| glob(p, a))) {
                for (target, denied_how) in secrets.iter().map(|s| (s, "unconditionally")).chain([(&another_token, "")])
                {
                    if !resources(statement).iter().any(|r| glob(r, target)) {
                        continue;
                    }
                    let denied = runner_policies.iter().flat_map(|p| statements(&p["document"])).any(|d| {
                        d["Effect"] == "Deny"
                            && actions(&d).iter().any(|p| glob(p, action))
                            && (resources(&d).iter().any(|r| glob(r, target))
                                || not_resources(&d).is_some_and(|n| !n.iter().any(|r| glob(r, target))))
                            && (denied_how.is_empty() || d.get("Condition").is_none())
                    });
                    assert!(
                        denied,
                        "{}: `{action}` on {target} is allowed to runners and not denied {denied_how}: {statement}",
                        policy["source"]
                    );
                }
            }
        }
    }
    format!(
        "IAM: {} policies linted, 0 unjustified findings ({} justified), runner role {role} denied the App's secrets",
        lint["linted"],
        lint["justified"].as_array().map_or(0, Vec::len)
    )
}

/// The role scale-up passes to instances (`PassRunnerRole`).
fn scale_up_runner_role(deployed: &Value) -> String {
    deployed["policies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"].as_str().is_some_and(|r| r.contains("-scale-up-")) && p["kind"] == "identity")
        .flat_map(|p| statements(&p["document"]))
        .find(|s| s["Sid"] == "PassRunnerRole")
        .and_then(|s| resources(&s).first().cloned())
        .and_then(|arn| arn.rsplit('/').next().map(str::to_string))
        .expect("scale-up passes a runner role")
}

fn statements(document: &Value) -> Vec<Value> {
    match &document["Statement"] {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![document["Statement"].clone()],
        _ => Vec::new(),
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

fn actions(statement: &Value) -> Vec<String> {
    strings(&statement["Action"])
}

fn resources(statement: &Value) -> Vec<String> {
    strings(&statement["Resource"])
}

fn not_resources(statement: &Value) -> Option<Vec<String>> {
    statement.get("NotResource").map(strings)
}

/// IAM's wildcard match (`*` any run, `?` one character), case-insensitive for actions' sake.
fn glob(pattern: &str, text: &str) -> bool {
    fn inner(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => inner(&p[1..], t) || (!t.is_empty() && inner(p, &t[1..])),
            (Some(b'?'), Some(_)) => inner(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => inner(&p[1..], &t[1..]),
            _ => false,
        }
    }
    inner(pattern.as_bytes(), text.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// Dashboard

fn check_dashboard(deployed: &Value) -> String {
    let catalogue: BTreeSet<String> = common::telemetry::metrics::ALL.iter().map(|m| m.name.to_string()).collect();
    let namespace = deployed["functions"]
        .as_object()
        .unwrap()
        .values()
        .find_map(|c| c["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"].as_str())
        .unwrap()
        .to_string();
    let dashboards = deployed["dashboards"].as_object().cloned().unwrap_or_default();
    assert!(!dashboards.is_empty(), "no dashboard was applied");
    let mut rows = 0;
    for (name, body) in &dashboards {
        let problems = dashboard_problems(body, &namespace, &catalogue);
        assert!(problems.is_empty(), "dashboard {name} would be rejected or find nothing:\n{}", problems.join("\n"));
        rows += body["widgets"]
            .as_array()
            .map_or(0, |w| w.iter().map(|w| w["properties"]["metrics"].as_array().map_or(0, Vec::len)).sum::<usize>());
    }
    format!(
        "dashboard: {} widgets' {rows} rows valid",
        dashboards.values().map(|b| b["widgets"].as_array().map_or(0, Vec::len)).sum::<usize>()
    )
}

// ---------------------------------------------------------------------------------------------
// The deployed system runs

struct Deployed<'a> {
    moto: &'a Moto,
    functions: &'a serde_json::Map<String, Value>,
    github: &'a FakeGithub,
    /// The runner configuration driven (`ghr:environment`: the prefix, or `<prefix>-<key>` of a
    /// multi-runner configuration): its scale-up and scale-down are `<environment>-scale-…`.
    environment: String,
}

impl Deployed<'_> {
    /// The applied configuration of a function by role: the driven configuration's own
    /// scale-up/scale-down, else the one function of that role (webhook, dispatcher, syncer).
    fn config(&self, function: &str) -> &Value {
        let own = format!("{}-{function}", self.environment);
        self.functions
            .iter()
            .find(|(name, _)| **name == own)
            .or_else(|| self.functions.iter().find(|(name, _)| name.ends_with(&format!("-{function}"))))
            .map(|(_, c)| c)
            .unwrap_or_else(|| panic!("no {function} function was applied"))
    }

    /// Whether this configuration deployed `function`.
    fn has(&self, function: &str) -> bool {
        self.functions.contains_key(&format!("{}-{function}", self.environment))
    }

    fn var(&self, function: &str, name: &str) -> String {
        self.config(function)["Environment"]["Variables"][name].as_str().unwrap_or_default().to_string()
    }

    /// The function's binary under the runtime emulator, with exactly the applied environment
    /// plus moto's credentials and the test overrides of decisions.md #18.
    async fn spawn(&self, function: &str, overrides: &[(&str, String)]) -> LambdaFunction {
        self.spawn_config(function, self.config(function), overrides).await
    }

    async fn spawn_config(&self, function: &str, config: &Value, overrides: &[(&str, String)]) -> LambdaFunction {
        assert_eq!(config["Runtime"], "provided.al2023", "{function}: {config}");
        assert_eq!(config["Handler"], "bootstrap", "{function}");
        let mut env: Vec<(String, String)> = config["Environment"]["Variables"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        env.extend(self.moto.lambda_env());
        env.push((common::config::test_overrides::GITHUB_API_URL.to_string(), self.github.url.clone()));
        for (name, value) in overrides {
            assert!(common::config::test_overrides::ALL.contains(name), "{name} is not a test override");
            env.push((name.to_string(), value.clone()));
        }
        let timeout = Duration::from_secs(config["Timeout"].as_u64().unwrap_or(30));
        let name = config["FunctionName"].as_str().unwrap();
        LambdaFunction::spawn(&binary(function), name, &env, timeout).await
    }
}

/// Whether the applied matcher config lets `environment`'s configuration take dynamic labels.
async fn takes_dynamic_labels(system: &Deployed<'_>, aws: &Aws, environment: &str) -> bool {
    let router = if system.var("webhook", "EVENT_BUS_NAME").is_empty() { "webhook" } else { "dispatcher" };
    let mut json = String::new();
    for name in system.var(router, "PARAMETER_RUNNER_MATCHER_CONFIG_PATH").split(':') {
        let out = aws.ssm.get_parameter().name(name).send().await.expect("the matcher config parameter");
        json.push_str(out.parameter().and_then(|p| p.value()).unwrap_or_default());
    }
    let matchers = common::domain::webhook::parse_matcher_config(&[&json]).expect("the applied matcher config parses");
    let queue = format!("/{environment}-queued-builds");
    matchers.iter().any(|m| m.id.contains(&queue) && m.matcher_config.enable_dynamic_labels)
}

/// A test-side target on the applied `<prefix>-workflow_job` rule: an SQS queue that receives
/// what the rule routes (EventBridge envelopes), removed again before the destroy.
struct EventCapture {
    events: aws_sdk_eventbridge::Client,
    bus: String,
    rule: String,
    queue_url: String,
}

impl EventCapture {
    async fn attach(moto: &Moto, aws: &Aws, bus: &str, prefix: &str) -> Self {
        let events = aws_sdk_eventbridge::Client::new(&moto.sdk_config().await);
        let name = format!("{prefix}-test-capture");
        let queue_url = aws.create_queue(&name, false).await;
        let rule = format!("{prefix}-workflow_job");
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("test-capture")
                    .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"))
                    .build()
                    .expect("a target"),
            )
            .send()
            .await
            .expect("a capture target on the applied rule");
        Self { events, bus: bus.to_string(), rule, queue_url }
    }

    /// The routed events; the capture target and its queue go.
    async fn take(self, aws: &Aws) -> Vec<Value> {
        let events =
            aws.drain(&self.queue_url).await.into_iter().map(|(b, _)| serde_json::from_str(&b).unwrap()).collect();
        self.events
            .remove_targets()
            .rule(&self.rule)
            .event_bus_name(&self.bus)
            .ids("test-capture")
            .send()
            .await
            .expect("remove the capture");
        aws.sqs.delete_queue().queue_url(&self.queue_url).send().await.expect("delete the capture queue");
        events
    }
}

async fn drive_through(moto: &Moto, aws: &Aws, deployed: &Value) -> String {
    let functions = deployed["functions"].as_object().unwrap();
    let github = FakeGithub::start().await;
    let app = TestApp::new(1, 1000);
    github.add_app(app.id, app.public_pem.as_bytes());
    let owner = "acme";
    let installation = github.add_installation(app.id, owner, "Organization");
    let webhook = functions.iter().find(|(name, _)| name.ends_with("-webhook")).expect("a webhook function").1;
    let prefix = webhook["Environment"]["Variables"]["ENVIRONMENT"].as_str().unwrap().to_string();
    let shared = Deployed { moto, functions, github: &github, environment: prefix.clone() };

    // Each syncer (one per OS and architecture) mirrors the (stand-in) runner into its bucket.
    let tarball = fixtures::runner_stub_tarball();
    let version = "2.330.0";
    let names: Vec<String> =
        ["x64", "arm64"].iter().map(|arch| format!("actions-runner-linux-{arch}-{version}.tar.gz")).collect();
    let assets = names.iter().map(|n| (n.as_str(), AssetContent::Bytes(tarball.clone().into()))).collect();
    github.add_release(&format!("v{version}"), assets, true);
    let syncers: Vec<&Value> = functions.iter().filter(|(n, _)| n.ends_with("-syncer")).map(|(_, c)| c).collect();
    for config in &syncers {
        let syncer = shared.spawn_config("syncer", config, &[]).await;
        let synced = syncer.invoke(scheduled()).await;
        assert!(synced.is_ok(), "the syncer failed: {synced:?}\n{}", syncer.logs().join("\n"));
        let env = &config["Environment"]["Variables"];
        let (bucket, key) = (env["S3_BUCKET_NAME"].as_str().unwrap(), env["S3_OBJECT_KEY"].as_str().unwrap());
        assert!(
            aws.s3.head_object().bucket(bucket).key(key).send().await.is_ok(),
            "s3://{bucket}/{key} was not synced"
        );
    }

    // Each runner configuration gets its own job, routed by its labels.
    let environments: Vec<String> =
        functions.keys().filter_map(|n| n.strip_suffix("-scale-up")).map(str::to_string).collect();
    let mut reports = Vec::new();
    for environment in &environments {
        let system = Deployed { moto, functions, github: &github, environment: environment.clone() };
        reports.push(drive_configuration(&system, aws, deployed, &prefix, &environments, installation).await);
    }
    format!("{} syncer(s) synced; drive-through: {}", syncers.len(), reports.join("; "))
}

/// One job for one runner configuration: delivery → webhook (→ EventBridge → dispatcher) → this
/// configuration's queue and no other → its scale-up → an instance of its launch template → the
/// boot script → the job runs → its scale-down removes what is left.
async fn drive_configuration(
    system: &Deployed<'_>,
    aws: &Aws,
    deployed: &Value,
    prefix: &str,
    environments: &[String],
    installation: u64,
) -> String {
    let github = system.github;
    let moto = system.moto;
    let owner = "acme";
    let environment = system.environment.clone();
    assert_eq!(system.var("scale-up", "ENABLE_ORGANIZATION_RUNNERS"), "true", "the drive-through covers org runners");
    let ephemeral = system.var("scale-up", "ENABLE_EPHEMERAL_RUNNERS") == "true";
    let jit = system.var("scale-up", "ENABLE_JIT_CONFIG") == "true";

    // A queued job, delivered through the applied route's integration. A configuration that takes
    // dynamic labels (the applied matcher config says so) gets a job asking for a bigger disk.
    let mut labels: Vec<String> = system.var("scale-up", "RUNNER_LABELS").split(',').map(str::to_string).collect();
    let dynamic_label = "ghr-ec2-ebs-volume-size:64";
    let dynamic = takes_dynamic_labels(system, aws, &environment).await;
    if dynamic {
        labels.push(dynamic_label.to_string());
    }
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let job = github.add_job(owner, "web", &label_refs);
    let body = fixtures::workflow_job("queued", job, &label_refs, owner, "web", installation);
    let event = api_event(deployed, prefix, &body);
    // EventBridge mode: moto does not invoke a Lambda target, so a second target on the applied
    // rule (an SQS queue of the test's) captures what the rule routes, for the dispatcher.
    let bus = system.var("webhook", "EVENT_BUS_NAME");
    let capture = if bus.is_empty() { None } else { Some(EventCapture::attach(moto, aws, &bus, prefix).await) };
    let webhook = system.spawn("webhook", &[]).await;
    let answer = webhook.invoke(event).await.expect("the webhook answers");
    assert_eq!(
        answer["statusCode"],
        201,
        "the webhook did not enqueue (or publish) the job: {answer}\n{}",
        webhook.logs().join("\n")
    );
    if let Some(capture) = capture {
        let events = capture.take(aws).await;
        assert_eq!(events.len(), 1, "the applied rule routes the queued job once: {events:?}");
        let dispatcher = system.spawn("dispatcher", &[]).await;
        let answer = dispatcher.invoke(events[0].clone()).await;
        assert!(
            answer.as_ref().is_ok_and(|a| a["decision"] == "queued"),
            "the dispatcher did not queue the job: {answer:?}\n{}",
            dispatcher.logs().join("\n")
        );
    }

    // Scale-up, fed by the applied event source mapping from the applied queue.
    let mapping = deployed["event_source_mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["FunctionArn"].as_str().is_some_and(|f| f.ends_with(&format!("{environment}-scale-up"))))
        .expect("an event source mapping for scale-up");
    assert!(
        mapping["FunctionResponseTypes"].as_array().is_some_and(|t| t.contains(&json!("ReportBatchItemFailures"))),
        "partial batch failures are reported: {mapping}"
    );
    let queue = mapping["EventSourceArn"].as_str().unwrap().rsplit(':').next().unwrap().to_string();
    let queue_url = format!("{}/{ACCOUNT}/{queue}", moto.endpoint);
    // The job went to this configuration's queue and to no other.
    for other in environments.iter().filter(|e| **e != environment) {
        let other_queue = format!("{}/{ACCOUNT}/{other}-queued-builds", moto.endpoint);
        assert_eq!(queue_depth(aws, &other_queue).await, 0, "{environment}'s job also reached {other_queue}");
    }
    let batch = mapping["BatchSize"].as_i64().unwrap_or(10) as i32;
    let scale_up = system.spawn("scale-up", &[]).await;
    let source = SqsEventSource::new(aws.sqs.clone(), &queue_url, batch);
    let deadline = Instant::now() + Duration::from_secs(60);
    let poll = loop {
        if let Some(poll) = source.poll_once(&scale_up).await {
            break poll;
        }
        assert!(Instant::now() < deadline, "the job never reached {queue_url}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!((poll.received, poll.retried), (1, 0), "scale-up: {poll:?}\n{}", scale_up.logs().join("\n"));

    // The instance, from the applied launch template.
    let instances = running_instances(aws, &environment).await;
    assert_eq!(instances.len(), 1, "one instance for one job: {instances:?}");
    let instance = &instances[0];
    let instance_id = instance.instance_id().unwrap().to_string();
    let tags: BTreeMap<String, String> =
        instance.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
    let config_path = system.var("scale-up", "SSM_CONFIG_PATH");
    assert_eq!(tags.get("ghr:environment"), Some(&environment), "{tags:?}");
    assert_eq!(tags.get("ghr:ssm_config_path"), Some(&config_path), "{tags:?}");
    assert_eq!(tags.get("Name"), Some(&format!("{environment}-action-runner")), "{tags:?}");
    if dynamic {
        let runner_labels = tags.get("ghr:runner_labels").cloned().unwrap_or_default();
        assert!(runner_labels.ends_with(dynamic_label), "registered with the job's dynamic label: {tags:?}");
    }
    let template_name = system.var("scale-up", "LAUNCH_TEMPLATE_NAME");
    let template = aws
        .ec2
        .describe_launch_template_versions()
        .launch_template_name(&template_name)
        .versions("$Latest")
        .send()
        .await
        .unwrap();
    let data = template.launch_template_versions()[0].launch_template_data().unwrap().clone();
    let metadata = data.metadata_options().expect("metadata options");
    assert_eq!(metadata.http_tokens().map(|t| t.as_str()), Some("required"), "IMDSv2 only");
    assert_eq!(metadata.instance_metadata_tags().map(|t| t.as_str()), Some("enabled"), "tags in IMDS");
    let profile = data.iam_instance_profile().and_then(|p| p.name()).unwrap_or_default().to_string();
    assert_eq!(profile, format!("{environment}-runner-profile"));
    if let Some(arn) = instance.iam_instance_profile().and_then(|p| p.arn()) {
        assert!(arn.ends_with(&profile), "the instance runs with the runner profile: {arn}");
    }

    // The boot script, exactly as the template holds it, against moto and the IMDS fake.
    let user_data = decode_user_data(data.user_data().expect("user data"));
    let boot = boot_instance(system, aws, &instance_id, &tags, &config_path, &user_data).await;
    let job_state = github.job(job).expect("the job");
    assert_eq!(job_state.status, "completed", "the runner ran the job:\n{}", boot.log);
    let tags = instance_tags(aws, &instance_id).await;
    assert!(tags.contains_key("ghr:job_started") && tags.contains_key("ghr:job_completed"), "job markers: {tags:?}");
    assert_eq!(
        tags.get("ghr:job_run"),
        Some(&format!("{owner}/web/{}", job_state.run_id)),
        "the job's run, for job rescue: {tags:?}"
    );
    let registered = if ephemeral {
        assert!(
            github.runners().is_empty(),
            "GitHub removed the ephemeral runner after its job: {:?}",
            github.runners()
        );
        let state = instance_state(aws, &instance_id).await;
        assert!(state == "terminated" || state == "shutting-down", "the ephemeral instance ended itself: {state}");
        "ephemeral runner registered (JIT), ran the job, instance ended itself".to_string()
    } else {
        let name = format!("{}{instance_id}", system.var("scale-up", "RUNNER_NAME_PREFIX"));
        let runner = github.runner_by_name(&name).unwrap_or_else(|| panic!("runner {name} registered:\n{}", boot.log));
        assert!(runner.online, "{runner:?}");
        assert!(labels.iter().all(|l| runner.labels.iter().any(|r| r.eq_ignore_ascii_case(l))), "{runner:?}");
        assert_eq!(tags.get("ghr:github_runner_id"), Some(&runner.id.to_string()), "the runner id is tagged");
        format!("runner {name} registered ({}), ran the job", if jit { "JIT" } else { "token" })
    };

    // Scale-down, later: past the minimum running time, outside any idle-keeping schedule.
    let minutes: i64 = system.var("scale-down", "MINIMUM_RUNNING_TIME_IN_MINUTES").parse().unwrap_or(5);
    let later = quiet_time_after(Utc::now() + ChronoDuration::minutes(minutes + 1));
    let clock = std::env::temp_dir().join(tests::moto::unique("ghr-apply-clock"));
    std::fs::write(&clock, later.to_rfc3339()).unwrap();
    let clock_override = (common::config::test_overrides::CLOCK_FILE, clock.display().to_string());
    let scale_down = system.spawn("scale-down", &[clock_override]).await;
    let result = scale_down.invoke(scheduled()).await;
    assert!(result.is_ok(), "scale-down failed: {result:?}\n{}", scale_down.logs().join("\n"));
    assert!(
        github.runners().is_empty(),
        "scale-down left runners: {:?}\n{}",
        github.runners(),
        scale_down.logs().join("\n")
    );
    // Two-phase removal: the next scheduled run, past the hold, terminates what was deregistered.
    let hold: i64 = system.var("scale-down", "RUNNER_JOB_START_GRACE_SECONDS").parse().unwrap_or(180);
    std::fs::write(&clock, (later + ChronoDuration::seconds(hold.max(0) + 60)).to_rfc3339()).unwrap();
    let result = scale_down.invoke(scheduled()).await;
    assert!(result.is_ok(), "scale-down failed: {result:?}\n{}", scale_down.logs().join("\n"));
    assert!(running_instances(aws, &environment).await.is_empty(), "scale-down left instances running");
    let errors: f64 = scale_down.metric("ScaleDownErrors").iter().map(|(v, _)| v).sum();
    assert_eq!(errors, 0.0, "{}", scale_down.logs().join("\n"));

    let mut extras = Vec::new();
    // The termination watcher (where enabled): the instance scale-down just terminated shuts
    // down, as EventBridge reports it; the watcher matches it by its tags, and finds its runner
    // already gone (scale-down deregistered it first).
    if let Some(name) = system.functions.keys().find(|n| n.ends_with("-spot-termination-notification")) {
        let watcher = system.spawn_config("spot-termination-notification", &system.functions[name], &[]).await;
        let event = json!({"version": "0", "id": "apply-test", "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2", "account": ACCOUNT, "time": Utc::now().to_rfc3339(), "region": REGION,
            "resources": [], "detail": {"instance-id": instance_id, "state": "shutting-down"}});
        let result = watcher.invoke(event).await;
        let answer =
            result.unwrap_or_else(|e| panic!("the termination watcher failed: {e:?}\n{}", watcher.logs().join("\n")));
        assert_eq!(answer["watched"], json!([instance_id]), "{answer}");
        assert!(answer["failed"].as_array().is_some_and(Vec::is_empty), "{answer}");
        extras.push(format!(
            "termination watcher matched {instance_id} by its tags ({} deregistration)",
            if system.var("spot-termination-notification", "ENABLE_RUNNER_DEREGISTRATION") == "true" {
                "with"
            } else {
                "without"
            }
        ));
    }
    // The warm pool (where enabled): a scheduled top-up, the instance prepared by the template's
    // boot script, a job that claims it, and its resume.
    if system.has("warm-pool") {
        extras.push(drive_warm_pool(system, aws, installation, &user_data).await);
    }
    // The pool (when configured): invoked with its schedule's input, as EventBridge Scheduler
    // sends it (moto keeps schedules; it does not fire them).
    let mut pooled = 0;
    if system.has("pool") {
        let schedules = pool_schedules(moto, &environment);
        assert!(!schedules.is_empty(), "a pool function without schedules");
        let input = schedules[0].clone();
        let size = input["poolSize"].as_u64().unwrap() as usize;
        let pool = system.spawn("pool", &[]).await;
        let answer = pool.invoke(input).await;
        let answer = answer.unwrap_or_else(|e| panic!("the pool failed: {e:?}\n{}", pool.logs().join("\n")));
        let instances = running_instances(aws, &environment).await;
        assert_eq!(instances.len(), size, "the pool topped up to its size: {answer}");
        // Held against scale-down; removed here, before the destroy.
        let ids: Vec<String> = instances.iter().filter_map(|i| i.instance_id().map(str::to_string)).collect();
        aws.ec2.terminate_instances().set_instance_ids(Some(ids)).send().await.unwrap();
        pooled = size;
        extras.push(format!("pool topped up to {size} from its schedule"));
    }

    // The SSM housekeeper (on by default, as upstream): a scheduled run with the applied
    // environment, past the boot time: the token parameters of the pool's terminated instances
    // (never read: they did not boot) are orphans it deletes.
    if system.has("ssm-housekeeper") {
        let boot: i64 = system.var("ssm-housekeeper", "RUNNER_BOOT_TIME_IN_MINUTES").parse().unwrap_or(5);
        std::fs::write(&clock, (Utc::now() + ChronoDuration::minutes(boot + 1)).to_rfc3339()).unwrap();
        let housekeeper = system
            .spawn("ssm-housekeeper", &[(common::config::test_overrides::CLOCK_FILE, clock.display().to_string())])
            .await;
        let result = housekeeper.invoke(scheduled()).await;
        let answer =
            result.unwrap_or_else(|e| panic!("the SSM housekeeper failed: {e:?}\n{}", housekeeper.logs().join("\n")));
        let orphans = answer["deleted"]["orphaned"].as_array().map_or(0, Vec::len);
        assert_eq!(orphans, pooled, "the pool's unread token parameters are deleted: {answer}");
        extras.push(format!("SSM housekeeper deleted {orphans} orphaned token parameter(s)"));
    }
    // The AMI housekeeper (where enabled): a scheduled run with the applied environment and
    // permissions resolves the runners' launch template, whose image is a `resolve:ssm:`
    // reference to the AMI parameter, and deregisters nothing (moto's images are Amazon's).
    if system.functions.keys().any(|name| name.ends_with("-ami-housekeeper")) {
        let housekeeper = system.spawn("ami-housekeeper", &[]).await;
        let result = housekeeper.invoke(scheduled()).await;
        let answer =
            result.unwrap_or_else(|e| panic!("the AMI housekeeper failed: {e:?}\n{}", housekeeper.logs().join("\n")));
        let references = answer["references"].as_u64().unwrap_or(0);
        assert!(references >= 1, "the runners' image is found in use: {answer}");
        assert_eq!(answer["deregistered"].as_array().map(Vec::len), Some(0), "{answer}");
        extras.push(format!("AMI housekeeper found {references} image(s) in use, deregistered none"));
    }
    // Webhook redelivery (on by default): a scheduled sweep with the applied environment reads
    // the App's delivery log with the App's JWT and saves its checkpoint where Terraform allows.
    if system.has("webhook-redelivery") {
        let redelivery = system.spawn("webhook-redelivery", &[]).await;
        let result = redelivery.invoke(scheduled()).await;
        let answer = result.unwrap_or_else(|e| panic!("redelivery failed: {e:?}\n{}", redelivery.logs().join("\n")));
        let app = &answer["apps"][0];
        assert!(app["error"].is_null() && app["complete"] == true, "{answer}");
        let name = system.var("webhook-redelivery", "REDELIVERY_CHECKPOINT_PARAMETER");
        let saved = aws.ssm.get_parameter().name(&name).send().await.unwrap();
        let value: Value = serde_json::from_str(saved.parameter().and_then(|p| p.value()).unwrap_or_default()).unwrap();
        assert_eq!(value.as_object().map(|o| o.len()), Some(1), "the App's checkpoint saved in {name}: {value}");
        extras.push(format!("redelivery swept the App's deliveries, checkpoint saved in {name}"));
    }
    format!(
        "{environment}: delivery 201{} → 1 message → instance {instance_id} → {registered} → scale-down left 0 runners, 0 instances{}",
        if dynamic { format!(" (job with {dynamic_label}, on the runner's labels)") } else { String::new() },
        extras.iter().map(|e| format!("; {e}")).collect::<String>()
    )
}

/// The warm pool of one configuration, from the applied functions and launch template: the
/// warm-pool function launches an instance in prepare mode; its boot script (the template's user
/// data) installs the runner, tags it ready and stops it; scale-up claims it for a job, writes its
/// configuration and starts it; the script the prepared instance runs at boot registers and runs
/// the job.
async fn drive_warm_pool(system: &Deployed<'_>, aws: &Aws, installation: u64, user_data: &str) -> String {
    let github = system.github;
    let environment = &system.environment;
    let config: Value = serde_json::from_str(&system.var("scale-up", "WARM_POOL_CONFIG")).unwrap();
    let size = config["size"].as_u64().expect("a warm pool size") as usize;
    let warm_pool = system.spawn("warm-pool", &[]).await;
    let answer = warm_pool.invoke(scheduled()).await;
    let answer = answer.unwrap_or_else(|e| panic!("the warm pool failed: {e:?}\n{}", warm_pool.logs().join("\n")));
    let launched: Vec<String> =
        answer["launched"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(launched.len(), size, "the warm pool topped up to its size: {answer}");
    let id = launched[0].clone();
    // The others are not needed here.
    if launched.len() > 1 {
        aws.ec2.terminate_instances().set_instance_ids(Some(launched[1..].to_vec())).send().await.unwrap();
    }
    let tags = instance_tags(aws, &id).await;
    assert_eq!(tags.get("ghr:warm").map(String::as_str), Some("preparing"), "{tags:?}");
    assert!(!tags.contains_key("ghr:Owner"), "no owner until claimed: {tags:?}");
    let config_path = system.var("scale-up", "SSM_CONFIG_PATH");
    let prepared = boot_instance(system, aws, &id, &tags, &config_path, user_data).await;
    assert!(prepared.log.contains("prepared, stopping until claimed"), "{}", prepared.log);
    assert_eq!(instance_state(aws, &id).await, "stopped", "the prepared instance stopped itself");
    assert_eq!(instance_tags(aws, &id).await.get("ghr:warm").map(String::as_str), Some("ready"));
    assert!(prepared.dir.join("systemd/ghr-warm-runner.service").exists(), "the unit that resumes it");

    // A job: scale-up claims the ready instance instead of launching one.
    let labels: Vec<String> = system.var("scale-up", "RUNNER_LABELS").split(',').map(str::to_string).collect();
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let job = github.add_job("acme", "web", &label_refs);
    let message = json!({"id": job, "repositoryName": "web", "repositoryOwner": "acme", "eventType": "workflow_job",
        "installationId": installation, "queueId": "warm-drive", "repoOwnerType": "Organization", "labels": labels});
    let event = json!({"Records": [{"messageId": "warm-1", "receiptHandle": "h", "body": message.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:q"), "awsRegion": REGION}]});
    let scale_up = system.spawn("scale-up", &[]).await;
    let answer = scale_up.invoke(event).await.expect("scale-up answers");
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}\n{}", scale_up.logs().join("\n"));
    let claims: f64 = scale_up.metric("WarmPoolClaims").iter().map(|(v, _)| v).sum();
    assert_eq!(claims, 1.0, "{}", scale_up.logs().join("\n"));
    let running = running_instances(aws, environment).await;
    assert_eq!(
        running.iter().filter_map(|i| i.instance_id()).collect::<Vec<_>>(),
        vec![id.as_str()],
        "started, none launched"
    );
    let tags = instance_tags(aws, &id).await;
    assert_eq!(tags.get("ghr:warm").map(String::as_str), Some("claimed"), "{tags:?}");

    // The resume: the unit runs the prepared start-runner.sh with the instance's current tags.
    let imds = FakeImds::start(&id, REGION, tags).await;
    let script = prepared.dir.join("runner/start-runner.sh");
    let mut command = instance_command(system, &prepared.dir, &imds, &script);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the resumed runner finished within 120 s")
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the resumed instance failed:\n{log}");
    assert_eq!(github.job(job).expect("the job").status, "completed", "the warm runner ran the job:\n{log}");
    if system.var("scale-up", "ENABLE_EPHEMERAL_RUNNERS") == "true" {
        let state = instance_state(aws, &id).await;
        assert!(state == "terminated" || state == "shutting-down", "ephemeral: ended after its job: {state}");
    } else {
        aws.ec2.terminate_instances().instance_ids(&id).send().await.unwrap();
    }
    format!("warm pool: {id} prepared and stopped by its boot script, claimed and started for a job, which it ran")
}

/// The inputs of the pool's EventBridge Scheduler schedules (`<environment>-pool-<n>`), read
/// from moto with boto3 (no scheduler SDK crate in the tests).
fn pool_schedules(moto: &Moto, environment: &str) -> Vec<Value> {
    let script = r#"
import json, sys, boto3
c = boto3.client("scheduler", endpoint_url=sys.argv[1], region_name=sys.argv[2],
                 aws_access_key_id="testing", aws_secret_access_key="testing")
out = []
for s in c.list_schedules(NamePrefix=sys.argv[3] + "-pool-")["Schedules"]:
    full = c.get_schedule(Name=s["Name"], GroupName=s["GroupName"])
    out.append(json.loads(full["Target"]["Input"]))
print(json.dumps(out))
"#;
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&moto.endpoint)
        .arg(REGION)
        .arg(environment)
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn scheduled() -> Value {
    json!({"version": "0", "id": "apply-test", "detail-type": "Scheduled Event", "source": "aws.events",
           "account": ACCOUNT, "time": Utc::now().to_rfc3339(), "region": REGION, "resources": [], "detail": {}})
}

/// A Sunday 03:00 UTC at or after `t`: outside every working-hours idle schedule of the examples.
fn quiet_time_after(t: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    let mut day = t.date_naive();
    loop {
        let candidate = day.and_hms_opt(3, 0, 0).unwrap().and_utc();
        if candidate.weekday() == chrono::Weekday::Sun && candidate >= t {
            return candidate;
        }
        day = day.succ_opt().unwrap();
    }
}

/// The API Gateway event the applied route would send the webhook: the route's key, the
/// integration's payload format, signed as GitHub signs.
fn api_event(deployed: &Value, prefix: &str, body: &str) -> Value {
    let apis = deployed["apis"].as_array().unwrap();
    let function = format!("function:{prefix}-webhook");
    let (route, integration) = apis
        .iter()
        .flat_map(|api| {
            let integrations = api["integrations"].as_array().cloned().unwrap_or_default();
            api["routes"].as_array().cloned().unwrap_or_default().into_iter().filter_map(move |route| {
                let target = route["Target"].as_str()?.strip_prefix("integrations/")?.to_string();
                let integration = integrations.iter().find(|i| i["IntegrationId"] == target.as_str())?.clone();
                Some((route, integration))
            })
        })
        .find(|(_, i)| i["IntegrationUri"].as_str().is_some_and(|u| u.contains(&function)))
        .expect("an API route integrated with the webhook function");
    let route_key = route["RouteKey"].as_str().unwrap();
    let (method, path) = route_key.split_once(' ').unwrap();
    let signature = sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
    let delivery = format!("apply-{:08x}", fastrand::u32(..));
    match integration["PayloadFormatVersion"].as_str() {
        Some("2.0") => json!({
            "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": "",
            "headers": {"content-type": "application/json", "user-agent": "GitHub-Hookshot/apply",
                        "x-github-delivery": delivery, "x-github-event": "workflow_job", "x-hub-signature-256": signature},
            "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "140.82.115.1"},
                               "routeKey": route_key, "stage": "$default"},
            "body": body, "isBase64Encoded": false
        }),
        other => json!({
            "resource": path, "path": path, "httpMethod": method, "version": other.unwrap_or("1.0"),
            "headers": {"Content-Type": "application/json", "X-GitHub-Delivery": delivery, "X-GitHub-Event": "workflow_job",
                        "X-Hub-Signature-256": signature},
            "multiValueHeaders": {}, "requestContext": {"httpMethod": method, "stage": "$default"},
            "body": body, "isBase64Encoded": false
        }),
    }
}

/// Messages in a queue, visible or in flight.
async fn queue_depth(aws: &Aws, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e:?}"));
    let attributes = out.attributes().cloned().unwrap_or_default();
    [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
        .iter()
        .map(|a| attributes.get(a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        .sum()
}

async fn running_instances(aws: &Aws, prefix: &str) -> Vec<aws_sdk_ec2::types::Instance> {
    let out = aws
        .ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:ghr:environment").values(prefix).build())
        .filters(Filter::builder().name("instance-state-name").values("pending").values("running").build())
        .send()
        .await
        .unwrap();
    out.reservations().iter().flat_map(|r| r.instances().to_vec()).collect()
}

async fn instance_tags(aws: &Aws, id: &str) -> BTreeMap<String, String> {
    let out = aws.ec2.describe_instances().instance_ids(id).send().await.unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| i.tags())
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

async fn instance_state(aws: &Aws, id: &str) -> String {
    let out = aws.ec2.describe_instances().instance_ids(id).send().await.unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
        .unwrap_or_default()
}

/// The launch template's user data: base64 of gzip (Linux) or of the script (Windows).
fn decode_user_data(encoded: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).expect("user data is base64");
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut child = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "user data is not valid gzip");
        String::from_utf8(out.stdout).expect("user data is text")
    } else {
        String::from_utf8(bytes).expect("user data is text")
    }
}

struct Booted {
    log: String,
    /// The instance's scratch folder (its runner folder is `runner/`).
    dir: PathBuf,
}

/// Runs the decoded user data as cloud-init would on the instance, with these differences only:
/// the runner folder and logs under a scratch folder (the script's own test overrides), package
/// managers replaced by a recorder (no packages are installed on the test machine), the IMDS
/// fake instead of 169.254.169.254, AWS at moto, and the runner user (`run_as`, `ec2-user` by
/// default) set to the test machine's user, which is the only change made to the deployment.
async fn boot_instance(
    system: &Deployed<'_>,
    aws: &Aws,
    instance_id: &str,
    tags: &BTreeMap<String, String>,
    config_path: &str,
    user_data: &str,
) -> Booted {
    let dir = std::env::temp_dir().join(tests::moto::unique("ghr-apply-instance"));
    let shims = dir.join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    std::fs::write(dir.join("user-data.sh"), user_data).unwrap();
    for tool in ["apt-get", "dnf", "systemctl", "usermod"] {
        let shim = shims.join(tool);
        std::fs::write(&shim, format!("#!/bin/sh\necho \"{tool} $*\" >>\"{}\"\n", dir.join("packages.log").display()))
            .unwrap();
        std::process::Command::new("chmod").arg("755").arg(&shim).status().unwrap();
    }
    let user = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    aws.ssm
        .put_parameter()
        .name(format!("{config_path}/run_as"))
        .value(user.trim())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let imds = FakeImds::start(instance_id, REGION, tags.clone()).await;
    let mut command = instance_command(system, &dir, &imds, &dir.join("user-data.sh"));
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the user data finished within 180 s")
        .unwrap();
    let log = format!(
        "{}{}\n--- user-data.log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(dir.join("user-data.log")).unwrap_or_default()
    );
    assert!(output.status.success(), "the user data failed:\n{log}");
    let packages = std::fs::read_to_string(dir.join("packages.log")).unwrap_or_default();
    assert!(packages.contains("install"), "the user data installs its packages: {packages:?}\n{log}");
    Booted { log, dir }
}

/// A script run as on the instance (see [`boot_instance`]): shims for package managers and
/// systemctl first on the PATH, the runner folder, the unit folder and the logs under `dir`.
fn instance_command(system: &Deployed<'_>, dir: &Path, imds: &FakeImds, script: &Path) -> tokio::process::Command {
    let shims = dir.join("shims");
    let systemd = dir.join("systemd");
    std::fs::create_dir_all(&systemd).unwrap();
    let venv_bin = python().parent().map(Path::to_path_buf).unwrap();
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(script)
        .current_dir(dir)
        .env(
            "PATH",
            format!("{}:{}:{}", shims.display(), venv_bin.display(), std::env::var("PATH").unwrap_or_default()),
        )
        .env("RUNNER_DIR", dir.join("runner"))
        .env("SYSTEMD_DIR", &systemd)
        .env("USER_DATA_LOG", dir.join("user-data.log"))
        .env("CONSOLE", "/dev/null")
        .env("IMDS_URL", &imds.url)
        .env("TERMINATE_DELAY", "0")
        .env("TOKEN_WAIT_SECONDS", "60")
        .env("STUB_GITHUB_URL", &system.github.url)
        // A job done within its second: the completed marker names the start it closes, so
        // scale-down still sees the runner idle (issue 12 item 7, which this test found when
        // the markers were one-second stamps that could tie).
        .env("STUB_JOB_SECONDS", "0")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .kill_on_drop(true);
    for (k, v) in system.moto.lambda_env() {
        command.env(k, v);
    }
    // The job markers reach AWS with the instance profile (the fake IMDS's) through this endpoint.
    command.env("GHR_AWS_ENDPOINT_URL", &system.moto.endpoint);
    command.env_remove("AWS_REGION").env_remove("AWS_DEFAULT_REGION");
    command
}

// ---------------------------------------------------------------------------------------------
// modules/webhook-github-app: its script against the fake GitHub (the apply of upstream's
// examples runs it through Terraform too).

fn update_app(github: &FakeGithub, app: &TestApp, key_base64: &str) -> std::process::Output {
    std::process::Command::new("bash")
        .arg(project_root().join("terraform/modules/webhook-github-app/bin/update-app.sh"))
        .env("APP_ID", app.id.to_string())
        .env("APP_PRIVATE_KEY_BASE64", key_base64)
        .env("WEBHOOK_ENDPOINT", "https://abc.execute-api.eu-west-1.amazonaws.com/webhook")
        .env("WEBHOOK_SECRET", "s3cr\"et\\value")
        .env("GITHUB_API_URL", "https://api.github.invalid")
        .env(common::config::test_overrides::GITHUB_API_URL, &github.url)
        .output()
        .expect("bash")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_github_app_points_the_app_at_the_endpoint_with_the_secret() {
    let github = FakeGithub::start().await;
    let app = TestApp::new(1, 4242);
    github.add_app(app.id, app.public_pem.as_bytes());
    // The script blocks this worker; the fake GitHub answers on the other.
    let out = tokio::task::block_in_place(|| update_app(&github, &app, &app.key_base64()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = github.app_hook_config(app.id).unwrap();
    assert_eq!(config["url"], "https://abc.execute-api.eu-west-1.amazonaws.com/webhook");
    assert_eq!(config["secret"], "s3cr\"et\\value", "the secret arrives intact (JSON-escaped)");
    assert_eq!(config["content_type"], "json");
    assert_eq!(config["insecure_ssl"], "0");

    // Another App's key: GitHub refuses the JWT; the apply fails with the reason, no secret shown.
    let other = TestApp::new(2, 4242);
    let out = tokio::task::block_in_place(|| update_app(&github, &app, &other.key_base64()));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("GitHub answered 401") && stderr.contains("by hand"), "{stderr}");
    assert!(
        !stderr.contains("s3cr") && !String::from_utf8_lossy(&out.stdout).contains("s3cr"),
        "no secret in the output"
    );
}

// ---------------------------------------------------------------------------------------------
// Upstream's examples, applied as a migrating user has them (issue 13)

/// Upstream's examples (tests/fixtures/upstream/examples, v7.11), each next to this project's
/// modules exactly as written, but for what cannot be had offline: the VPC module of
/// `examples/base` (a stub with the same `vpc` output over the test's VPC), the `random`
/// provider (`random_id.random.hex` becomes a literal) and the provider versions (`>= 6.33`
/// and `random`/`local` are not in the offline mirror: the AWS provider 5.100 is used).
const UPSTREAM_EXAMPLES: &[&str] = &[
    "default",
    "ephemeral",
    "external-managed-ssm-secrets",
    "multi-runner",
    "permissions-boundary",
    "prebuilt",
    "termination-watcher",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_examples_apply_unchanged_against_moto() {
    let _heavy = crate::support::HEAVY.read().await;
    let terraform = match Terraform::locate() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("\n!!!! SKIPPED: applying upstream's examples against moto ({why})\n");
            return;
        }
    };
    let zips = lambda_zips();
    let mut names: Vec<String> = UPSTREAM_EXAMPLES.iter().map(|s| s.to_string()).collect();
    if let Ok(only) = std::env::var("TF_APPLY_UPSTREAM_EXAMPLES")
        && !only.trim().is_empty()
    {
        names.retain(|n| only.split(',').any(|o| o.trim() == n));
    }
    // Three at a time: each has its own moto and terraform, and CI has two cores.
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(3));
    let runs: Vec<_> = names
        .iter()
        .map(|example| {
            let (terraform, zips, permits, example) =
                (terraform.clone(), zips.clone(), permits.clone(), example.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.unwrap();
                apply_upstream_example(terraform, example, zips).await
            })
        })
        .collect();
    let mut table = vec!["| example | applies | plan-time warnings |".to_string(), "|---|---|---|".to_string()];
    let mut failures = Vec::new();
    for (example, run) in names.iter().zip(runs) {
        match run.await {
            Ok(report) => table.push(report),
            Err(e) => {
                let message = e
                    .try_into_panic()
                    .ok()
                    .and_then(|p| {
                        p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    })
                    .unwrap_or_else(|| "cancelled".into());
                table.push(format!("| {example} | **no** | |"));
                failures.push(format!("upstream example {example}: {message}"));
            }
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Rewrites what cannot be had offline in an upstream example folder (see UPSTREAM_EXAMPLES).
fn offline(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "tf") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = if name == "versions.tf" {
            "terraform {\n  required_providers {\n    aws = {\n      source  = \"hashicorp/aws\"\n      version = \"5.100.0\"\n    }\n  }\n}\n".to_string()
        } else {
            let mut out = String::new();
            let mut skipping = false;
            for line in text.lines() {
                if line.starts_with("resource \"random_id\"") {
                    skipping = true;
                }
                if !skipping {
                    out.push_str(line);
                    out.push('\n');
                }
                if skipping && line == "}" {
                    skipping = false;
                }
            }
            out.replace("random_id.random.hex", &format!("\"{WEBHOOK_SECRET}\""))
        };
        std::fs::write(&path, text).unwrap();
    }
}

/// The aliases of the example's `provider "aws"` blocks ("" for the default one).
fn provider_aliases(dir: &Path) -> Vec<String> {
    let mut aliases = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "tf")
            || path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ghr_test"))
        {
            continue;
        }
        let body: hcl::Body = hcl::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for block in body
            .blocks()
            .filter(|b| b.identifier() == "provider" && b.labels().first().is_some_and(|l| l.as_str() == "aws"))
        {
            let alias = block.body().attributes().find(|a| a.key() == "alias").and_then(|a| match a.expr() {
                hcl::Expression::String(s) => Some(s.clone()),
                _ => None,
            });
            aliases.push(alias.unwrap_or_default());
        }
    }
    aliases
}

/// The provider blocks for moto (override files merge into the example's own), a default
/// provider where the example has none, and the test zips for each call of our modules.
fn configure_upstream(dir: &Path, endpoint: &str, zips: &BTreeMap<String, PathBuf>, variables: &Value) {
    let aliases = provider_aliases(dir);
    if !aliases.iter().any(String::is_empty) {
        std::fs::write(dir.join("ghr_test_provider.tf"), format!("provider \"aws\" {{\n  region = \"{REGION}\"\n}}\n"))
            .unwrap();
    }
    let mut text = tests::deploy::override_file(endpoint, &root_module_calls(dir), zips);
    text.push_str(&standalone_watcher_zips(dir, zips));
    for alias in aliases.iter().filter(|a| !a.is_empty()) {
        let default = tests::deploy::override_file(endpoint, &[], &BTreeMap::new());
        let block = default.split_once("provider \"aws\" {\n").unwrap().1;
        text.push_str(&format!("\nprovider \"aws\" {{\n  alias = \"{alias}\"\n{block}"));
    }
    std::fs::write(dir.join(tests::deploy::OVERRIDE_FILE), text).unwrap();
    std::fs::write(dir.join(tests::deploy::VARIABLES_FILE), variables.to_string()).unwrap();
}

/// The plan-time warnings of check blocks, one line each: each is the header, a blank line, the
/// location block (up to the next blank line), then the message (up to the next blank line).
fn check_warnings(plan: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut lines = plan.lines();
    while let Some(line) = lines.next() {
        if !line.contains("Warning: Check block assertion failed") {
            continue;
        }
        let mut blanks = 0;
        let mut message = Vec::new();
        for next in lines.by_ref() {
            if next.trim().is_empty() {
                blanks += 1;
                if blanks >= 3 || !message.is_empty() {
                    break;
                }
                continue;
            }
            if blanks == 2 {
                message.push(next.trim());
            }
        }
        warnings.push(message.join(" "));
    }
    warnings.sort();
    warnings.dedup();
    warnings
}

/// moto's AMIs plus the public ones upstream's examples look up that moto does not have
/// (Ubuntu 22.04 and 24.04 by Canonical, Windows Server 2022 ECS-optimized), as a MOTO_AMIS_PATH file.
fn moto_amis(example: &str) -> PathBuf {
    let path = project_root().join("target/tf-apply").join(format!("amis-{example}-{}.json", std::process::id()));
    let script = format!(
        r#"
import gzip, json, os, sys, moto
root = os.path.join(os.path.dirname(moto.__file__), "ec2", "resources")
def load(rel):
    p = os.path.join(root, rel)
    for path, opener in ((p + ".gz", gzip.open), (p, open)):
        if os.path.exists(path):
            with opener(path, "rt") as f:
                return json.load(f)
    return []
amis = load("amis.json") + load("latest_amis/{REGION}.json") + load("ecs/optimized_amis/{REGION}.json")
base = dict(state="available", public=True, image_location="", sriov="simple", root_device_type="ebs",
            image_type="machine", virtualization_type="hvm", hypervisor="xen", creation_date="2026-11-01T00:00:00.000Z")
amis.append(dict(base, ami_id="ami-0a11ce0ubuntu2404", owner_id="099720109477", name="ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261101",
                 description="Canonical, Ubuntu, 24.04 LTS", architecture="x86_64", root_device_name="/dev/sda1"))
amis.append(dict(base, ami_id="ami-0a11ce0ubuntu2204", owner_id="099720109477", name="ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20261101",
                 description="Canonical, Ubuntu, 22.04 LTS", architecture="x86_64", root_device_name="/dev/sda1"))
amis.append(dict(base, ami_id="ami-0b22ce0win2022ecs", owner_id="801119661308", name="Windows_Server-2022-English-Full-ECS_Optimized-2026.11.01",
                 description="Windows Server 2022 ECS optimized", architecture="x86_64", platform="windows", root_device_name="/dev/sda1"))
json.dump(amis, open(sys.argv[1], "w"))
"#
    );
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let out = std::process::Command::new(python()).arg("-c").arg(script).arg(&path).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

async fn apply_upstream_example(terraform: Terraform, example: String, zips: BTreeMap<String, PathBuf>) -> String {
    let started = Instant::now();
    let mut timings = Timings(Vec::new());
    let amis = moto_amis(&example);
    let moto = tokio::task::spawn_blocking(move || {
        Moto::dedicated(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true"), ("MOTO_AMIS_PATH", amis.to_str().unwrap())])
    })
    .await
    .expect("moto");
    let aws = Aws::new(&moto).await;
    let (vpc, subnets) = network(&aws).await;
    let github = FakeGithub::start().await;
    let app = TestApp::new(1, 1000);
    github.add_app(app.id, app.public_pem.as_bytes());
    let env = [(common::config::test_overrides::GITHUB_API_URL, github.url.as_str())];

    // Upstream's base module builds a VPC from the registry: the same output over the test's VPC.
    let subnet_list = subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let base = format!(
        "# Stands in for upstream's examples/base (a registry VPC module, not available offline).\n\
         variable \"prefix\" {{\n  type = string\n}}\n\nvariable \"aws_region\" {{\n  type = string\n}}\n\n\
         output \"vpc\" {{\n  value = {{ vpc_id = \"{vpc}\", private_subnets = [{subnet_list}] }}\n}}\n"
    );
    let ws = Workspace::upstream(&example, &base);

    // What the example's variables need that a user would have made beforehand.
    let mut variables = json!({"github_app": {"id": app.id.to_string(), "key_base64": app.key_base64()}});
    if example == "external-managed-ssm-secrets" {
        let mut parameters = serde_json::Map::new();
        for (key, value) in
            [("id", app.id.to_string()), ("key_base64", app.key_base64()), ("webhook_secret", WEBHOOK_SECRET.into())]
        {
            let name = format!("/github-action-runners/external/{key}");
            aws.ssm
                .put_parameter()
                .name(&name)
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .send()
                .await
                .unwrap();
            parameters.insert(
                key.into(),
                json!({"name": name, "arn": format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}")}),
            );
        }
        variables = json!({"github_app_ssm_parameters": parameters});
    }
    if example == "prebuilt" {
        // The user's own AMI, found by the example's default name filter and owner.
        let image = aws
            .ec2
            .register_image()
            .name("github-runner-al2023-x86_64-2026-11-30")
            .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664)
            .root_device_name("/dev/xvda")
            .send()
            .await
            .unwrap();
        assert!(image.image_id().is_some());
    }

    let baseline = inventory(&moto.endpoint).await;

    // permissions-boundary: upstream applies setup/ first (the deployment role and boundary);
    // the example reads its local state.
    let setup = ws.dir.join("setup");
    if setup.exists() {
        offline(&setup);
        configure_upstream(&setup, &moto.endpoint, &BTreeMap::new(), &json!({}));
        let setup_ws = Workspace { example: format!("{example}/setup"), dir: setup.clone() };
        terraform_ok(&terraform, &setup_ws, &["init", "-input=false", "-no-color"], &mut timings).await;
        terraform_ok(&terraform, &setup_ws, &["apply", "-input=false", "-no-color", "-auto-approve"], &mut timings)
            .await;
    }

    offline(&ws.dir);
    configure_upstream(&ws.dir, &moto.endpoint, &zips, &variables);
    terraform_ok(&terraform, &ws, &["init", "-input=false", "-no-color"], &mut timings).await;
    let plan = terraform.run_with(&ws.dir, &["plan", "-input=false", "-no-color", "-out=first.tfplan"], &env).await;
    timings.add("plan", plan.took);
    assert_eq!(plan.code, Some(0), "terraform plan failed in upstream/{example}:\n{}", plan.output);
    let warnings = check_warnings(&plan.output);
    let apply = terraform
        .run_with(&ws.dir, &["apply", "-input=false", "-no-color", "-auto-approve", "first.tfplan"], &env)
        .await;
    timings.add("apply", apply.took);
    assert_eq!(apply.code, Some(0), "terraform apply failed in upstream/{example}:\n{}", apply.output);
    let second = terraform.run_with(&ws.dir, &["plan", "-input=false", "-no-color", "-detailed-exitcode"], &env).await;
    timings.add("second plan", second.took);
    assert_eq!(
        second.code,
        Some(0),
        "upstream/{example}: the second plan is not empty (or failed):\n{}",
        second.output
    );

    // The examples that call modules/webhook-github-app set the App's webhook (on the fake GitHub).
    let main = std::fs::read_to_string(ws.dir.join("main.tf")).unwrap();
    let hook = if main.contains("modules/webhook-github-app") {
        let config = github.app_hook_config(app.id).unwrap_or_default();
        let url = config.get("url").and_then(Value::as_str).unwrap_or_default().to_string();
        assert!(
            url.starts_with("https://") && url.ends_with("/webhook"),
            "the App's webhook URL was not set: {config:?}"
        );
        assert_eq!(config.get("secret").and_then(Value::as_str), Some(WEBHOOK_SECRET), "nor its secret");
        "App webhook set"
    } else {
        ""
    };

    terraform_ok(&terraform, &ws, &["destroy", "-input=false", "-no-color", "-auto-approve"], &mut timings).await;
    if setup.exists() {
        let setup_ws = Workspace { example: format!("{example}/setup"), dir: setup.clone() };
        terraform_ok(&terraform, &setup_ws, &["destroy", "-input=false", "-no-color", "-auto-approve"], &mut timings)
            .await;
    }
    let left = leftovers(&baseline, &inventory(&moto.endpoint).await);
    assert!(left.is_empty(), "upstream/{example}: destroy left these behind: {left:#?}");
    eprintln!("upstream example {example}: {timings}; total {:.1}s", started.elapsed().as_secs_f64());
    let planned = plan.output.lines().find(|l| l.starts_with("Plan:")).unwrap_or_default().to_string();
    format!(
        "| {example} | yes: {planned} second plan empty, destroyed clean{} | {} |",
        if hook.is_empty() { String::new() } else { format!("; {hook}") },
        if warnings.is_empty() { "none".to_string() } else { warnings.join("<br>") }
    )
}
