//! Pure parsers (no I/O) from each sender's payload to `Alert`s, with errors a sender can act on.
//!
//! `webhook` reads Alertmanager v4 and Grafana unified alerting, `generic` the small
//! documented format, `slack` the messages alerting tools post into channels.

mod generic;
mod slack;
mod webhook;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};

pub use generic::generic;
pub use slack::slack_message;
pub use webhook::{alertmanager, grafana};

/// Why a payload was refused; `Display` is the sentence the sender gets back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("missing field `{0}`")]
    MissingField(String),
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("unknown webhook version `{got}` (this endpoint accepts version {expected})")]
    UnknownVersion { got: String, expected: &'static str },
    #[error("not an alert: {0}")]
    NotAnAlert(String),
}

impl ParseError {
    /// A stable machine-readable code for JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::MalformedJson(_) => "malformed_json",
            ParseError::MissingField(_) => "missing_field",
            ParseError::InvalidField { .. } => "invalid_field",
            ParseError::UnknownVersion { .. } => "unknown_version",
            ParseError::NotAnAlert(_) => "not_an_alert",
        }
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ParseError {
    ParseError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

pub(crate) fn json(body: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError::MalformedJson(e.to_string()))
}

pub(crate) fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ParseError> {
    v.as_object()
        .ok_or_else(|| invalid(display_path(path), "expected a JSON object"))
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(body)".to_string()
    } else {
        path.to_string()
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A required string field (null counts as missing).
pub(crate) fn req_str<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, ParseError> {
    match m.get(key) {
        None | Some(Value::Null) => Err(ParseError::MissingField(join(path, key))),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(join(path, key), "expected a string")),
    }
}

/// An optional string field; numbers are accepted as their decimal text.
pub(crate) fn opt_str(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, ParseError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(invalid(join(path, key), "expected a string")),
    }
}

/// A `{name: value}` map; null or absent is empty (Alertmanager sends `commonAnnotations: null`).
/// Scalar values are kept as text; nested objects are refused.
pub(crate) fn string_map(
    v: Option<&Value>,
    path: &str,
) -> Result<BTreeMap<String, String>, ParseError> {
    let m = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid(path, "expected an object of strings")),
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => {
                return Err(invalid(
                    join(path, k),
                    "expected a string, not an array or object",
                ))
            }
        };
        out.insert(k.clone(), s);
    }
    Ok(out)
}

/// An RFC 3339 time. Absent, null, empty and Go's zero time (`0001-01-01T00:00:00Z`, which
/// Alertmanager sends for "not ended") are `None`.
pub(crate) fn opt_time(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<DateTime<Utc>>, ParseError> {
    let s = match m.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err(invalid(join(path, key), "expected an RFC 3339 time string")),
    };
    let t = DateTime::parse_from_rfc3339(s.trim())
        .map_err(|e| {
            invalid(
                join(path, key),
                format!("`{s}` is not an RFC 3339 time ({e})"),
            )
        })?
        .with_timezone(&Utc);
    Ok(if t.year() <= 1 { None } else { Some(t) })
}

pub(crate) fn req_array<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Vec<Value>, ParseError> {
    match m.get(key) {
        None | Some(Value::Null) => Err(ParseError::MissingField(join(path, key))),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(invalid(join(path, key), "expected an array")),
    }
}

#[cfg(test)]
mod fuzz;
