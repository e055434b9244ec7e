//! docker-compose.yml: the official pgvector image, migrations, then the bot.

use serde_json::{json, Value};

use super::{default_port, read, repo, subcommand, Sub};

#[test]
fn compose_runs_sentinel_after_migrations_on_the_official_pgvector_image() {
    let compose: Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    let services = &compose["services"];
    let db = &services["db"];
    assert_eq!(db["image"], "pgvector/pgvector:pg16");
    assert!(db["healthcheck"]["test"].to_string().contains("pg_isready"));

    let migrate = &services["migrate"];
    let bot = &services["sentinel"];
    for s in [migrate, bot] {
        assert_eq!(s["build"], ".", "built from the Dockerfile");
        assert_eq!(s["env_file"], ".env");
        let url = s["environment"]["DATABASE_URL"].as_str().unwrap();
        assert!(url.contains("@db:5432/"), "{url}");
        assert_eq!(
            s["environment"]["SENTINEL_MODEL_DIR"],
            "/opt/sentinel/models/all-MiniLM-L6-v2"
        );
    }
    assert_eq!(migrate["command"], json!(["migrate"]));
    assert!(matches!(subcommand(&["migrate"]), Sub::Migrate));
    assert_eq!(migrate["depends_on"]["db"]["condition"], "service_healthy");
    assert_eq!(
        bot["depends_on"]["migrate"]["condition"],
        "service_completed_successfully"
    );
    assert_eq!(bot["command"], json!(["serve"]));
    let port = default_port();
    assert_eq!(bot["ports"], json!([format!("127.0.0.1:{port}:{port}")]));
    assert_eq!(bot["healthcheck"]["test"][1], "sentinel");
    assert!(repo().join(".env.example").exists());
}
