//! Postgres access: connecting with a readable error, migrations, and embedding-model registry.

use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::error::{mask_url, UserError};

pub mod health;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// HNSW candidates per vector search (`hnsw.ef_search`). pgvector's default, 40, returns at
/// most 40 rows whatever the `LIMIT`, fewer than hybrid search asks for, and misses more.
pub const DEFAULT_EF_SEARCH: u32 = 200;

/// Connects to Postgres. Failure is a `UserError` naming the URL with its password masked.
pub async fn connect(url: &SecretString, max_connections: u32) -> anyhow::Result<PgPool> {
    connect_with_ef_search(url, max_connections, DEFAULT_EF_SEARCH).await
}

/// [`connect`] with another `hnsw.ef_search` (benchmarks compare settings).
pub async fn connect_with_ef_search(
    url: &SecretString,
    max_connections: u32,
    ef_search: u32,
) -> anyhow::Result<PgPool> {
    let masked = mask_url(url.expose_secret());
    let opts: PgConnectOptions = url.expose_secret().parse().map_err(|_| {
        UserError::new(format!(
            "DATABASE_URL is not a valid Postgres URL: {masked}"
        ))
    })?;
    let ef = ef_search.max(1).to_string();
    let opts = opts
        .disable_statement_logging()
        .options([("hnsw.ef_search", ef.as_str())]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(20))
        .connect_with(opts)
        .await
        .map_err(|e| {
            UserError::new(format!(
                "cannot reach the database at {masked}: {}",
                describe_sqlx(&e)
            ))
            .into()
        })
}

/// A short reason without the URL (sqlx errors never contain the password, but keep it terse).
fn describe_sqlx(e: &sqlx::Error) -> String {
    let s = match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out".to_string(),
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    };
    if s.contains("invalid peer certificate") {
        format!("{s}: the server's certificate is not trusted; name its CA bundle (PEM) with `sslrootcert=` in DATABASE_URL, or use `sslmode=require`")
    } else {
        s
    }
}

/// Connects and applies pending migrations.
pub async fn connect_and_migrate(url: &SecretString) -> anyhow::Result<PgPool> {
    let pool = connect(url, 16).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Applies pending migrations. sqlx's migrator holds a session advisory lock
/// (`pg_advisory_lock`) for the whole run, so replicas starting at once apply each
/// migration exactly once and the others wait, then find nothing to do.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    check_vector(pool).await?;
    MIGRATOR.run(pool).await.map_err(|e| {
        let msg = e.to_string();
        if msg.contains("permission denied to create extension") {
            UserError::new(format!(
                "the database user may not create the `vector` extension: run `CREATE EXTENSION vector;` once as the database owner (managed Postgres: {ENABLE_VECTOR}), then start Sentinel again"
            ))
            .into()
        } else {
            anyhow::Error::new(e).context("Failed to apply database migrations")
        }
    })
}

/// pgvector's first version with HNSW indexes, which the schema uses.
pub const MIN_PGVECTOR: (u32, u32, u32) = (0, 5, 0);

/// Where managed providers switch pgvector on.
const ENABLE_VECTOR: &str = "Supabase: Database → Extensions → vector; Neon, RDS, Cloud SQL, Azure and Fly Postgres ship it, RDS and Azure need it allowed in the parameter group / `azure.extensions`";

/// The `vector` extension must be installed in this database or available to install,
/// in a version with HNSW; otherwise one sentence says what to do.
async fn check_vector(pool: &PgPool) -> anyhow::Result<()> {
    let (installed, available): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
                (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')",
    )
    .fetch_one(pool)
    .await
    .context("Failed to look up the vector extension")?;
    vector_verdict(installed.as_deref(), available.as_deref()).map_err(|m| UserError::new(m).into())
}

/// Pure: what the versions of `vector` installed here and available on the server mean.
fn vector_verdict(installed: Option<&str>, available: Option<&str>) -> Result<(), String> {
    let (a, b, c) = MIN_PGVECTOR;
    let min = format!("{a}.{b}.{c}");
    let Some(v) = installed.or(available) else {
        return Err(format!(
            "the database has no `vector` extension available: install pgvector ≥ {min} on the Postgres server (managed Postgres: {ENABLE_VECTOR})"
        ));
    };
    if pgvector_is_recent(v) {
        Ok(())
    } else {
        Err(format!(
            "the database's `vector` extension is version {v}; Sentinel needs pgvector ≥ {min} (HNSW indexes): upgrade it (`ALTER EXTENSION vector UPDATE;` after installing a newer pgvector)"
        ))
    }
}

