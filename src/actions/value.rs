//! Button values: opaque, HMAC-SHA256 signed pointers to a stored proposal.
//!
//! A value is `v1.<key id>.<proposal>.<kind>.<expires>.<mac>`: the MAC (hex, truncated to
//! 128 bits) covers everything before it under the key named by the key id, so several keys
//! can be accepted while one is rotated out. The argv is never in the value: it lives in the
//! proposal row, and a click can only point at it. Parsing is pure and total.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// What a click asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClickKind {
    Approve,
    Reject,
    DryRun,
    Rollback,
    Stop,
}

impl ClickKind {
    pub const ALL: [ClickKind; 5] = [
        ClickKind::Approve,
        ClickKind::Reject,
        ClickKind::DryRun,
        ClickKind::Rollback,
        ClickKind::Stop,
    ];

    fn letter(self) -> char {
        match self {
            ClickKind::Approve => 'a',
            ClickKind::Reject => 'r',
            ClickKind::DryRun => 'd',
            ClickKind::Rollback => 'b',
            ClickKind::Stop => 's',
        }
    }

    fn from_letter(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| s.len() == 1 && s.starts_with(k.letter()))
    }

    /// The button's `action_id`.
    pub fn action_id(self) -> &'static str {
        match self {
            ClickKind::Approve => "act_approve",
            ClickKind::Reject => "act_reject",
            ClickKind::DryRun => "act_dry_run",
            ClickKind::Rollback => "act_rollback",
            ClickKind::Stop => "act_stop",
        }
    }

    pub fn from_action_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.action_id() == id)
    }

    /// The audit and log name.
    pub fn name(self) -> &'static str {
        match self {
            ClickKind::Approve => "approve",
            ClickKind::Reject => "reject",
            ClickKind::DryRun => "dry_run",
            ClickKind::Rollback => "rollback",
            ClickKind::Stop => "stop",
        }
    }
}

/// A verified click: which proposal, what for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Click {
    pub proposal: i64,
    pub kind: ClickKind,
    /// Unix seconds after which the value is refused.
    pub expires: i64,
}

/// Why a value was refused (audited; the user gets a sentence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("the button value is malformed")]
    Malformed,
    #[error("the button was signed with a key that is no longer accepted")]
    UnknownKey,
    #[error("the button value's signature does not match")]
    BadSignature,
    #[error("the proposal expired")]
    Expired,
    #[error("the button does not belong to this message")]
    WrongButton,
}

impl ValueError {
    /// The audit outcome.
    pub fn code(&self) -> &'static str {
        match self {
            ValueError::Malformed => "malformed",
            ValueError::UnknownKey => "unknown_key",
            ValueError::BadSignature => "bad_signature",
            ValueError::Expired => "expired",
            ValueError::WrongButton => "wrong_button",
        }
    }
}

/// Signing keys by id; the first signs, all verify.
#[derive(Clone)]
pub struct Keys(Vec<(String, SecretString)>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.0.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "Keys({ids:?})")
    }
}

/// Longest accepted value (Slack's limit is 2,000).
const MAX_VALUE: usize = 200;
/// MAC bytes kept (hex-encoded): 128 bits.
const MAC_BYTES: usize = 16;

impl Keys {
    /// `SENTINEL_ACTION_SIGNING_KEY`: `secret`, or `id:secret,id2:secret2` (the first signs).
    /// Each secret must be at least 32 characters.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, part) in spec.split(',').map(str::trim).enumerate() {
            if part.is_empty() {
                continue;
            }
            let (id, secret) = match part.split_once(':') {
                Some((id, s)) => (id.trim().to_string(), s.trim()),
                None => (format!("k{i}"), part),
            };
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) || id.len() > 16 {
                return Err(format!(
                    "SENTINEL_ACTION_SIGNING_KEY: key id `{}` must be 1-16 letters or digits",
                    crate::text::truncate_chars(&id, 20)
                ));
            }
            if secret.chars().count() < 32 {
                return Err(format!(
                    "SENTINEL_ACTION_SIGNING_KEY: key `{id}` is shorter than 32 characters"
                ));
            }
            if keys.iter().any(|(k, _)| *k == id) {
                return Err(format!(
                    "SENTINEL_ACTION_SIGNING_KEY: key id `{id}` appears twice"
                ));
            }
            keys.push((id, SecretString::from(secret.to_string())));
        }
        if keys.is_empty() {
            return Err("SENTINEL_ACTION_SIGNING_KEY is empty".into());
        }
        Ok(Self(keys))
    }

    /// Signs a click under the first key.
    pub fn sign(&self, click: Click) -> String {
        let (id, secret) = &self.0[0];
        let body = format!(
            "v1.{id}.{}.{}.{}",
            click.proposal,
            click.kind.letter(),
            click.expires
        );
        let mac = mac(secret, &body);
        format!("{body}.{mac}")
    }

    /// Checks a value; `now` is Unix seconds.
    pub fn verify(&self, value: &str, now: i64) -> Result<Click, ValueError> {
        if value.len() > MAX_VALUE || !value.is_ascii() {
            return Err(ValueError::Malformed);
        }
        let parts: Vec<&str> = value.split('.').collect();
        let [version, id, proposal, kind, expires, given] = parts[..] else {
            return Err(ValueError::Malformed);
        };
        if version != "v1" {
            return Err(ValueError::Malformed);
        }
        let proposal: i64 = digits(proposal).ok_or(ValueError::Malformed)?;
        let expires: i64 = digits(expires).ok_or(ValueError::Malformed)?;
        let kind = ClickKind::from_letter(kind).ok_or(ValueError::Malformed)?;
        let given = hex::decode(given).map_err(|_| ValueError::Malformed)?;
        if given.len() != MAC_BYTES {
            return Err(ValueError::Malformed);
        }
        let (_, secret) = self
            .0
            .iter()
            .find(|(k, _)| k == id)
            .ok_or(ValueError::UnknownKey)?;
        let body = &value[..value.len() - MAC_BYTES * 2 - 1];
        let mut m = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes any key length");
        m.update(body.as_bytes());
        // Constant time: `verify_truncated_left` compares with `subtle`.
        m.verify_truncated_left(&given)
            .map_err(|_| ValueError::BadSignature)?;
        if expires < now {
            return Err(ValueError::Expired);
        }
        Ok(Click {
            proposal,
            kind,
            expires,
        })
    }
}

