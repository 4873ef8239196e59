//! The AMI housekeeper's decisions: which of this account's machine images to deregister.
//!
//! As upstream (`ami-housekeeper`): an image matching the filters goes when it is older than
//! `minimumDaysOld` days and no launch template's default version nor any listed SSM parameter
//! references it; its snapshots go with it. Beyond upstream: the latest version of a launch
//! template counts as a use too (a `terraform apply` makes it the default next), a
//! `resolve:ssm:` reference in a template counts as its parameter's value, and an image without
//! a creation date is never deregistered.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// One `DescribeImages` filter (`{"Name": "state", "Values": ["available"]}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ImageFilter {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Values")]
    pub values: Vec<String>,
}

impl ImageFilter {
    fn of(name: &str, values: &[&str]) -> Self {
        Self { name: name.into(), values: values.iter().map(|v| v.to_string()).collect() }
    }
}

/// `AMI_CLEANUP_OPTIONS`, upstream's JSON object (Terraform writes unset options as `null`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmiCleanupConfig {
    #[serde(default)]
    pub minimum_days_old: Option<i64>,
    /// At most this many images are looked at per run (upstream: `MaxResults`).
    #[serde(default)]
    pub max_items: Option<usize>,
    #[serde(default)]
    pub ami_filters: Option<Vec<ImageFilter>>,
    /// Only these templates are read for images in use; unset: every template of the account.
    #[serde(default)]
    pub launch_template_names: Option<Vec<String>>,
    /// Parameters whose values are images in use; a name starting with `*` stands for every
    /// parameter whose name contains the rest.
    #[serde(default)]
    pub ssm_parameter_names: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// Upstream's default age.
pub const DEFAULT_MINIMUM_DAYS_OLD: i64 = 30;

impl AmiCleanupConfig {
    /// Parses and validates: an object, `minimumDaysOld` ≥ 0, `maxItems` ≥ 1.
    pub fn parse(json: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("not a valid cleanup config: {e}"))?;
        if !value.is_object() {
            return Err("not a valid cleanup config: not a JSON object".into());
        }
        let config: Self = serde_json::from_value(value).map_err(|e| format!("not a valid cleanup config: {e}"))?;
        if config.minimum_days_old.is_some_and(|d| d < 0) {
            return Err("minimumDaysOld must not be negative".into());
        }
        if config.max_items == Some(0) {
            return Err("maxItems must be at least 1".into());
        }
        if config.ami_filters.iter().flatten().any(|f| f.name.is_empty() || f.values.is_empty()) {
            return Err("every amiFilters entry needs a Name and at least one value".into());
        }
        Ok(config)
    }

    pub fn minimum_days_old(&self) -> i64 {
        self.minimum_days_old.unwrap_or(DEFAULT_MINIMUM_DAYS_OLD)
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run.unwrap_or(false)
    }

    /// The filters, upstream's default (available machine images) when unset.
    pub fn filters(&self) -> Vec<ImageFilter> {
        self.ami_filters.clone().unwrap_or_else(|| {
            vec![ImageFilter::of("state", &["available"]), ImageFilter::of("image-type", &["machine"])]
        })
    }

    /// The parameter names split into exact names and `Contains` fragments (`*ami` → `ami`).
    pub fn parameter_names(&self) -> (Vec<String>, Vec<String>) {
        let mut exact = Vec::new();
        let mut fragments = Vec::new();
        for name in self.ssm_parameter_names.iter().flatten() {
            match name.strip_prefix('*') {
                Some(rest) => {
                    let rest = rest.trim_start_matches('*');
                    if !rest.is_empty() {
                        fragments.push(rest.to_string());
                    }
                }
                None => exact.push(name.clone()),
            }
        }
        (exact, fragments)
    }
}

/// An image of this account, as the housekeeper needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineImage {
    pub id: String,
    pub name: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub snapshot_ids: Vec<String>,
}

/// What happens to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Referenced by a launch template or a parameter.
    InUse,
    /// Younger than `minimumDaysOld`.
    Recent,
    /// No creation date: its age is unknown, so it stays.
    Undated,
    Deregister,
}

pub fn judge(image: &MachineImage, in_use: &BTreeSet<String>, now: DateTime<Utc>, minimum_days_old: i64) -> Verdict {
    if in_use.contains(&image.id) {
        return Verdict::InUse;
    }
    match image.created {
        None => Verdict::Undated,
        Some(created) if now - created < TimeDelta::days(minimum_days_old) => Verdict::Recent,
        Some(_) => Verdict::Deregister,
    }
}

