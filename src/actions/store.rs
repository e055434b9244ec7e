//! Proposal rows and their state changes. Every change is one conditional `UPDATE ...
//! WHERE state = ANY(expected) RETURNING`: whoever gets the row does the work; a
//! redelivered click, a double click or another replica gets nothing and is told so.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

/// States a proposal moves through (`docs/actions.md` has the diagram).
pub mod state {
    pub const PROPOSED: &str = "proposed";
    pub const AWAITING_SECOND: &str = "awaiting_second";
    pub const APPROVED: &str = "approved";
    pub const REJECTED: &str = "rejected";
    pub const EXPIRED: &str = "expired";
    pub const RUNNING: &str = "running";
    pub const VERIFYING: &str = "verifying";
    pub const SUCCEEDED: &str = "succeeded";
    pub const VERIFIED: &str = "verified";
    pub const FAILED: &str = "failed";
    pub const VERIFY_FAILED: &str = "verify_failed";
    pub const OUTCOME_UNKNOWN: &str = "outcome_unknown";
    pub const ROLLING_BACK: &str = "rolling_back";
    pub const ROLLED_BACK: &str = "rolled_back";
    pub const ROLLBACK_FAILED: &str = "rollback_failed";
    pub const STOPPED: &str = "stopped";

    /// Waiting for approvals.
    pub const OPEN: &[&str] = &[PROPOSED, AWAITING_SECOND];
    /// A process may be alive (under a run lease).
    pub const LEASED: &[&str] = &[RUNNING, VERIFYING, ROLLING_BACK];
    /// Failed in a way a rollback may repair.
    pub const ROLLBACKABLE: &[&str] = &[FAILED, VERIFY_FAILED];
}

/// One proposal as stored, with the approvals it has.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Proposal {
    pub id: i64,
    pub incident_id: Option<i64>,
    pub runbook_path: String,
    pub action_id: String,
    pub title: String,
    pub risk: String,
    pub argv: Vec<String>,
    pub params: Json<BTreeMap<String, String>>,
    pub verify_argv: Option<Vec<String>>,
    pub verify_expect: Option<String>,
    pub verify_timeout_secs: Option<i32>,
    pub rollback_argv: Option<Vec<String>>,
    pub rollback_auto: bool,
    pub timeout_secs: i32,
    pub approvers: Vec<String>,
    pub approvals_needed: i32,
    pub requested_by: Option<String>,
    pub auto: bool,
    pub channel: String,
    pub thread_ts: Option<String>,
    pub message_ts: Option<String>,
    pub state: String,
    pub expires_at: DateTime<Utc>,
    pub stop_requested: bool,
    pub decided_by: Option<String>,
    pub exit_code: Option<i32>,
    pub output: Option<String>,
    pub verify_output: Option<String>,
    /// Who approved, in order.
    pub approved_by: Vec<String>,
}

impl Proposal {
    /// Every command the action may run: itself, its verification, its rollback.
    pub fn commands(&self) -> impl Iterator<Item = &Vec<String>> {
        std::iter::once(&self.argv)
            .chain(self.verify_argv.as_ref())
            .chain(self.rollback_argv.as_ref())
    }
}

/// Columns of [`Proposal`] (with the approvals) for `RETURNING` and `SELECT`.
const COLUMNS: &str = "p.id, p.incident_id, p.runbook_path, p.action_id, p.title, p.risk, p.argv,
    p.params, p.verify_argv, p.verify_expect, p.verify_timeout_secs, p.rollback_argv,
    p.rollback_auto, p.timeout_secs, p.approvers, p.approvals_needed, p.requested_by, p.auto,
    p.channel, p.thread_ts, p.message_ts, p.state, p.expires_at, p.stop_requested, p.decided_by,
    p.exit_code,
    p.output, p.verify_output,
    coalesce((SELECT array_agg(a.user_id ORDER BY a.at) FROM action_approvals a
              WHERE a.proposal_id = p.id), '{}') AS approved_by";

