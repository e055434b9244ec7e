//! The tamper-evident audit log: every state change of an action is one row of
//! `audit_events`, written in the transaction of the change and chained with a keyed hash.
//!
//! `chain` (pure) defines a row's canonical bytes, the HMAC and redaction; `store` appends
//! and reads; `verify` walks the chain; `export` writes JSON lines; `anchor` publishes the
//! head outside the database. The format is in docs/audit.md.

pub mod anchor;
pub mod chain;
pub mod export;
pub mod store;
pub mod verify;

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};

pub use store::{append, append_unflushed, head, recent, wait_durable};
pub use verify::{verify, verify_with, Break, VerifyReport};

/// The HMAC key of the chain (`SENTINEL_AUDIT_KEY`). Held only by Sentinel's processes,
/// never written to the database; `Debug` prints no byte of it.
#[derive(Clone)]
pub struct AuditKey(SecretSlice<u8>);

impl AuditKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(SecretSlice::from(bytes))
    }

    /// The key as configured: the UTF-8 bytes of the string, as given (docs/audit.md).
    pub fn from_config(s: &str) -> Self {
        Self::new(s.as_bytes().to_vec())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey([REDACTED])")
    }
}

/// Who caused a state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Sentinel itself (a worker, a timer); stored as `actor_id = actor_name = "sentinel"`.
    Sentinel,
    /// A Slack user: their id (`U…`/`W…`) and display name at the time.
    User { id: String, name: String },
}

/// `actor_id` of [`Actor::Sentinel`].
pub const SENTINEL_ACTOR: &str = "sentinel";

impl Actor {
    /// `(actor_id, actor_name)` as stored.
    pub fn parts(&self) -> (&str, &str) {
        match self {
            Actor::Sentinel => (SENTINEL_ACTOR, SENTINEL_ACTOR),
            Actor::User { id, name } => (id, name),
        }
    }

    /// The actor of a stored row.
    pub fn from_parts(id: String, name: String) -> Self {
        if id == SENTINEL_ACTOR {
            Actor::Sentinel
        } else {
            Actor::User { id, name }
        }
    }
}

/// What happened. Stored as its snake_case name; new kinds need no migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Proposed,
    ApprovalRecorded,
    /// An approval click that does not count; `detail.reason` says why (not an approver,
    /// the requester, paused, capped).
    ApprovalRefused,
    Rejected,
    Expired,
    /// A click whose signature did not verify.
    ClickForged,
    RunStarted,
    RunExited,
    /// The lease of a run expired without an exit status.
    RunUnknown,
    VerifyPassed,
    VerifyFailed,
    RollbackStarted,
    RollbackExited,
    Paused,
    Resumed,
    AutoApproved,
    AutoApprovalTripped,
    /// Reserved: the anchor task does not append (an appended row would move the head it
    /// publishes); see `anchor`.
    HeadAnchored,
    DryRun,
    Stopped,
}

impl Kind {
    pub const ALL: [Kind; 20] = [
        Kind::Proposed,
        Kind::ApprovalRecorded,
        Kind::ApprovalRefused,
        Kind::Rejected,
        Kind::Expired,
        Kind::ClickForged,
        Kind::RunStarted,
        Kind::RunExited,
        Kind::RunUnknown,
        Kind::VerifyPassed,
        Kind::VerifyFailed,
        Kind::RollbackStarted,
        Kind::RollbackExited,
        Kind::Paused,
        Kind::Resumed,
        Kind::AutoApproved,
        Kind::AutoApprovalTripped,
        Kind::HeadAnchored,
        Kind::DryRun,
        Kind::Stopped,
    ];

    /// The stored name (`run_started`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Proposed => "proposed",
            Kind::ApprovalRecorded => "approval_recorded",
            Kind::ApprovalRefused => "approval_refused",
            Kind::Rejected => "rejected",
            Kind::Expired => "expired",
            Kind::ClickForged => "click_forged",
            Kind::RunStarted => "run_started",
            Kind::RunExited => "run_exited",
            Kind::RunUnknown => "run_unknown",
            Kind::VerifyPassed => "verify_passed",
            Kind::VerifyFailed => "verify_failed",
            Kind::RollbackStarted => "rollback_started",
            Kind::RollbackExited => "rollback_exited",
            Kind::Paused => "paused",
            Kind::Resumed => "resumed",
            Kind::AutoApproved => "auto_approved",
            Kind::AutoApprovalTripped => "auto_approval_tripped",
            Kind::HeadAnchored => "head_anchored",
            Kind::DryRun => "dry_run",
            Kind::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state change to record. Text fields and every string in `detail` are redacted
/// (`crate::redact::redact_patterns`) before they are hashed and stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub actor: Actor,
    pub kind: Kind,
    pub incident_id: Option<i64>,
    pub proposal_id: Option<i64>,
    /// The action's id in its runbook (`rollback-checkout`).
    pub action: Option<String>,
    /// The argv run (or proposed), never a shell line.
    pub argv: Option<Vec<String>>,
    /// A short result: `approved`, `exit 0`, `timeout`, `not_an_approver`.
    pub outcome: Option<String>,
    /// Free-form context (reason, approvers, output excerpt); stored as canonical JSON.
    pub detail: serde_json::Value,
}

impl Event {
    /// An event with no incident, proposal, action, argv or outcome, and `{}` as detail.
    pub fn new(actor: Actor, kind: Kind) -> Self {
        Self {
            actor,
            kind,
            incident_id: None,
            proposal_id: None,
            action: None,
            argv: None,
            outcome: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }
}

/// The end of the chain: the last row's `seq` and `hash` (hex). An empty log's head is
/// `(0, chain::GENESIS)`, the `prev_hash` of row 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// One row of `audit_events` as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    /// The database clock when the row was appended (microseconds).
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// A [`Kind`] name (kept as text, so rows written by a newer Sentinel still read).
    pub kind: String,
    pub incident_id: Option<i64>,
    pub proposal_id: Option<i64>,
    pub action: Option<String>,
    pub argv: Option<Vec<String>>,
    pub outcome: Option<String>,
    /// Canonical JSON text, exactly the bytes hashed.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredEvent {
    /// The row as one JSON object (the `audit export` line; docs/audit.md).
    pub fn to_json(&self) -> serde_json::Value {
        let (actor_id, actor_name) = self.actor.parts();
        let detail: serde_json::Value =
            serde_json::from_str(&self.detail).unwrap_or_else(|_| self.detail.clone().into());
        serde_json::json!({
            "seq": self.seq,
            "at": chain::format_at(&self.at),
            "actor_id": actor_id,
            "actor_name": actor_name,
            "kind": self.kind,
            "incident_id": self.incident_id,
            "proposal_id": self.proposal_id,
            "action": self.action,
            "argv": self.argv,
            "outcome": self.outcome,
            "detail": detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_never_prints() {
        let k = AuditKey::from_config("correct horse battery staple");
        assert_eq!(format!("{k:?}"), "AuditKey([REDACTED])");
    }

    #[test]
    fn kinds_round_trip_and_match_serde() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(Kind::parse("launched"), None);
    }

    #[test]
    fn actors_round_trip() {
        let u = Actor::User {
            id: "U1".into(),
            name: "alice".into(),
        };
        let (id, name) = u.parts();
        assert_eq!(Actor::from_parts(id.into(), name.into()), u);
        assert_eq!(
            Actor::from_parts("sentinel".into(), "sentinel".into()),
            Actor::Sentinel
        );
    }
}
