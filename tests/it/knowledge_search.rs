//! Hybrid search on a small fixture corpus: exact signals first, then fused text + vector.

use sentinel::knowledge::{KnowledgeBase, MatchKind, SearchRequest};
use sqlx::PgPool;

use crate::helpers::embed::embedder;
use crate::helpers::kb;

fn req(text: &str) -> SearchRequest {
    SearchRequest {
        text: text.into(),
        k: 5,
        ..Default::default()
    }
}

#[sqlx::test]
async fn alert_name_matches_declared_alerts_first(pool: PgPool) {
    let kb = kb::real(&pool, "runbooks").await;
    // The text alone points elsewhere; the alert name must win.
    let hits = kb
        .search(&SearchRequest {
            alert: Some("RedisEvictionsHigh".into()),
            ..req("ingress returns 502 errors")
        })
        .await
        .unwrap();
    assert_eq!(hits[0].runbook_path, "data/cart-cache-memory.md");
    assert_eq!(hits[0].matched_by, MatchKind::AlertName);
    assert!(hits
        .iter()
        .any(|h| h.runbook_path == "platform/ingress-5xx.md"));
}

#[sqlx::test]
async fn runbook_url_matches_declared_urls(pool: PgPool) {
    let kb = kb::real(&pool, "runbooks").await;
    let hits = kb
        .search(&SearchRequest {
            runbook_url: Some("https://wiki.acme-shop.example/runbooks/ingress-5xx/".into()),
            ..req("disk is full")
        })
        .await
        .unwrap();
    assert_eq!(hits[0].runbook_path, "platform/ingress-5xx.md");
    assert_eq!(hits[0].matched_by, MatchKind::RunbookUrl);
}

#[sqlx::test]
async fn text_alone_finds_the_right_runbook(pool: PgPool) {
    let kb = kb::real(&pool, "runbooks").await;
    let cases = [
        (
            "replica is far behind the primary, stale reads",
            "data/orders-db-replication-lag.md",
        ),
        (
            "card payments failing at the provider",
            "checkout/payments-gateway-errors.md",
        ),
        (
            "messages piling up in the orders queue",
            "checkout/order-queue-backlog.md",
        ),
        (
            "node filesystem almost out of space",
            "platform/node-disk-pressure.md",
        ),
    ];
    for (q, expected) in cases {
        let hits = kb.search(&req(q)).await.unwrap();
        assert_eq!(hits[0].runbook_path, expected, "query `{q}`");
        assert_eq!(hits[0].matched_by, MatchKind::Hybrid);
        assert_eq!(hits[0].rank, 1);
    }
}

#[sqlx::test]
async fn long_alert_text_still_ranks(pool: PgPool) {
    // websearch_to_tsquery would AND all of these words and match nothing.
    let kb = kb::real(&pool, "runbooks").await;
    let q = "FIRING PaymentsGatewayHighErrorRate payments-gateway prod-eu-1 more than 2% of calls \
             to the payment service provider fail or time out over 5 minutes severity critical team payments";
    let hits = kb.search(&req(q)).await.unwrap();
    assert_eq!(hits[0].runbook_path, "checkout/payments-gateway-errors.md");
}

#[sqlx::test]
async fn prometheus_operator_urls_match_by_path_tail(pool: PgPool) {
    let kb = kb::real(&pool, "tests/data/runbooks/prometheus-operator").await;
    let hits = kb
        .search(&SearchRequest {
            runbook_url: Some(
                "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"
                    .into(),
            ),
            ..req("something unrelated about etcd")
        })
        .await
        .unwrap();
    assert_eq!(hits[0].runbook_path, "kubernetes/KubePodCrashLooping.md");
    assert_eq!(hits[0].matched_by, MatchKind::RunbookUrl);
}

