//! `sentinel ingest`: files on disk -> runbooks and embedded chunks in Postgres.
//!
//! Unchanged chunks (same content hash, same model) cost no embedding work; vanished files
//! lose their chunks; each file is written in one transaction. A bad file is reported with
//! its reason and skipped; the rest still ingests. Secrets in a runbook's text are redacted
//! before anything is hashed, embedded or stored.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgvector::Vector;
use serde::Serialize;
use sqlx::PgPool;

use super::chunk::{chunk, Chunk};
use super::query::{identifier_terms, normalize_url};
use super::runbook::{self, normalize_key, Runbook};
use crate::db;
use crate::embed::Embedder;
use crate::redact::redact_patterns;

/// Files larger than this are refused: a runbook is prose, not a data dump.
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
const EMBED_BATCH: usize = 256;

#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestReport {
    pub files: usize,
    pub failed: Vec<FileError>,
    pub chunks_added: usize,
    pub chunks_updated: usize,
    pub chunks_unchanged: usize,
    pub chunks_removed: usize,
    pub runbooks_removed: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileError {
    pub path: String,
    pub reason: String,
}

impl IngestReport {
    pub fn summary_line(&self) -> String {
        format!(
            "ingested {} files{}: {} chunks added, {} updated, {} unchanged, {} removed in {:.1}s",
            self.files - self.failed.len(),
            if self.failed.is_empty() {
                String::new()
            } else {
                format!(" ({} failed)", self.failed.len())
            },
            self.chunks_added,
            self.chunks_updated,
            self.chunks_unchanged,
            self.chunks_removed,
            self.seconds
        )
    }
}

/// One file found under an ingest root.
struct Found {
    source: String,
    rel: String,
    abs: PathBuf,
}

struct Prepared {
    source: String,
    runbook: Runbook,
    chunks: Vec<Chunk>,
}

