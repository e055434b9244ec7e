//! Hybrid retrieval: exact signals first, then vector and full-text results fused by RRF.
//!
//! 1. Exact: the alert name matches a runbook's `alerts`, title or file name; the
//!    `runbook_url` matches a runbook's `urls` or the tail of its path.
//! 2. Vector top-N over the model's HNSW index, full-text top-N over OR-ed lexemes.
//! 3. Reciprocal rank fusion of the two lists, by runbook; a runbook whose alert name the
//!    query's words cover gets up to [`NAME_BOOST`] more (`names`); exact runbooks' chunks
//!    go first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use pgvector::Vector;
use serde::Serialize;
use sqlx::PgPool;

use super::names::{coverage, NAME_BOOST};
use super::query::{
    identifier_terms, normalize_url, or_tsquery, path_segments, url_path_match, url_segments,
};
use super::runbook::normalize_key;
use crate::db;
use crate::embed::Embedder;

/// Reciprocal rank fusion constant (60 is the published default).
pub const RRF_K: f64 = 60.0;
/// Candidates taken from each of the vector and full-text lists.
pub const CANDIDATES: i64 = 60;
/// Lexemes of the query kept for full-text search, rarest first.
pub const FULLTEXT_TERMS: i64 = 16;
/// Postings read per query lexeme, best impact first (an early-termination bound: a chunk
/// outside every term's best few hundred cannot reach the top 60).
pub const POSTINGS_PER_TERM: i64 = 400;

#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub text: String,
    pub alert: Option<String>,
    pub runbook_url: Option<String>,
    pub k: usize,
}

/// Why a hit ranks where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    AlertName,
    RunbookUrl,
    Hybrid,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub rank: usize,
    pub chunk_id: String,
    pub runbook_path: String,
    pub runbook_title: String,
    pub heading_path: Vec<String>,
    pub anchor: String,
    pub body: String,
    pub score: f64,
    pub matched_by: MatchKind,
}

impl Hit {
    /// `Title > Section` for display.
    pub fn heading(&self) -> String {
        self.heading_path.join(" > ")
    }
}

/// The knowledge base as the rest of Sentinel sees it: a pool, an embedder and its model id.
#[derive(Clone)]
pub struct KnowledgeBase {
    pub pool: PgPool,
    pub embedder: Arc<dyn Embedder>,
    pub model_id: i32,
    /// Search latency is recorded here.
    pub metrics: crate::metrics::Metrics,
}

impl KnowledgeBase {
    pub async fn open(pool: PgPool, embedder: Arc<dyn Embedder>) -> anyhow::Result<Self> {
        let model_id = db::register_model(&pool, embedder.model_name(), embedder.dim()).await?;
        Ok(Self {
            pool,
            embedder,
            model_id,
            metrics: crate::metrics::Metrics::default(),
        })
    }

    /// Records searches in `metrics` (the composition root's handle).
    pub fn with_metrics(self, metrics: crate::metrics::Metrics) -> Self {
        Self { metrics, ..self }
    }

    pub async fn search(&self, req: &SearchRequest) -> anyhow::Result<Vec<Hit>> {
        let started = std::time::Instant::now();
        let r = hybrid_search(self, req).await;
        self.metrics.search(started.elapsed());
        r
    }
}