/// A positive decimal without sign or leading zeros, that fits an i64.
fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0')
    {
        return None;
    }
    s.parse().ok()
}

fn mac(secret: &SecretString, body: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes any key length");
    m.update(body.as_bytes());
    hex::encode(&m.finalize().into_bytes()[..MAC_BYTES])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "a-signing-key-that-is-long-enough-0123";
    const B: &str = "another-signing-key-long-enough-456789";

    fn keys(spec: &str) -> Keys {
        Keys::parse(spec).unwrap()
    }

    fn click(kind: ClickKind) -> Click {
        Click {
            proposal: 42,
            kind,
            expires: 2_000_000_000,
        }
    }

    #[test]
    fn a_signed_value_verifies_and_round_trips_every_kind() {
        let k = keys(A);
        for kind in ClickKind::ALL {
            let v = k.sign(click(kind));
            assert!(v.len() < 100, "{v}");
            assert_eq!(k.verify(&v, 1_000).unwrap(), click(kind));
            assert_eq!(ClickKind::from_action_id(kind.action_id()), Some(kind));
        }
    }

    #[test]
    fn altered_values_are_refused() {
        let k = keys(A);
        let v = k.sign(click(ClickKind::Reject));
        let swap = |from: &str, to: &str| v.replacen(from, to, 1);
        assert_eq!(
            k.verify(&swap(".42.", ".43."), 0),
            Err(ValueError::BadSignature)
        );
        assert_eq!(
            k.verify(&swap(".r.", ".a."), 0),
            Err(ValueError::BadSignature)
        );
        assert_eq!(
            k.verify(&swap(".2000000000.", ".2000000001."), 0),
            Err(ValueError::BadSignature)
        );
        let mut flipped = v.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(k.verify(&flipped, 0), Err(ValueError::BadSignature));
        assert_eq!(k.verify("", 0), Err(ValueError::Malformed));
        assert_eq!(k.verify(&format!("{v}.x"), 0), Err(ValueError::Malformed));
        assert_eq!(
            k.verify(&swap(".42.", ".042."), 0),
            Err(ValueError::Malformed)
        );
        assert_eq!(
            k.verify(&swap(".42.", ".-42."), 0),
            Err(ValueError::Malformed)
        );
    }

    #[test]
    fn expiry_is_checked_after_the_signature() {
        let k = keys(A);
        let v = k.sign(click(ClickKind::Approve));
        assert_eq!(k.verify(&v, 2_000_000_001), Err(ValueError::Expired));
        assert!(k.verify(&v, 2_000_000_000).is_ok());
    }

    #[test]
    fn rotation_accepts_old_keys_and_refuses_removed_ones() {
        let old = keys(&format!("old:{A}"));
        let v = old.sign(click(ClickKind::Approve));
        let rotated = keys(&format!("new:{B},old:{A}"));
        assert!(rotated.verify(&v, 0).is_ok());
        assert!(rotated
            .sign(click(ClickKind::Approve))
            .starts_with("v1.new."));
        let only_new = keys(&format!("new:{B}"));
        assert_eq!(only_new.verify(&v, 0), Err(ValueError::UnknownKey));
        // Same id, another secret: a forgery.
        let forged = keys(&format!("old:{B}"));
        assert_eq!(forged.verify(&v, 0), Err(ValueError::BadSignature));
    }

    #[test]
    fn bad_key_specs_are_explained() {
        assert!(Keys::parse("").is_err());
        assert!(Keys::parse("short").unwrap_err().contains("32"));
        assert!(Keys::parse(&format!("a:{A},a:{B}"))
            .unwrap_err()
            .contains("twice"));
        assert!(Keys::parse(&format!("bad id:{A}")).is_err());
        assert!(!format!("{:?}", keys(A)).contains(A));
    }

    proptest! {
        #[test]
        fn no_input_panics_or_verifies_unsigned(s in ".{0,300}") {
            let k = keys(A);
            prop_assert!(k.verify(&s, 0).is_err());
        }

        #[test]
        fn near_valid_inputs_never_panic(
            p in any::<i64>(), e in any::<i64>(), kind in "[a-z]{0,2}", mac in "[0-9a-f]{0,40}"
        ) {
            let k = keys(A);
            let v = format!("v1.k0.{p}.{kind}.{e}.{mac}");
            prop_assert!(k.verify(&v, 0).is_err());
        }

        #[test]
        fn every_signed_click_verifies(p in 1..i64::MAX, e in 1..i64::MAX, i in 0usize..5) {
            let k = keys(A);
            let c = Click { proposal: p, kind: ClickKind::ALL[i], expires: e };
            prop_assert_eq!(k.verify(&k.sign(c), 0), Ok(c));
        }
    }
}