#[sqlx::test]
async fn the_runbook_whose_alert_name_the_text_says_wins_a_near_tie(pool: PgPool) {
    let kb = kb::real(&pool, "tests/data/runbooks/prometheus-operator").await;
    // `AlertmanagerFailedToSendAlerts` and `AlertmanagerClusterFailedToSendAlerts` read
    // alike; without the names the cluster one ranked first for this alert's own text.
    let hits = kb
        .search(&req(
            "An Alertmanager instance failed to send notifications. Alertmanager / failed to send of notifications to .",
        ))
        .await
        .unwrap();
    assert_eq!(
        hits[0].runbook_path,
        "alertmanager/AlertmanagerFailedToSendAlerts.md"
    );
    assert!(hits
        .iter()
        .any(|h| h.runbook_path == "alertmanager/AlertmanagerClusterFailedToSendAlerts.md"));
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name_lexemes FROM runbooks WHERE path = 'alertmanager/AlertmanagerFailedToSendAlerts.md'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(names, ["alert alertmanag fail send to"]);
}

#[sqlx::test]
async fn control_characters_in_the_query_are_searched_as_spaces(pool: PgPool) {
    // Slack and webhook JSON can carry `\u0000`, which Postgres refuses in text.
    let kb = kb::real(&pool, "runbooks").await;
    let hits = kb.search(&req("disk\0is\u{1}full")).await.unwrap();
    let plain = kb.search(&req("disk is full")).await.unwrap();
    assert!(!hits.is_empty());
    assert_eq!(hits[0].runbook_path, plain[0].runbook_path);
    let by_url = kb
        .search(&SearchRequest {
            runbook_url: Some("https://wiki.acme-shop.example/runbooks/ingress-5xx/\0".into()),
            alert: Some("Redis\0EvictionsHigh".into()),
            ..req("disk\0full")
        })
        .await
        .unwrap();
    let kind = |path: &str| {
        by_url
            .iter()
            .find(|h| h.runbook_path == path)
            .map(|h| h.matched_by)
    };
    assert_eq!(kind("platform/ingress-5xx.md"), Some(MatchKind::RunbookUrl));
    assert_eq!(
        kind("data/cart-cache-memory.md"),
        Some(MatchKind::AlertName)
    );
}

#[sqlx::test]
async fn empty_knowledge_base_returns_nothing(pool: PgPool) {
    let kb = KnowledgeBase::open(pool, embedder()).await.unwrap();
    assert!(kb.search(&req("anything")).await.unwrap().is_empty());
}

/// Wraps the real embedder and keeps every text it was asked to embed.
struct Recording {
    inner: std::sync::Arc<dyn sentinel::embed::Embedder>,
    seen: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl sentinel::embed::Embedder for Recording {
    fn model_name(&self) -> &str {
        self.inner.model_name()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn max_tokens(&self) -> usize {
        self.inner.max_tokens()
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.inner.count_tokens(text)
    }
    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        self.seen.lock().unwrap().extend(texts.iter().cloned());
        self.inner.embed(texts).await
    }
}

#[sqlx::test]
async fn secrets_in_query_text_never_reach_the_embedder(pool: PgPool) {
    let kb = kb::real(&pool, "runbooks").await;
    let rec = std::sync::Arc::new(Recording {
        inner: embedder(),
        seen: Default::default(),
    });
    let kb = KnowledgeBase {
        embedder: rec.clone(),
        ..kb
    };
    let hits = kb
        .search(&req(
            "checkout-api crash looping, DATABASE_URL=postgres://app:hunter2secret@db/orders token xoxb-123456789012-abcdefghijkl",
        ))
        .await
        .unwrap();
    assert!(
        !hits.is_empty(),
        "the question still finds runbook sections"
    );
    let seen = rec.seen.lock().unwrap().join("\n");
    assert!(seen.contains("checkout-api crash looping"), "{seen}");
    for secret in ["hunter2secret", "xoxb-123456789012-abcdefghijkl"] {
        assert!(
            !seen.contains(secret),
            "{secret} reached the embedder: {seen}"
        );
    }
}