/// Runs a hybrid search.
async fn hybrid_search(kb: &KnowledgeBase, req: &SearchRequest) -> anyhow::Result<Vec<Hit>> {
    let k = req.k.clamp(1, 100);
    let text = if req.text.trim().is_empty() {
        req.alert.clone().unwrap_or_default()
    } else {
        req.text.clone()
    };
    // Query text is alert text or a person's question: strip secrets before it reaches the
    // embedder (which may be a hosted API) or a log line.
    let text = crate::redact::Redactor::default().redact(&text);
    // Control characters carry no meaning for search, and Postgres refuses NUL in text
    // (Slack and webhook JSON can hold `\u0000`).
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let dim = kb.embedder.dim();

    // The exact and full-text queries need no embedding: they run while the query is
    // embedded, and only the vector query waits for it.
    let started = std::time::Instant::now();
    let us = || started.elapsed().as_micros() as u64;
    let embedded = async {
        let qvec = Vector::from(kb.embedder.embed_one(&text).await?);
        let embedded_us = us();
        let vector = vector_top(&kb.pool, kb.model_id, dim, &qvec).await?;
        anyhow::Ok((qvec, vector, embedded_us, us()))
    };
    let expanded = format!("{text} {}", identifier_terms(&text));
    let fulltext = async {
        let rows = fulltext_top(&kb.pool, &expanded).await?;
        anyhow::Ok((rows, us()))
    };
    let joined = tokio::try_join!(
        exact_runbooks(&kb.pool, req),
        embedded,
        fulltext,
        query_lexemes(&kb.pool, &expanded),
    )?;
    let (exact, (qvec, vector, embedded_us, vector_us), (fulltext, fulltext_us), lexemes) = joined;

    // Exact runbooks' chunks, best first by similarity to the query.
    let mut ordered: Vec<(String, f64, MatchKind)> = Vec::new();
    if !exact.is_empty() {
        let ids: Vec<i64> = exact.iter().map(|(id, _)| *id).collect();
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(&format!(
            "SELECT id, runbook_id, (embedding::vector({dim}) <=> $2)::float8 AS d FROM chunks
             WHERE runbook_id = ANY($1) AND model_id = $3 ORDER BY d LIMIT $4"
        ))
        .bind(&ids)
        .bind(&qvec)
        .bind(kb.model_id)
        .bind(k as i64)
        .fetch_all(&kb.pool)
        .await
        .context("Failed to read exact-match chunks")?;
        let kind: HashMap<i64, MatchKind> = exact.iter().cloned().collect();
        for (id, rb, d) in rows {
            ordered.push((id, 2.0 - d, kind[&rb]));
        }
        // A runbook matched by URL and name outranks one matched by name alone: stable sort
        // keeps similarity order inside each group.
        ordered.sort_by(|a, b| b.1.total_cmp(&a.1));
    }

    // Once per runbook (each of its chunks carries the same names).
    let mut covered: HashMap<i64, f64> = HashMap::new();
    for c in vector.iter().chain(&fulltext) {
        if let Some(r) = c.runbook_id {
            covered
                .entry(r)
                .or_insert_with(|| coverage(&c.names, &lexemes));
        }
    }
    let fused = fuse(&vector, &fulltext, &covered);
    let seen: HashSet<String> = ordered.iter().map(|o| o.0.clone()).collect();
    ordered.extend(
        fused
            .into_iter()
            .filter(|(id, _)| !seen.contains(id))
            .map(|(id, s)| (id, s, MatchKind::Hybrid)),
    );
    ordered.truncate(k);
    let hits = hydrate(&kb.pool, ordered).await?;
    // Microseconds since the search began at which each step ended.
    tracing::debug!(
        embedded_us,
        vector_us,
        fulltext_us,
        total_us = us(),
        "search timings"
    );
    Ok(hits)
}

/// Runbooks named by the alert or its runbook URL.
async fn exact_runbooks(
    pool: &PgPool,
    req: &SearchRequest,
) -> anyhow::Result<Vec<(i64, MatchKind)>> {
    let mut out: Vec<(i64, MatchKind)> = Vec::new();
    if let Some(url) = req.runbook_url.as_deref().filter(|u| !u.trim().is_empty()) {
        let segs = url_segments(url);
        let last = segs.last().cloned().unwrap_or_default();
        let rows: Vec<(i64, String, bool)> = sqlx::query_as(
            "SELECT id, path, $1 = ANY(url_keys) FROM runbooks
             WHERE $1 = ANY(url_keys) OR (stem_key = $2 AND $2 <> '')",
        )
        .bind(normalize_url(url))
        .bind(&last)
        .fetch_all(pool)
        .await
        .context("Failed to match the runbook URL")?;
        // Declared URLs win; otherwise the longest matching path tail.
        let scored: Vec<(i64, usize)> = rows
            .into_iter()
            .map(|(id, path, declared)| {
                let tail = url_path_match(&segs, &path_segments(&path));
                (id, if declared { usize::MAX } else { tail })
            })
            .filter(|(_, s)| *s > 0)
            .collect();
        if let Some(best) = scored.iter().map(|s| s.1).max() {
            out.extend(
                scored
                    .into_iter()
                    .filter(|s| s.1 == best)
                    .map(|(id, _)| (id, MatchKind::RunbookUrl)),
            );
        }
    }
    if let Some(alert) = req.alert.as_deref() {
        let key = normalize_key(alert);
        if !key.is_empty() {
            let rows: Vec<(i64,)> =
                sqlx::query_as("SELECT id FROM runbooks WHERE $1 = ANY(match_keys) ORDER BY path")
                    .bind(&key)
                    .fetch_all(pool)
                    .await
                    .context("Failed to match the alert name")?;
            for (id,) in rows {
                if !out.iter().any(|o| o.0 == id) {
                    out.push((id, MatchKind::AlertName));
                }
            }
        }
    }
    Ok(out)
}

