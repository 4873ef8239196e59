//! The contract between the code and `terraform/`, read from the HCL itself (no terraform
//! needed, so it runs everywhere `cargo test` does):
//!
//! - every environment variable a function's `Config` reads is set by its Terraform
//!   `environment` block, and every one set there is read;
//! - the metrics the dashboard and alarms name are the ones the code emits, with the same
//!   dimensions, and literal dimension values in alarms are values the code uses;
//! - the inputs/outputs tables in the modules' READMEs match their variables and outputs
//!   (`make tf-docs` rewrites them).

use common::config::FromEnv;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::telemetry::metrics;
use hcl::{Block, Body, Expression};
use tests::moto::project_root;

fn terraform_dir() -> PathBuf {
    project_root().join("terraform")
}

/// Every `*.tf` file of a module folder, parsed.
fn module(dir: &Path) -> Vec<(PathBuf, Body)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let body: Body = hcl::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, body)
        })
        .collect()
}

fn module_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![terraform_dir()];
    let mut modules: Vec<PathBuf> = std::fs::read_dir(terraform_dir().join("modules"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    modules.sort();
    dirs.extend(modules);
    dirs
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn blocks<'a>(body: &'a Body, kind: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.blocks().filter(move |b| b.identifier() == kind)
}

fn label(block: &Block, i: usize) -> &str {
    block.labels().get(i).map(|l| l.as_str()).unwrap_or_default()
}

/// A literal string (quoted or heredoc), if the expression is one.
fn text(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(s) => Some(s.clone()),
        Expression::TemplateExpr(t) => match t.as_ref() {
            hcl::TemplateExpr::QuotedString(s) => Some(s.clone()),
            hcl::TemplateExpr::Heredoc(h) => Some(h.template.clone()),
        },
        _ => None,
    }
}

fn object(expr: &Expression) -> Option<&hcl::Object<hcl::ObjectKey, Expression>> {
    match expr {
        Expression::Object(o) => Some(o),
        _ => None,
    }
}

fn key_name(key: &hcl::ObjectKey) -> String {
    match key {
        hcl::ObjectKey::Identifier(i) => i.to_string(),
        hcl::ObjectKey::Expression(e) => text(e).unwrap_or_else(|| format!("{e:?}")),
        other => format!("{other:?}"),
    }
}

fn object_entry<'a>(expr: &'a Expression, key: &str) -> Option<&'a Expression> {
    object(expr)?.iter().find(|(k, _)| key_name(k) == key).map(|(_, v)| v)
}

/// The second argument of `merge(var.lambda, { ... })`.
fn merged_object(expr: &Expression) -> Option<&Expression> {
    match expr {
        Expression::FuncCall(call) if call.name.to_string() == "merge" => call.args.last(),
        _ => None,
    }
}

/// The variable names of an `environment_variables` value: an object, `local.x` naming one,
/// or `merge(...)` of those.
fn environment_keys(expr: &Expression, locals: &BTreeMap<String, Expression>) -> BTreeSet<String> {
    match expr {
        Expression::Object(o) => o.keys().map(key_name).collect(),
        Expression::FuncCall(call) if call.name.to_string() == "merge" => {
            call.args.iter().flat_map(|a| environment_keys(a, locals)).collect()
        }
        Expression::Traversal(t) if matches!(&t.expr, Expression::Variable(v) if v.as_str() == "local") => {
            match t.operators.first() {
                Some(hcl::expr::TraversalOperator::GetAttr(name)) => {
                    locals.get(name.as_str()).map(|e| environment_keys(e, locals)).unwrap_or_default()
                }
                _ => BTreeSet::new(),
            }
        }
        _ => BTreeSet::new(),
    }
}

