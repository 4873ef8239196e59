//! `X-Hub-Signature-256`: HMAC-SHA256 of the exact delivery bytes, keyed by the webhook secret.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIX: &str = "sha256=";

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not `sha256=<64 hex digits>`")]
    Malformed,
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Mismatch,
}

/// The header value GitHub would send for `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(PREFIX.len() + 64);
    out.push_str(PREFIX);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// Checks `header` against `body` in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex = header.strip_prefix(PREFIX).ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    let bytes = hex.as_bytes();
    (0..32)
        .map(|i| {
            let hi = (bytes[2 * i] as char).to_digit(16)?;
            let lo = (bytes[2 * i + 1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_documented_example() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let header = sign(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(header, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert_eq!(verify(b"It's a Secret to Everybody", b"Hello, World!", Some(&header)), Ok(()));
    }

    #[test]
    fn rules() {
        let body = br#"{"action":"queued"}"#;
        let good = sign(b"s3cret", body);
        let cases: Vec<(Option<String>, Result<(), SignatureError>)> = vec![
            (Some(good.clone()), Ok(())),
            (Some(good.to_uppercase().replace("SHA256=", "sha256=")), Ok(())),
            (None, Err(SignatureError::Missing)),
            (Some("sha1=abc".into()), Err(SignatureError::Malformed)),
            (Some("sha256=zz".into()), Err(SignatureError::Malformed)),
            (Some(format!("sha256={}", "g".repeat(64))), Err(SignatureError::Malformed)),
            (Some(sign(b"other", body)), Err(SignatureError::Mismatch)),
        ];
        for (header, expected) in cases {
            assert_eq!(verify(b"s3cret", body, header.as_deref()), expected, "{header:?}");
        }
        // A single changed byte of the body fails.
        assert_eq!(verify(b"s3cret", br#"{"action":"queuee"}"#, Some(&good)), Err(SignatureError::Mismatch));
    }
}