/// A candidate chunk from one retrieval list, with its runbook (none for chunks that
/// belong to no runbook, such as benchmark filler) and that runbook's alert names as
/// lexemes (`runbooks.name_lexemes`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Candidate {
    pub id: String,
    pub runbook_id: Option<i64>,
    pub names: Vec<String>,
}

/// A repeated chunk of an already-ranked runbook counts this fraction of the one before.
pub const REPEAT_DECAY: f64 = 0.5;

/// Reciprocal rank fusion of the vector and full-text lists, by runbook.
///
/// The question a search answers is *which runbook*: a runbook's score is the RRF of its
/// best rank in each list (its best vector chunk and its best full-text chunk may be
/// different sections), times `1 + NAME_BOOST * coverage` of its alert name (`covered`,
/// by runbook id; absent: 0). Its chunks then take that score in their own fused order,
/// each repeat worth [`REPEAT_DECAY`] of the one before, so the first results are the best
/// section of each of the best runbooks, and a runbook's further sections follow.
pub fn fuse(
    vector: &[Candidate],
    fulltext: &[Candidate],
    covered: &HashMap<i64, f64>,
) -> Vec<(String, f64)> {
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    enum Group<'a> {
        Runbook(i64),
        Alone(&'a str),
    }
    fn group(c: &Candidate) -> Group<'_> {
        match c.runbook_id {
            Some(r) => Group::Runbook(r),
            None => Group::Alone(&c.id),
        }
    }
    let rrf = |rank: usize| 1.0 / (RRF_K + rank as f64 + 1.0);
    let mut chunk: HashMap<&str, (f64, Group)> = HashMap::new();
    let mut runbook: HashMap<Group, f64> = HashMap::new();
    for list in [vector, fulltext] {
        let mut ranked: Vec<Group> = Vec::new();
        for (rank, c) in list.iter().enumerate() {
            chunk.entry(&c.id).or_insert((0.0, group(c))).0 += rrf(rank);
            let g = group(c);
            if !ranked.contains(&g) {
                *runbook.entry(g).or_default() += rrf(ranked.len());
                ranked.push(g);
            }
        }
    }
    for (g, score) in runbook.iter_mut() {
        if let Group::Runbook(r) = g {
            *score *= 1.0 + NAME_BOOST * covered.get(r).copied().unwrap_or(0.0);
        }
    }
    let mut chunks: Vec<(&str, f64, Group)> =
        chunk.into_iter().map(|(id, (s, g))| (id, s, g)).collect();
    chunks.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut seen: HashMap<Group, i32> = HashMap::new();
    let mut out: Vec<(&str, f64, f64)> = chunks
        .into_iter()
        .map(|(id, own, g)| {
            let n = seen.entry(g).or_default();
            let score = runbook[&g] * REPEAT_DECAY.powi(*n);
            *n += 1;
            (id, score, own)
        })
        .collect();
    // Equal runbook scores: the better section first.
    out.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| b.2.total_cmp(&a.2))
            .then_with(|| a.0.cmp(b.0))
    });
    out.into_iter()
        .map(|(id, s, _)| (id.to_string(), s))
        .collect()
}

