//! PLACEHOLDER for the audit log (replaced by the h-audit branch at merge).

use sqlx::PgPool;

#[derive(Clone)]
pub struct AuditKey(#[allow(dead_code)] Vec<u8>);
impl AuditKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    pub fn from_config(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}
impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([REDACTED])")
    }
}

#[derive(Debug, Clone)]
pub enum Actor {
    Sentinel,
    User { id: String, name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Proposed,
    ApprovalRecorded,
    ApprovalRefused,
    Rejected,
    Expired,
    ClickForged,
    RunStarted,
    RunExited,
    RunUnknown,
    VerifyPassed,
    VerifyFailed,
    RollbackStarted,
    RollbackExited,
    Paused,
    Resumed,
    AutoApproved,
    AutoApprovalTripped,
    HeadAnchored,
    DryRun,
    Stopped,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub actor: Actor,
    pub kind: Kind,
    pub incident_id: Option<i64>,
    pub proposal_id: Option<i64>,
    pub action: Option<String>,
    pub argv: Option<Vec<String>>,
    pub outcome: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor_id: String,
    pub actor_name: String,
    pub kind: String,
    pub incident_id: Option<i64>,
    pub action: Option<String>,
    pub outcome: Option<String>,
}

pub async fn append(
    _conn: &mut sqlx::PgConnection,
    _key: &AuditKey,
    _event: Event,
) -> anyhow::Result<Head> {
    Ok(Head {
        seq: 0,
        hash: String::new(),
    })
}

pub async fn recent(
    _pool: &PgPool,
    _incident_id: Option<i64>,
    _limit: i64,
) -> anyhow::Result<Vec<StoredEvent>> {
    Ok(Vec::new())
}