/// Function name → the variable names its Terraform sets (the shared lambda module's plus its own).
fn terraform_environments() -> BTreeMap<String, BTreeSet<String>> {
    let lambda = module(&terraform_dir().join("modules/lambda"));
    let common: BTreeSet<String> = lambda
        .iter()
        .flat_map(|(_, body)| blocks(body, "resource").filter(|b| label(b, 0) == "aws_lambda_function"))
        .flat_map(|b| blocks(b.body(), "environment").filter_map(|e| attr(e.body(), "variables")).collect::<Vec<_>>())
        .filter_map(|vars| match vars {
            Expression::FuncCall(call) => call.args.first().and_then(object).map(|o| o.keys().map(key_name).collect()),
            _ => None,
        })
        .next()
        .expect("modules/lambda sets the common variables in merge({...}, var.lambda.environment_variables)");

    let mut functions = BTreeMap::new();
    for dir in module_dirs() {
        let files = module(&dir);
        // The module's locals, for `environment_variables = merge(local.x, {...})`.
        let locals: BTreeMap<String, Expression> = files
            .iter()
            .flat_map(|(_, body)| blocks(body, "locals").flat_map(|l| l.body().attributes()).collect::<Vec<_>>())
            .map(|a| (a.key().to_string(), a.expr().clone()))
            .collect();
        for (path, body) in files.iter() {
            for call in blocks(body, "module") {
                if attr(call.body(), "source").and_then(text).as_deref() != Some("../lambda") {
                    continue;
                }
                let settings = attr(call.body(), "lambda").and_then(merged_object).unwrap_or_else(|| {
                    panic!("{}: module {} passes lambda = merge(var.lambda, {{...}})", path.display(), label(call, 0))
                });
                let name = object_entry(settings, "name").and_then(text).expect("the function's name");
                let own = object_entry(settings, "environment_variables")
                    .map(|e| environment_keys(e, &locals))
                    .unwrap_or_default();
                let all = common.union(&own).cloned().collect();
                assert!(functions.insert(name.clone(), all).is_none(), "{name} is defined twice");
            }
        }
    }
    functions
}