async fn vector_top(
    pool: &PgPool,
    model_id: i32,
    dim: usize,
    q: &Vector,
) -> anyhow::Result<Vec<Candidate>> {
    let rows: Vec<Candidate> = sqlx::query_as(&format!(
        "SELECT v.id, v.runbook_id,
                coalesce((SELECT r.name_lexemes FROM runbooks r WHERE r.id = v.runbook_id),
                         '{{}}') AS names
         FROM (SELECT id, runbook_id, embedding::vector({dim}) <=> $2 AS d FROM chunks
               WHERE model_id = $1 ORDER BY d LIMIT $3) v
         ORDER BY v.d, v.id"
    ))
    .bind(model_id)
    .bind(q)
    .bind(CANDIDATES)
    .fetch_all(pool)
    .await
    .context("Vector search failed")?;
    Ok(rows)
}

/// The query's lexemes as `sentinel_names` makes them (English stems, stop words kept),
/// to compare with runbooks' alert names.
async fn query_lexemes(pool: &PgPool, expanded: &str) -> anyhow::Result<HashSet<String>> {
    let lexemes: Vec<String> =
        sqlx::query_scalar("SELECT tsvector_to_array(to_tsvector('sentinel_names', $1))")
            .bind(expanded)
            .fetch_one(pool)
            .await
            .context("Failed to read the query's lexemes")?;
    Ok(lexemes.into_iter().collect())
}

/// `expanded`: the query text plus its identifiers' words (`identifier_terms`).
async fn fulltext_top(pool: &PgPool, expanded: &str) -> anyhow::Result<Vec<Candidate>> {
    let Some(q) = or_tsquery(expanded) else {
        return Ok(Vec::new());
    };
    // BM25 over the query's rarest lexemes (see `lexeme_df`): idf times each posting's
    // stored impact, reading the best `POSTINGS_PER_TERM` postings of each lexeme from the
    // impact-ordered index (`chunk_terms_rank_idx` is in exactly this order, ties by chunk
    // id, so no sort runs). Stemming is Postgres's own.
    let rows: Vec<Candidate> = sqlx::query_as(
        "WITH terms AS MATERIALIZED (
             SELECT d.lexeme, ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5)) AS idf
             FROM (SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', $1))) t
             JOIN lexeme_df d ON d.lexeme = t.lexeme
             CROSS JOIN (SELECT chunks::float8 AS n FROM fulltext_stats) s
             ORDER BY d.df, d.lexeme LIMIT $3
         ), scored AS (
             SELECT p.chunk_id, sum(t.idf * p.impact) AS score FROM terms t
             CROSS JOIN LATERAL (
                 SELECT c.chunk_id, c.impact FROM chunk_terms c WHERE c.lexeme = t.lexeme
                 ORDER BY c.impact DESC, c.chunk_id LIMIT $4
             ) p
             GROUP BY p.chunk_id
             ORDER BY score DESC, p.chunk_id
             LIMIT $2
         )
         SELECT s.chunk_id AS id, c.runbook_id, coalesce(r.name_lexemes, '{}') AS names
         FROM scored s JOIN chunks c ON c.id = s.chunk_id
         LEFT JOIN runbooks r ON r.id = c.runbook_id
         ORDER BY s.score DESC, s.chunk_id",
    )
    .bind(q.replace(" | ", " "))
    .bind(CANDIDATES)
    .bind(FULLTEXT_TERMS)
    .bind(POSTINGS_PER_TERM)
    .fetch_all(pool)
    .await
    .context("Full-text search failed")?;
    Ok(rows)
}

/// The stored part of a hit, as read back by `hydrate`.
#[derive(sqlx::FromRow)]
struct HitRow {
    id: String,
    path: String,
    title: String,
    heading_path: Vec<String>,
    anchor: String,
    body: String,
}