/// Whether pgvector version `v` (`0.8.0`, `1.0`) has what the schema needs: at least
/// [`MIN_PGVECTOR`]. An unparsable version is given the benefit of the doubt.
pub fn pgvector_is_recent(v: &str) -> bool {
    parse_version(v).is_none_or(|got| got >= MIN_PGVECTOR)
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        it.next()??,
        it.next().flatten().unwrap_or(0),
        it.next().flatten().unwrap_or(0),
    ))
}

/// Records an embedding model (name, dimension) and makes sure its HNSW index exists.
/// Returns the model id that chunks embedded by it carry.
pub async fn register_model(pool: &PgPool, name: &str, dim: usize) -> anyhow::Result<i32> {
    let dim_i32 = i32::try_from(dim).context("embedding dimension out of range")?;
    let row: (i32, i32) = sqlx::query_as(
        "INSERT INTO embedding_models (name, dim) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
         RETURNING id, dim",
    )
    .bind(name)
    .bind(dim_i32)
    .fetch_one(pool)
    .await
    .context("Failed to register the embedding model")?;
    if row.1 != dim_i32 {
        return Err(UserError::new(format!(
            "embedding model `{name}` was recorded with {} dimensions but now gives {dim}",
            row.1
        ))
        .into());
    }
    ensure_model_index(pool, row.0, dim).await?;
    Ok(row.0)
}

/// Memory for building an HNSW graph of `rows` vectors of `dim` floats: the vectors plus
/// their neighbour lists (m = 16), with a quarter to spare; 512 MB to 4 GB.
pub fn hnsw_build_memory_mb(rows: u64, dim: usize) -> u64 {
    let per_row = dim as u64 * 4 + 512;
    (rows * per_row * 5 / 4 / (1 << 20)).clamp(512, 4096)
}

/// One partial HNSW index per model over `embedding::vector(dim)`, so models of different
/// dimensions share the table. Queries must use the same expression and `model_id` filter.
async fn ensure_model_index(pool: &PgPool, model_id: i32, dim: usize) -> anyhow::Result<()> {
    // Identifiers are built from integers only: no injection surface.
    let index = format!("chunks_embedding_m{model_id}_idx");
    let sql = format!(
        "CREATE INDEX IF NOT EXISTS {index} ON chunks \
         USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WHERE model_id = {model_id}"
    );
    // Concurrent replicas may race on the same CREATE INDEX; serialise with an advisory lock.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7315001)")
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&index)
        .fetch_one(&mut *tx)
        .await?;
    if exists {
        return Ok(());
    }
    // An HNSW build whose graph fits in memory is several times faster: size the build
    // memory to the rows it will index.
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM chunks WHERE model_id = $1")
        .bind(model_id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "SET LOCAL maintenance_work_mem = '{}MB'",
        hnsw_build_memory_mb(rows.max(0) as u64, dim)
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&sql)
        .execute(&mut *tx)
        .await
        .context("Failed to create the HNSW index")?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{hnsw_build_memory_mb, pgvector_is_recent, vector_verdict};

    #[test]
    fn vector_missing_or_too_old_is_one_sentence() {
        assert!(vector_verdict(Some("0.8.0"), Some("0.8.0")).is_ok());
        assert!(vector_verdict(None, Some("0.5.1")).is_ok());
        let none = vector_verdict(None, None).unwrap_err();
        assert!(
            none.starts_with(
                "the database has no `vector` extension available: install pgvector ≥ 0.5.0"
            ),
            "{none}"
        );
        let old = vector_verdict(Some("0.4.4"), Some("0.8.0")).unwrap_err();
        assert!(
            old.contains("version 0.4.4") && old.contains("≥ 0.5.0"),
            "{old}"
        );
    }

    #[test]
    fn hnsw_build_memory_scales_with_rows_within_bounds() {
        assert_eq!(hnsw_build_memory_mb(0, 384), 512);
        assert_eq!(hnsw_build_memory_mb(100_000, 384), 512);
        // 1M x 384: about 2.4 GB of graph.
        assert_eq!(hnsw_build_memory_mb(1_000_000, 384), 2441);
        assert_eq!(hnsw_build_memory_mb(10_000_000, 1536), 4096);
    }

    #[test]
    fn pgvector_versions_from_0_5_have_hnsw() {
        assert!(pgvector_is_recent("0.8.0"));
        assert!(pgvector_is_recent("0.5.0"));
        assert!(pgvector_is_recent("1.0"));
        assert!(!pgvector_is_recent("0.4.4"));
    }
}
