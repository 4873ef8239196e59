//! The SSM housekeeper's decisions: which runner token parameters (JIT configs, `config.sh`
//! arguments) under the token path to delete.
//!
//! As upstream, a parameter older than `minimumDaysOld` days goes. Beyond upstream, one whose
//! instance is terminated (or unknown to EC2) goes as soon as it is older than the runner boot
//! time: the instance will never read it. Only what scale-up writes is touched: direct children
//! of the token path named after an instance id. Anything else there is foreign and left alone
//! (upstream deletes every old parameter under the path).

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

/// `SSM_CLEANUP_CONFIG`, upstream's JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SsmCleanupConfig {
    /// The token path (`SSM_TOKEN_PATH` of scale-up); Terraform always sets it.
    #[serde(default)]
    pub token_path: Option<String>,
    #[serde(default = "one_day")]
    pub minimum_days_old: u32,
    #[serde(default)]
    pub dry_run: bool,
}

fn one_day() -> u32 {
    1
}

impl SsmCleanupConfig {
    /// Parses and validates (upstream: `minimumDaysOld` ≥ 1 and a token path).
    pub fn parse(json: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("not a valid cleanup config: {e}"))?;
        if !value.is_object() {
            return Err("not a valid cleanup config: not a JSON object".into());
        }
        let config: Self = serde_json::from_value(value).map_err(|e| format!("not a valid cleanup config: {e}"))?;
        if config.minimum_days_old < 1 {
            return Err("minimumDaysOld must be at least 1".into());
        }
        match config.token_path.as_deref().map(str::trim) {
            None | Some("") => Err("tokenPath is required".into()),
            Some(p) if !p.starts_with('/') || p == "/" => {
                Err(format!("tokenPath `{p}` must be a parameter path below the root"))
            }
            Some(_) => Ok(config),
        }
    }

    pub fn token_path(&self) -> &str {
        self.token_path.as_deref().map(|p| p.trim().trim_end_matches('/')).unwrap_or_default()
    }
}

/// The instance id a token parameter belongs to: `<token path>/i-…`, a direct child.
pub fn instance_id_of<'a>(name: &'a str, token_path: &str) -> Option<&'a str> {
    let rest = name.strip_prefix(token_path)?.strip_prefix('/')?;
    let hex = rest.strip_prefix("i-")?;
    let valid = (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then_some(rest)
}

/// What EC2 says about a parameter's instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Pending, running, stopping or stopped: it may still read its parameter.
    Alive,
    /// Shutting down, terminated, or not known to EC2.
    Gone,
    /// Not asked, or EC2 could not be read: never treated as gone.
    Unknown,
}

impl InstanceState {
    /// From an EC2 state name; `None` (not listed) is gone.
    pub fn from_ec2(state: Option<&str>) -> Self {
        match state {
            None | Some("shutting-down" | "terminated") => InstanceState::Gone,
            Some(_) => InstanceState::Alive,
        }
    }
}

/// The decision for one parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Older than `minimumDaysOld` (upstream's rule).
    Expired,
    /// Its instance is gone and it is older than the boot time.
    Orphaned,
    /// Younger than both rules allow.
    Recent,
    /// Not a token parameter scale-up writes (or its age is unknown): left alone.
    Foreign,
}

impl Verdict {
    pub fn deletes(self) -> bool {
        matches!(self, Verdict::Expired | Verdict::Orphaned)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Expired => "expired",
            Verdict::Orphaned => "orphaned",
            Verdict::Recent => "recent",
            Verdict::Foreign => "foreign",
        }
    }
}

/// The ages the rules use.
#[derive(Debug, Clone, Copy)]
pub struct Ages {
    pub minimum_days_old: u32,
    pub boot_time: TimeDelta,
}

/// Whether the instance of a parameter modified at `last_modified` must be looked up: only
/// when the orphan rule could delete it.
pub fn needs_instance_state(last_modified: Option<DateTime<Utc>>, now: DateTime<Utc>, ages: Ages) -> bool {
    last_modified.is_some_and(|t| {
        let age = now - t;
        age >= ages.boot_time && age < TimeDelta::days(i64::from(ages.minimum_days_old))
    })
}

