//! Measurement in one place: `sentinel bench` (speed, one JSON line each) and `sentinel
//! eval` (quality); here the helpers they share: percentiles, rounding, peak RSS, printing
//! a report, and the scratch knowledge base the benches fill once.
//!
//! These machines are noisy: compare ratios measured in one run, not absolute numbers.

pub mod actions;
pub mod alerts;
pub mod audit;
pub mod diagnosis;
pub mod embed;
pub mod eval;
pub mod intake;
pub mod outage;
pub mod redaction;
pub mod search;
pub mod slack_ack;
pub mod startup;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use pgvector::Vector;
use rand::{rngs::StdRng, Rng, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::PgPool;

use crate::app::App;
use crate::embed::l2_normalize;
use crate::knowledge::{ingest, KnowledgeBase};

/// The scratch knowledge base a bench runs on, and the queries it runs (`bench search`,
/// `bench diagnosis`).
#[derive(Debug, Args)]
pub struct ScratchArgs {
    /// Chunks in the scratch database (real runbooks plus synthetic filler; one database
    /// per size, shared by the benches).
    #[arg(long, default_value_t = 100_000)]
    pub chunks: usize,
    /// Real runbooks to ingest first.
    #[arg(long, default_value = "tests/data/runbooks")]
    pub runbooks: PathBuf,
    /// Queries (JSONL with `query`, and `alert`, `runbook_url` where the bench uses them),
    /// run one by one.
    #[arg(long, default_value = "tests/data/eval/kube-prometheus-alerts.jsonl")]
    pub queries: PathBuf,
    /// hnsw.ef_search for the vector path.
    #[arg(long, default_value_t = crate::db::DEFAULT_EF_SEARCH)]
    pub ef_search: u32,
}

impl ScratchArgs {
    /// [`filled_kb`] of these sizes, on a pool of `connections`.
    pub(crate) async fn filled_kb(
        &self,
        app: &App,
        connections: u32,
    ) -> anyhow::Result<KnowledgeBase> {
        filled_kb(
            app,
            self.chunks,
            &self.runbooks,
            self.ef_search,
            connections,
        )
        .await
    }
}

/// The p-th percentile (0..=100) of sorted values, nearest-rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[idx.clamp(1, sorted.len()) - 1]
}

/// Peak resident memory of this process, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    proc_status_mib("self", "VmHWM:")
        .map(|mb| (mb * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}

/// A memory line (`VmRSS:`, `VmHWM:`) of `/proc/<pid>/status`, in MiB (Linux only).
pub(crate) fn proc_status_mib(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Prints a report: one JSON line with `json`, else its debug form on one line.
pub(crate) fn print_report<T: Serialize + std::fmt::Debug>(
    r: &T,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!("{r:?}");
    }
    Ok(())
}

/// As [`print_report`], with the debug form one field a line (the alert benches' reports).
pub(crate) fn print_report_pretty<T: Serialize + std::fmt::Debug>(
    r: &T,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return print_report(r, json);
    }
    println!("{r:#?}");
    Ok(())
}

/// A database beside the configured one, named for the bench size, created if missing.
pub(crate) async fn scratch_pool(
    url: &SecretString,
    name: &str,
) -> anyhow::Result<(PgPool, SecretString)> {
    let admin = crate::db::connect(url, 2).await?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&admin)
        .await?;
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .context("Failed to create the scratch database")?;
    }
    let mut u = url::Url::parse(url.expose_secret()).context("DATABASE_URL is not a URL")?;
    u.set_path(&format!("/{name}"));
    let scratch = SecretString::from(u.to_string());
    let pool = crate::db::connect(&scratch, 8).await?;
    crate::db::migrate(&pool).await?;
    Ok((pool, scratch))
}

/// The scratch knowledge base of `chunks` chunks (`sentinel_bench_<chunks>`, filled once and
/// reused by `bench search`, `bench alert-latency` and `bench diagnosis`), on a fresh pool of
/// `connections` with `hnsw.ef_search` = `ef_search`.
pub(crate) async fn filled_kb(
    app: &App,
    chunks: usize,
    runbooks: &Path,
    ef_search: u32,
    connections: u32,
) -> anyhow::Result<KnowledgeBase> {
    let url = app.config.require_database_url()?;
    let embedder = app.embedder().await?;
    let name = format!("sentinel_bench_{chunks}");
    let (pool, scratch) = scratch_pool(url, &name).await?;
    let kb = KnowledgeBase::open(pool.clone(), embedder).await?;
    fill(&kb, chunks, runbooks).await?;
    pool.close().await;
    let pool = crate::db::connect_with_ef_search(&scratch, connections, ef_search).await?;
    Ok(KnowledgeBase { pool, ..kb })
}

pub(crate) async fn count_chunks(pool: &PgPool) -> anyhow::Result<usize> {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM chunks")
        .fetch_one(pool)
        .await?;
    Ok(n as usize)
}

