//! One scrape of `GET /metrics`: the values every replica must agree on (incidents open,
//! the audit chain's length) read from Postgres now, then the whole registry encoded.

use std::time::Duration;

use sqlx::PgPool;

use super::Metrics;
use crate::db::health::DbHealth;

/// How long a scrape waits for Postgres before it reports the database down.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

impl Metrics {
    /// The exposition, with the database gauges read from `pool` unless `db` already
    /// knows it is down (then `sentinel_database_up` is 0 and nothing waits or warns
    /// again: the outage was logged when it began).
    pub async fn scrape(&self, pool: &PgPool, db: &DbHealth) -> String {
        let read = if db.is_up() {
            read_gauges(pool, db).await
        } else {
            None
        };
        self.set_database_gauges(read);
        self.encode()
    }
}

async fn read_gauges(pool: &PgPool, db: &DbHealth) -> Option<(i64, i64)> {
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM incidents WHERE status = 'firing'")
                .fetch_one(pool)
                .await?;
        let chain = crate::audit::head(pool).await?;
        anyhow::Ok((open, chain.map_or(0, |h| h.seq)))
    })
    .await;
    match read {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            db.log_failed("metrics: cannot read Postgres", &e);
            None
        }
        Err(_) => {
            tracing::warn!("metrics: Postgres did not answer within 2 s");
            None
        }
    }
}