/// Judges one parameter. `instance` is what EC2 says about its instance.
pub fn judge(
    name: &str,
    token_path: &str,
    last_modified: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    ages: Ages,
    instance: InstanceState,
) -> Verdict {
    if instance_id_of(name, token_path).is_none() {
        return Verdict::Foreign;
    }
    let Some(modified) = last_modified else {
        return Verdict::Foreign;
    };
    let age = now - modified;
    if age >= TimeDelta::days(i64::from(ages.minimum_days_old)) {
        Verdict::Expired
    } else if age >= ages.boot_time && instance == InstanceState::Gone {
        Verdict::Orphaned
    } else {
        Verdict::Recent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/github-action-runners/acme/runners/tokens";

    fn ages() -> Ages {
        Ages { minimum_days_old: 1, boot_time: TimeDelta::minutes(5) }
    }

    #[test]
    fn config_as_upstream_with_validation() {
        let c =
            SsmCleanupConfig::parse(&format!(r#"{{"tokenPath":"{PATH}/","minimumDaysOld":2,"dryRun":true}}"#)).unwrap();
        assert_eq!((c.token_path(), c.minimum_days_old, c.dry_run), (PATH, 2, true));
        let defaults = SsmCleanupConfig::parse(&format!(r#"{{"tokenPath":"{PATH}"}}"#)).unwrap();
        assert_eq!((defaults.minimum_days_old, defaults.dry_run), (1, false));
        for bad in [
            r#"{"minimumDaysOld":1}"#.to_string(),
            format!(r#"{{"tokenPath":"{PATH}","minimumDaysOld":0}}"#),
            r#"{"tokenPath":"/"}"#.to_string(),
            r#"{"tokenPath":"relative/path"}"#.to_string(),
            "not json".to_string(),
        ] {
            assert!(SsmCleanupConfig::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_direct_children_named_after_an_instance() {
        assert_eq!(instance_id_of(&format!("{PATH}/i-0123456789abcdef0"), PATH), Some("i-0123456789abcdef0"));
        assert_eq!(instance_id_of(&format!("{PATH}/i-12345678"), PATH), Some("i-12345678"));
        for foreign in [
            format!("{PATH}/other"),
            format!("{PATH}/i-xyz12345"),
            format!("{PATH}/nested/i-0123456789abcdef0"),
            format!("{PATH}x/i-0123456789abcdef0"),
            "/github-action-runners/acme/app/github_app_key_base64".to_string(),
        ] {
            assert_eq!(instance_id_of(&foreign, PATH), None, "{foreign}");
        }
    }

    #[test]
    fn verdicts() {
        let now = Utc::now();
        let name = format!("{PATH}/i-0123456789abcdef0");
        let judged = |age: TimeDelta, state| judge(&name, PATH, Some(now - age), now, ages(), state);
        assert_eq!(judged(TimeDelta::hours(25), InstanceState::Alive), Verdict::Expired);
        assert_eq!(judged(TimeDelta::hours(25), InstanceState::Unknown), Verdict::Expired);
        assert_eq!(judged(TimeDelta::minutes(10), InstanceState::Gone), Verdict::Orphaned);
        assert_eq!(judged(TimeDelta::minutes(10), InstanceState::Alive), Verdict::Recent);
        // Unknown is never gone.
        assert_eq!(judged(TimeDelta::minutes(10), InstanceState::Unknown), Verdict::Recent);
        // Still booting: its instance may not be listed yet.
        assert_eq!(judged(TimeDelta::minutes(2), InstanceState::Gone), Verdict::Recent);
        assert_eq!(judge(&name, PATH, None, now, ages(), InstanceState::Gone), Verdict::Foreign);
        assert_eq!(
            judge(&format!("{PATH}/keep-me"), PATH, Some(now - TimeDelta::days(30)), now, ages(), InstanceState::Gone),
            Verdict::Foreign
        );
        assert!(needs_instance_state(Some(now - TimeDelta::minutes(10)), now, ages()));
        assert!(!needs_instance_state(Some(now - TimeDelta::minutes(1)), now, ages()));
        assert!(!needs_instance_state(Some(now - TimeDelta::days(2)), now, ages()));
        assert_eq!(InstanceState::from_ec2(None), InstanceState::Gone);
        assert_eq!(InstanceState::from_ec2(Some("terminated")), InstanceState::Gone);
        assert_eq!(InstanceState::from_ec2(Some("stopped")), InstanceState::Alive);
    }
}
