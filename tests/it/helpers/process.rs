//! `sentinel serve` as its own process, the way a deployment runs replicas: its
//! environment against the in-test emulator and a test database, its logs captured, its
//! webhook address read from its start-up line, and the signals an orchestrator sends.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sentinel::slack::emulator::Emulator;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::app::HOOK_TOKEN;
use super::embed::model_dir;

/// How long a replica may take to load the model, connect and print its start-up line.
const START: Duration = Duration::from_secs(60);

/// The URL of the per-test database `#[sqlx::test]` created, for child processes.
pub fn url_of(pool: &PgPool) -> String {
    let db = pool.connect_options().get_database().unwrap().to_string();
    let base = std::env::var("DATABASE_URL").unwrap();
    format!("{}/{db}", base.rsplit_once('/').unwrap().0)
}

/// The environment of a replica on `emu` and database `url`: webhooks on a free port with
/// the tests' bearer token, incidents in C0ALERTS, no LLM, no storm digests (every alert
/// gets its own thread), one Socket Mode connection. Nothing else of the test's
/// environment is passed on.
pub fn serve_env(emu: &Emulator, url: &str) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", url.to_string()),
        ("SLACK_APP_TOKEN", emu.shared.cfg.app_token.clone()),
        ("SLACK_BOT_TOKEN", emu.shared.cfg.bot_token.clone()),
        ("SLACK_API_URL", emu.api_url()),
        ("SENTINEL_SLACK_CONNECTIONS", "1".into()),
        ("SENTINEL_SLACK_TIMEOUT_SECS", "5".into()),
        ("SENTINEL_WEBHOOK_ADDR", "127.0.0.1:0".into()),
        ("SENTINEL_WEBHOOK_ALERTMANAGER_TOKEN", HOOK_TOKEN.into()),
        ("SENTINEL_ALERT_CHANNEL", "C0ALERTS".into()),
        ("SENTINEL_STORM_THRESHOLD", "100000".into()),
        ("SENTINEL_MODEL_DIR", model_dir().display().to_string()),
        ("SENTINEL_EMBED_THREADS", "1".into()),
        ("SENTINEL_DIAGNOSIS_WORKERS", "2".into()),
        ("SENTINEL_LLM", "off".into()),
        ("SENTINEL_SHUTDOWN_SECS", "10".into()),
        ("SENTINEL_LOG", "warn,sentinel=info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A free TCP port on 127.0.0.1 (bound, then released for the process that takes it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// [`serve_env`] with webhooks on a fixed free port, which a restarted replica takes again
/// (a peer such as Alertmanager keeps the URL it was given); the port too.
pub fn serve_env_on_a_fixed_port(emu: &Emulator, url: &str) -> (Vec<(String, String)>, u16) {
    let port = free_port();
    let env = with(
        serve_env(emu, url),
        "SENTINEL_WEBHOOK_ADDR",
        &format!("127.0.0.1:{port}"),
    );
    (env, port)
}

/// `env` with `key` set to `value`.
pub fn with(mut env: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    env.retain(|(k, _)| k != key);
    env.push((key.into(), value.into()));
    env
}

/// One running `sentinel serve`.
pub struct Replica {
    pub child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`, from its start-up line.
    pub hooks: String,
    /// Its engine's lease owner (`sync_owner` of the incidents it is posting).
    pub owner: String,
    /// Everything it wrote to stdout and stderr so far.
    output: Arc<Mutex<String>>,
    /// The tasks copying its stdout and stderr into `output`; done at its exit.
    readers: Vec<JoinHandle<()>>,
}

impl Replica {
    /// Starts `sentinel serve` with exactly `env`; returns once it said where webhooks go
    /// and its engine runs.
    pub async fn spawn(env: &[(String, String)]) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sentinel"))
            .arg("serve")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            capture(child.stdout.take().unwrap(), output.clone()),
            capture(child.stderr.take().unwrap(), output.clone()),
        ];
        let deadline = tokio::time::Instant::now() + START;
        let (hooks, owner) = loop {
            let out = output.lock().unwrap().clone();
            let hooks = out
                .split_once("webhooks on http://")
                .and_then(|(_, rest)| rest.split_once("/hooks/"))
                .map(|(addr, _)| format!("http://{addr}"));
            // `engine.owner=…` in text logs, `"engine.owner":"…"` in JSON.
            let owner = out.split_once("engine.owner").map(|(_, rest)| {
                rest.trim_start_matches(['=', '"', ':'])
                    .chars()
                    .take(36)
                    .collect::<String>()
            });
            if let (Some(h), Some(o)) = (hooks, owner) {
                break (h, o);
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("sentinel serve exited with {status}:\n{out}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "sentinel serve did not start:\n{out}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Replica {
            child,
            pid,
            hooks,
            owner,
            output,
            readers,
        }
    }

    /// POSTs an Alertmanager notification; the status and whether a `Retry-After` came
    /// with it, or `None` when nothing answered (the server is gone).
    pub async fn post_alert(&self, body: &str) -> Option<(u16, bool)> {
        post_alert(&self.hooks, body).await
    }

    /// What an orchestrator sends on a deploy.
    pub fn sigterm(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {}", self.pid);
    }

    /// SIGKILL: the process dies wherever it is.
    pub async fn sigkill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// Its exit status once it exits within `timeout` (its output is complete then).
    pub async fn exited(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .map(Result::unwrap)?;
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
        Some(status)
    }

    /// SIGTERM, then its exit status (it must exit within 30 s).
    pub async fn stop(&mut self) -> ExitStatus {
        self.sigterm();
        self.exited(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no exit 30 s after SIGTERM:\n{}", self.output()))
    }

    /// Its stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

/// POSTs an Alertmanager notification to the webhooks at `hooks`: the status and whether
/// a `Retry-After` came with it, or `None` when nothing answered (the server is gone).
pub async fn post_alert(hooks: &str, body: &str) -> Option<(u16, bool)> {
    let r = sentinel::net::client()
        .post(format!("{hooks}/hooks/alertmanager"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {HOOK_TOKEN}"))
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    Some((r.status().as_u16(), r.headers().contains_key("retry-after")))
}

/// Appends every line `from` writes to `to`.
fn capture(
    from: impl AsyncRead + Unpin + Send + 'static,
    to: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut out = to.lock().unwrap();
            out.push_str(&without_colours(&line));
            out.push('\n');
        }
    })
}

/// `line` without ANSI colour codes (`ESC [ … m`), which text logs carry.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An Alertmanager notification with one firing alert named `name`.
pub fn alert(name: &str) -> String {
    serde_json::json!({
        "version": "4", "status": "firing", "receiver": "sentinel",
        "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"),
        "groupLabels": {"alertname": name}, "commonLabels": {"alertname": name},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": name, "severity": "warning", "service": "checkout"},
            "annotations": {"summary": format!("{name} is firing")},
            "startsAt": "2026-11-21T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph"
        }]
    })
    .to_string()
}
