//! fly.toml: never auto-stopped, migrations as the release command, secrets kept out.

use super::{default_port, is_secret, port_of, read, repo, subcommand, Sub};

pub fn fly() -> toml::Table {
    read("fly.toml").parse().expect("fly.toml is TOML")
}

#[test]
fn fly_toml_never_stops_the_bot_migrates_on_release_and_keeps_secrets_out() {
    let fly = fly();
    assert_eq!(fly["build"]["dockerfile"].as_str(), Some("Dockerfile"));
    assert!(repo().join("Dockerfile").exists());

    // Migrations run as the release command, which is `sentinel migrate`.
    let release = fly["deploy"]["release_command"].as_str().unwrap();
    let words: Vec<&str> = release.split_whitespace().collect();
    assert_eq!(words[0], "sentinel");
    assert!(matches!(subcommand(&words[1..]), Sub::Migrate), "{release}");

    // A Socket Mode bot gets no inbound traffic while it waits: never auto-stopped.
    let http = fly["http_service"].as_table().unwrap();
    assert_eq!(http["auto_stop_machines"].as_str(), Some("off"));
    assert!(http["min_machines_running"].as_integer().unwrap() >= 1);

    // The proxy sends traffic to the port Sentinel listens on.
    let env = fly["env"].as_table().unwrap();
    let addr = env["SENTINEL_WEBHOOK_ADDR"].as_str().unwrap();
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
    let port = http["internal_port"].as_integer().unwrap();
    assert_eq!(port, i64::from(port_of(addr)));
    assert_eq!(port, i64::from(default_port()));
    let checks = fly_checks(&fly);
    assert!(checks.contains(&"/readyz".to_string()), "{checks:?}");
    assert!(checks.contains(&"/healthz".to_string()), "{checks:?}");

    // Settings in [env] are all real ones and none is a secret; the secrets are named in
    // the `fly secrets set` comment.
    let documented = read(".env.example");
    for var in env.keys() {
        assert!(!is_secret(var), "{var} is a secret: use `fly secrets set`");
        assert!(
            documented.contains(&format!("{var}=")),
            "{var} is no setting"
        );
    }
    let text = read("fly.toml");
    assert!(text.contains("fly secrets set"));
    for secret in [
        "SLACK_APP_TOKEN",
        "SLACK_BOT_TOKEN",
        "DATABASE_URL",
        "SENTINEL_WEBHOOK_ALERTMANAGER_TOKEN",
    ] {
        assert!(
            text.contains(&format!("{secret}=")),
            "{secret} in the comment"
        );
    }
}

/// The paths of fly.toml's HTTP checks: routing (`[[http_service.checks]]`) and machine
/// checks (`[checks.NAME]`).
pub fn fly_checks(fly: &toml::Table) -> Vec<String> {
    let routing = fly["http_service"]["checks"].as_array().unwrap().iter();
    let machine = fly["checks"].as_table().unwrap().values();
    routing
        .chain(machine)
        .filter_map(|c| c.get("path")?.as_str().map(String::from))
        .collect()
}
