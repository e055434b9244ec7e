//! A real browser for the tests: Debian's headless Chromium driven through `chromedriver`
//! with the W3C WebDriver protocol (plain HTTP + JSON, so no client crate is needed).
//! `scripts/test-deps.sh` (run by `make test`) installs both.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::{Child, Command};

use super::slack::WAIT;

/// The WebDriver protocol's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; dropping it kills chromedriver (and its browser).
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless session with a fresh profile.
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, with the browser it starts: both go on drop.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start chromedriver ({e}): run scripts/test-deps.sh (installs Debian's chromium and chromium-driver)")
            });
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: sentinel::net::client(),
            _profile: profile,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = b
                .http
                .get(format!("{}/status", b.base))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1600,1000",
            format!("--user-data-dir={}", b._profile.path().display()),
        ]);
        let r = b
            .call(
                "POST",
                "/session",
                json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": args}}}}),
            )
            .await;
        let id = r["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"));
        b.base = format!("{}/session/{id}", b.base);
        b
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    /// The first element matching the XPath `xpath`, once there is one.
    pub async fn find(&self, xpath: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self
                .call(
                    "POST",
                    "/element",
                    json!({"using": "xpath", "value": xpath}),
                )
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(Instant::now() < deadline, "nothing matches {xpath}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching `xpath` (retrying while it is being re-rendered).
    pub async fn click(&self, xpath: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let id = self.find(xpath).await;
            let v = self
                .call("POST", &format!("/element/{id}/click"), json!({}))
                .await;
            if v.is_null() {
                return;
            }
            assert!(Instant::now() < deadline, "cannot click {xpath}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn type_into(&self, xpath: &str, text: &str) {
        let id = self.find(xpath).await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// Runs `script` in the page with `args`; returns its result.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// The rendered text of the element with id `dom_id`.
    pub async fn text_of(&self, dom_id: &str) -> String {
        let v = self
            .call(
                "POST",
                "/execute/sync",
                json!({"script": "const e = document.getElementById(arguments[0]); return e ? e.innerText : '';", "args": [dom_id]}),
            )
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Waits until the element `dom_id` shows `needle`; returns its text.
    pub async fn wait_text(&self, dom_id: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = self.text_of(dom_id).await;
            if t.contains(needle) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "#{dom_id} never showed {needle:?}; it shows:\n{t}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the element `dom_id` is displayed.
    pub async fn visible(&self, dom_id: &str) -> bool {
        let v = self
            .call(
                "POST",
                "/execute/sync",
                json!({"script": "const e = document.getElementById(arguments[0]); return !!e && getComputedStyle(e).display !== 'none' && e.getClientRects().length > 0;", "args": [dom_id]}),
            )
            .await;
        v.as_bool().unwrap_or(false)
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self.call("GET", "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap()
    }

    pub async fn quit(self) {
        self.call("DELETE", "", Value::Null).await;
    }
}

impl Drop for Browser {
    /// Also when a test fails half-way: chromedriver and the browser it started are killed
    /// together, so no Chromium outlives its test.
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
