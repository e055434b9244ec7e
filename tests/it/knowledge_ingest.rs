//! Ingest against real Postgres: incremental re-ingest, removals, bad files, model switches.

use std::sync::Arc;

use sentinel::knowledge::ingest::ingest;
use sentinel::knowledge::{KnowledgeBase, SearchRequest};
use sqlx::PgPool;

use crate::helpers::embed::embedder;
use crate::helpers::fixtures::copy_fixture;

async fn chunk_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM chunks")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn reingest_is_incremental_and_removes_vanished_files(pool: PgPool) {
    let dir = copy_fixture("runbooks");
    let e = embedder();
    let roots = [dir.path().to_path_buf()];

    let first = ingest(&pool, e.as_ref(), &roots, false).await.unwrap();
    assert_eq!(first.files, 7);
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert!(first.chunks_added >= 20, "{}", first.chunks_added);
    let total = chunk_count(&pool).await;
    assert_eq!(total as usize, first.chunks_added);

    // Unchanged: no embedding work at all.
    let again = ingest(&pool, e.as_ref(), &roots, false).await.unwrap();
    assert_eq!((again.chunks_added, again.chunks_updated), (0, 0));
    assert_eq!(again.chunks_unchanged as i64, total);

    // One section edited: exactly that chunk is re-embedded.
    let f = dir.path().join("platform/ingress-5xx.md");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        &f,
        text.replace("More than 1% of requests", "More than 2% of requests"),
    )
    .unwrap();
    let edited = ingest(&pool, e.as_ref(), &roots, false).await.unwrap();
    assert_eq!(edited.chunks_updated, 1);
    assert_eq!(edited.chunks_added, 0);

    // A file removed: its runbook and chunks go.
    std::fs::remove_file(dir.path().join("data/cart-cache-memory.md")).unwrap();
    let removed = ingest(&pool, e.as_ref(), &roots, false).await.unwrap();
    assert_eq!(removed.runbooks_removed, 1);
    assert!(removed.chunks_removed > 0);
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runbooks WHERE path = 'data/cart-cache-memory.md'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        chunk_count(&pool).await,
        total - removed.chunks_removed as i64
    );
}

#[sqlx::test]
async fn bad_files_are_reported_and_the_rest_ingests(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("good.md"),
        "# Redis down\n\n## Meaning\nRedis is down.\n",
    )
    .unwrap();
    std::fs::write(p.join("empty.md"), "  \n\n").unwrap();
    std::fs::write(p.join("binary.md"), [0x89u8, b'P', b'N', b'G', 0, 0, 1]).unwrap();
    std::fs::write(p.join("latin1.md"), [b'c', b'a', b'f', 0xe9]).unwrap();
    std::fs::write(p.join("huge.md"), "a ".repeat(1_500_000)).unwrap();
    std::fs::write(p.join("badfm.md"), "---\ntitle: [oops\n---\n# x\ntext\n").unwrap();
    std::fs::write(p.join("notes.txt"), "not markdown, ignored").unwrap();

    let r = ingest(&pool, embedder().as_ref(), &[p.to_path_buf()], false)
        .await
        .unwrap();
    assert_eq!(r.files, 6);
    let mut reasons: Vec<(String, String)> = r
        .failed
        .iter()
        .map(|f| {
            (
                f.path.rsplit('/').next().unwrap().to_string(),
                f.reason.clone(),
            )
        })
        .collect();
    reasons.sort();
    let names: Vec<&str> = reasons.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        ["badfm.md", "binary.md", "empty.md", "huge.md", "latin1.md"]
    );
    assert!(
        reasons[0].1.starts_with("bad front matter"),
        "{:?}",
        reasons[0]
    );
    assert!(reasons[1].1.contains("binary"));
    assert!(reasons[2].1.contains("empty"));
    assert!(reasons[3].1.contains("too large"));
    assert!(reasons[4].1.contains("UTF-8"));
    assert_eq!(r.chunks_added, 1);
}

/// A minimal OpenAI-compatible embeddings server: deterministic 1536-dim vectors, and a
/// 429 on the first call to prove the client retries.
async fn fake_openai() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::{routing::post, Json, Router};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let app = Router::new().route(
        "/v1/embeddings",
        post(move |Json(body): Json<serde_json::Value>| {
            let c = c.clone();
            async move {
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    return (
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        Json(serde_json::json!({"error": {"message": "slow down", "type": "rate_limit", "param": null, "code": null}})),
                    );
                }
                let inputs = body["input"].as_array().cloned().unwrap_or_default();
                let data: Vec<_> = inputs
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let s = t.as_str().unwrap_or("");
                        let v: Vec<f32> = (0..1536)
                            .map(|j| ((s.len() * 31 + j * 7) % 97) as f32 / 97.0 - 0.5)
                            .collect();
                        serde_json::json!({"object": "embedding", "index": i, "embedding": v})
                    })
                    .collect();
                (
                    axum::http::StatusCode::OK,
                    Json(serde_json::json!({"object": "list", "data": data, "model": "text-embedding-3-small",
                        "usage": {"prompt_tokens": 1, "total_tokens": 1}})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), calls)
}

