//! Reading a function's configuration from its environment.
//!
//! Every function has one typed `Config` built through [`Env`], which reads variables through a
//! lookup function (the process environment in Lambda, a map in tests) and collects *every*
//! missing or invalid variable before failing, as the upstream `ConfigLoader` does. [`Env`] also
//! records every name it was asked for, which is how the Terraform contract test learns what a
//! function reads without a hand-kept list that could drift.
//!
//! Values follow the upstream conventions: an unset variable, an empty string and the string
//! `null` (what Terraform's `jsonencode(null)` produces) all mean "use the default".

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;

/// A value that must never be printed: Debug and Display show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call it only where the value is handed to the system that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: String,
    pub problem: String,
}

/// Every problem found while loading a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    pub fn single(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { problems: vec![ConfigProblem { variable: variable.into(), problem: problem.into() }] }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "`{}` {}", p.variable, p.problem)?;
        }
        Ok(())
    }
}

/// Test-only overrides, named in one place (decisions.md #18). Configs read them as optional;
/// Terraform never sets them, and the Terraform contract test allows exactly these names.
/// How a function reaches GitHub. Scale-up, scale-down and the syncer read the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubConnection {
    /// `GHES_URL`: GitHub Enterprise Server (or `*.ghe.com`); github.com when unset.
    pub ghes_url: Option<String>,
    /// `NODE_TLS_REJECT_UNAUTHORIZED` other than `0` (upstream's name; Terraform sets `0` for
    /// `ghes_ssl_verify = false`): verify GHES's certificate. It affects the GitHub client only.
    pub verify_tls: bool,
    /// `USER_AGENT` sent with every GitHub request.
    pub user_agent: String,
    /// The test-only API URL ([`test_overrides::GITHUB_API_URL`], decisions.md #18).
    pub api_override: Option<String>,
}

impl GithubConnection {
    pub fn load(env: &mut Env<'_>) -> Self {
        Self {
            ghes_url: env.optional("GHES_URL"),
            verify_tls: env.string_or("NODE_TLS_REJECT_UNAUTHORIZED", "1").trim() != "0",
            user_agent: env.string_or("USER_AGENT", "github-aws-runners"),
            api_override: env.optional(test_overrides::GITHUB_API_URL),
        }
    }
}

pub mod test_overrides {
    /// Replaces the GitHub REST API base URL (github.com mode against the fake GitHub).
    pub const GITHUB_API_URL: &str = "GHR_TEST_GITHUB_API_URL";
    /// Path of a file holding the current time (RFC 3339), re-read on every use, so that tests
    /// can move a running function through simulated time.
    pub const CLOCK_FILE: &str = "GHR_TEST_CLOCK_FILE";
    /// All test-only names.
    pub const ALL: &[&str] = &[GITHUB_API_URL, CLOCK_FILE];
}

/// A function's configuration, read from its environment through [`Env`]: every problem is
/// reported at once, and the names read are known without an environment (the Terraform
/// contract check compares them with what Terraform sets).
pub trait FromEnv: Sized {
    /// Reads every variable the function uses, recording problems in `env`. It must read the
    /// same names whatever the values (so that [`FromEnv::variables`] is complete).
    fn load(env: &mut Env<'_>) -> Self;

    fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let config = Self::load(&mut env);
        env.finish().map(|()| config)
    }

    /// Every variable the configuration reads.
    fn variables() -> Vec<&'static str> {
        let empty = |_: &str| None;
        let mut env = Env::new(&empty);
        Self::load(&mut env);
        env.names_read()
    }
}