/// Finds markdown files under each root. A runbook's identity is its path relative to the root.
fn discover(roots: &[PathBuf]) -> anyhow::Result<Vec<Found>> {
    let mut out = Vec::new();
    for root in roots {
        let meta = std::fs::metadata(root)
            .map_err(|e| crate::error::UserError::new(format!("{}: {e}", root.display())))?;
        let canon = root.canonicalize().unwrap_or_else(|_| root.clone());
        if meta.is_file() {
            let name = canon
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let parent = canon.parent().unwrap_or(Path::new("/"));
            out.push(Found {
                source: format!("{}#{}", parent.display(), name),
                rel: name,
                abs: canon.clone(),
            });
            continue;
        }
        let mut files = Vec::new();
        walk(&canon, &mut files)?;
        files.sort();
        for abs in files {
            let rel = abs
                .strip_prefix(&canon)
                .unwrap_or(&abs)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect::<Vec<_>>()
                .join("/");
            out.push(Found {
                source: canon.display().to_string(),
                rel,
                abs,
            });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("Failed to list {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = entry.file_type()?;
        let path = entry.path();
        if ft.is_dir() {
            walk(&path, out)?;
        } else if (ft.is_file() || ft.is_symlink()) && is_markdown(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_markdown(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("md" | "markdown")
    )
}

/// Reads and parses one file; the error is the reason, for `path: reason` lines.
fn prepare(found: &Found, embedder: &dyn Embedder) -> Result<Prepared, String> {
    let meta = std::fs::metadata(&found.abs).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "too large ({} bytes; the limit is {MAX_FILE_BYTES})",
            meta.len()
        ));
    }
    let bytes = std::fs::read(&found.abs).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.contains(&0) {
        return Err("binary file (contains NUL bytes)".to_string());
    }
    let text = String::from_utf8(bytes).map_err(|_| "not valid UTF-8 text".to_string())?;
    if text.trim().is_empty() {
        return Err("empty file".to_string());
    }
    let runbook = redact_runbook(runbook::parse(&found.rel, &text)?);
    let counter = |s: &str| embedder.count_tokens(s);
    let chunks = chunk(&runbook, embedder.max_tokens(), &counter);
    if chunks.is_empty() {
        return Err("no text to index (only headings or front matter)".to_string());
    }
    Ok(Prepared {
        source: found.source.clone(),
        runbook,
        chunks,
    })
}

/// The runbook with secrets redacted from the text that is stored and shown (title, body,
/// hence every chunk, and declared URLs), before anything is chunked, hashed, embedded or
/// stored: the database holds no secret, and a private-key block is removed whole before
/// chunking could split it. Actions stay as declared (argv templates).
fn redact_runbook(mut r: Runbook) -> Runbook {
    r.title = redact_patterns(&r.title);
    r.body = redact_patterns(&r.body);
    for u in &mut r.urls {
        *u = redact_patterns(u);
    }
    r
}

/// Ingests every markdown file under `roots`.
pub async fn ingest(
    pool: &PgPool,
    embedder: &dyn Embedder,
    roots: &[PathBuf],
    show_progress: bool,
) -> anyhow::Result<IngestReport> {
    let started = Instant::now();
    let model_id = db::register_model(pool, embedder.model_name(), embedder.dim()).await?;
    let found = discover(roots)?;
    let mut report = IngestReport {
        files: found.len(),
        ..Default::default()
    };
    let (prepared, seen_by_source) = prepare_all(&found, embedder, &mut report);
    let existing = stored_chunks(pool, &prepared).await?;
    let todo = changed_chunks(&prepared, &existing, model_id, &mut report);
    let vectors = embed_changed(embedder, &prepared, &todo, show_progress).await?;
    for (fi, p) in prepared.iter().enumerate() {
        report.chunks_removed += write_runbook(pool, model_id, fi, p, &vectors)
            .await
            .with_context(|| format!("Failed to store {}", p.runbook.path))?;
    }
    remove_vanished(pool, &seen_by_source, &mut report).await?;
    refresh_stats_if_needed(pool, &report).await?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Reads and parses every found file; failures go to `report`. Also returns the files seen
/// under each source, to find the ones that vanished.
fn prepare_all(
    found: &[Found],
    embedder: &dyn Embedder,
    report: &mut IngestReport,
) -> (Vec<Prepared>, HashMap<String, HashSet<String>>) {
    let mut prepared = Vec::new();
    let mut seen_by_source: HashMap<String, HashSet<String>> = HashMap::new();
    for f in found {
        seen_by_source
            .entry(f.source.clone())
            .or_default()
            .insert(f.rel.clone());
        match prepare(f, embedder) {
            Ok(p) => prepared.push(p),
            Err(reason) => report.failed.push(FileError {
                path: f.abs.display().to_string(),
                reason,
            }),
        }
    }
    (prepared, seen_by_source)
}

/// What is stored already: content hash and model per chunk id, for the prepared runbooks.
async fn stored_chunks(
    pool: &PgPool,
    prepared: &[Prepared],
) -> anyhow::Result<HashMap<String, (String, Option<i32>)>> {
    let paths: Vec<String> = prepared.iter().map(|p| p.runbook.path.clone()).collect();
    let existing: Vec<(String, String, Option<i32>)> = sqlx::query_as(
        "SELECT c.id, c.content_hash, c.model_id FROM chunks c
         JOIN runbooks r ON r.id = c.runbook_id WHERE r.path = ANY($1)",
    )
    .bind(&paths)
    .fetch_all(pool)
    .await
    .context("Failed to read stored chunks")?;
    Ok(existing
        .into_iter()
        .map(|(id, h, m)| (id, (h, m)))
        .collect())
}

/// The chunks (file index, chunk index) to embed: new ones, and stored ones whose text or
/// model changed. Counts added, updated and unchanged chunks in `report`.
fn changed_chunks(
    prepared: &[Prepared],
    existing: &HashMap<String, (String, Option<i32>)>,
    model_id: i32,
    report: &mut IngestReport,
) -> Vec<(usize, usize)> {
    let mut todo: Vec<(usize, usize)> = Vec::new();
    for (fi, p) in prepared.iter().enumerate() {
        for (ci, c) in p.chunks.iter().enumerate() {
            match existing.get(&c.id) {
                Some((h, Some(m))) if *h == c.content_hash && *m == model_id => {
                    report.chunks_unchanged += 1
                }
                Some(_) => {
                    report.chunks_updated += 1;
                    todo.push((fi, ci));
                }
                None => {
                    report.chunks_added += 1;
                    todo.push((fi, ci));
                }
            }
        }
    }
    todo
}

/// Embeds the `todo` chunks in batches across all files (in `todo`'s order), keyed by
/// (file index, chunk index).
async fn embed_changed(
    embedder: &dyn Embedder,
    prepared: &[Prepared],
    todo: &[(usize, usize)],
    show_progress: bool,
) -> anyhow::Result<HashMap<(usize, usize), Vector>> {
    let bar = progress_bar(todo.len() as u64, show_progress);
    let mut vectors: HashMap<(usize, usize), Vector> = HashMap::with_capacity(todo.len());
    for batch in todo.chunks(EMBED_BATCH) {
        let texts: Vec<String> = batch
            .iter()
            .map(|&(fi, ci)| prepared[fi].chunks[ci].embed_text.clone())
            .collect();
        let vecs = embedder
            .embed(&texts)
            .await
            .context("Failed to embed chunks")?;
        for (key, v) in batch.iter().zip(vecs) {
            vectors.insert(*key, Vector::from(v));
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    Ok(vectors)
}

/// Removes the runbooks of files that vanished from a folder that was ingested before.
async fn remove_vanished(
    pool: &PgPool,
    seen_by_source: &HashMap<String, HashSet<String>>,
    report: &mut IngestReport,
) -> anyhow::Result<()> {
    for (source, seen) in seen_by_source {
        let seen: Vec<String> = seen.iter().cloned().collect();
        let mut tx = pool.begin().await?;
        let (chunks,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM chunks c JOIN runbooks r ON r.id = c.runbook_id
             WHERE r.source = $1 AND NOT (r.path = ANY($2))",
        )
        .bind(source)
        .bind(&seen)
        .fetch_one(&mut *tx)
        .await?;
        let gone = sqlx::query("DELETE FROM runbooks WHERE source = $1 AND NOT (path = ANY($2))")
            .bind(source)
            .bind(&seen)
            .execute(&mut *tx)
            .await
            .context("Failed to remove vanished runbooks")?
            .rows_affected();
        tx.commit().await?;
        report.chunks_removed += chunks as usize;
        report.runbooks_removed += gone as usize;
    }
    Ok(())
}

/// Refreshes the full-text statistics when the ingest changed any chunk, or when they are
/// missing (a new database, or one migrated to BM25).
async fn refresh_stats_if_needed(pool: &PgPool, report: &IngestReport) -> anyhow::Result<()> {
    let stats_missing: bool = sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM lexeme_df) OR NOT EXISTS (SELECT 1 FROM fulltext_stats)",
    )
    .fetch_one(pool)
    .await?;
    if stats_missing || report.chunks_added + report.chunks_updated + report.chunks_removed > 0 {
        super::index::refresh_lexeme_stats(pool).await?;
    }
    Ok(())
}

/// Writes one runbook and its chunks in a transaction; returns how many chunks it dropped.
async fn write_runbook(
    pool: &PgPool,
    model_id: i32,
    fi: usize,
    p: &Prepared,
    vectors: &HashMap<(usize, usize), Vector>,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let runbook_id = upsert_runbook(&mut tx, p).await?;
    let ids: Vec<String> = p.chunks.iter().map(|c| c.id.clone()).collect();
    let removed = sqlx::query("DELETE FROM chunks WHERE runbook_id = $1 AND NOT (id = ANY($2))")
        .bind(runbook_id)
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected() as usize;
    let stem = runbook::file_stem(&p.runbook.path);
    let mut touched: Vec<String> = Vec::new();
    for (ci, c) in p.chunks.iter().enumerate() {
        let ident = identifier_terms(&format!("{stem} {} {}", c.heading_path.join(" "), c.body));
        let changed = match vectors.get(&(fi, ci)) {
            Some(v) => {
                upsert_chunk(&mut tx, c, runbook_id, model_id, v, &ident).await?;
                true
            }
            None => refresh_unchanged_chunk(&mut tx, c, &ident).await?,
        };
        if changed {
            touched.push(c.id.clone());
        }
    }
    super::index::index_terms(&mut tx, &touched).await?;
    tx.commit().await?;
    Ok(removed)
}

/// Inserts or updates the runbook row of `p`; returns its id.
async fn upsert_runbook(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    p: &Prepared,
) -> anyhow::Result<i64> {
    let r = &p.runbook;
    let (runbook_id,): (i64,) = sqlx::query_as(
        "INSERT INTO runbooks (path, source, title, alerts, services, tags, urls, actions,
                               match_keys, stem_key, url_keys, content_hash, ingested_at,
                               name_lexemes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now(),
                 ARRAY(SELECT array_to_string(tsvector_to_array(to_tsvector('sentinel_names', n)), ' ')
                       FROM unnest($13::text[]) n))
         ON CONFLICT (path) DO UPDATE SET source = EXCLUDED.source, title = EXCLUDED.title,
             alerts = EXCLUDED.alerts, services = EXCLUDED.services, tags = EXCLUDED.tags,
             urls = EXCLUDED.urls, actions = EXCLUDED.actions, match_keys = EXCLUDED.match_keys,
             stem_key = EXCLUDED.stem_key, url_keys = EXCLUDED.url_keys,
             content_hash = EXCLUDED.content_hash, ingested_at = now(),
             name_lexemes = EXCLUDED.name_lexemes
         RETURNING id",
    )
    .bind(&r.path)
    .bind(&p.source)
    .bind(&r.title)
    .bind(&r.alerts)
    .bind(&r.services)
    .bind(&r.tags)
    .bind(&r.urls)
    .bind(sqlx::types::Json(&r.actions))
    .bind(r.match_keys())
    .bind(normalize_key(runbook::file_stem(&r.path)))
    .bind(r.urls.iter().map(|u| normalize_url(u)).collect::<Vec<_>>())
    .bind(runbook_hash(&p.chunks))
    .bind(super::names::alert_name_words(r))
    .fetch_one(&mut **tx)
    .await?;
    Ok(runbook_id)
}

/// Writes a new or changed chunk with its fresh vector.
async fn upsert_chunk(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    c: &Chunk,
    runbook_id: i64,
    model_id: i32,
    v: &Vector,
    ident: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO chunks (id, runbook_id, ord, heading_path, anchor, body,
                             content_hash, model_id, embedding, heading_text,
                             ident_text)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (id) DO UPDATE SET runbook_id = EXCLUDED.runbook_id,
             ord = EXCLUDED.ord, heading_path = EXCLUDED.heading_path,
             heading_text = EXCLUDED.heading_text, ident_text = EXCLUDED.ident_text,
             anchor = EXCLUDED.anchor, body = EXCLUDED.body,
             content_hash = EXCLUDED.content_hash, model_id = EXCLUDED.model_id,
             embedding = EXCLUDED.embedding",
    )
    .bind(&c.id)
    .bind(runbook_id)
    .bind(c.ord)
    .bind(&c.heading_path)
    .bind(&c.anchor)
    .bind(&c.body)
    .bind(&c.content_hash)
    .bind(model_id)
    .bind(v)
    .bind(c.heading_path.join(" "))
    .bind(ident)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Unchanged text: keeps the vector and refreshes what is derived from the text (rows
/// written before `ident_text` existed get it here, without re-embedding). True when the
/// row changed.
async fn refresh_unchanged_chunk(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    c: &Chunk,
    ident: &str,
) -> anyhow::Result<bool> {
    let n = sqlx::query(
        "UPDATE chunks SET ord = $2, ident_text = $3
         WHERE id = $1 AND (ord <> $2 OR ident_text <> $3)",
    )
    .bind(&c.id)
    .bind(c.ord)
    .bind(ident)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n > 0)
}

fn runbook_hash(chunks: &[Chunk]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for c in chunks {
        h.update(c.content_hash.as_bytes());
    }
    hex::encode(h.finalize())[..32].to_string()
}

fn progress_bar(len: u64, show: bool) -> ProgressBar {
    if !show || len == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "embedding {bar:40} {pos}/{len} chunks ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const KEY_LINE: &str = "MIIEpAIBAAKCAQEA1cGx7nXq9Rk2Lw0vJmZ8bF3tQyHs5UcN4pVeKdWoYiTg6aBr";

    #[test]
    fn stored_text_is_redacted_and_actions_are_kept() {
        let text = format!(
            "---\ntitle: Rotate xoxb-1234567890-abcdefghijkl\n\
             urls: [\"https://grafana.example/d/x?orgId=1&token=ab12cd34ef56gh78\"]\n\
             actions:\n  - id: rotate\n    title: Rotate\n    command: [vault, write, \"--token={{token}}\"]\n    params:\n      token: {{pattern: \"[a-z]+\"}}\n\
             ---\n## Fix\nexport AWS_SECRET_ACCESS_KEY={SECRET}\n\n```\n-----BEGIN RSA PRIVATE KEY-----\n{KEY_LINE}\n{KEY_LINE}\n-----END RSA PRIVATE KEY-----\n```\n"
        );
        let r = redact_runbook(runbook::parse("ops/rotate.md", &text).unwrap());
        assert!(!r.title.contains("xoxb-"), "{}", r.title);
        assert!(!r.urls[0].contains("ab12cd34"), "{:?}", r.urls);
        assert!(r.urls[0].contains("orgId=1"), "{:?}", r.urls);
        assert_eq!(r.actions[0].command[2], "--token={token}");
        let chunks = chunk(&r, 256, &|s: &str| s.split_whitespace().count());
        assert!(!chunks.is_empty());
        for c in &chunks {
            for s in [SECRET, KEY_LINE, "xoxb-"] {
                assert!(!c.body.contains(s) && !c.embed_text.contains(s), "{c:?}");
            }
        }
    }
}
