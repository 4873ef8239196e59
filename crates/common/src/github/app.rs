//! GitHub App credentials: the App id, its private key and, optionally, a stored installation id.
//!
//! Several Apps can be configured to spread the API rate limit (`:`-joined parameter names, one
//! per App, positional). The private key is stored in SSM as a base64-encoded PEM (upstream
//! format). The App signs short-lived RS256 JWTs with it to call `/app/...` endpoints.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::Secret;
use crate::error::{AwsError, GithubError, Retryable};
use crate::ports::ParameterStore;

/// Variables naming the App parameters (shared by every function that talks to GitHub).
pub const APP_ID_NAME: &str = "PARAMETER_GITHUB_APP_ID_NAME";
pub const APP_KEY_NAME: &str = "PARAMETER_GITHUB_APP_KEY_BASE64_NAME";
pub const APP_INSTALLATION_ID_NAME: &str = "PARAMETER_GITHUB_APP_INSTALLATION_ID_NAME";

/// One configured GitHub App.
pub struct GithubApp {
    /// Position in the configured list; 0 is the primary App, the one that sends webhooks.
    pub index: usize,
    pub app_id: u64,
    pub installation_id: Option<u64>,
    key: EncodingKey,
}

impl fmt::Debug for GithubApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubApp")
            .field("index", &self.index)
            .field("app_id", &self.app_id)
            .field("installation_id", &self.installation_id)
            .field("key", &"***")
            .finish()
    }
}

#[derive(Serialize)]
struct Claims {
    iat: u64,
    exp: u64,
    iss: u64,
}

impl GithubApp {
    pub fn new(index: usize, app_id: u64, key_base64: &str, installation_id: Option<u64>) -> Result<Self, GithubError> {
        Ok(Self { index, app_id, installation_id, key: parse_private_key(key_base64)? })
    }

    /// A JWT for `/app` endpoints: issued 60 s in the past against clock drift, valid 10 minutes
    /// in all (GitHub's maximum).
    pub fn jwt(&self, now: SystemTime) -> Result<Secret<String>, GithubError> {
        let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let claims = Claims { iat: now.saturating_sub(60), exp: now + 540, iss: self.app_id };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map(Secret::new)
            .map_err(|e| GithubError::Credentials(format!("cannot sign a JWT for App {}: {e}", self.app_id)))
    }
}

/// Reads the App private key: base64 of a PEM (PKCS#1 as GitHub hands it out, or PKCS#8), or a
/// PEM as is. Literal `\n` sequences are turned into newlines, as upstream does.
pub fn parse_private_key(value: &str) -> Result<EncodingKey, GithubError> {
    let trimmed = value.trim();
    let pem = if trimmed.starts_with("-----BEGIN") {
        trimmed.to_string()
    } else {
        let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| GithubError::Credentials("the App private key is not base64".into()))?;
        String::from_utf8(bytes).map_err(|_| GithubError::Credentials("the App private key is not a PEM".into()))?
    };
    let pem = pem.replace("\\n", "\n");
    EncodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| GithubError::Credentials("the App private key is not an RSA private key in PEM format".into()))
}

/// The SSM parameter names of the configured Apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppParameterNames {
    pub ids: Vec<String>,
    pub keys: Vec<String>,
    /// Positional; `None` for Apps without a stored installation id.
    pub installation_ids: Vec<Option<String>>,
}

impl AppParameterNames {
    /// From a function's environment (`PARAMETER_GITHUB_APP_*_NAME`), each problem recorded in
    /// `env` (a missing id or key list is reported by `env` itself).
    pub fn load(env: &mut crate::config::Env<'_>) -> Self {
        let ids = env.required(APP_ID_NAME);
        let keys = env.required(APP_KEY_NAME);
        let installations = env.optional(APP_INSTALLATION_ID_NAME);
        let empty = AppParameterNames { ids: vec![], keys: vec![], installation_ids: vec![] };
        match AppParameterNames::parse(&ids, &keys, installations.as_deref()) {
            Ok(apps) => apps,
            Err(e) if !ids.is_empty() && !keys.is_empty() => {
                env.problem(APP_ID_NAME, e);
                empty
            }
            Err(_) => empty,
        }
    }

