//! GitHub: App authentication, the REST client, webhook signatures.
//!
//! The only code that knows GitHub's wire formats and octocrab.

pub mod app;
pub mod client;
pub mod deliveries;
pub mod owner;
pub mod pacing;
pub mod signature;

use crate::domain::runner::RunnerOwner;

/// Where the GitHub API and web UI are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubUrls {
    /// REST API base, no trailing slash.
    pub api: String,
    /// Web base (runner registration `--url`), no trailing slash.
    pub web: String,
    /// Whether this is GitHub Enterprise Server or a data-residency (`*.ghe.com`) host.
    pub enterprise: bool,
}

impl GithubUrls {
    /// From `GHES_URL` (upstream §1.4): unset → github.com; a `*.ghe.com` host → `https://api.<host>`;
    /// any other host → `<url>/api/v3`. `api_override` (a test-only setting) replaces the API base.
    pub fn new(ghes_url: Option<&str>, api_override: Option<&str>) -> Result<Self, String> {
        let mut urls = match ghes_url.map(|u| u.trim().trim_end_matches('/')).filter(|u| !u.is_empty()) {
            None => Self { api: "https://api.github.com".into(), web: "https://github.com".into(), enterprise: false },
            Some(url) => {
                let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("`{url}` is not an absolute URL"))?;
                let host = rest.split('/').next().unwrap_or_default();
                if host.is_empty() {
                    return Err(format!("`{url}` has no host"));
                }
                let api =
                    if host.ends_with(".ghe.com") { format!("{scheme}://api.{host}") } else { format!("{url}/api/v3") };
                Self { api, web: url.to_string(), enterprise: true }
            }
        };
        if let Some(api) = api_override.map(|u| u.trim().trim_end_matches('/')).filter(|u| !u.is_empty()) {
            urls.api = api.to_string();
        }
        Ok(urls)
    }
}

/// The REST path prefix of an owner: `/orgs/{org}` or `/repos/{owner}/{repo}`.
pub fn owner_path(owner: &RunnerOwner) -> String {
    match owner {
        RunnerOwner::Org(org) => format!("/orgs/{org}"),
        RunnerOwner::Repo { owner, repo } => format!("/repos/{owner}/{repo}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls() {
        let dotcom = GithubUrls::new(None, None).unwrap();
        assert_eq!(
            (dotcom.api.as_str(), dotcom.web.as_str(), dotcom.enterprise),
            ("https://api.github.com", "https://github.com", false)
        );
        let ghes = GithubUrls::new(Some("https://ghes.example.com/"), None).unwrap();
        assert_eq!(
            (ghes.api.as_str(), ghes.web.as_str()),
            ("https://ghes.example.com/api/v3", "https://ghes.example.com")
        );
        let residency = GithubUrls::new(Some("https://acme.ghe.com"), None).unwrap();
        assert_eq!(residency.api, "https://api.acme.ghe.com");
        let overridden = GithubUrls::new(None, Some("http://127.0.0.1:9/")).unwrap();
        assert_eq!((overridden.api.as_str(), overridden.web.as_str()), ("http://127.0.0.1:9", "https://github.com"));
        assert!(GithubUrls::new(Some("ghes.example.com"), None).is_err());
    }
}