/// Reads the chunks of `ordered` and returns them as hits, in that order.
async fn hydrate(
    pool: &PgPool,
    ordered: Vec<(String, f64, MatchKind)>,
) -> anyhow::Result<Vec<Hit>> {
    let ids: Vec<String> = ordered.iter().map(|o| o.0.clone()).collect();
    let rows: Vec<HitRow> = sqlx::query_as(
        "SELECT c.id, r.path, r.title, c.heading_path, c.anchor, c.body
         FROM chunks c JOIN runbooks r ON r.id = c.runbook_id WHERE c.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .context("Failed to read search hits")?;
    let mut by_id: HashMap<String, HitRow> = rows.into_iter().map(|r| (r.id.clone(), r)).collect();
    Ok(ordered
        .into_iter()
        .filter_map(|(id, score, matched_by)| Some((by_id.remove(&id)?, score, matched_by)))
        .enumerate()
        .map(|(i, (row, score, matched_by))| Hit {
            rank: i + 1,
            chunk_id: row.id,
            runbook_path: row.path,
            runbook_title: row.title,
            heading_path: row.heading_path,
            anchor: row.anchor,
            body: row.body,
            score,
            matched_by,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{fuse, Candidate, NAME_BOOST, REPEAT_DECAY, RRF_K};

    fn c(id: &str, runbook: Option<i64>) -> Candidate {
        Candidate {
            id: id.to_string(),
            runbook_id: runbook,
            names: Vec::new(),
        }
    }

    fn ids(fused: &[(String, f64)]) -> Vec<&str> {
        fused.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn a_runbook_both_lists_find_through_different_sections_ranks_first() {
        // Runbook 2 is second in both lists, by its `d1` section for the vectors and its
        // `d2` section for full text; runbooks 1 and 3 are each first in one list only.
        let vector = [c("c1", Some(1)), c("d1", Some(2))];
        let fulltext = [c("c2", Some(3)), c("d2", Some(2))];
        let fused = fuse(&vector, &fulltext, &HashMap::new());
        assert_eq!(ids(&fused), ["d1", "c1", "c2", "d2"]);
        let both = 2.0 / (RRF_K + 2.0);
        assert!((fused[0].1 - both).abs() < 1e-12);
        assert!((fused[1].1 - 1.0 / (RRF_K + 1.0)).abs() < 1e-12);
        // The runbook's second section follows the other runbooks' best, at half its score.
        assert!((fused[3].1 - both * REPEAT_DECAY).abs() < 1e-12);
    }

    #[test]
    fn a_runbook_counts_once_per_list_and_its_sections_keep_their_own_order() {
        // Runbook 1 fills the top of the vector list; runbook 2 is next in both lists.
        let vector = [
            c("a1", Some(1)),
            c("a2", Some(1)),
            c("a3", Some(1)),
            c("b1", Some(2)),
        ];
        let fulltext = [c("b1", Some(2)), c("a2", Some(1))];
        let fused = fuse(&vector, &fulltext, &HashMap::new());
        // Runbook ranks: vector 1, 2; full text 2, 1: a tie, broken by the best section
        // (a2 is in both lists).
        assert_eq!(ids(&fused), ["a2", "b1", "a1", "a3"]);
        assert!(fused.windows(2).all(|w| w[0].1 >= w[1].1), "scores descend");
    }

    #[test]
    fn chunks_of_no_runbook_stand_alone_and_empty_lists_fuse_to_nothing() {
        let vector = [c("x", None), c("y", None)];
        let fused = fuse(&vector, &[], &HashMap::new());
        assert_eq!(ids(&fused), ["x", "y"]);
        assert!(fused[1].1 < fused[0].1 && fused[1].1 > fused[0].1 * REPEAT_DECAY);
        assert!(fuse(&[], &[], &HashMap::new()).is_empty());
    }

    #[test]
    fn alert_name_coverage_breaks_near_ties_but_does_not_lift_far_ranks() {
        // Runbook 1 leads both lists by one rank; runbook 2's name is fully covered.
        let vector = [c("a", Some(1)), c("b", Some(2)), c("x", Some(3))];
        let fulltext = [c("a", Some(1)), c("b", Some(2))];
        let covered = HashMap::from([(1, 0.0), (2, 1.0)]);
        let fused = fuse(&vector, &fulltext, &covered);
        assert_eq!(ids(&fused), ["b", "a", "x"]);
        assert!((fused[0].1 - 2.0 / (RRF_K + 2.0) * (1.0 + NAME_BOOST)).abs() < 1e-12);
        // Twelfth in one list and absent from the other, a fully covered name moves a
        // runbook up six places (past v5..v10), not to the top.
        let vector: Vec<Candidate> = (0..12).map(|i| c(&format!("v{i}"), Some(i))).collect();
        let fulltext = [c("v0", Some(0))];
        let covered = HashMap::from([(11, 1.0)]);
        let fused = fuse(&vector, &fulltext, &covered);
        assert_eq!(
            ids(&fused[..7]),
            ["v0", "v1", "v2", "v3", "v4", "v11", "v5"]
        );
    }
}
