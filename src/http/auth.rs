//! Per-source webhook authentication: a bearer token, or an HMAC-SHA256 signature of the
//! raw body in a header, both compared in constant time.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Headers that may carry `sha256=<hex>` (or bare hex) of HMAC-SHA256(secret, body).
pub const SIGNATURE_HEADERS: [&str; 3] = [
    "x-sentinel-signature",
    "x-grafana-alerting-signature",
    "x-hub-signature-256",
];

/// How one source (Alertmanager, Grafana, generic) proves who it is. Either or both may be
/// set; a request passes if any configured check passes.
#[derive(Debug, Clone, Default)]
pub struct SourceAuth {
    pub bearer: Option<SecretString>,
    pub hmac_secret: Option<SecretString>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials are configured for this webhook; set its token or HMAC secret (or SENTINEL_WEBHOOK_ALLOW_UNAUTHENTICATED=true for local testing)")]
    NotConfigured,
    #[error("missing credentials: send `Authorization: Bearer <token>` or a `X-Sentinel-Signature: sha256=<hex HMAC-SHA256 of the body>` header")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
}

impl SourceAuth {
    pub fn is_configured(&self) -> bool {
        self.bearer.is_some() || self.hmac_secret.is_some()
    }

    /// Checks a request; `allow_unauthenticated` only matters when nothing is configured.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        allow_unauthenticated: bool,
    ) -> Result<(), AuthError> {
        if !self.is_configured() {
            return if allow_unauthenticated {
                Ok(())
            } else {
                Err(AuthError::NotConfigured)
            };
        }
        let mut presented = false;
        if let Some(token) = &self.bearer {
            if let Some(got) = bearer(headers) {
                presented = true;
                if token_eq(got, token.expose_secret()) {
                    return Ok(());
                }
            }
        }
        if let Some(secret) = &self.hmac_secret {
            for name in SIGNATURE_HEADERS {
                if let Some(sig) = headers.get(name).and_then(|v| v.to_str().ok()) {
                    presented = true;
                    if signature_ok(secret.expose_secret(), body, sig) {
                        return Ok(());
                    }
                }
            }
        }
        Err(if presented {
            AuthError::Invalid
        } else {
            AuthError::Missing
        })
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Constant time regardless of where the strings differ or how long they are (both sides
/// are hashed to 32 bytes first).
fn token_eq(a: &str, b: &str) -> bool {
    let ha = Sha256::digest(a.as_bytes());
    let hb = Sha256::digest(b.as_bytes());
    ha.ct_eq(&hb).into()
}

/// `sha256=<hex>` or `<hex>` of HMAC-SHA256(secret, body), checked with `verify_slice`.
pub fn signature_ok(secret: &str, body: &[u8], header: &str) -> bool {
    let hex_sig = header.trim();
    let hex_sig = hex_sig.strip_prefix("sha256=").unwrap_or(hex_sig);
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The header value a sender computes (tests, load generator, docs).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn auth(bearer: Option<&str>, hmac: Option<&str>) -> SourceAuth {
        SourceAuth {
            bearer: bearer.map(|s| SecretString::from(s.to_string())),
            hmac_secret: hmac.map(|s| SecretString::from(s.to_string())),
        }
    }

    #[test]
    fn bearer_token() {
        let a = auth(Some("s3cret"), None);
        assert_eq!(
            a.verify(
                &headers(&[("authorization", "Bearer s3cret")]),
                b"{}",
                false
            ),
            Ok(())
        );
        assert_eq!(
            a.verify(
                &headers(&[("authorization", "bearer s3cret")]),
                b"{}",
                false
            ),
            Ok(())
        );
        assert_eq!(
            a.verify(&headers(&[("authorization", "Bearer s3cre")]), b"{}", false),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.verify(&headers(&[]), b"{}", false),
            Err(AuthError::Missing)
        );
        assert_eq!(
            a.verify(
                &headers(&[("authorization", "Basic czNjcmV0")]),
                b"{}",
                false
            ),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn hmac_signature_over_raw_body() {
        let a = auth(None, Some("key"));
        let body = br#"{"version":"4"}"#;
        let sig = sign("key", body);
        assert_eq!(
            a.verify(&headers(&[("x-sentinel-signature", &sig)]), body, false),
            Ok(())
        );
        let bare = sig.trim_start_matches("sha256=").to_string();
        assert_eq!(
            a.verify(
                &headers(&[("x-grafana-alerting-signature", &bare)]),
                body,
                false
            ),
            Ok(())
        );
        // One changed byte of the body invalidates the signature.
        assert_eq!(
            a.verify(
                &headers(&[("x-sentinel-signature", &sig)]),
                br#"{"version":"5"}"#,
                false
            ),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.verify(
                &headers(&[("x-sentinel-signature", "sha256=zz")]),
                body,
                false
            ),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(signature_ok(
            "Jefe",
            b"what do ya want for nothing?",
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ));
    }

    #[test]
    fn unconfigured_source_needs_explicit_opt_in() {
        let a = SourceAuth::default();
        assert_eq!(
            a.verify(&headers(&[]), b"", false),
            Err(AuthError::NotConfigured)
        );
        assert_eq!(a.verify(&headers(&[]), b"", true), Ok(()));
    }

    #[test]
    fn either_configured_check_passes() {
        let a = auth(Some("t"), Some("k"));
        let sig = sign("k", b"x");
        assert_eq!(
            a.verify(
                &headers(&[
                    ("authorization", "Bearer wrong"),
                    ("x-sentinel-signature", &sig)
                ]),
                b"x",
                false
            ),
            Ok(())
        );
    }
}