/// Reads variables through a lookup function, collecting problems and the names asked for.
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
    read: BTreeSet<&'static str>,
}

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup, problems: Vec::new(), read: BTreeSet::new() }
    }

    fn raw(&mut self, name: &'static str) -> Option<String> {
        self.read.insert(name);
        match (self.lookup)(name) {
            Some(v) if !v.trim().is_empty() && v.trim() != "null" => Some(v),
            _ => None,
        }
    }

    /// Records a problem found by the caller (cross-field validation).
    pub fn problem(&mut self, variable: &str, problem: impl Into<String>) {
        self.problems.push(ConfigProblem { variable: variable.to_string(), problem: problem.into() });
    }

    /// A variable that must be set and not empty.
    pub fn required(&mut self, name: &'static str) -> String {
        match self.raw(name) {
            Some(v) => v,
            None => {
                self.problem(name, "is required but not set");
                String::new()
            }
        }
    }

    /// A variable that may be unset.
    pub fn optional(&mut self, name: &'static str) -> Option<String> {
        self.raw(name)
    }

    pub fn string_or(&mut self, name: &'static str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    /// `true`/`false` (case-insensitive); anything else is a problem.
    pub fn bool_or(&mut self, name: &'static str, default: bool) -> bool {
        match self.raw(name) {
            None => default,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    self.problem(name, format!("must be `true` or `false`, got `{}`", shorten(&v)));
                    default
                }
            },
        }
    }

    /// A value parsed with `FromStr`.
    pub fn parse_or<T: FromStr>(&mut self, name: &'static str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match self.raw(name) {
            None => default,
            Some(v) => match v.trim().parse::<T>() {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.problem(name, format!("is invalid (`{}`): {e}", shorten(&v)));
                    default
                }
            },
        }
    }

    /// A JSON value; unset means the default.
    pub fn json_or<T: DeserializeOwned>(&mut self, name: &'static str, default: T) -> T {
        match self.raw(name) {
            None => default,
            Some(v) => match serde_json::from_str::<T>(&v) {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.problem(name, format!("is not valid JSON for this setting: {e}"));
                    default
                }
            },
        }
    }

    /// A comma-separated list; items are trimmed and empty items dropped.
    pub fn csv(&mut self, name: &'static str) -> Vec<String> {
        self.raw(name).map(|v| split_list(&v, ',')).unwrap_or_default()
    }

    /// Names of every variable read so far.
    pub fn names_read(&self) -> Vec<&'static str> {
        self.read.iter().copied().collect()
    }

    /// Ok when no problem was found.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() { Ok(()) } else { Err(ConfigError { problems: self.problems }) }
    }
}

/// Splits on `sep`, trims items and drops empty ones.
pub fn split_list(value: &str, sep: char) -> Vec<String> {
    value.split(sep).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn shorten(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn collects_every_problem_at_once() {
        let vars = env_of(&[("FLAG", "yes"), ("COUNT", "x")]);
        let lookup = |k: &str| vars.get(k).cloned();
        let mut env = Env::new(&lookup);
        env.required("MISSING_A");
        env.required("MISSING_B");
        env.bool_or("FLAG", false);
        env.parse_or::<i64>("COUNT", 1);
        let err = env.finish().unwrap_err();
        assert_eq!(err.problems.len(), 4);
        let text = err.to_string();
        for name in ["MISSING_A", "MISSING_B", "FLAG", "COUNT"] {
            assert!(text.contains(name), "{text}");
        }
    }

    #[test]
    fn null_and_empty_mean_default() {
        let vars = env_of(&[("A", "null"), ("B", ""), ("C", " 7 ")]);
        let lookup = |k: &str| vars.get(k).cloned();
        let mut env = Env::new(&lookup);
        assert_eq!(env.parse_or::<i64>("A", 3), 3);
        assert_eq!(env.string_or("B", "d"), "d");
        assert_eq!(env.parse_or::<i64>("C", 3), 7);
        assert_eq!(env.json_or::<Vec<String>>("A", vec![]), Vec::<String>::new());
        assert_eq!(env.names_read(), vec!["A", "B", "C"]);
        env.finish().unwrap();
    }

    #[test]
    fn csv_trims_and_drops_empty_items() {
        assert_eq!(split_list(" a, b,,c ", ','), vec!["a", "b", "c"]);
    }
}
