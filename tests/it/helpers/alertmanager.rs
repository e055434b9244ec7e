//! A real Alertmanager (Debian's `prometheus-alertmanager`, installed by
//! `scripts/test-deps.sh`) as a child process: one route grouping by `alertname` into a
//! webhook receiver at Sentinel, seconds instead of minutes for its timers, alerts fired
//! and resolved through its own API, and its counters read from its `/metrics`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::{Child, Command};

use super::process::free_port;

/// Where `scripts/test-deps.sh` puts it (Debian's package).
const BINARY: &str = "/usr/bin/prometheus-alertmanager";
const START: Duration = Duration::from_secs(30);

/// The configuration a user would write (see README "Alertmanager"), with timers of
/// seconds: `group_wait` before a new group's first notification, `group_interval`
/// between notifications of a changed group. `resolve_timeout` stays long so alerts fired
/// without `endsAt` stay firing while the test runs.
pub fn config(webhook_url: &str, token: &str) -> String {
    format!(
        r#"global:
  resolve_timeout: 5m
route:
  receiver: sentinel
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sentinel
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"#
    )
}

/// One running Alertmanager; killed when dropped.
pub struct Alertmanager {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its configuration, data and log; removed when dropped.
    dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager with `config` on a free port, clustering off, its state in a
    /// temporary folder; returns once `/-/ready` answers 200.
    pub async fn start(config: &str) -> Alertmanager {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing: run scripts/test-deps.sh (make test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alertmanager.yml");
        std::fs::write(&file, config).unwrap();
        let port = free_port();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Empty: no gossip, a single instance.
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("alertmanager.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = tokio::time::Instant::now() + START;
        loop {
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!("alertmanager exited with {status}:\n{}", am.log());
            }
            let ready = sentinel::net::client()
                .get(format!("{}/-/ready", am.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return am;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "alertmanager not ready:\n{}",
                am.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What it logged (warnings and errors: failed notification attempts, for one).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// POSTs `alerts` (Alertmanager's API v2 shape) as Prometheus does.
    pub async fn post(&self, alerts: &[Value]) {
        let r = sentinel::net::client()
            .post(format!("{}/api/v2/alerts", self.url))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(
            status.is_success(),
            "alertmanager refused alerts: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// The sum of the samples of `metric` in Alertmanager's `/metrics` whose labels
    /// contain `with` (e.g. `integration="webhook"`).
    pub async fn counter(&self, metric: &str, with: &str) -> f64 {
        let text = sentinel::net::client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(with))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }
}

/// One alert as Prometheus sends it: `alertname`, `pod` and fixed labels, started a minute
/// ago; resolved (`endsAt` a second ago) when `resolved`.
pub fn alert(name: &str, pod: &str, resolved: bool) -> Value {
    let now = chrono::Utc::now();
    let mut a = json!({
        "labels": {"alertname": name, "pod": pod, "severity": "critical", "service": "checkout"},
        "annotations": {"summary": format!("{name} on {pod}")},
        "startsAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        "generatorURL": "http://prometheus:9090/graph",
    });
    if resolved {
        a["endsAt"] = json!((now - chrono::Duration::seconds(1)).to_rfc3339());
    }
    a
}
