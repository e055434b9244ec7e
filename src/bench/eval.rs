//! `sentinel eval retrieval`: recall@1, recall@5 and MRR of search over a JSONL query set;
//! `sentinel eval fallback`: does the runbook-based diagnosis cite the expected runbook?

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::bench::diagnosis::subject_of;
use crate::bench::{percentile, print_report, round2};
use crate::diagnosis::{Diagnoser, DiagnoserOptions, Draft};
use crate::error::UserError;
use crate::knowledge::{ingest, KnowledgeBase, SearchRequest};

/// Ranks looked at for MRR; a hit below this counts zero.
pub const MRR_DEPTH: usize = 10;

#[derive(Debug, Args)]
pub struct RetrievalArgs {
    #[arg(long)]
    pub queries: PathBuf,
    /// Use only `query`, ignoring `alert` and `runbook_url`.
    #[arg(long)]
    pub query_only: bool,
    /// List every miss on stderr.
    #[arg(long)]
    pub verbose: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Deserialize)]
pub struct EvalQuery {
    pub query: String,
    #[serde(default)]
    pub alert: Option<String>,
    #[serde(default)]
    pub runbook_url: Option<String>,
    /// The runbook path (relative to the ingested folder) that should be found.
    pub expected: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct RetrievalScores {
    pub n: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub mrr: f64,
}

/// One query's outcome, for `--verbose` listings of misses.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub query: String,
    pub expected: String,
    pub rank: Option<usize>,
    pub top: Option<String>,
}

pub fn load_queries(path: &Path) -> anyhow::Result<Vec<EvalQuery>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UserError::new(format!("{}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                UserError::new(format!(
                    "{}:{}: not a query line: {e}",
                    path.display(),
                    i + 1
                ))
                .into()
            })
        })
        .collect()
}

/// Scores from the 1-based rank of the first relevant hit of each query.
pub fn score(ranks: &[Option<usize>]) -> RetrievalScores {
    let n = ranks.len();
    let frac = |pred: &dyn Fn(usize) -> bool| {
        if n == 0 {
            0.0
        } else {
            ranks.iter().filter(|r| r.is_some_and(pred)).count() as f64 / n as f64
        }
    };
    let mrr = if n == 0 {
        0.0
    } else {
        ranks
            .iter()
            .map(|r| match r {
                Some(r) if *r <= MRR_DEPTH => 1.0 / *r as f64,
                _ => 0.0,
            })
            .sum::<f64>()
            / n as f64
    };
    let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
    RetrievalScores {
        n,
        recall_at_1: round(frac(&|r| r <= 1)),
        recall_at_5: round(frac(&|r| r <= 5)),
        mrr: round(mrr),
    }
}

/// Runs every query; `query_only` ignores the `alert` and `runbook_url` fields.
pub async fn retrieval(
    kb: &KnowledgeBase,
    queries: &[EvalQuery],
    query_only: bool,
) -> anyhow::Result<(RetrievalScores, Vec<Outcome>)> {
    let mut ranks = Vec::with_capacity(queries.len());
    let mut outcomes = Vec::with_capacity(queries.len());
    for q in queries {
        let req = SearchRequest {
            text: q.query.clone(),
            alert: if query_only { None } else { q.alert.clone() },
            runbook_url: if query_only {
                None
            } else {
                q.runbook_url.clone()
            },
            k: MRR_DEPTH,
        };
        let hits = kb
            .search(&req)
            .await
            .with_context(|| format!("search failed for `{}`", q.query))?;
        let rank = hits
            .iter()
            .find(|h| h.runbook_path == q.expected)
            .map(|h| h.rank);
        ranks.push(rank);
        outcomes.push(Outcome {
            query: q.query.clone(),
            expected: q.expected.clone(),
            rank,
            top: hits.first().map(|h| h.runbook_path.clone()),
        });
    }
    Ok((score(&ranks), outcomes))
}

/// `sentinel eval retrieval`: scores on stdout, misses on stderr with `--verbose`.
pub async fn run_retrieval(app: &App, a: RetrievalArgs) -> anyhow::Result<i32> {
    let queries = load_queries(&a.queries)?;
    let kb = app.knowledge().await?;
    let (scores, outcomes) = retrieval(&kb, &queries, a.query_only).await?;
    if a.verbose {
        for o in outcomes.iter().filter(|o| o.rank != Some(1)) {
            eprintln!(
                "rank {:?}: expected {} got {:?} for `{}`",
                o.rank, o.expected, o.top, o.query
            );
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&scores)?);
    } else {
        println!(
            "n={} recall@1={:.3} recall@5={:.3} MRR={:.3}",
            scores.n, scores.recall_at_1, scores.recall_at_5, scores.mrr
        );
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct FallbackArgs {
    #[arg(long)]
    pub queries: PathBuf,
    /// Ingest this folder first (the queries' `expected` paths are relative to it).
    #[arg(long)]
    pub ingest: Option<PathBuf>,
    /// List every miss on stderr.
    #[arg(long)]
    pub verbose: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct FallbackReport {
    pub n: usize,
    /// Fallback diagnoses whose runbook is the expected one.
    pub cites_expected: usize,
    pub fraction: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `sentinel eval fallback`: with no LLM, how often the runbook-based diagnosis cites the
/// expected runbook.
pub async fn fallback(app: &App, a: FallbackArgs) -> anyhow::Result<i32> {
    let queries = load_queries(&a.queries)?;
    let kb = app.knowledge().await?;
    if let Some(dir) = &a.ingest {
        ingest::ingest(
            &kb.pool,
            kb.embedder.as_ref(),
            std::slice::from_ref(dir),
            false,
        )
        .await?;
    }
    let d = Diagnoser::new(kb, None, DiagnoserOptions::default());
    let mut hits = 0;
    let mut lat = Vec::new();
    for q in &queries {
        let t = Instant::now();
        let out = d.diagnose(&subject_of(q)).await;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        let cited = match &out.draft {
            Draft::Fallback(f) => f.runbook.as_ref().map(|r| r.runbook_path.clone()),
            Draft::Llm(_) => None,
        };
        if cited.as_deref() == Some(q.expected.as_str()) {
            hits += 1;
        } else if a.verbose {
            eprintln!(
                "miss: {:?} expected {} got {:?}",
                q.alert, q.expected, cited
            );
        }
    }
    lat.sort_by(f64::total_cmp);
    let n = queries.len();
    let report = FallbackReport {
        n,
        cites_expected: hits,
        fraction: if n == 0 {
            0.0
        } else {
            (hits as f64 / n as f64 * 10_000.0).round() / 10_000.0
        },
        p50_ms: round2(percentile(&lat, 50.0)),
        p99_ms: round2(percentile(&lat, 99.0)),
    };
    print_report(&report, a.json)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_from_ranks() {
        let s = score(&[Some(1), Some(2), None, Some(6)]);
        assert_eq!(s.n, 4);
        assert_eq!(s.recall_at_1, 0.25);
        assert_eq!(s.recall_at_5, 0.5);
        assert_eq!(
            s.mrr,
            ((1.0 + 0.5 + 1.0 / 6.0) / 4.0 * 10_000.0_f64).round() / 10_000.0
        );
    }

    #[test]
    fn empty_set_scores_zero() {
        assert_eq!(score(&[]).recall_at_1, 0.0);
    }

    #[test]
    fn ranks_below_depth_do_not_count_for_mrr() {
        assert_eq!(score(&[Some(11)]).mrr, 0.0);
    }
}
