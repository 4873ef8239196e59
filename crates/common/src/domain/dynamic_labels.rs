//! Dynamic labels (upstream `enable_dynamic_labels`): job labels starting `ghr-` are not matched
//! against runner configurations; `ghr-ec2-<key>:<value>` ones ask for EC2 settings per job
//! (instance type, vCPU and memory requirements, EBS size and type, placement, AMI), within a
//! per-configuration policy (`awsDynamicLabelsPolicy`: `blocked_keys`, `restricted_keys` with
//! `allowed`/`denied` globs and `max`).
//!
//! The webhook and dispatcher enforce the policy (`webhook::route_job`); scale-up groups jobs by
//! their dynamic label set and turns `ghr-ec2-*` labels into fleet overrides. This module holds
//! the decisions, as upstream makes them, plus the validation upstream leaves to EC2 (a
//! malformed number is an error of that job, never a silently ignored label).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// EC2 overrides: `ghr-ec2-<key>:<value>`. Splitting `ghr-` labels off and sanitising them is
/// `labels::split_labels`.
pub const EC2_PREFIX: &str = "ghr-ec2-";
/// List values (`allowed-instance-types:m5.large;c5.large`) are separated by this.
pub const LIST_SEPARATOR: char = ';';

/// The scale-up group of a job: its dynamic labels, sorted and deduplicated. Jobs with the
/// same set share one fleet request.
pub fn group_key(dynamic: &[String]) -> Vec<String> {
    let mut key: Vec<String> = dynamic.to_vec();
    key.sort();
    key.dedup();
    key
}

/// One `restricted_keys` rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ValueRule {
    #[serde(default)]
    pub allowed: Option<Vec<String>>,
    #[serde(default)]
    pub denied: Option<Vec<String>>,
    /// A number, or a string holding one (Terraform's `any` gives either).
    #[serde(default)]
    pub max: Option<serde_json::Value>,
}

/// `awsDynamicLabelsPolicy` (upstream's `aws_dynamic_labels_policy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Policy {
    #[serde(default)]
    pub blocked_keys: Vec<String>,
    #[serde(default)]
    pub restricted_keys: BTreeMap<String, ValueRule>,
}

impl Policy {
    pub fn parse(value: &serde_json::Value) -> Result<Option<Self>, String> {
        if value.is_null() {
            return Ok(None);
        }
        serde_json::from_value(value.clone()).map(Some).map_err(|e| format!("not a dynamic labels policy: {e}"))
    }
}

