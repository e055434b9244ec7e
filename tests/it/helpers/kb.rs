//! Knowledge bases over the repository's runbook folders.

use std::path::PathBuf;
use std::sync::Arc;

use sentinel::embed::Embedder;
use sentinel::knowledge::{ingest, KnowledgeBase};
use sqlx::PgPool;

use super::embed::{embedder, HashEmbedder};
use super::fixtures::repo_path;

/// `dirs` ingested with `embedder` into `pool`; every file must ingest.
pub async fn ingested(
    pool: &PgPool,
    embedder: Arc<dyn Embedder>,
    dirs: &[PathBuf],
) -> KnowledgeBase {
    let report = ingest::ingest(pool, embedder.as_ref(), dirs, false)
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    KnowledgeBase::open(pool.clone(), embedder).await.unwrap()
}

/// The repository folder `rel` (e.g. `runbooks`), embedded with the local model.
pub async fn real(pool: &PgPool, rel: &str) -> KnowledgeBase {
    ingested(pool, embedder(), &[repo_path(rel)]).await
}

/// The bundled runbooks embedded with `HashEmbedder`: instant, for tests about something
/// else than ranking.
pub async fn hashed_runbooks(pool: &PgPool) -> KnowledgeBase {
    ingested(pool, Arc::new(HashEmbedder), &[repo_path("runbooks")]).await
}