/// What a new proposal stores.
#[derive(Debug, Clone)]
pub struct NewProposal {
    pub incident_id: Option<i64>,
    pub runbook_path: String,
    pub action_id: String,
    pub title: String,
    pub risk: String,
    pub argv: Vec<String>,
    pub params: BTreeMap<String, String>,
    pub verify_argv: Option<Vec<String>>,
    pub verify_expect: Option<String>,
    pub verify_timeout_secs: Option<i32>,
    pub rollback_argv: Option<Vec<String>>,
    pub rollback_auto: bool,
    pub timeout_secs: i32,
    pub approvers: Vec<String>,
    pub approvals_needed: i32,
    pub requested_by: Option<String>,
    pub auto: bool,
    pub channel: String,
    pub thread_ts: Option<String>,
    pub ttl_secs: i64,
}

pub async fn insert(conn: &mut PgConnection, p: &NewProposal) -> anyhow::Result<Proposal> {
    let sql = format!(
        "WITH p AS (
           INSERT INTO action_proposals (incident_id, runbook_path, action_id, title, risk, argv,
             params, verify_argv, verify_expect, verify_timeout_secs, rollback_argv, rollback_auto,
             timeout_secs, approvers, approvals_needed, requested_by, auto, channel, thread_ts,
             state, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
             $18, $19, CASE WHEN $17 THEN 'approved' ELSE 'proposed' END,
             clock_timestamp() + make_interval(secs => $20))
           RETURNING *)
         SELECT {COLUMNS} FROM p"
    );
    sqlx::query_as(&sql)
        .bind(p.incident_id)
        .bind(&p.runbook_path)
        .bind(&p.action_id)
        .bind(&p.title)
        .bind(&p.risk)
        .bind(&p.argv)
        .bind(Json(&p.params))
        .bind(&p.verify_argv)
        .bind(&p.verify_expect)
        .bind(p.verify_timeout_secs)
        .bind(&p.rollback_argv)
        .bind(p.rollback_auto)
        .bind(p.timeout_secs)
        .bind(&p.approvers)
        .bind(p.approvals_needed)
        .bind(&p.requested_by)
        .bind(p.auto)
        .bind(&p.channel)
        .bind(&p.thread_ts)
        .bind(p.ttl_secs as f64)
        .fetch_one(&mut *conn)
        .await
        .context("Failed to store the proposal")
}

pub async fn load(pool: &PgPool, id: i64) -> anyhow::Result<Option<Proposal>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM action_proposals p WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("Failed to read the proposal")
}

/// Moves proposal `id` from one of `from` to `to`; `None` when it was not in `from` (someone
/// else moved it first).
pub async fn transition(
    conn: &mut PgConnection,
    id: i64,
    from: &[&str],
    to: &str,
    by: Option<&str>,
) -> anyhow::Result<Option<Proposal>> {
    let sql = format!(
        "WITH p AS (UPDATE action_proposals SET state = $3, updated_at = clock_timestamp(),
                      decided_by = coalesce($4, decided_by)
                    WHERE id = $1 AND state = ANY($2) RETURNING *)
         SELECT {COLUMNS} FROM p"
    );
    sqlx::query_as(&sql)
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(by)
        .fetch_optional(&mut *conn)
        .await
        .with_context(|| format!("Failed to move proposal {id} to {to}"))
}

/// Records an approval; `false` when this user had already approved.
pub async fn add_approval(conn: &mut PgConnection, id: i64, user: &str) -> anyhow::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO action_approvals (proposal_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(user)
    .execute(&mut *conn)
    .await
    .context("Failed to record the approval")?;
    Ok(r.rows_affected() == 1)
}

/// Claims an approved proposal to run it: the run lease, one action at a time per incident.
/// `None` when someone else claimed it, or another action of its incident is running.
pub async fn claim_run(
    conn: &mut PgConnection,
    id: i64,
    owner: uuid::Uuid,
    lease_secs: f64,
) -> anyhow::Result<Option<Proposal>> {
    let sql = format!(
        "WITH p AS (UPDATE action_proposals SET state = 'running', run_owner = $2,
                      run_until = clock_timestamp() + make_interval(secs => $3),
                      started_at = clock_timestamp(), updated_at = clock_timestamp()
                    WHERE id = $1 AND state = 'approved'
                      AND NOT EXISTS (SELECT 1 FROM action_proposals o
                                      WHERE o.incident_id = action_proposals.incident_id
                                        AND o.state = ANY($4) AND o.id <> $1)
                    RETURNING *)
         SELECT {COLUMNS} FROM p"
    );
    let r = sqlx::query_as(&sql)
        .bind(id)
        .bind(owner)
        .bind(lease_secs)
        .bind(state::LEASED)
        .fetch_optional(&mut *conn)
        .await;
    match r {
        Ok(p) => Ok(p),
        // The unique index lost a race with another replica's claim in the same incident.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context("Failed to claim the run")),
    }
}

