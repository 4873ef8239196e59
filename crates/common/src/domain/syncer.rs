//! Which runner release asset to mirror, and the checksum GitHub publishes for it.

use serde::Deserialize;

/// The parts of a GitHub release the syncer reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Release {
    pub tag_name: String,
    #[serde(default)]
    pub body: Option<String>,
    pub assets: Vec<ReleaseAsset>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseAsset {
    pub name: String,
    pub size: u64,
    pub browser_download_url: String,
    /// `sha256:<hex>`, published for assets uploaded since 2025.
    #[serde(default)]
    pub digest: Option<String>,
}

impl Release {
    /// `v2.321.0` → `2.321.0`.
    pub fn version(&self) -> &str {
        self.tag_name.strip_prefix('v').unwrap_or(&self.tag_name)
    }

    /// The one asset for `os` (`linux`, `win`, `osx`) and `arch` (`x64`, `arm64`, `arm`):
    /// `actions-runner-<os>-<arch>-<version>.<ext>` (upstream's rule, which excludes the
    /// `-noexternals`/`-noruntime`/`-trimmed` variants).
    pub fn asset_for(&self, os: &str, arch: &str) -> Result<&ReleaseAsset, String> {
        let wanted = format!("actions-runner-{os}-{arch}-{}.", self.version());
        let matching: Vec<&ReleaseAsset> = self.assets.iter().filter(|a| a.name.starts_with(&wanted)).collect();
        match matching.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("release {} has no asset `{wanted}*`", self.tag_name)),
            many => Err(format!("release {} has {} assets `{wanted}*`", self.tag_name, many.len())),
        }
    }

    /// The SHA-256 GitHub publishes for the asset: its `digest`, else the checksum in the release
    /// notes (`<!-- BEGIN SHA linux-x64 -->hex<!-- END SHA linux-x64 -->`).
    pub fn sha256_for(&self, asset: &ReleaseAsset, os: &str, arch: &str) -> Option<String> {
        // A digest that does not parse is no reason to skip the release notes' checksum.
        if let Some(sha) = asset.digest.as_deref().and_then(|d| d.strip_prefix("sha256:")).and_then(valid_sha256) {
            return Some(sha);
        }
        let body = self.body.as_deref()?;
        let begin = format!("<!-- BEGIN SHA {os}-{arch} -->");
        let start = body.find(&begin)? + begin.len();
        let end = body[start..].find("<!-- END SHA")?;
        valid_sha256(body[start..start + end].trim())
    }
}

fn valid_sha256(hex: &str) -> Option<String> {
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| hex.to_ascii_lowercase())
}

/// The S3 object key upstream uses: `actions-runner-<os>.tar.gz`, `.zip` for Windows.
pub fn default_object_key(os: &str) -> String {
    if os == "win" { "actions-runner-win.zip".into() } else { format!("actions-runner-{os}.tar.gz") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> Release {
        let asset = |name: &str, digest: Option<&str>| ReleaseAsset {
            name: name.into(),
            size: 1,
            browser_download_url: format!("https://github.com/actions/runner/releases/download/v2.321.0/{name}"),
            digest: digest.map(str::to_string),
        };
        let sha = "a".repeat(64);
        Release {
            tag_name: "v2.321.0".into(),
            body: Some(format!(
                "notes\n- linux-arm64 <!-- BEGIN SHA linux-arm64 -->{}<!-- END SHA linux-arm64 -->",
                "B".repeat(64)
            )),
            assets: vec![
                asset("actions-runner-linux-x64-2.321.0.tar.gz", Some(&format!("sha256:{sha}"))),
                asset("actions-runner-linux-x64-2.321.0-noexternals.tar.gz", None),
                asset("actions-runner-linux-arm64-2.321.0.tar.gz", None),
                asset("actions-runner-linux-arm-2.321.0.tar.gz", None),
                asset("actions-runner-win-x64-2.321.0.zip", None),
                asset("actions-runner-osx-arm64-2.321.0.tar.gz", None),
            ],
        }
    }

    #[test]
    fn asset_choice_per_os_and_arch() {
        let r = release();
        let cases = [
            ("linux", "x64", Ok("actions-runner-linux-x64-2.321.0.tar.gz")),
            ("linux", "arm64", Ok("actions-runner-linux-arm64-2.321.0.tar.gz")),
            ("linux", "arm", Ok("actions-runner-linux-arm-2.321.0.tar.gz")),
            ("win", "x64", Ok("actions-runner-win-x64-2.321.0.zip")),
            ("osx", "arm64", Ok("actions-runner-osx-arm64-2.321.0.tar.gz")),
            ("osx", "x64", Err(())),
            ("win", "arm64", Err(())),
        ];
        for (os, arch, expected) in cases {
            let got = r.asset_for(os, arch).map(|a| a.name.as_str()).map_err(|_| ());
            assert_eq!(got, expected, "{os}-{arch}");
        }
        assert_eq!(r.version(), "2.321.0");
    }

    #[test]
    fn checksums() {
        let r = release();
        let x64 = r.asset_for("linux", "x64").unwrap();
        assert_eq!(r.sha256_for(x64, "linux", "x64"), Some("a".repeat(64)));
        let arm64 = r.asset_for("linux", "arm64").unwrap();
        assert_eq!(r.sha256_for(arm64, "linux", "arm64"), Some("b".repeat(64)), "from the release notes, lower-cased");
        let arm = r.asset_for("linux", "arm").unwrap();
        assert_eq!(r.sha256_for(arm, "linux", "arm"), None);
        // A malformed digest falls back to the release notes' checksum.
        let mut garbled = arm64.clone();
        garbled.digest = Some("sha256:not-hex".into());
        assert_eq!(r.sha256_for(&garbled, "linux", "arm64"), Some("b".repeat(64)));
        assert_eq!(default_object_key("linux"), "actions-runner-linux.tar.gz");
        assert_eq!(default_object_key("win"), "actions-runner-win.zip");
    }
}