#[test]
fn every_variable_a_function_reads_is_set_by_terraform_and_every_one_set_is_read() {
    let terraform = terraform_environments();
    let code: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("webhook", webhook::config::Config::variables()),
        ("dispatcher", dispatcher::config::Config::variables()),
        ("scale-up", scale_up::config::Config::variables()),
        ("scale-down", scale_down::config::Config::variables()),
        ("syncer", syncer::config::Config::variables()),
        ("pool", pool::config::Config::variables()),
        ("warm-pool", warm_pool::config::Config::variables()),
        ("job-retry", job_retry::config::Config::variables()),
        ("ssm-housekeeper", ssm_housekeeper::config::Config::variables()),
        ("ami-housekeeper", ami_housekeeper::config::Config::variables()),
        // One binary, three functions with one environment.
        ("spot-termination-notification", termination_watcher::config::Config::variables()),
        ("spot-termination-handler", termination_watcher::config::Config::variables()),
        ("deregister-retry", termination_watcher::config::Config::variables()),
        ("webhook-redelivery", redelivery::config::Config::variables()),
    ]);
    assert_eq!(
        terraform.keys().map(String::as_str).collect::<Vec<_>>(),
        code.keys().copied().collect::<Vec<_>>(),
        "functions deployed by Terraform vs functions in the code"
    );
    let mut problems = Vec::new();
    for (function, read) in &code {
        // Test-only overrides are never set by Terraform (decisions.md #20).
        let read: BTreeSet<String> =
            read.iter().filter(|v| !common::config::test_overrides::ALL.contains(v)).map(|v| v.to_string()).collect();
        let set = &terraform[*function];
        let unset: Vec<_> = read.difference(set).collect();
        let unread: Vec<_> = set.difference(&read).collect();
        if !unset.is_empty() {
            problems.push(format!("{function}: read by the code but not set by Terraform: {unset:?}"));
        }
        if !unread.is_empty() {
            problems.push(format!("{function}: set by Terraform but never read: {unread:?}"));
        }
        assert!(read.len() > 3, "{function}: Config::variables() looks empty: {read:?}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every attribute named `key` anywhere in the body, with the body that holds it.
fn find_attrs<'a>(body: &'a Body, key: &str, out: &mut Vec<(&'a Body, &'a Expression)>) {
    for a in body.attributes().filter(|a| a.key() == key) {
        out.push((body, a.expr()));
    }
    for b in body.blocks() {
        find_attrs(b.body(), key, out);
    }
}

#[test]
fn the_dashboard_and_alarms_use_only_metrics_the_code_emits() {
    let monitoring = module(&terraform_dir().join("modules/monitoring"));
    let emitted: BTreeMap<&str, BTreeSet<&str>> =
        metrics::ALL.iter().map(|m| (m.name, m.dimensions.iter().copied().collect())).collect();

    // The catalogue the dashboard is built from: the same metrics with the same dimensions.
    let catalogue: BTreeMap<String, BTreeSet<String>> = monitoring
        .iter()
        .flat_map(|(_, body)| blocks(body, "locals").filter_map(|l| attr(l.body(), "emf_metrics")).collect::<Vec<_>>())
        .filter_map(object)
        .flat_map(|o| {
            o.iter().map(|(k, v)| {
                let dims = match v {
                    Expression::Array(items) => items.iter().filter_map(text).collect(),
                    _ => BTreeSet::new(),
                };
                (key_name(k), dims)
            })
        })
        .collect();
    let emitted_owned: BTreeMap<String, BTreeSet<String>> =
        emitted.iter().map(|(k, v)| (k.to_string(), v.iter().map(|d| d.to_string()).collect())).collect();
    assert_eq!(catalogue, emitted_owned, "modules/monitoring local.emf_metrics vs common::telemetry::metrics::ALL");

    // Widgets name metrics by catalogue key.
    let mut widgets = Vec::new();
    for (_, body) in &monitoring {
        find_attrs(body, "widget", &mut widgets);
    }
    let mut widget_names = BTreeSet::new();
    for (_, expr) in widgets {
        if let Expression::ForExpr(f) = expr
            && let Some(o) = object(&f.collection_expr)
        {
            for (_, names) in o.iter() {
                if let Expression::Array(items) = names {
                    widget_names.extend(items.iter().filter_map(text));
                }
            }
        }
    }
    assert!(!widget_names.is_empty(), "the dashboard's widgets were not found");
    for name in &widget_names {
        assert!(emitted.contains_key(name.as_str()), "the dashboard shows {name}, which no function emits");
    }

    // Alarms on EMF metrics (namespace = var.namespace): names, dimension keys and literal values.
    let mut alarms = 0;
    for (_, body) in &monitoring {
        let mut found = Vec::new();
        find_attrs(body, "metric_name", &mut found);
        for (holder, expr) in found {
            let namespace = attr(holder, "namespace");
            if namespace.and_then(text).is_some_and(|n| n.starts_with("AWS/")) {
                continue;
            }
            if let Some(name) = text(expr) {
                alarms += 1;
                let Some(dims) = emitted.get(name.as_str()) else {
                    panic!("an alarm uses {name}, which no function emits");
                };
                let def = metrics::ALL.iter().find(|m| m.name == name).unwrap();
                if let Some(dimensions) = attr(holder, "dimensions").and_then(object) {
                    for (key, value) in dimensions.iter() {
                        let key = key_name(key);
                        if key == metrics::ENVIRONMENT_DIMENSION {
                            continue;
                        }
                        assert!(dims.contains(key.as_str()), "alarm on {name}: the code emits no `{key}` dimension");
                        if let Some(literal) = text(value) {
                            let source = crate_source(def.function);
                            assert!(
                                source.contains(&format!("\"{literal}\"")),
                                "alarm on {name} {key}={literal}: `{literal}` never appears in crates/{}",
                                def.function
                            );
                        }
                    }
                }
            }
        }
        // `for_each = { requested = "RunnersRequested", ... }` feeding metric_name = metric_query.value.
        for dynamic in body.blocks().flat_map(|b| blocks(b.body(), "dynamic").collect::<Vec<_>>()) {
            if let Some(o) = attr(dynamic.body(), "for_each").and_then(object) {
                for (_, v) in o.iter() {
                    let name = text(v).unwrap();
                    alarms += 1;
                    assert!(emitted.contains_key(name.as_str()), "an alarm uses {name}, which no function emits");
                }
            }
        }
    }
    assert!(alarms >= 5, "only {alarms} EMF alarm metrics found: is the parser still reading the module?");
}

fn crate_source(function: &str) -> String {
    let mut out = String::new();
    let mut stack = vec![project_root().join("crates").join(function).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// README inputs/outputs tables
// ---------------------------------------------------------------------------------------------

const BEGIN: &str = "<!-- BEGIN_TF_DOCS -->";
const END: &str = "<!-- END_TF_DOCS -->";

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn code(expr: &Expression) -> String {
    let formatted = hcl::format::to_string(expr).unwrap_or_else(|_| format!("{expr:?}"));
    format!("`{}`", one_line(&formatted).replace('`', "'"))
}

/// The tables for one module, generated from its `variable` and `output` blocks.
fn docs(dir: &Path) -> String {
    let files = module(dir);
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    for (_, body) in &files {
        for v in blocks(body, "variable") {
            let description = attr(v.body(), "description").and_then(text).unwrap_or_default();
            let kind = attr(v.body(), "type").map(code).unwrap_or_else(|| "`any`".into());
            let default = attr(v.body(), "default").map(code).unwrap_or_else(|| "n/a".into());
            let required = if attr(v.body(), "default").is_some() { "no" } else { "yes" };
            inputs.push(format!(
                "| <a name=\"input_{0}\"></a> [{0}](#input_{0}) | {1} | {2} | {3} | {4} |",
                label(v, 0),
                one_line(&description),
                kind,
                default,
                required
            ));
        }
        for o in blocks(body, "output") {
            let description = attr(o.body(), "description").and_then(text).unwrap_or_default();
            outputs.push(format!(
                "| <a name=\"output_{0}\"></a> [{0}](#output_{0}) | {1} |",
                label(o, 0),
                one_line(&description)
            ));
        }
    }
    inputs.sort();
    outputs.sort();
    let mut out = String::from(
        "## Inputs\n\n| Name | Description | Type | Default | Required |\n|------|-------------|------|---------|:--------:|\n",
    );
    for line in &inputs {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\n## Outputs\n\n| Name | Description |\n|------|-------------|\n");
    for line in &outputs {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn module_readmes_document_every_input_and_output() {
    let update = std::env::var_os("UPDATE_TF_DOCS").is_some();
    let mut stale = Vec::new();
    for dir in module_dirs() {
        let readme = dir.join("README.md");
        let content = std::fs::read_to_string(&readme).unwrap_or_else(|_| panic!("{} is missing", readme.display()));
        let (Some(start), Some(end)) = (content.find(BEGIN), content.find(END)) else {
            panic!("{} has no {BEGIN}/{END} markers", readme.display());
        };
        let current = &content[start + BEGIN.len()..end];
        let wanted = format!("\n{}", docs(&dir));
        if current != wanted {
            if update {
                let new = format!("{}{BEGIN}{wanted}{}", &content[..start], &content[end..]);
                std::fs::write(&readme, new).unwrap();
            } else {
                stale.push(readme.display().to_string());
            }
        }
        // Every variable and output has a description (C15).
        for (path, body) in module(&dir) {
            for b in blocks(&body, "variable").chain(blocks(&body, "output")) {
                assert!(
                    attr(b.body(), "description").and_then(text).is_some_and(|d| !d.trim().is_empty()),
                    "{}: {} {} has no description",
                    path.display(),
                    b.identifier(),
                    label(b, 0)
                );
            }
            for v in blocks(&body, "variable") {
                assert!(attr(v.body(), "type").is_some(), "{}: variable {} has no type", path.display(), label(v, 0));
            }
        }
    }
    assert!(stale.is_empty(), "inputs/outputs tables are out of date in {stale:?}: run `make tf-docs`");
}

// ---------------------------------------------------------------------------------------------
// Upstream's interfaces (issue 13): a migrating user keeps every input and output name.

/// Variables (type and default, one-line HCL) and output names of a module's `*.tf` files.
fn interface(files: &[(PathBuf, Body)]) -> (BTreeMap<String, (String, String)>, BTreeSet<String>) {
    let one = |b: &Block, key: &str| attr(b.body(), key).map(|e| one_line(&code(e))).unwrap_or_default();
    let mut variables = BTreeMap::new();
    let mut outputs = BTreeSet::new();
    for (_, body) in files {
        for v in blocks(body, "variable") {
            variables.insert(label(v, 0).to_string(), (one(v, "type"), one(v, "default")));
        }
        for o in blocks(body, "output") {
            outputs.insert(label(o, 0).to_string());
        }
    }
    (variables, outputs)
}

/// Where this project's variable differs from upstream's on purpose: (name, why).
const ROOT_DEPARTURES: &[(&str, &str)] = &[
    (
        "metrics",
        "the dashboard and alarms are on by default; upstream's job-retry and spot-warning metric flags belong to features not here yet",
    ),
    (
        "aws_dynamic_labels_policy",
        "typed (upstream: `any`), so that a mixed multi-runner map converts; upstream's policies convert as written (docs/dynamic-labels.md)",
    ),
];
const MULTI_RUNNER_DEPARTURES: &[(&str, &str)] = &[
    ("metrics", "the dashboard and alarms are on by default (as the root module)"),
    (
        "multi_runner_config",
        "matcherConfig.awsDynamicLabelsPolicy is typed (upstream: `any`, which fails to plan when only some entries have a policy); runner_config.warm_pool is beyond upstream",
    ),
];

#[test]
fn upstream_module_interfaces_are_kept() {
    let upstream = project_root().join("tests/fixtures/upstream/modules");
    let cases = [
        ("root", terraform_dir(), upstream.join("root"), ROOT_DEPARTURES),
        (
            "multi-runner",
            terraform_dir().join("modules/multi-runner"),
            upstream.join("multi-runner"),
            MULTI_RUNNER_DEPARTURES,
        ),
    ];
    let mut problems = Vec::new();
    for (name, ours, theirs, departures) in cases {
        let (our_vars, our_outputs) = interface(&module(&ours));
        let (their_vars, their_outputs) = interface(&module(&theirs));
        for (variable, (their_type, their_default)) in &their_vars {
            let departed = departures.iter().any(|(d, _)| d == variable);
            match our_vars.get(variable) {
                None => problems.push(format!("{name}: upstream's variable `{variable}` is missing")),
                Some((our_type, our_default)) if !departed => {
                    if our_type != their_type {
                        problems.push(format!("{name}: `{variable}` type {our_type} != upstream's {their_type}"));
                    }
                    if our_default != their_default {
                        problems
                            .push(format!("{name}: `{variable}` default {our_default} != upstream's {their_default}"));
                    }
                }
                Some(ours) => {
                    // A departure must still be one, or it is stale and hides nothing.
                    if ours == &(their_type.clone(), their_default.clone()) {
                        problems.push(format!("{name}: `{variable}` is listed as a departure but matches upstream"));
                    }
                }
            }
        }
        for output in their_outputs.difference(&our_outputs) {
            problems.push(format!("{name}: upstream's output `{output}` is missing"));
        }
        assert!(their_vars.len() > 60, "{name}: upstream's fixture was not read ({} variables)", their_vars.len());
    }
    assert!(problems.is_empty(), "{} differences from upstream's interfaces:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn the_tags_a_runner_sheds_going_back_to_the_warm_pool_are_the_ones_scale_down_may_delete() {
    use common::domain::warm_pool::{RETURN_UNTAG, RETURNED_AT_TAG, WARM_TAG};
    let text = std::fs::read_to_string(terraform_dir().join("modules/runners/warm-pool.tf")).unwrap();
    let start = text.find("warm_return_tag_keys = [").expect("local.warm_return_tag_keys");
    let list = &text[start..start + text[start..].find(']').unwrap()];
    let allowed: BTreeSet<&str> = list.split('"').skip(1).step_by(2).collect();
    let mut needed: BTreeSet<&str> = RETURN_UNTAG.iter().copied().collect();
    needed.extend([WARM_TAG, RETURNED_AT_TAG]);
    assert_eq!(
        allowed, needed,
        "modules/runners local.warm_return_tag_keys vs common::domain::warm_pool::RETURN_UNTAG"
    );
}