/// Renews the run lease; returns whether a Stop was asked for. `None`: the lease is gone.
pub async fn renew_run(
    pool: &PgPool,
    id: i64,
    owner: uuid::Uuid,
    lease_secs: f64,
) -> anyhow::Result<Option<bool>> {
    sqlx::query_scalar(
        "UPDATE action_proposals SET run_until = clock_timestamp() + make_interval(secs => $3)
         WHERE id = $1 AND run_owner = $2 AND state = ANY($4) RETURNING stop_requested",
    )
    .bind(id)
    .bind(owner)
    .bind(lease_secs)
    .bind(state::LEASED)
    .fetch_optional(pool)
    .await
    .context("Failed to renew the run lease")
}

/// Moves a leased run on (`running` → `verifying`, or to its end), recording what it did.
pub async fn record_run(
    conn: &mut PgConnection,
    id: i64,
    owner: uuid::Uuid,
    to: &str,
    exit_code: Option<i32>,
    output: &str,
) -> anyhow::Result<Option<Proposal>> {
    let sql = format!(
        "WITH p AS (UPDATE action_proposals SET state = $3, exit_code = $4, output = $5,
                      finished_at = clock_timestamp(), updated_at = clock_timestamp(),
                      run_owner = CASE WHEN $3 = ANY($6) THEN run_owner END,
                      run_until = CASE WHEN $3 = ANY($6) THEN run_until END
                    WHERE id = $1 AND run_owner = $2 AND state = ANY($6) RETURNING *)
         SELECT {COLUMNS} FROM p"
    );
    sqlx::query_as(&sql)
        .bind(id)
        .bind(owner)
        .bind(to)
        .bind(exit_code)
        .bind(output)
        .bind(state::LEASED)
        .fetch_optional(&mut *conn)
        .await
        .context("Failed to record the run")
}

/// Records the verification's last output and the end state.
pub async fn record_verify(
    conn: &mut PgConnection,
    id: i64,
    owner: uuid::Uuid,
    to: &str,
    output: &str,
) -> anyhow::Result<Option<Proposal>> {
    let sql = format!(
        "WITH p AS (UPDATE action_proposals SET state = $3, verify_output = $4,
                      updated_at = clock_timestamp(), run_owner = NULL, run_until = NULL
                    WHERE id = $1 AND run_owner = $2 AND state = 'verifying' RETURNING *)
         SELECT {COLUMNS} FROM p"
    );
    sqlx::query_as(&sql)
        .bind(id)
        .bind(owner)
        .bind(to)
        .bind(output)
        .fetch_optional(&mut *conn)
        .await
        .context("Failed to record the verification")
}

/// Starts a rollback under a run lease (from a failed state).
pub async fn claim_rollback(
    conn: &mut PgConnection,
    id: i64,
    owner: uuid::Uuid,
    lease_secs: f64,
) -> anyhow::Result<Option<Proposal>> {
    let sql = format!(
        "WITH p AS (UPDATE action_proposals SET state = 'rolling_back', run_owner = $2,
                      run_until = clock_timestamp() + make_interval(secs => $3),
                      updated_at = clock_timestamp()
                    WHERE id = $1 AND state = ANY($4) AND rollback_argv IS NOT NULL RETURNING *)
         SELECT {COLUMNS} FROM p"
    );
    sqlx::query_as(&sql)
        .bind(id)
        .bind(owner)
        .bind(lease_secs)
        .bind(state::ROLLBACKABLE)
        .fetch_optional(&mut *conn)
        .await
        .context("Failed to claim the rollback")
}

pub async fn set_message(pool: &PgPool, id: i64, ts: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE action_proposals SET message_ts = $2 WHERE id = $1")
        .bind(id)
        .bind(ts)
        .execute(pool)
        .await
        .context("Failed to record the proposal message")?;
    Ok(())
}

