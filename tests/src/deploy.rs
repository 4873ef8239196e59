//! The deploy path, proven against an emulated AWS: each example under `terraform/examples/` is
//! applied with the real Terraform and AWS provider, the provider's endpoints pointed at a moto
//! server of its own (`make tf-apply-test`, tests/tests/e2e/deploy.rs).
//!
//! - [`Terraform`] finds the CLI and the offline provider mirror (`.ci/terraformrc.sh`); without
//!   them the apply test skips, loudly (decisions.md #20).
//! - [`Workspace`] is a copy of `terraform/` in `target/` with an override file that points the
//!   provider at moto and the `*_lambda_zip` inputs at zips of the test-built binaries. Nothing is
//!   written into the examples themselves.
//! - [`inventory`] lists everything in moto (`tests/scripts/moto_inventory.py`): function
//!   configurations, policy documents, the dashboard, the API; [`leftovers`] compares two.
//! - [`iam_lint`] runs parliament over policy documents (`tests/scripts/iam_lint.py`).
//! - [`dashboard_problems`] checks a dashboard body against CloudWatch's documented structure.
//!
//! moto's gaps met by the modules are worked around in `tests/scripts/moto_server.py` (one list,
//! with reasons), never in the modules (decisions.md #29).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::moto::{project_root, python};

/// The Terraform CLI with a configuration that installs the AWS provider from the machine's
/// mirror (no registry access).
#[derive(Clone)]
pub struct Terraform {
    cli_config: PathBuf,
}

/// One Terraform command's outcome.
pub struct TerraformRun {
    pub code: Option<i32>,
    pub output: String,
    pub took: Duration,
}

impl Terraform {
    /// The CLI and its mirror, or why they cannot be used here.
    pub fn locate() -> Result<Self, String> {
        let version = std::process::Command::new("terraform").arg("version").output();
        if !version.is_ok_and(|o| o.status.success()) {
            return Err("terraform is not installed".into());
        }
        let script = project_root().join(".ci/terraformrc.sh");
        let out = std::process::Command::new("bash").arg(&script).output().map_err(|e| format!("{script:?}: {e}"))?;
        if !out.status.success() {
            return Err("no hashicorp/aws provider mirror on this machine (.ci/terraformrc.sh)".into());
        }
        Ok(Self { cli_config: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()) })
    }

    /// Runs `terraform <args>` in `dir` and captures its output.
    pub async fn run(&self, dir: &Path, args: &[&str]) -> TerraformRun {
        self.run_with(dir, args, &[]).await
    }

    /// `run` with more environment variables (e.g. the fake GitHub's URL for a provisioner).
    pub async fn run_with(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> TerraformRun {
        let started = Instant::now();
        let output = tokio::process::Command::new("terraform")
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run terraform: {e}"));
        TerraformRun {
            code: output.status.code(),
            output: format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
            took: started.elapsed(),
        }
    }
}

