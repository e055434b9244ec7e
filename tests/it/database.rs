//! The database as operators of managed Postgres meet it: TLS with `sslmode=require` and
//! `verify-full` (rustls), a server without pgvector named in one sentence, and replicas
//! migrating one fresh database at once. Each test runs its own private Postgres.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use secrecy::SecretString;
use sentinel::error::UserError;

use crate::helpers::pg::{debian_install, install_without_vector, PgOptions, PrivatePg};

/// A CA and a server certificate it signed for 127.0.0.1 and localhost (PEM):
/// (ca, server cert, server key).
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Sentinel test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

async fn tls_server() -> (PrivatePg, String) {
    let (ca, cert, key) = certificates();
    let pg = PrivatePg::start(PgOptions {
        tls: Some((cert, key)),
        install: Some(debian_install()),
    })
    .await;
    (pg, ca)
}

/// Whether the session of a pool from `db::connect` runs over TLS, per the server.
async fn ssl_of(url: &str) -> anyhow::Result<bool> {
    let pool = sentinel::db::connect(&SecretString::from(url.to_string()), 2).await?;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await?;
    Ok(ssl)
}

fn write(dir: &Path, name: &str, pem: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p.to_str().unwrap().to_string()
}

#[tokio::test]
async fn sslmode_require_and_verify_full_connect_over_tls() {
    let (pg, ca) = tls_server().await;
    let ca_file = write(pg.dir(), "ca.pem", &ca);

    assert!(ssl_of(&pg.url("?sslmode=require")).await.unwrap());
    assert!(
        ssl_of(&pg.url(&format!("?sslmode=verify-full&sslrootcert={ca_file}")))
            .await
            .unwrap()
    );
    assert!(!ssl_of(&pg.url("?sslmode=disable")).await.unwrap());
}

#[tokio::test]
async fn verify_full_against_the_wrong_ca_is_refused_with_a_readable_error() {
    let (pg, _) = tls_server().await;
    let (other_ca, _, _) = certificates();
    let wrong = write(pg.dir(), "other-ca.pem", &other_ca);
    let url = pg.url(&format!("?sslmode=verify-full&sslrootcert={wrong}"));
    let err = ssl_of(&url).await.unwrap_err();
    let user = err
        .downcast_ref::<UserError>()
        .unwrap_or_else(|| panic!("not a user error: {err:#}"));
    let msg = user.to_string();
    assert!(
        msg.starts_with("cannot reach the database at postgres://sentinel@127.0.0.1:"),
        "{msg}"
    );
    eprintln!("wrong CA: {msg}");
    assert!(msg.contains("certificate is not trusted"), "{msg}");
    assert!(msg.contains("sslrootcert="), "says what to change: {msg}");

    // A server without TLS and `sslmode=require`: refused, not downgraded.
    let plain = PrivatePg::start(PgOptions {
        install: Some(debian_install()),
        ..PgOptions::default()
    })
    .await;
    let err = ssl_of(&plain.url("?sslmode=require")).await.unwrap_err();
    let msg = err.to_string();
    eprintln!("no TLS on the server: {msg}");
    assert!(msg.starts_with("cannot reach the database at"), "{msg}");
    assert!(
        msg.to_lowercase().contains("tls") || msg.to_lowercase().contains("ssl"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_server_without_pgvector_gets_one_sentence() {
    let copy = tempfile::tempdir().unwrap();
    let install = install_without_vector(copy.path());
    let pg = PrivatePg::start(PgOptions {
        install: Some(install),
        ..PgOptions::default()
    })
    .await;
    let err = sentinel::db::connect_and_migrate(&SecretString::from(pg.url("")))
        .await
        .unwrap_err();
    let user = err
        .downcast_ref::<UserError>()
        .unwrap_or_else(|| panic!("not a user error: {err:#}"));
    let msg = user.to_string();
    assert!(
        msg.starts_with(
            "the database has no `vector` extension available: install pgvector ≥ 0.5.0"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("Supabase"),
        "says where managed providers enable it: {msg}"
    );
    assert!(!msg.contains('\n'), "one sentence: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrating_a_fresh_database_at_once_all_succeed() {
    let pg = PrivatePg::start(PgOptions::default()).await;
    let url = SecretString::from(pg.url(""));
    let runs = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { sentinel::db::connect_and_migrate(&url).await.map(|_| ()) })
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap().unwrap();
    }
    let pool = sentinel::db::connect(&url, 1).await.unwrap();
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected: Vec<i64> = sentinel::db::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    assert_eq!(applied, expected, "every migration applied exactly once");
    let vector: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(vector, 1);
}
