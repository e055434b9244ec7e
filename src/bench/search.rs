//! `sentinel bench search`: the whole query path (embed + hybrid search) on a scratch
//! database of N chunks, and the HNSW index's recall@10 against exact search.

use std::time::Instant;

use clap::Args;
use pgvector::Vector;
use serde::Serialize;

use crate::app::App;
use crate::bench::eval::load_queries;
use crate::bench::{count_chunks, percentile, print_report, round2, ScratchArgs};
use crate::knowledge::{KnowledgeBase, SearchRequest};

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub scratch: ScratchArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct SearchReport {
    pub chunks: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub recall_at_10: f64,
    /// Embedding the query alone, measured on the same queries in the same run: the
    /// part of `p50_ms` the database does not own.
    pub embed_p50_ms: f64,
}

pub async fn run(app: &App, a: SearchArgs) -> anyhow::Result<i32> {
    let kb = a.scratch.filled_kb(app, 8).await?;
    let pool = kb.pool.clone();
    let queries = load_queries(&a.scratch.queries)?;
    // Warm-up: load the index and the model's caches.
    for q in queries.iter().take(10) {
        kb.search(&req(&q.query)).await?;
    }
    let mut lat = Vec::new();
    let mut embed_lat = Vec::new();
    for _round in 0..3 {
        for q in &queries {
            let t = Instant::now();
            kb.search(&req(&q.query)).await?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            kb.embedder.embed_one(&q.query).await?;
            embed_lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    lat.sort_by(f64::total_cmp);
    embed_lat.sort_by(f64::total_cmp);
    let recall = hnsw_recall(
        &kb,
        &queries.iter().map(|q| q.query.clone()).collect::<Vec<_>>(),
    )
    .await?;
    let report = SearchReport {
        chunks: count_chunks(&pool).await?,
        p50_ms: round2(percentile(&lat, 50.0)),
        p99_ms: round2(percentile(&lat, 99.0)),
        recall_at_10: (recall * 1000.0).round() / 1000.0,
        embed_p50_ms: round2(percentile(&embed_lat, 50.0)),
    };
    print_report(&report, a.json)?;
    Ok(0)
}

fn req(text: &str) -> SearchRequest {
    SearchRequest {
        text: text.to_string(),
        k: 10,
        ..Default::default()
    }
}

/// Recall@10 of the HNSW path against exact (sequential) search, over the query vectors.
async fn hnsw_recall(kb: &KnowledgeBase, queries: &[String]) -> anyhow::Result<f64> {
    let dim = kb.embedder.dim();
    let vecs = kb.embedder.embed(queries).await?;
    let sql = format!(
        "SELECT id FROM chunks WHERE model_id = $1 ORDER BY embedding::vector({dim}) <=> $2 LIMIT 10"
    );
    let mut total = 0.0;
    for v in &vecs {
        let v = Vector::from(v.clone());
        let approx: Vec<(String,)> = sqlx::query_as(&sql)
            .bind(kb.model_id)
            .bind(&v)
            .fetch_all(&kb.pool)
            .await?;
        let mut tx = kb.pool.begin().await?;
        sqlx::query("SET LOCAL enable_indexscan = off")
            .execute(&mut *tx)
            .await?;
        let exact: Vec<(String,)> = sqlx::query_as(&sql)
            .bind(kb.model_id)
            .bind(&v)
            .fetch_all(&mut *tx)
            .await?;
        tx.rollback().await?;
        let hits = approx.iter().filter(|a| exact.contains(a)).count();
        total += hits as f64 / exact.len().max(1) as f64;
    }
    Ok(total / vecs.len().max(1) as f64)
}