pub async fn request_stop(conn: &mut PgConnection, id: i64, by: &str) -> anyhow::Result<bool> {
    let r = sqlx::query(
        "UPDATE action_proposals SET stop_requested = true, decided_by = $3
         WHERE id = $1 AND state = ANY($2) AND NOT stop_requested",
    )
    .bind(id)
    .bind(state::LEASED)
    .bind(by)
    .execute(&mut *conn)
    .await
    .context("Failed to record the stop")?;
    Ok(r.rows_affected() == 1)
}

/// Proposals whose time ran out (`OPEN` past `expires_at`) or whose run lease expired
/// without an exit, moved to `expired` / `outcome_unknown` (each caller gets its own rows).
pub async fn sweep(conn: &mut PgConnection) -> anyhow::Result<Vec<Proposal>> {
    let sql = format!(
        "WITH p AS (UPDATE action_proposals SET
                      state = CASE WHEN state = ANY($1) THEN 'expired' ELSE 'outcome_unknown' END,
                      run_owner = NULL, run_until = NULL, updated_at = clock_timestamp()
                    WHERE (state = ANY($1) AND expires_at < clock_timestamp())
                       OR (state = ANY($2) AND run_until < clock_timestamp())
                    RETURNING *)
         SELECT {COLUMNS} FROM p"
    );
    sqlx::query_as(&sql)
        .bind(state::OPEN)
        .bind(state::LEASED)
        .fetch_all(&mut *conn)
        .await
        .context("Failed to sweep proposals")
}

/// Approved proposals waiting for a run (their incident was busy, or a replica stopped
/// between the approval and the claim).
pub async fn approved_waiting(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT id FROM action_proposals WHERE state = 'approved'
           AND updated_at < clock_timestamp() - interval '2 seconds' ORDER BY id LIMIT 20",
    )
    .fetch_all(pool)
    .await
    .context("Failed to list approved proposals")
}

/// Runs started in the last hour: overall and of `action_id`.
pub async fn runs_last_hour(
    conn: &mut PgConnection,
    action_id: &str,
) -> anyhow::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE action_id = $1) FROM action_proposals
         WHERE started_at > clock_timestamp() - interval '1 hour'",
    )
    .bind(action_id)
    .fetch_one(&mut *conn)
    .await
    .context("Failed to count recent runs")
}

/// Whether `name` (`global`, `auto:<action>`) is paused.
pub async fn paused(conn: &mut PgConnection, name: &str) -> anyhow::Result<bool> {
    let p: Option<bool> = sqlx::query_scalar("SELECT paused FROM action_switches WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .context("Failed to read the action switch")?;
    Ok(p.unwrap_or(false))
}

/// Sets a switch; `false` when it already was in that position.
pub async fn set_switch(
    conn: &mut PgConnection,
    name: &str,
    paused: bool,
    by: &str,
    reason: &str,
) -> anyhow::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO action_switches (name, paused, reason, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET paused = $2, reason = $3, updated_by = $4,
           updated_at = clock_timestamp()
         WHERE action_switches.paused IS DISTINCT FROM $2",
    )
    .bind(name)
    .bind(paused)
    .bind(reason)
    .bind(by)
    .execute(&mut *conn)
    .await
    .context("Failed to set the action switch")?;
    Ok(r.rows_affected() == 1)
}

/// Outcomes (`true` = success) of the last `n` auto-approved runs of `action_id`, newest first.
pub async fn auto_outcomes(pool: &PgPool, action_id: &str, n: i64) -> anyhow::Result<Vec<bool>> {
    sqlx::query_scalar(
        "SELECT state IN ('succeeded', 'verified') FROM action_proposals
         WHERE auto AND action_id = $1 AND finished_at IS NOT NULL
           AND state IN ('succeeded', 'verified', 'failed', 'verify_failed', 'outcome_unknown',
                         'rolled_back', 'rollback_failed', 'stopped')
         ORDER BY finished_at DESC LIMIT $2",
    )
    .bind(action_id)
    .bind(n)
    .fetch_all(pool)
    .await
    .context("Failed to read auto-approval outcomes")
}