/// `*` any run, `?` one character, the rest literal; the whole value must match.
pub fn glob_matches(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn key_and_value(label: &str) -> Option<(&str, Option<&str>)> {
    let rest = label.strip_prefix(EC2_PREFIX)?;
    Some(match rest.split_once(':') {
        Some((k, v)) => (k, Some(v)),
        None => (rest, None),
    })
}

fn as_number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Why one `ghr-ec2-*` label breaks the policy, if it does (upstream's order of checks).
pub fn violation(label: &str, policy: &Policy) -> Option<String> {
    let (key, value) = key_and_value(label)?;
    if policy.blocked_keys.iter().any(|k| k == key) {
        return Some(format!("key '{key}' is in blocked_keys"));
    }
    let rule = policy.restricted_keys.get(key)?;
    let value = value?;
    if let Some(allowed) = rule.allowed.as_ref().filter(|a| !a.is_empty())
        && !allowed.iter().any(|p| glob_matches(p, value))
    {
        return Some(format!("value '{value}' not in allowed list"));
    }
    if rule.denied.iter().flatten().any(|p| glob_matches(p, value)) {
        return Some(format!("value '{value}' in denied list"));
    }
    if let Some(max) = rule.max.as_ref().filter(|m| !m.is_null()) {
        match (value.trim().parse::<f64>().ok().filter(|v| v.is_finite()), as_number(max)) {
            (Some(v), Some(m)) if v > m => return Some(format!("value '{value}' exceeds max '{m}'")),
            (Some(_), Some(_)) => {}
            _ => return Some(format!("max set but value '{value}' or max '{max}' is not numeric")),
        }
    }
    None
}

/// Every `ghr-ec2-*` label that breaks the policy, with the reason.
pub fn violations(labels: &[String], policy: Option<&Policy>) -> Vec<(String, String)> {
    let Some(policy) = policy else { return Vec::new() };
    labels.iter().filter_map(|l| violation(l, policy).map(|r| (l.clone(), r))).collect()
}

/// The EC2 settings a job's labels ask for (the common subset of upstream's keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ec2Overrides {
    pub instance_type: Option<String>,
    pub subnet_id: Option<String>,
    pub availability_zone: Option<String>,
    pub image_id: Option<String>,
    pub max_price: Option<String>,
    pub vcpu_min: Option<u32>,
    pub vcpu_max: Option<u32>,
    pub memory_mib_min: Option<u32>,
    pub memory_mib_max: Option<u32>,
    pub allowed_instance_types: Vec<String>,
    pub excluded_instance_types: Vec<String>,
    /// The device the `ebs_*` settings apply to; the launch template's when absent.
    pub block_device_name: Option<String>,
    pub ebs_volume_size: Option<u32>,
    pub ebs_volume_type: Option<String>,
    pub ebs_iops: Option<u32>,
    pub ebs_throughput: Option<u32>,
    pub placement_group_name: Option<String>,
    pub placement_tenancy: Option<String>,
}

impl Ec2Overrides {
    /// Whether the job asks for instance requirements (vCPU, memory, allowed types) instead
    /// of listed instance types: EC2 takes one or the other per override.
    pub fn uses_requirements(&self) -> bool {
        self.vcpu_min.is_some()
            || self.vcpu_max.is_some()
            || self.memory_mib_min.is_some()
            || self.memory_mib_max.is_some()
            || !self.allowed_instance_types.is_empty()
            || !self.excluded_instance_types.is_empty()
    }

    /// Whether the job asks for EBS settings (a block device mapping override).
    pub fn uses_ebs(&self) -> bool {
        self.ebs_volume_size.is_some()
            || self.ebs_volume_type.is_some()
            || self.ebs_iops.is_some()
            || self.ebs_throughput.is_some()
    }
}

/// Whether EC2's error codes say the request itself is wrong (`InvalidParameterValue`,
/// `InvalidAMIID.NotFound`, `Unsupported`...): for a job whose dynamic labels shaped the request,
/// no retry can succeed. Capacity, limit, throttling and permission errors are not such codes.
pub fn ec2_refuses_request(codes: &[&str]) -> bool {
    !codes.is_empty() && codes.iter().all(|c| c.starts_with("Invalid") || c.starts_with("Unsupported"))
}

/// The labels a runner registers with: the configuration's, then the job's dynamic labels
/// (other `ghr-` ones, then `ghr-ec2-*` ones, as upstream). GitHub gives a job only to a runner
/// that carries all of its labels, the dynamic ones included.
pub fn runner_labels(configured: &[String], dynamic: &[String]) -> Vec<String> {
    let mut labels = configured.to_vec();
    let (ec2, other): (Vec<&String>, Vec<&String>) = dynamic.iter().partition(|l| l.starts_with(EC2_PREFIX));
    for label in other.into_iter().chain(ec2) {
        if !labels.contains(label) {
            labels.push(label.clone());
        }
    }
    labels
}

const VOLUME_TYPES: &[&str] = &["standard", "gp2", "gp3", "io1", "io2", "st1", "sc1"];
const TENANCIES: &[&str] = &["default", "dedicated", "host"];

fn number(key: &str, value: &str) -> Result<u32, String> {
    value.trim().parse::<u32>().map_err(|_| format!("ghr-ec2-{key}: `{value}` is not a whole number"))
}

fn one_of(key: &str, value: &str, allowed: &[&str]) -> Result<String, String> {
    if allowed.contains(&value) {
        Ok(value.to_string())
    } else {
        Err(format!("ghr-ec2-{key}: `{value}` is not one of {}", allowed.join(", ")))
    }
}

fn looks_like(key: &str, value: &str, prefix: &str) -> Result<String, String> {
    let ok = value
        .strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok { Ok(value.to_string()) } else { Err(format!("ghr-ec2-{key}: `{value}` is not a {prefix}… id")) }
}

fn instance_type(key: &str, value: &str) -> Result<String, String> {
    // `family.size` (m5.large, c7gn.16xlarge, u-6tb1.metal); whether EC2 offers it is EC2's call.
    let ok = value.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && !size.is_empty()
            && family.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && size.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    if ok { Ok(value.to_string()) } else { Err(format!("ghr-ec2-{key}: `{value}` is not an instance type")) }
}

fn list(value: &str, check: impl Fn(&str) -> Result<String, String>) -> Result<Vec<String>, String> {
    value.split(LIST_SEPARATOR).filter(|v| !v.is_empty()).map(check).collect()
}

/// The EC2 overrides of a job's labels: `Ok(None)` without `ghr-ec2-*` labels; an error names
/// the first malformed value (the job can never launch as asked). Labels with an empty value
/// and unknown keys are ignored, as upstream.
pub fn parse_ec2_overrides(labels: &[String]) -> Result<Option<Ec2Overrides>, String> {
    let mut o = Ec2Overrides::default();
    for label in labels {
        let Some((key, Some(value))) = key_and_value(label) else { continue };
        if value.is_empty() {
            continue;
        }
        match key {
            "instance-type" => o.instance_type = Some(instance_type(key, value)?),
            "subnet-id" => o.subnet_id = Some(looks_like(key, value, "subnet-")?),
            "availability-zone" => o.availability_zone = Some(value.to_string()),
            "image-id" => o.image_id = Some(looks_like(key, value, "ami-")?),
            "max-price" => {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| *p > 0.0)
                    .ok_or(format!("ghr-ec2-{key}: `{value}` is not a price"))?;
                o.max_price = Some(value.trim().to_string());
            }
            "vcpu-count-min" => o.vcpu_min = Some(number(key, value)?),
            "vcpu-count-max" => o.vcpu_max = Some(number(key, value)?),
            "memory-mib-min" => o.memory_mib_min = Some(number(key, value)?),
            "memory-mib-max" => o.memory_mib_max = Some(number(key, value)?),
            "allowed-instance-types" => o.allowed_instance_types = list(value, |v| Ok(v.to_string()))?,
            "excluded-instance-types" => o.excluded_instance_types = list(value, |v| Ok(v.to_string()))?,
            "ebs-volume-size" => {
                let size = number(key, value)?;
                if !(1..=65536).contains(&size) {
                    return Err(format!("ghr-ec2-{key}: {size} GiB is outside 1 to 65536"));
                }
                o.ebs_volume_size = Some(size);
            }
            "block-device-name" => o.block_device_name = Some(value.to_string()),
            "ebs-volume-type" => o.ebs_volume_type = Some(one_of(key, value, VOLUME_TYPES)?),
            "ebs-iops" => o.ebs_iops = Some(number(key, value)?),
            "ebs-throughput" => o.ebs_throughput = Some(number(key, value)?),
            "placement-group-name" => o.placement_group_name = Some(value.to_string()),
            "placement-tenancy" => o.placement_tenancy = Some(one_of(key, value, TENANCIES)?),
            _ => {}
        }
    }
    for (min, max, what) in [(o.vcpu_min, o.vcpu_max, "vcpu-count"), (o.memory_mib_min, o.memory_mib_max, "memory-mib")]
    {
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err(format!("ghr-ec2-{what}: min {min} is above max {max}"));
        }
    }
    Ok((o != Ec2Overrides::default()).then_some(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn jobs_group_by_their_dynamic_label_set() {
        assert_eq!(group_key(&labels(&["ghr-b", "ghr-a", "ghr-b"])), ["ghr-a", "ghr-b"]);
        assert_eq!(group_key(&labels(&["ghr-a", "ghr-b"])), group_key(&labels(&["ghr-b", "ghr-a"])));
    }

    #[test]
    fn runners_register_with_the_jobs_dynamic_labels() {
        let configured = labels(&["self-hosted", "linux"]);
        let dynamic = labels(&["ghr-ec2-instance-type:c5.large", "ghr-run:7", "ghr-run:7"]);
        assert_eq!(
            runner_labels(&configured, &dynamic),
            ["self-hosted", "linux", "ghr-run:7", "ghr-ec2-instance-type:c5.large"]
        );
        assert_eq!(runner_labels(&configured, &[]), configured);
    }

    #[test]
    fn only_request_errors_make_dynamic_labels_hopeless() {
        assert!(ec2_refuses_request(&["InvalidParameterValue"]));
        assert!(ec2_refuses_request(&["InvalidAMIID.NotFound", "Unsupported"]));
        assert!(!ec2_refuses_request(&["InvalidParameterValue", "InsufficientInstanceCapacity"]));
        assert!(!ec2_refuses_request(&["UnauthorizedOperation"]));
        assert!(!ec2_refuses_request(&[]));
    }

    #[test]
    fn globs_match_the_whole_value() {
        assert!(glob_matches("m5.*", "m5.large"));
        assert!(glob_matches("c?.large", "c5.large"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("m5.*", "xm5.large"));
        assert!(!glob_matches("c?.large", "c5a.large"));
        assert!(glob_matches("*.metal", "u-6tb1.metal"));
        assert!(glob_matches("a*b*c", "aXXbYYc") && !glob_matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn the_policy_blocks_restricts_and_bounds() {
        let policy = Policy::parse(&json!({
            "blocked_keys": ["image-id"],
            "restricted_keys": {
                "instance-type": {"allowed": ["m5.*", "c5.*"], "denied": ["*.metal"]},
                "ebs-volume-size": {"max": 200},
                "vcpu-count-min": {"max": "16"}
            }
        }))
        .unwrap()
        .unwrap();
        let check = |l: &str| violation(l, &policy);
        assert_eq!(check("ghr-ec2-image-id:ami-1"), Some("key 'image-id' is in blocked_keys".into()));
        assert_eq!(check("ghr-ec2-instance-type:c5.xlarge"), None);
        assert_eq!(
            check("ghr-ec2-instance-type:p4d.24xlarge"),
            Some("value 'p4d.24xlarge' not in allowed list".into())
        );
        assert_eq!(check("ghr-ec2-instance-type:m5.metal"), Some("value 'm5.metal' in denied list".into()));
        assert_eq!(check("ghr-ec2-ebs-volume-size:100"), None);
        assert!(check("ghr-ec2-ebs-volume-size:500").unwrap().contains("exceeds max"));
        assert!(check("ghr-ec2-ebs-volume-size:big").unwrap().contains("not numeric"));
        assert!(check("ghr-ec2-vcpu-count-min:32").unwrap().contains("exceeds max"));
        assert_eq!(check("ghr-ec2-subnet-id:subnet-1"), None, "keys not listed are allowed");
        assert_eq!(check("ghr-run-id:1"), None, "only ghr-ec2-* labels are judged");
        assert_eq!(violations(&labels(&["ghr-ec2-image-id:ami-1", "linux"]), Some(&policy)).len(), 1);
        assert!(violations(&labels(&["ghr-ec2-image-id:ami-1"]), None).is_empty());
        assert_eq!(Policy::parse(&serde_json::Value::Null).unwrap(), None);
        assert!(Policy::parse(&json!({"blocked_keys": "image-id"})).is_err());
    }

    #[test]
    fn ec2_overrides_are_read_and_malformed_values_refused() {
        let o = parse_ec2_overrides(&labels(&[
            "self-hosted",
            "ghr-ec2-instance-type:c7gn.16xlarge",
            "ghr-ec2-ebs-volume-size:120",
            "ghr-ec2-ebs-volume-type:gp3",
            "ghr-ec2-image-id:ami-0abc123",
            "ghr-ec2-placement-tenancy:dedicated",
            "ghr-ec2-unknown-key:whatever",
            "ghr-ec2-subnet-id:",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(o.instance_type.as_deref(), Some("c7gn.16xlarge"));
        assert_eq!((o.ebs_volume_size, o.ebs_volume_type.as_deref()), (Some(120), Some("gp3")));
        assert_eq!(o.subnet_id, None, "an empty value is ignored");
        assert!(!o.uses_requirements());

        let r = parse_ec2_overrides(&labels(&[
            "ghr-ec2-vcpu-count-min:4",
            "ghr-ec2-memory-mib-min:16384",
            "ghr-ec2-allowed-instance-types:m5.*;c5.*",
        ]))
        .unwrap()
        .unwrap();
        assert!(r.uses_requirements());
        assert_eq!(r.allowed_instance_types, ["m5.*", "c5.*"]);

        assert_eq!(parse_ec2_overrides(&labels(&["self-hosted", "ghr-run-id:1"])).unwrap(), None);
        for bad in [
            "ghr-ec2-ebs-volume-size:100GB",
            "ghr-ec2-ebs-volume-size:0",
            "ghr-ec2-instance-type:large",
            "ghr-ec2-ebs-volume-type:gp9",
            "ghr-ec2-image-id:12345",
            "ghr-ec2-max-price:free",
        ] {
            assert!(parse_ec2_overrides(&labels(&[bad])).is_err(), "{bad}");
        }
        let err = parse_ec2_overrides(&labels(&["ghr-ec2-vcpu-count-min:8", "ghr-ec2-vcpu-count-max:4"])).unwrap_err();
        assert!(err.contains("min 8 is above max 4"), "{err}");
    }
}
