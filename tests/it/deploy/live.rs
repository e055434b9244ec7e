//! Every health check the deploy files configure, against a running `sentinel serve`.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use super::fly::{fly, fly_checks};
use super::helm::{kind, render};
use crate::helpers::process::{serve_env_on_a_fixed_port, url_of, Replica};
use crate::helpers::slack::emulator;

/// `sentinel healthcheck ARGS` against `addr`: exit code and what it printed.
fn healthcheck(addr: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .arg("healthcheck")
        .args(args)
        .env_clear()
        .env("SENTINEL_WEBHOOK_ADDR", addr)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[sqlx::test]
async fn every_health_check_the_deploy_files_configure_answers_on_a_running_sentinel(pool: PgPool) {
    let mut paths = fly_checks(&fly());
    let docs = render(json!({}));
    let c = &kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        paths.push(c[probe]["httpGet"]["path"].as_str().unwrap().to_string());
    }
    paths.sort();
    paths.dedup();
    assert_eq!(paths, ["/healthz", "/readyz"]);

    let emu = emulator().await;
    let (env, port) = serve_env_on_a_fixed_port(&emu, &url_of(&pool));
    let mut sentinel = Replica::spawn(&env).await;
    let client = sentinel::net::client();
    for path in &paths {
        // /readyz turns 200 once Slack is connected.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = client.get(format!("{}{path}", sentinel.hooks)).send().await;
            let status = r.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            if status == 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} answers {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The image's HEALTHCHECK: the wildcard address the image listens on is probed on
    // loopback.
    let wildcard = format!("0.0.0.0:{port}");
    let (code, out) = healthcheck(&wildcard, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/healthz: 200"), "{out}");
    let (code, out) = healthcheck(&wildcard, &["--ready"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/readyz: 200"), "{out}");

    assert!(sentinel.stop().await.success(), "{}", sentinel.output());
    let (code, out) = healthcheck(&wildcard, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "nothing answers at http://127.0.0.1:{port}/healthz"
        )),
        "{out}"
    );
}
