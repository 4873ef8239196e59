//! Runners and who owns them: an organization, or one repository.

use std::fmt;

/// `ghr:Type` of a runner: registered on an organization or on one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunnerType {
    Org,
    Repo,
}

impl RunnerType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerType::Org => "Org",
            RunnerType::Repo => "Repo",
        }
    }
}

/// The GitHub owner a runner registers with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunnerOwner {
    Org(String),
    Repo { owner: String, repo: String },
}

impl RunnerOwner {
    pub fn runner_type(&self) -> RunnerType {
        match self {
            RunnerOwner::Org(_) => RunnerType::Org,
            RunnerOwner::Repo { .. } => RunnerType::Repo,
        }
    }

    /// The `ghr:Owner` tag value: `org` or `owner/repo`.
    pub fn tag_value(&self) -> String {
        self.to_string()
    }

    /// The login of the account (organization or repository owner).
    pub fn login(&self) -> &str {
        match self {
            RunnerOwner::Org(org) => org,
            RunnerOwner::Repo { owner, .. } => owner,
        }
    }

    /// From the `ghr:Type` and `ghr:Owner` tags.
    pub fn from_tags(runner_type: &str, owner: &str) -> Option<Self> {
        match runner_type {
            "Org" if !owner.is_empty() && !owner.contains('/') => Some(RunnerOwner::Org(owner.to_string())),
            "Repo" => {
                let (o, r) = owner.split_once('/')?;
                (!o.is_empty() && !r.is_empty())
                    .then(|| RunnerOwner::Repo { owner: o.to_string(), repo: r.to_string() })
            }
            _ => None,
        }
    }
}

impl fmt::Display for RunnerOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunnerOwner::Org(org) => f.write_str(org),
            RunnerOwner::Repo { owner, repo } => write!(f, "{owner}/{repo}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_tags_round_trip() {
        let org = RunnerOwner::Org("acme".into());
        let repo = RunnerOwner::Repo { owner: "acme".into(), repo: "web".into() };
        assert_eq!(RunnerOwner::from_tags("Org", &org.tag_value()), Some(org));
        assert_eq!(RunnerOwner::from_tags("Repo", &repo.tag_value()), Some(repo));
        assert_eq!(RunnerOwner::from_tags("Repo", "acme"), None);
        assert_eq!(RunnerOwner::from_tags("Org", "a/b"), None);
        assert_eq!(RunnerOwner::from_tags("Other", "a"), None);
    }
}