/// The images of one run by verdict; `deregister` oldest first, as upstream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub deregister: Vec<MachineImage>,
    pub in_use: Vec<String>,
    pub recent: Vec<String>,
    pub undated: Vec<String>,
}

pub fn plan(images: Vec<MachineImage>, in_use: &BTreeSet<String>, now: DateTime<Utc>, minimum_days_old: i64) -> Plan {
    let mut plan = Plan::default();
    for image in images {
        match judge(&image, in_use, now, minimum_days_old) {
            Verdict::InUse => plan.in_use.push(image.id),
            Verdict::Recent => plan.recent.push(image.id),
            Verdict::Undated => plan.undated.push(image.id),
            Verdict::Deregister => plan.deregister.push(image),
        }
    }
    plan.deregister.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    plan
}

/// The parameter a launch template's image refers to: `resolve:ssm:<name or ARN>[:version]`.
pub fn ssm_reference(image_id: &str) -> Option<&str> {
    image_id.strip_prefix("resolve:ssm:").filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, days_old: Option<i64>, now: DateTime<Utc>) -> MachineImage {
        MachineImage {
            id: id.into(),
            name: None,
            created: days_old.map(|d| now - TimeDelta::days(d)),
            snapshot_ids: vec![format!("snap-{id}")],
        }
    }

    #[test]
    fn parses_what_terraform_writes_and_applies_upstream_defaults() {
        let c = AmiCleanupConfig::parse(
            r#"{"amiFilters":[{"Name":"name","Values":["runner-*"]}],"dryRun":true,"launchTemplateNames":null,"maxItems":null,"minimumDaysOld":10,"ssmParameterNames":["/a/ami","*ami_id"]}"#,
        )
        .unwrap();
        assert_eq!(c.minimum_days_old(), 10);
        assert!(c.dry_run());
        assert_eq!(c.filters(), vec![ImageFilter::of("name", &["runner-*"])]);
        assert_eq!(c.parameter_names(), (vec!["/a/ami".to_string()], vec!["ami_id".to_string()]));

        let d = AmiCleanupConfig::parse("{}").unwrap();
        assert_eq!((d.minimum_days_old(), d.dry_run(), d.max_items), (30, false, None));
        assert_eq!(d.filters().len(), 2);
        assert_eq!(d.launch_template_names, None);

        for bad in [
            "[]",
            "nope",
            r#"{"minimumDaysOld":-1}"#,
            r#"{"maxItems":0}"#,
            r#"{"amiFilters":[{"Name":"state","Values":[]}]}"#,
        ] {
            assert!(AmiCleanupConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_old_unused_dated_images_are_deregistered_oldest_first() {
        let now = Utc::now();
        let in_use: BTreeSet<String> = ["ami-used".to_string()].into();
        let images = vec![
            image("ami-40", Some(40), now),
            image("ami-used", Some(400), now),
            image("ami-5", Some(5), now),
            image("ami-undated", None, now),
            image("ami-90", Some(90), now),
        ];
        let p = plan(images, &in_use, now, 30);
        assert_eq!(p.deregister.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["ami-90", "ami-40"]);
        assert_eq!(p.in_use, ["ami-used"]);
        assert_eq!(p.recent, ["ami-5"]);
        assert_eq!(p.undated, ["ami-undated"]);
        // The age bound itself: exactly minimumDaysOld days old goes, a second younger stays.
        assert_eq!(judge(&image("a", Some(30), now), &in_use, now, 30), Verdict::Deregister);
        let younger =
            MachineImage { created: Some(now - TimeDelta::days(30) + TimeDelta::seconds(1)), ..image("a", None, now) };
        assert_eq!(judge(&younger, &in_use, now, 30), Verdict::Recent);
    }

    #[test]
    fn reads_ssm_references_of_launch_templates() {
        assert_eq!(ssm_reference("resolve:ssm:/runners/ami"), Some("/runners/ami"));
        assert_eq!(ssm_reference("resolve:ssm:/runners/ami:3"), Some("/runners/ami:3"));
        assert_eq!(ssm_reference("ami-0123"), None);
        assert_eq!(ssm_reference("resolve:ssm:"), None);
    }
}
