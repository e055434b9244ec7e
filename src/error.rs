//! Errors a user should read, kept apart from internal failures.
//!
//! A `UserError` is a sentence for the person at the terminal or in Slack. Everything else
//! is an `anyhow::Error` with its context chain, logged once where it is handled.

use std::fmt;

/// A mistake the user can fix: bad input, bad configuration, a missing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError(pub String);

impl UserError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// Masks the password of a URL (`postgres://user:***@host/db`), for messages and logs.
pub fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_password() {
        assert_eq!(
            mask_url("postgres://sentinel:hunter2@127.0.0.1:5432/db"),
            "postgres://sentinel:***@127.0.0.1:5432/db"
        );
    }

    #[test]
    fn leaves_url_without_password() {
        assert_eq!(mask_url("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn never_echoes_garbage() {
        assert_eq!(mask_url("not a url with secret"), "<unparseable URL>");
    }
}