#[sqlx::test]
async fn switching_models_reembeds_instead_of_breaking(pool: PgPool) {
    sentinel::net::install_crypto();
    let dir = copy_fixture("runbooks");
    let roots = [dir.path().to_path_buf()];
    let local = ingest(&pool, embedder().as_ref(), &roots, false)
        .await
        .unwrap();

    let (base, calls) = fake_openai().await;
    let openai: Arc<dyn sentinel::embed::Embedder> = Arc::new(
        sentinel::embed::openai::OpenAiEmbedder::new(&base, None, "text-embedding-3-small", 1536),
    );
    let switched = ingest(&pool, openai.as_ref(), &roots, false).await.unwrap();
    assert!(switched.failed.is_empty());
    // Chunking differs per model, so count what the new model holds.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM chunks c JOIN embedding_models m ON m.id = c.model_id
         WHERE m.name = 'openai/text-embedding-3-small' AND vector_dims(c.embedding) = 1536",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        stored,
        chunk_count(&pool).await,
        "every chunk now carries the new model"
    );
    assert!(switched.chunks_added + switched.chunks_updated > 0);
    assert!(
        calls.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "429 was retried"
    );
    assert!(local.chunks_added > 0);

    // Search with the new model works, through its own index.
    let kb = KnowledgeBase::open(pool.clone(), openai).await.unwrap();
    let hits = kb
        .search(&SearchRequest {
            text: "replica lag".into(),
            alert: Some("PostgresReplicationLagHigh".into()),
            k: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hits[0].runbook_path, "data/orders-db-replication-lag.md");
}

/// On a new database, ingest writes BM25 weights before the corpus mean length is known;
/// the refresh that ends the ingest must leave every weight computed against the real mean.
#[sqlx::test]
async fn bm25_weights_use_the_corpus_mean_length_after_ingest(pool: PgPool) {
    let dir = copy_fixture("runbooks");
    let e = embedder();
    ingest(&pool, e.as_ref(), &[dir.path().to_path_buf()], false)
        .await
        .unwrap();
    let (avg_len, impact_avg_len): (f64, Option<f64>) =
        sqlx::query_as("SELECT avg_len, impact_avg_len FROM fulltext_stats")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(impact_avg_len, Some(avg_len));
    assert!(
        (avg_len - 64.0).abs() > 1.0,
        "fixture mean {avg_len} is the default"
    );
    let (postings, worst): (i64, f64) = sqlx::query_as(
        "SELECT count(*), max(abs(t.impact - sentinel_bm25_impact(
                    (coalesce(cardinality(u.positions), 1)
                       + coalesce(cardinality(array_positions(u.weights, 'A')), 0))::real,
                    greatest(c.tsv_len, 1)::real, $1::real)))::float8
         FROM chunks c, unnest(c.tsv) u
         JOIN chunk_terms t ON t.lexeme = u.lexeme
         WHERE t.chunk_id = c.id",
    )
    .bind(avg_len)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(postings > 500, "{postings}");
    assert!(worst < 1e-5, "stale weight off by {worst}");
}

#[sqlx::test]
async fn runbook_secrets_never_reach_the_database(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let key_line = "MIIEpAIBAAKCAQEA1cGx7nXq9Rk2Lw0vJmZ8bF3tQyHs5UcN4pVeKdWoYiTg6aBr";
    let key = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
        [key_line; 30].join("\n")
    );
    std::fs::write(
        dir.path().join("rotate.md"),
        format!(
            "# Rotate the deploy credentials\n\n## Meaning\nThe CI user's keys expire.\n\n\
             ## Fix\n```\nexport AWS_SECRET_ACCESS_KEY={secret}\ncat > deploy.pem <<EOF\n{key}\nEOF\n```\n\
             Then run the deploy again.\n"
        ),
    )
    .unwrap();
    let e = embedder();
    let report = ingest(&pool, e.as_ref(), &[dir.path().to_path_buf()], false)
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as("SELECT body, heading_path FROM chunks")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for (body, headings) in &rows {
        let stored = format!("{body} {}", headings.join(" "));
        assert!(!stored.contains(secret), "{stored}");
        assert!(!stored.contains(&key_line[..20]), "{stored}");
        assert!(!stored.contains("PRIVATE KEY"), "{stored}");
    }
    let all: String = rows.iter().map(|(b, _)| b.as_str()).collect();
    assert!(all.contains("[REDACTED]"), "{all}");
    assert!(all.contains("Then run the deploy again."), "{all}");
}