    /// From the `:`-joined variables. The id and key lists must have the same length; the
    /// installation id list may be shorter or have empty entries.
    pub fn parse(ids: &str, keys: &str, installation_ids: Option<&str>) -> Result<Self, String> {
        let split = |s: &str| s.split(':').map(|p| p.trim().to_string()).collect::<Vec<_>>();
        let ids = split(ids);
        let keys = split(keys);
        if ids.iter().any(String::is_empty) || keys.iter().any(String::is_empty) {
            return Err("App parameter names must not be empty".into());
        }
        if ids.len() != keys.len() {
            return Err(format!("{} App id parameters but {} key parameters", ids.len(), keys.len()));
        }
        let mut installation_ids: Vec<Option<String>> = installation_ids
            .map(|s| split(s).into_iter().map(|n| (!n.is_empty()).then_some(n)).collect())
            .unwrap_or_default();
        if installation_ids.len() > ids.len() {
            return Err(format!("{} installation id parameters for {} Apps", installation_ids.len(), ids.len()));
        }
        installation_ids.resize(ids.len(), None);
        Ok(Self { ids, keys, installation_ids })
    }
}

/// Why the Apps could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AppLoadError {
    #[error(transparent)]
    Parameters(#[from] AwsError),
    #[error(transparent)]
    Invalid(#[from] GithubError),
}

impl Retryable for AppLoadError {
    fn is_retryable(&self) -> bool {
        match self {
            AppLoadError::Parameters(e) => e.is_retryable(),
            AppLoadError::Invalid(_) => false,
        }
    }
}

/// Loads every App with one batched parameter read.
pub async fn load_apps(store: &dyn ParameterStore, names: &AppParameterNames) -> Result<Vec<GithubApp>, AppLoadError> {
    let mut all: Vec<String> = names.ids.iter().chain(names.keys.iter()).cloned().collect();
    all.extend(names.installation_ids.iter().flatten().cloned());
    let values = store.get_parameters(&all).await?;
    let value = |name: &str| values.get(name).map(|v| v.expose().trim().to_string()).unwrap_or_default();
    let mut apps = Vec::with_capacity(names.ids.len());
    for (index, (id_name, key_name)) in names.ids.iter().zip(&names.keys).enumerate() {
        let app_id: u64 = value(id_name)
            .parse()
            .map_err(|_| GithubError::Credentials(format!("parameter `{id_name}` does not hold a numeric App id")))?;
        let installation_id = match &names.installation_ids[index] {
            None => None,
            Some(n) => Some(value(n).parse::<u64>().map_err(|_| {
                GithubError::Credentials(format!("parameter `{n}` does not hold a numeric installation id"))
            })?),
        };
        let key = values
            .get(key_name.as_str())
            .ok_or_else(|| GithubError::Credentials(format!("parameter `{key_name}` is missing")))?;
        apps.push(GithubApp::new(index, app_id, key.expose(), installation_id)?);
    }
    Ok(apps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names() {
        let n = AppParameterNames::parse("/a/id:/b/id", "/a/key:/b/key", Some(":/b/inst")).unwrap();
        assert_eq!(n.installation_ids, vec![None, Some("/b/inst".to_string())]);
        let n = AppParameterNames::parse("/a/id", "/a/key", None).unwrap();
        assert_eq!(n.installation_ids, vec![None]);
        assert!(AppParameterNames::parse("/a/id:/b/id", "/a/key", None).is_err());
        assert!(AppParameterNames::parse("/a/id", "/a/key", Some("/x:/y")).is_err());
        assert!(AppParameterNames::parse("/a/id:", "/a/key:/b", None).is_err());
    }

    #[test]
    fn bad_keys_are_reported_without_their_value() {
        for bad in ["not base64 !!", "aGVsbG8=", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"]
        {
            let Err(err) = parse_private_key(bad) else { panic!("{bad:?} must not parse as a key") };
            assert!(!err.to_string().contains(bad), "{err}");
            assert!(!err.is_retryable());
        }
    }
}
