//! `sentinel eval retrieval`: recall@1, recall@5 and MRR of search over a JSONL query set.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::error::UserError;
use crate::knowledge::{KnowledgeBase, SearchRequest};

/// Ranks looked at for MRR; a hit below this counts zero.
pub const MRR_DEPTH: usize = 10;

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