/// Ingests the real runbooks, then adds synthetic chunks until there are `chunks`.
/// Filler text is drawn from the real vocabulary; filler vectors are real chunk vectors
/// mixed and perturbed, so they sit where real runbook text does, not in empty space.
async fn fill(kb: &KnowledgeBase, chunks: usize, runbooks: &Path) -> anyhow::Result<()> {
    let have = count_chunks(&kb.pool).await?;
    if have >= chunks {
        return Ok(());
    }
    if have == 0 {
        ingest::ingest(
            &kb.pool,
            kb.embedder.as_ref(),
            &[runbooks.to_path_buf()],
            false,
        )
        .await?;
    }
    let dim = kb.embedder.dim();
    let real: Vec<(String, Vector)> = sqlx::query_as(
        "SELECT body, embedding FROM chunks WHERE model_id = $1 AND runbook_id IS NOT NULL LIMIT 5000",
    )
    .bind(kb.model_id)
    .fetch_all(&kb.pool)
    .await?;
    anyhow::ensure!(!real.is_empty(), "no real chunks to build filler from");
    let words: Vec<&str> = real
        .iter()
        .flat_map(|(b, _)| b.split_whitespace())
        .take(200_000)
        .collect();
    let vectors: Vec<Vec<f32>> = real.iter().map(|(_, v)| v.to_vec()).collect();
    let (filler_rb,): (i64,) = sqlx::query_as(
        "INSERT INTO runbooks (path, source, title, content_hash) VALUES ('bench/filler.md', 'bench', 'Filler', '')
         ON CONFLICT (path) DO UPDATE SET title = EXCLUDED.title RETURNING id",
    )
    .fetch_one(&kb.pool)
    .await?;

    // Building the index after the load is several times faster than maintaining it.
    let index = format!("chunks_embedding_m{}_idx", kb.model_id);
    sqlx::query(&format!("DROP INDEX IF EXISTS {index}"))
        .execute(&kb.pool)
        .await?;
    let mut rng = StdRng::seed_from_u64(chunks as u64);
    let missing = chunks - have;
    let batch = 5_000;
    let mut done = 0;
    while done < missing {
        let n = batch.min(missing - done);
        let mut buf = String::with_capacity(n * 4_000);
        for i in 0..n {
            let id = format!("filler-{}", have + done + i);
            let len = rng.gen_range(40..160);
            let start = rng.gen_range(0..words.len().saturating_sub(len).max(1));
            let body: String = words[start..(start + len).min(words.len())]
                .join(" ")
                .replace(['\\', '\t', '\n', '\r'], " ");
            let a_ = &vectors[rng.gen_range(0..vectors.len())];
            let b_ = &vectors[rng.gen_range(0..vectors.len())];
            let mix: f32 = rng.gen_range(0.0..1.0);
            let mut v: Vec<f32> = (0..dim)
                .map(|j| mix * a_[j] + (1.0 - mix) * b_[j] + rng.gen_range(-0.05..0.05))
                .collect();
            l2_normalize(&mut v);
            let vtext = v
                .iter()
                .map(|x| format!("{x:.5}"))
                .collect::<Vec<_>>()
                .join(",");
            buf.push_str(&format!(
                "{id}\t{filler_rb}\t{}\t{{Filler}}\t\t{body}\tx\t{}\t[{vtext}]\tFiller\n",
                have + done + i,
                kb.model_id
            ));
        }
        let mut conn = kb.pool.acquire().await?;
        let mut copy = conn
            .copy_in_raw(
                "COPY chunks (id, runbook_id, ord, heading_path, anchor, body, content_hash, model_id, embedding, heading_text) FROM STDIN",
            )
            .await?;
        copy.send(buf.as_bytes()).await?;
        copy.finish().await?;
        done += n;
        eprintln!("bench: {} / {missing} filler chunks", done);
    }
    eprintln!("bench: indexing filler terms for BM25 ...");
    // Statistics over the whole corpus first, so filler postings are written once, against
    // the mean length that includes them. If the filler moved the mean, the refresh has
    // already rewritten every chunk's postings, filler included; the rest get theirs here.
    crate::knowledge::index::refresh_lexeme_stats(&kb.pool).await?;
    let unindexed: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM chunks c WHERE runbook_id = $1
         AND NOT EXISTS (SELECT 1 FROM chunk_terms t WHERE t.chunk_id = c.id)",
    )
    .bind(filler_rb)
    .fetch_all(&kb.pool)
    .await?;
    let mut conn = kb.pool.acquire().await?;
    crate::knowledge::index::write_terms(&mut conn, &unindexed)
        .await
        .context("Failed to index filler terms")?;
    drop(conn);
    sqlx::query("VACUUM ANALYZE chunk_terms")
        .execute(&kb.pool)
        .await?;
    eprintln!("bench: building the HNSW index ...");
    crate::db::register_model(&kb.pool, kb.embedder.model_name(), dim).await?;
    sqlx::query("VACUUM ANALYZE chunks")
        .execute(&kb.pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}