/// Every example configuration (`terraform/examples/*`).
pub fn examples() -> Vec<String> {
    let dir = project_root().join("terraform/examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .filter_map(Result::ok)
        .filter(|e| e.path().join("main.tf").exists())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// A private copy of `terraform/` where one example is applied.
pub struct Workspace {
    pub example: String,
    /// The copied example folder, where Terraform runs.
    pub dir: PathBuf,
}

/// Names of the generated files: never in the examples themselves (`.gitignore` has them too).
pub const OVERRIDE_FILE: &str = "ghr_test_override.tf";
pub const VARIABLES_FILE: &str = "ghr_test.auto.tfvars.json";

impl Workspace {
    /// One of upstream's examples (tests/fixtures/upstream/examples) as a migrating user has it:
    /// next to this project's modules (its `source = "../../"` is this project's root module),
    /// with `examples/base` (upstream's VPC, from the registry) replaced by `base_stub`.
    pub fn upstream(example: &str, base_stub: &str) -> Self {
        let root = project_root().join("target/tf-apply").join(format!("upstream-{example}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        copy_tree(&project_root().join("terraform"), &root.join("terraform"));
        let examples = project_root().join("tests/fixtures/upstream/examples");
        let dir = root.join("terraform/examples").join(example);
        copy_tree(&examples.join(example), &dir);
        let base = root.join("terraform/examples/base");
        std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("{base:?}: {e}"));
        std::fs::write(base.join("main.tf"), base_stub).unwrap_or_else(|e| panic!("{base:?}: {e}"));
        Self { example: format!("upstream/{example}"), dir }
    }

    /// Copies `terraform/` (without local state, lock files, `.terraform` folders or
    /// `terraform.tfvars`) to `target/tf-apply/<example>-<pid>/`.
    pub fn create(example: &str) -> Self {
        let root = project_root().join("target/tf-apply").join(format!("{example}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        copy_tree(&project_root().join("terraform"), &root.join("terraform"));
        let dir = root.join("terraform/examples").join(example);
        Self { example: example.to_string(), dir }
    }

    /// Points the example's provider at moto and its root module calls at the zips; sets the
    /// example's variables.
    pub fn configure(&self, endpoint: &str, modules: &[String], zips: &BTreeMap<String, PathBuf>, variables: &Value) {
        std::fs::write(self.dir.join(OVERRIDE_FILE), override_file(endpoint, modules, zips)).expect("write override");
        std::fs::write(self.dir.join(VARIABLES_FILE), variables.to_string()).expect("write variables");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{to:?}: {e}"));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{from:?}: {e}")).filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().to_string();
        let skip = name == ".terraform"
            || name == ".terraform.lock.hcl"
            || name == "terraform.tfvars"
            || name.contains(".tfstate")
            || name.ends_with("_override.tf")
            || name.starts_with("ghr_test");
        if skip {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        }
    }
}

/// The AWS services the modules use, by the provider's endpoint names.
const SERVICES: &[&str] = &[
    "apigateway",
    "apigatewayv2",
    "cloudwatch",
    "cloudwatchlogs",
    "ec2",
    "events",
    "iam",
    "kms",
    "lambda",
    "s3",
    "scheduler",
    "sqs",
    "ssm",
    "sts",
];

/// Terraform override file: the provider talks to moto with test credentials, and each root
/// module call gets the test zips (override files merge into the example's own blocks).
pub fn override_file(endpoint: &str, modules: &[String], zips: &BTreeMap<String, PathBuf>) -> String {
    let mut out = String::from(
        "# Generated by the apply-against-moto test (tests/src/deploy.rs); never committed.\nprovider \"aws\" {\n  \
         access_key                  = \"testing\"\n  secret_key                  = \"testing\"\n  \
         skip_credentials_validation = true\n  skip_metadata_api_check     = true\n  s3_use_path_style           = true\n  \
         endpoints {\n",
    );
    for service in SERVICES {
        out.push_str(&format!("    {service} = \"{endpoint}\"\n"));
    }
    out.push_str("  }\n}\n");
    for module in modules {
        out.push_str(&format!("\nmodule \"{module}\" {{\n"));
        for (variable, zip) in zips {
            out.push_str(&format!("  {variable} = \"{}\"\n", zip.display()));
        }
        out.push_str("}\n");
    }
    out
}

/// Zips a function binary as Lambda's `bootstrap` (what `make build` ships, built for the tests).
pub fn zip_bootstrap(binary: &Path, zip: &Path) {
    let script = "import sys, zipfile\n\
                  with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, compresslevel=1) as z:\n    \
                  info = zipfile.ZipInfo('bootstrap')\n    info.external_attr = 0o755 << 16\n    \
                  info.compress_type = zipfile.ZIP_DEFLATED\n    \
                  z.writestr(info, open(sys.argv[2], 'rb').read())\n";
    let status = std::process::Command::new(python())
        .args(["-c", script])
        .arg(zip)
        .arg(binary)
        .status()
        .unwrap_or_else(|e| panic!("python for zip: {e}"));
    assert!(status.success(), "could not zip {binary:?}");
}

/// Everything in moto (see `tests/scripts/moto_inventory.py`).
pub async fn inventory(endpoint: &str) -> Value {
    let script = project_root().join("tests/scripts/moto_inventory.py");
    let output = tokio::process::Command::new(python())
        .arg(&script)
        .arg(endpoint)
        .arg(crate::moto::REGION)
        .output()
        .await
        .unwrap_or_else(|e| panic!("moto_inventory.py: {e}"));
    assert!(output.status.success(), "moto_inventory.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("moto_inventory.py output: {e}"))
}

/// What `after` holds that `before` did not, by kind.
pub fn leftovers(before: &Value, after: &Value) -> BTreeMap<String, Vec<String>> {
    let names = |v: &Value, kind: &str| -> BTreeSet<String> {
        v["resources"][kind]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for kind in after["resources"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
        let old = names(before, &kind);
        // AWS's public parameters (`/aws/service/...`) are not the deployment's: moto lists
        // them once a data source has read one.
        let public = |n: &String| kind == "ssm:parameter" && n.starts_with("/aws/service/");
        let new: Vec<String> = names(after, &kind).into_iter().filter(|n| !old.contains(n) && !public(n)).collect();
        if !new.is_empty() {
            out.insert(kind, new);
        }
    }
    out
}

/// parliament's findings over `policies` (see `tests/scripts/iam_lint.py`):
/// `{"linted", "findings" (unjustified), "justified"}`.
pub async fn iam_lint(policies: &Value) -> Value {
    use tokio::io::AsyncWriteExt;
    let script = project_root().join("tests/scripts/iam_lint.py");
    let mut child = tokio::process::Command::new(python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("iam_lint.py: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(policies.to_string().as_bytes()).await.expect("write policies");
    drop(stdin);
    let output = child.wait_with_output().await.expect("iam_lint.py");
    assert!(
        output.status.success(),
        "iam_lint.py failed (is parliament installed? run `make setup`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("iam_lint.py output: {e}"))
}

/// Problems of a CloudWatch dashboard body, checked against CloudWatch's documented dashboard
/// body structure: widget types and grid, `metrics` rows (every row an array; a metric row is
/// namespace, name, then dimension name/value pairs, then an optional options object; an
/// expression row is one object with `expression` and a valid, unique `id`), SEARCH expressions
/// (quoted schema items where they contain anything but letters, digits, `_`, `.` or `/`),
/// statistics and periods; and every metric of `namespace` must be in `catalogue`.
pub fn dashboard_problems(body: &Value, namespace: &str, catalogue: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(widgets) = body["widgets"].as_array() else {
        return vec!["the body has no `widgets` array".into()];
    };
    for (i, widget) in widgets.iter().enumerate() {
        let at = format!("widget {i} ({})", widget["properties"]["title"].as_str().unwrap_or("untitled"));
        let kind = widget["type"].as_str().unwrap_or_default();
        if !["metric", "text", "log", "alarm", "explorer"].contains(&kind) {
            problems.push(format!("{at}: unknown type {kind:?}"));
        }
        let x = widget["x"].as_i64().unwrap_or(-1);
        let width = widget["width"].as_i64().unwrap_or(6);
        let height = widget["height"].as_i64().unwrap_or(6);
        if !(0..24).contains(&x) || !(1..=24).contains(&width) || x + width > 24 || !(1..=1000).contains(&height) {
            problems.push(format!("{at}: outside the 24-column grid (x {x}, width {width}, height {height})"));
        }
        if widget["y"].as_i64().is_none_or(|y| y < 0) {
            problems.push(format!("{at}: no y"));
        }
        if kind != "metric" {
            continue;
        }
        let properties = &widget["properties"];
        if properties["region"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{at}: no region"));
        }
        check_stat_and_period(properties, &at, &mut problems);
        let Some(rows) = properties["metrics"].as_array() else {
            problems.push(format!("{at}: no `metrics` array"));
            continue;
        };
        let mut ids = BTreeSet::new();
        for (r, row) in rows.iter().enumerate() {
            let at = format!("{at} row {r}");
            let Some(items) = row.as_array() else {
                problems.push(format!("{at}: every element of `metrics` must be an array, found {row}"));
                continue;
            };
            match items.first() {
                Some(Value::Object(expression)) => {
                    if items.len() != 1 {
                        problems.push(format!("{at}: an expression row holds exactly one object"));
                    }
                    let Some(text) = expression.get("expression").and_then(Value::as_str) else {
                        problems.push(format!("{at}: an object row needs `expression`"));
                        continue;
                    };
                    match expression.get("id").and_then(Value::as_str) {
                        Some(id) if !valid_id(id) => problems
                            .push(format!("{at}: invalid id {id:?} (a lowercase letter, then letters, digits, _)")),
                        Some(id) if !ids.insert(id.to_string()) => {
                            problems.push(format!("{at}: id {id:?} used twice in the widget"))
                        }
                        _ => {}
                    }
                    problems
                        .extend(search_problems(text, namespace, catalogue).into_iter().map(|p| format!("{at}: {p}")));
                }
                Some(Value::String(_)) => {
                    let (strings, options) = match items.last() {
                        Some(Value::Object(o)) => (&items[..items.len() - 1], Some(o)),
                        _ => (&items[..], None),
                    };
                    if strings.len() < 2 || strings.len() % 2 != 0 || !strings.iter().all(Value::is_string) {
                        problems
                            .push(format!("{at}: a metric row is namespace, name, then dimension name/value pairs"));
                        continue;
                    }
                    if let Some(options) = options {
                        for key in options.keys() {
                            if !["label", "stat", "period", "id", "visible", "color", "yAxis", "region", "accountId"]
                                .contains(&key.as_str())
                            {
                                problems.push(format!("{at}: unknown rendering option {key:?}"));
                            }
                        }
                        check_stat_and_period(&Value::Object(options.clone()), &at, &mut problems);
                        if let Some(id) = options.get("id").and_then(Value::as_str)
                            && (!valid_id(id) || !ids.insert(id.to_string()))
                        {
                            problems.push(format!("{at}: invalid or repeated id {id:?}"));
                        }
                    }
                    let (ns, name) = (strings[0].as_str().unwrap_or_default(), strings[1].as_str().unwrap_or_default());
                    if ns == namespace && !catalogue.contains(name) {
                        problems.push(format!("{at}: {name} is not in the metric catalogue"));
                    }
                }
                _ => problems.push(format!("{at}: empty or malformed row {row}")),
            }
        }
    }
    problems
}

fn valid_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_stat(stat: &str) -> bool {
    ["SampleCount", "Average", "Sum", "Minimum", "Maximum"].contains(&stat)
        || stat.strip_prefix('p').is_some_and(|p| p.parse::<f64>().is_ok_and(|v| (0.0..=100.0).contains(&v)))
}

fn check_stat_and_period(holder: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(stat) = holder.get("stat")
        && !stat.as_str().is_some_and(valid_stat)
    {
        problems.push(format!("{at}: invalid stat {stat}"));
    }
    if let Some(period) = holder.get("period")
        && !period.as_i64().is_some_and(|p| [1, 5, 10, 30].contains(&p) || (p > 0 && p % 60 == 0))
    {
        problems.push(format!("{at}: invalid period {period}"));
    }
}

/// `SEARCH('{schema} terms', 'Stat', period)`: the schema's items quoted where CloudWatch needs
/// it, and the metric name searched for in the catalogue.
fn search_problems(expression: &str, namespace: &str, catalogue: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(inner) = expression.strip_prefix("SEARCH(").and_then(|e| e.strip_suffix(')')) else {
        return problems; // another math expression: nothing to check here
    };
    let Some(rest) = inner.strip_prefix('\'') else {
        return vec![format!("SEARCH's first argument is not a quoted string: {expression}")];
    };
    let Some((query, args)) = rest.split_once('\'') else {
        return vec![format!("SEARCH's search string is not closed: {expression}")];
    };
    let args: Vec<&str> = args.trim_start_matches(',').split(',').map(str::trim).collect();
    if args.len() != 2
        || !args[0].strip_prefix('\'').and_then(|s| s.strip_suffix('\'')).is_some_and(valid_stat)
        || !args[1].parse::<i64>().is_ok_and(|p| p > 0 && (p % 60 == 0 || [1, 5, 10, 30].contains(&p)))
    {
        problems.push(format!("SEARCH needs a quoted statistic and a period: {expression}"));
    }
    let Some(schema) = query.strip_prefix('{').and_then(|q| q.split_once('}')).map(|(s, _)| s) else {
        return problems;
    };
    let items: Vec<&str> = schema.split(',').map(str::trim).collect();
    for item in &items {
        let quoted = item.len() >= 2 && item.starts_with('"') && item.ends_with('"');
        let plain = item.chars().all(|c| c.is_ascii_alphanumeric() || "_./".contains(c));
        if !quoted && !plain {
            problems.push(format!("SEARCH schema item {item} must be double-quoted"));
        }
    }
    let first = items.first().map(|i| i.trim_matches('"')).unwrap_or_default();
    if first != namespace {
        problems.push(format!("SEARCH schema's namespace is {first:?}, not {namespace:?}"));
    }
    match query.split("MetricName=\"").nth(1).and_then(|m| m.split('"').next()) {
        Some(name) if catalogue.contains(name) => {}
        Some(name) => problems.push(format!("SEARCH for {name}, which is not in the metric catalogue")),
        None => problems.push("SEARCH names no MetricName".into()),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalogue() -> BTreeSet<String> {
        ["RunnersFailed", "JobsReceived"].iter().map(|s| s.to_string()).collect()
    }

    fn widget(metrics: Value) -> Value {
        json!({"widgets": [{"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6,
            "properties": {"title": "t", "region": "eu-west-1", "stat": "Sum", "period": 300, "metrics": metrics}}]})
    }

    #[test]
    fn a_valid_dashboard_has_no_problems() {
        let body = widget(json!([
            ["GitHub Runners", "JobsReceived", "Environment", "prod", {"label": "JobsReceived"}],
            [{"expression": "SEARCH('{\"GitHub Runners\",\"Environment\",\"Reason\"} MetricName=\"RunnersFailed\" Environment=\"prod\"', 'Sum', 300)", "id": "runnersfailed", "label": "RunnersFailed"}]
        ]));
        assert_eq!(dashboard_problems(&body, "GitHub Runners", &catalogue()), Vec::<String>::new());
    }

    /// The body the monitoring module rendered before the fix: an expression object as a row,
    /// and a SEARCH schema with the namespace unquoted.
    #[test]
    fn object_rows_and_unquoted_namespaces_are_rejected() {
        let body = widget(json!([
            {"expression": "SEARCH('{GitHub Runners,Environment,Reason} MetricName=\"RunnersFailed\" Environment=\"prod\"', 'Sum', 300)", "id": "runnersfailed"}
        ]));
        let problems = dashboard_problems(&body, "GitHub Runners", &catalogue());
        assert!(problems.iter().any(|p| p.contains("must be an array")), "{problems:?}");
        let body = widget(json!([[
            {"expression": "SEARCH('{GitHub Runners,Environment,Reason} MetricName=\"RunnersFailed\" Environment=\"prod\"', 'Sum', 300)", "id": "runnersfailed"}
        ]]));
        let problems = dashboard_problems(&body, "GitHub Runners", &catalogue());
        assert!(problems.iter().any(|p| p.contains("must be double-quoted")), "{problems:?}");
    }

    #[test]
    fn unknown_metrics_ids_stats_and_grid_are_rejected() {
        let body = widget(json!([
            ["GitHub Runners", "NoSuchMetric", "Environment", "prod"],
            [{"expression": "SEARCH('{\"GitHub Runners\",\"Environment\"} MetricName=\"Other\"', 'Total', 300)", "id": "Bad-id"}],
            ["GitHub Runners", "JobsReceived", "Environment"]
        ]));
        let problems = dashboard_problems(&body, "GitHub Runners", &catalogue());
        for expected in [
            "NoSuchMetric is not in",
            "Other, which is not in",
            "invalid id",
            "quoted statistic",
            "dimension name/value pairs",
        ] {
            assert!(problems.iter().any(|p| p.contains(expected)), "{expected}: {problems:?}");
        }
        let mut wide = widget(json!([]));
        wide["widgets"][0]["x"] = json!(18);
        assert!(dashboard_problems(&wide, "GitHub Runners", &catalogue()).iter().any(|p| p.contains("grid")));
    }

    #[test]
    fn the_override_points_every_service_at_moto_and_the_modules_at_the_zips() {
        let zips = BTreeMap::from([("webhook_lambda_zip".to_string(), PathBuf::from("/z/webhook.zip"))]);
        let text = override_file("http://127.0.0.1:1", &["runners".to_string()], &zips);
        assert!(text.contains("sqs = \"http://127.0.0.1:1\"") && text.contains("s3_use_path_style"));
        assert!(text.contains("module \"runners\" {\n  webhook_lambda_zip = \"/z/webhook.zip\"\n}"), "{text}");
    }

    #[test]
    fn leftovers_are_what_the_second_inventory_adds() {
        let before = json!({"resources": {"sqs:queue": ["a"], "ssm:parameter": ["/x"]}});
        let after = json!({"resources": {"sqs:queue": ["a", "b"], "ssm:parameter": ["/x"], "s3:bucket": ["c"]}});
        let left = leftovers(&before, &after);
        assert_eq!(left.get("sqs:queue"), Some(&vec!["b".to_string()]));
        assert_eq!(left.get("s3:bucket"), Some(&vec!["c".to_string()]));
        assert!(!left.contains_key("ssm:parameter"));
    }
}
