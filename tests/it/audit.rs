//! The audit log against real Postgres: the chain links, a superuser's edits are found at the
//! right sequence number, the database refuses edits, the documented role can only append
//! and read, concurrent replicas make one chain, secrets never reach the table.

use std::process::Command;
use std::sync::Arc;

use sentinel::audit::{self, anchor, chain, Actor, AuditKey, Event, Head, Kind};
use sentinel::slack::recorder::{Call, Recorder};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

const KEY: &str = "test-audit-key-0123456789abcdef0123456789";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn key() -> AuditKey {
    AuditKey::from_config(KEY)
}

fn event(n: i64) -> Event {
    let mut e = Event::new(
        Actor::User {
            id: format!("U0{n:06}"),
            name: "ana".into(),
        },
        Kind::ApprovalRecorded,
    );
    e.incident_id = Some(7 + n % 2);
    e.proposal_id = Some(n);
    e.action = Some("rollback-checkout".into());
    e.argv = Some(vec!["kubectl".into(), "rollout".into(), "undo".into()]);
    e.outcome = Some("approved".into());
    e.detail = json!({"n": n, "approvers": ["U1", "U2"]});
    e
}

/// Appends `n` events, one transaction each, as the actions code does.
async fn append_n(pool: &PgPool, n: i64) -> Head {
    let mut head = None;
    for i in 1..=n {
        let mut tx = pool.begin().await.unwrap();
        head = Some(audit::append(&mut tx, &key(), event(i)).await.unwrap());
        tx.commit().await.unwrap();
    }
    head.unwrap()
}

/// Runs `sql` as a superuser who first gets past the triggers.
async fn tamper(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(&format!(
        "BEGIN; SET LOCAL session_replication_role = replica; {sql}; COMMIT;"
    ))
    .execute(pool)
    .await
    .unwrap();
}

async fn first_bad(pool: &PgPool) -> (i64, String) {
    let r = audit::verify(pool, &key()).await.unwrap();
    let j = r.to_json();
    assert_eq!(j["ok"], false, "{j}");
    (
        j["first_bad_seq"].as_i64().unwrap(),
        j["problem"].as_str().unwrap().to_string(),
    )
}

#[sqlx::test]
async fn appends_link_into_a_chain_that_verifies(pool: PgPool) {
    let empty = audit::verify(&pool, &key()).await.unwrap();
    assert_eq!(
        empty.to_json(),
        json!({"events": 0, "ok": true, "head_seq": 0, "head_hash": chain::GENESIS})
    );
    assert_eq!(audit::head(&pool).await.unwrap(), None);

    let head = append_n(&pool, 5).await;
    assert_eq!(head.seq, 5);
    assert_eq!(audit::head(&pool).await.unwrap(), Some(head.clone()));
    let r = audit::verify(&pool, &key()).await.unwrap();
    assert_eq!(
        r.to_json(),
        json!({"events": 5, "ok": true, "head_seq": 5, "head_hash": head.hash})
    );

    // Rows link: each prev_hash is the hash before it; seq has no gap.
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows[0].1, chain::GENESIS);
    for w in rows.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1);
        assert_eq!(w[1].1, w[0].2);
    }

    // `recent`, for `/sentinel audit #8`: that incident's events, oldest first.
    let recent = audit::recent(&pool, Some(8), 10).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 3, 5]
    );
    assert_eq!(recent[0].kind, "approval_recorded");
    assert_eq!(
        recent[0].actor,
        Actor::User {
            id: "U0000001".into(),
            name: "ana".into()
        }
    );
    let last_two = audit::recent(&pool, None, 2).await.unwrap();
    assert_eq!(
        last_two.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![4, 5]
    );
}

#[sqlx::test]
async fn a_rolled_back_append_leaves_no_trace(pool: PgPool) {
    append_n(&pool, 2).await;
    let mut tx = pool.begin().await.unwrap();
    audit::append(&mut tx, &key(), event(3)).await.unwrap();
    tx.rollback().await.unwrap();
    let head = append_n(&pool, 1).await;
    assert_eq!(head.seq, 3);
    assert!(audit::verify(&pool, &key()).await.unwrap().ok());
}

