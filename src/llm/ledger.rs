//! Token accounting: every LLM call is recorded (Postgres `llm_calls` when a pool is given,
//! memory otherwise) and per-incident totals feed the token budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;

/// One LLM call, as recorded.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub incident: Option<String>,
    pub purpose: &'static str,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub outcome: &'static str,
    pub duration_ms: u64,
}

#[derive(Clone, Default)]
pub struct TokenLedger {
    pool: Option<PgPool>,
    /// Calls and tokens are counted here too (`sentinel_llm_*`).
    metrics: crate::metrics::Metrics,
    /// Totals per incident, always kept (the database is the durable copy).
    memory: Arc<Mutex<HashMap<String, u64>>>,
}

impl TokenLedger {
    /// Records into `llm_calls`; budgets survive restarts.
    pub fn postgres(pool: PgPool) -> Self {
        Self {
            pool: Some(pool),
            ..Self::default()
        }
    }

    /// Counts every call in `metrics` as well.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Memory only (benchmarks, the CLI without a database).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Tokens already spent on `incident`.
    pub async fn used(&self, incident: &str) -> u64 {
        if let Some(pool) = &self.pool {
            let r: Result<(Option<i64>,), _> = sqlx::query_as(
                "SELECT sum(total_tokens)::bigint FROM llm_calls WHERE incident_key = $1",
            )
            .bind(incident)
            .fetch_one(pool)
            .await;
            match r {
                Ok((n,)) => return n.unwrap_or(0).max(0) as u64,
                Err(e) => tracing::warn!(error = %e, "cannot read the token ledger; using memory"),
            }
        }
        self.memory
            .lock()
            .map(|m| m.get(incident).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Stores one call. A failure to store is logged, never fatal to the diagnosis.
    pub async fn record(&self, rec: CallRecord) {
        let total = u64::from(rec.prompt_tokens) + u64::from(rec.completion_tokens);
        self.metrics.llm_call(
            rec.purpose,
            rec.outcome,
            rec.prompt_tokens,
            rec.completion_tokens,
        );
        if let Some(incident) = &rec.incident {
            if let Ok(mut m) = self.memory.lock() {
                *m.entry(incident.clone()).or_default() += total;
            }
        }
        let Some(pool) = &self.pool else { return };
        let r = sqlx::query(
            "INSERT INTO llm_calls (incident_key, purpose, model, prompt_tokens, completion_tokens,
                                    total_tokens, outcome, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&rec.incident)
        .bind(rec.purpose)
        .bind(&rec.model)
        .bind(rec.prompt_tokens as i32)
        .bind(rec.completion_tokens as i32)
        .bind(total.min(i32::MAX as u64) as i32)
        .bind(rec.outcome)
        .bind(rec.duration_ms.min(i32::MAX as u64) as i32)
        .execute(pool)
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "failed to record LLM token usage");
        }
    }
}
