//! `sentinel bench embed`: embedding throughput in batches and single-query latency.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::app::App;
use crate::bench::{peak_rss_mb, percentile, print_report, round2};
use crate::error::UserError;

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// JSONL, one `{"text": ...}` per line: embedded in batches for throughput.
    #[arg(long)]
    pub texts: PathBuf,
    /// JSONL of `{"text": ...}` embedded one at a time for latency (default: first 200 texts).
    #[arg(long)]
    pub queries: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct EmbedReport {
    pub texts: usize,
    pub chunks_per_s: f64,
    pub query_p50_ms: f64,
    pub query_p99_ms: f64,
    pub rss_mb: f64,
}

fn read_texts(path: &Path) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Line {
        text: String,
    }
    let raw = std::fs::read_to_string(path)
        .map_err(|e| UserError::new(format!("{}: {e}", path.display())))?;
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<Line>(l)
                .map(|x| x.text)
                .map_err(|e| {
                    UserError::new(format!(
                        "{}:{}: expected {{\"text\": ...}}: {e}",
                        path.display(),
                        i + 1
                    ))
                    .into()
                })
        })
        .collect()
}

pub async fn run(app: &App, a: EmbedArgs) -> anyhow::Result<i32> {
    let texts = read_texts(&a.texts)?;
    let queries = match &a.queries {
        Some(p) => read_texts(p)?,
        None => texts.iter().take(200).cloned().collect(),
    };
    let embedder = app.embedder().await?;
    // Warm-up, as the reference does.
    embedder.embed(&texts[..texts.len().min(64)]).await?;
    let t = Instant::now();
    let vecs = embedder.embed(&texts).await?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(vecs.len() == texts.len(), "embedder lost texts");
    let mut lat = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        embedder.embed_one(q).await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let report = EmbedReport {
        texts: texts.len(),
        chunks_per_s: round2(texts.len() as f64 / secs),
        query_p50_ms: round2(percentile(&lat, 50.0)),
        query_p99_ms: round2(percentile(&lat, 99.0)),
        rss_mb: peak_rss_mb(),
    };
    print_report(&report, a.json)?;
    Ok(0)
}