#[sqlx::test]
async fn verify_with_a_wrong_key_fails_at_seq_1(pool: PgPool) {
    append_n(&pool, 3).await;
    let r = audit::verify(
        &pool,
        &AuditKey::from_config("another-key-0123456789abcdef012345"),
    )
    .await
    .unwrap();
    let j = r.to_json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["first_bad_seq"], 1);
    assert_eq!(j["problem"], "altered");
    assert_ne!(j["expected_hash"], j["found_hash"]);
}

#[sqlx::test]
async fn a_changed_row_is_found_at_its_seq(pool: PgPool) {
    append_n(&pool, 6).await;
    tamper(
        &pool,
        "UPDATE audit_events SET outcome = 'rejected' WHERE seq = 4",
    )
    .await;
    assert_eq!(first_bad(&pool).await, (4, "altered".into()));
    let j = audit::verify(&pool, &key()).await.unwrap().to_json();
    let stored: String = sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = 4")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(j["found_hash"], stored.as_str());
    assert_eq!(j["events"], 4);
}

#[sqlx::test]
async fn a_deleted_row_is_found_at_its_seq(pool: PgPool) {
    append_n(&pool, 6).await;
    tamper(&pool, "DELETE FROM audit_events WHERE seq = 3").await;
    assert_eq!(first_bad(&pool).await, (3, "missing".into()));
}

#[sqlx::test]
async fn an_inserted_row_is_found_at_its_seq(pool: PgPool) {
    append_n(&pool, 6).await;
    // Make room at 3 (rows 3.. move up by one), then forge a row there that points at row 2.
    tamper(
        &pool,
        "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 3;
         UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1000;
         INSERT INTO audit_events (seq, at, actor_id, actor_name, kind, detail, prev_hash, hash)
         SELECT 3, now(), 'U0EVIL', 'mallory', 'approval_recorded', '{}', hash, repeat('a', 64)
         FROM audit_events WHERE seq = 2",
    )
    .await;
    assert_eq!(first_bad(&pool).await, (3, "altered".into()));
}

#[sqlx::test]
async fn an_appended_forgery_is_found(pool: PgPool) {
    let head = append_n(&pool, 4).await;
    tamper(
        &pool,
        &format!(
            "INSERT INTO audit_events (seq, at, actor_id, actor_name, kind, detail, prev_hash, hash)
             VALUES (5, now(), 'U0EVIL', 'mallory', 'run_started', '{{}}', '{}', repeat('b', 64))",
            head.hash
        ),
    )
    .await;
    assert_eq!(first_bad(&pool).await, (5, "altered".into()));
}

#[sqlx::test]
async fn reordered_rows_are_found_at_the_first_moved_seq(pool: PgPool) {
    append_n(&pool, 6).await;
    tamper(
        &pool,
        "UPDATE audit_events SET seq = 100 WHERE seq = 4;
         UPDATE audit_events SET seq = 4 WHERE seq = 5;
         UPDATE audit_events SET seq = 5 WHERE seq = 100",
    )
    .await;
    assert_eq!(first_bad(&pool).await, (4, "broken_link".into()));
}

#[sqlx::test]
async fn a_cut_tail_is_found_against_an_anchored_head(pool: PgPool) {
    let anchored = append_n(&pool, 5).await;
    tamper(&pool, "DELETE FROM audit_events WHERE seq >= 4").await;
    // The chain alone still links...
    assert!(audit::verify(&pool, &key()).await.unwrap().ok());
    // ...the head published earlier does not.
    let r = audit::verify_with(&pool, &key(), Some(&anchored))
        .await
        .unwrap();
    assert_eq!(r.to_json()["first_bad_seq"], 4);
    assert_eq!(r.to_json()["problem"], "truncated");
}

#[sqlx::test]
async fn triggers_refuse_update_delete_and_truncate_even_to_the_owner(pool: PgPool) {
    append_n(&pool, 2).await;
    for sql in [
        "UPDATE audit_events SET outcome = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 2",
        "TRUNCATE audit_events",
    ] {
        let e = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(audit::verify(&pool, &key()).await.unwrap().ok());
}

/// The role set-up of docs/audit.md, run as written there (role name aside).
fn documented_role_sql(role: &str) -> String {
    let doc = include_str!("../../docs/audit.md");
    let start = doc
        .find("<!-- role-setup -->")
        .expect("docs/audit.md has the role set-up");
    let block = &doc[start..];
    let sql_start = block.find("```sql\n").unwrap() + 7;
    let sql_end = block[sql_start..].find("```").unwrap();
    block[sql_start..sql_start + sql_end].replace("sentinel_app", role)
}

#[sqlx::test]
async fn the_documented_app_role_can_only_append_and_read(pool: PgPool) {
    append_n(&pool, 2).await;
    let role = format!("audit_app_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&documented_role_sql(&role))
        .execute(&pool)
        .await
        .unwrap();
    let as_role = |sql: String| {
        let role = role.clone();
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&format!("SET LOCAL ROLE {role}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            let r = sqlx::raw_sql(&sql).execute(&mut *tx).await.map(|_| ());
            if r.is_ok() {
                tx.commit().await.unwrap();
            }
            r
        }
    };
    for sql in [
        "UPDATE audit_events SET outcome = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 2",
        "TRUNCATE audit_events",
    ] {
        let e = as_role(sql.to_string()).await.unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{sql}: {e}");
    }
    // Nor can it get past the triggers.
    let e = as_role("ALTER TABLE audit_events DISABLE TRIGGER USER".into())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("must be owner"), "{e}");
    let e = as_role("SET session_replication_role = replica".into())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
    // Its work on the other tables goes on.
    as_role("UPDATE incidents SET version = version WHERE false".into())
        .await
        .unwrap();

    // It starts: the migration check every command runs at start-up passes.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query(&format!("SET ROLE {role}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    sentinel::db::MIGRATOR.run(&mut *conn).await.unwrap();
    sqlx::query("RESET ROLE").execute(&mut *conn).await.unwrap();
    drop(conn);

    // It appends and reads: the chain goes on and verifies.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(&format!("SET LOCAL ROLE {role}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    let head = audit::append(&mut tx, &key(), event(3)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(head.seq, 3);
    assert!(audit::verify(&pool, &key()).await.unwrap().ok());
    sqlx::raw_sql(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .execute(&pool)
        .await
        .unwrap();
}

#[sqlx::test]
async fn concurrent_appends_from_two_replicas_make_one_chain(pool: PgPool) {
    let opts = pool.connect_options().as_ref().clone();
    let replicas: Vec<PgPool> = vec![
        PgPoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
            .await
            .unwrap(),
        PgPoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .unwrap(),
    ];
    let mut tasks = Vec::new();
    for (r, p) in replicas.iter().enumerate() {
        for t in 0..4 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let mut tx = p.begin().await.unwrap();
                    let mut e = event((r * 1000 + t * 100 + i) as i64);
                    e.kind = Kind::RunStarted;
                    if i % 2 == 0 {
                        audit::append(&mut tx, &key(), e).await.unwrap();
                        tx.commit().await.unwrap();
                    } else {
                        audit::append_unflushed(&mut tx, &key(), e).await.unwrap();
                        tx.commit().await.unwrap();
                        audit::wait_durable(&p).await.unwrap();
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = audit::verify(&pool, &key()).await.unwrap();
    assert_eq!(r.to_json()["ok"], true, "{}", r.to_json());
    assert_eq!(r.events, 200);
    let (min, max, n): (i64, i64, i64) =
        sqlx::query_as("SELECT min(seq), max(seq), count(DISTINCT prev_hash) FROM audit_events")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((min, max, n), (1, 200, 200), "gap-free, no fork");
}

#[sqlx::test]
async fn secrets_are_redacted_before_hashing_and_storing(pool: PgPool) {
    let mut e = Event::new(Actor::Sentinel, Kind::RunExited);
    e.argv = Some(vec![
        "aws".into(),
        "configure".into(),
        "set".into(),
        "aws_secret_access_key".into(),
        AWS_SECRET.into(),
    ]);
    e.outcome = Some(format!("exit 1: bad key {AWS_SECRET}"));
    e.detail = json!({"stderr": format!("AWS_SECRET_ACCESS_KEY={AWS_SECRET}"),
                      "env": {"DB_PASSWORD": "Tr0ub4dor-and-3"}});
    let mut tx = pool.begin().await.unwrap();
    audit::append(&mut tx, &key(), e).await.unwrap();
    tx.commit().await.unwrap();
    let row: String = sqlx::query_scalar("SELECT row_to_json(a)::text FROM audit_events a")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!row.contains(AWS_SECRET), "{row}");
    assert!(!row.contains("Tr0ub4dor"), "{row}");
    assert!(row.contains("[REDACTED]"), "{row}");
    assert!(
        row.contains("aws_secret_access_key"),
        "the rest stays: {row}"
    );
    // What is stored is what was hashed.
    assert!(audit::verify(&pool, &key()).await.unwrap().ok());
}

#[sqlx::test]
async fn the_anchor_posts_the_head_without_appending(pool: PgPool) {
    let head = append_n(&pool, 3).await;
    let slack = Recorder::new();
    let published = anchor::now(&pool, Some(&key()), Some((slack.as_ref(), "C0AUDIT")))
        .await
        .unwrap();
    assert_eq!(published, head);
    assert_eq!(audit::head(&pool).await.unwrap(), Some(head.clone()));
    let calls = slack.calls();
    let [Call::Post { channel, msg, .. }] = calls.as_slice() else {
        panic!("one post expected: {calls:?}")
    };
    assert_eq!(channel, "C0AUDIT");
    assert!(msg.text().contains("seq *3*"), "{}", msg.text());
    assert!(msg.text().contains(&head.hash), "{}", msg.text());
    assert!(!msg.text().contains("does not verify"));

    // A last row forged without the key is called out.
    tamper(
        &pool,
        &format!(
            "INSERT INTO audit_events (seq, at, actor_id, actor_name, kind, detail, prev_hash, hash)
             VALUES (4, now(), 'U0EVIL', 'mallory', 'run_started', '{{}}', '{}', repeat('c', 64))",
            head.hash
        ),
    )
    .await;
    let port: Arc<dyn sentinel::slack::SlackPort> = slack.clone();
    anchor::now(&pool, Some(&key()), Some((port.as_ref(), "C0AUDIT")))
        .await
        .unwrap();
    let calls = slack.calls();
    let Some(Call::Post { msg, .. }) = calls.last() else {
        panic!("{calls:?}")
    };
    assert!(msg.text().contains("does not verify"), "{}", msg.text());
}

fn sentinel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sentinel"))
}

/// The URL of the per-test database that `#[sqlx::test]` created.
fn url_of(pool: &PgPool) -> String {
    let db = pool.connect_options().get_database().unwrap().to_string();
    let base = std::env::var("DATABASE_URL").unwrap();
    format!("{}/{db}", base.rsplit_once('/').unwrap().0)
}

#[sqlx::test]
async fn cli_verify_and_export_keep_their_contract(pool: PgPool) {
    let url = url_of(&pool);
    let head = append_n(&pool, 4).await;
    let run = |args: &[&str], key: Option<&str>| {
        let mut c = sentinel();
        c.args(args).env("DATABASE_URL", &url);
        match key {
            Some(k) => c.env("SENTINEL_AUDIT_KEY", k),
            None => c.env_remove("SENTINEL_AUDIT_KEY"),
        };
        c.output().unwrap()
    };

    let out = run(&["audit", "verify", "--json"], Some(KEY));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        j,
        json!({"events": 4, "ok": true, "head_seq": 4, "head_hash": head.hash})
    );

    let out = run(&["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SENTINEL_AUDIT_KEY is not set"));

    // Export: JSON lines, filtered, each carrying its hashes.
    let out = run(&["audit", "export", "--incident", "#8"], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines
            .iter()
            .map(|l| l["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(lines[0]["kind"], "approval_recorded");
    assert_eq!(lines[0]["detail"]["approvers"], json!(["U1", "U2"]));
    assert_eq!(lines[0]["prev_hash"], chain::GENESIS);
    let out = run(&["audit", "export", "--since", "2000-01-01"], None);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 4);
    let out = run(
        &["audit", "export", "--since", "2999-01-01T00:00:00Z"],
        None,
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 0);

    // Broken: exit 1, the first bad seq with both hashes.
    tamper(
        &pool,
        "UPDATE audit_events SET actor_name = 'eve' WHERE seq = 2",
    )
    .await;
    let out = run(&["audit", "verify", "--json"], Some(KEY));
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(j["first_bad_seq"], 2);
    assert_eq!(j["events"], 2);
    for k in ["expected_hash", "found_hash", "reason"] {
        assert!(j[k].as_str().is_some_and(|s| !s.is_empty()), "{k}: {j}");
    }
    let out = run(&["audit", "verify"], Some(KEY));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("BROKEN at seq 2"));
}
