//! `sentinel playground` through its HTTP API, as the page uses it: the real stack on the
//! Slack emulator and the test database, alerts through the real webhook endpoint, clicks
//! as the real interactive envelope. Each test asserts what the page would show.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentinel::audit::AuditKey;
use sentinel::config::Config;
use sentinel::demo::EmulatedParts;
use sentinel::diagnosis::{Diagnoser, DiagnoserOptions};
use sentinel::llm::testserver::{Reply, TestLlm};
use sentinel::llm::{LlmClient, TokenLedger};
use sentinel::playground::Playground;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::helpers::embed::HashEmbedder;
use crate::helpers::fixtures::{crash_loop_draft, repo_path};
use crate::helpers::kb::ingested;
use crate::helpers::slack::WAIT;
use crate::helpers::webdriver::Browser;

const ALERTS: &str = "C0ALERTS";

struct Page {
    pg: Playground,
    pool: PgPool,
    api: Api,
}

/// The page's HTTP API at `base`, as the page's script calls it.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl std::ops::Deref for Page {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Page {
    /// The playground on `pool` with the bundled and the harmless action runbooks.
    async fn start(pool: PgPool) -> Page {
        Self::start_on(pool, "127.0.0.1:0").await
    }

    /// As [`Page::start`], serving on `addr`.
    async fn start_on(pool: PgPool, addr: &str) -> Page {
        Self::start_with(pool, addr, None).await
    }

    /// As [`Page::start_on`], diagnosing with `llm` when given.
    async fn start_with(pool: PgPool, addr: &str, llm: Option<&TestLlm>) -> Page {
        sentinel::net::install_crypto();
        let kb = ingested(
            &pool,
            Arc::new(HashEmbedder),
            &[repo_path("runbooks"), repo_path("tests/data/actions")],
        )
        .await;
        let client = llm.map(|l| {
            let ledger = TokenLedger::postgres(pool.clone());
            Arc::new(LlmClient::new(l.config(Duration::from_secs(5)), ledger))
        });
        let diagnoser = Arc::new(Diagnoser::new(
            kb.clone(),
            client,
            DiagnoserOptions::default(),
        ));
        let parts = EmulatedParts {
            kb,
            diagnoser,
            // The defaults (no variable set); the playground sets routes and tokens.
            alerts: Config::from_env(&HashMap::<String, String>::new())
                .unwrap()
                .alerts,
            audit_key: AuditKey::from_config("playground-test-audit-key"),
            metrics: Default::default(),
        };
        let listener = TcpListener::bind(addr).await.unwrap();
        let pg = Playground::start(listener, parts).await.unwrap();
        Page {
            pool,
            api: Api::at(format!("http://{}", pg.addr)),
            pg,
        }
    }
}

impl Api {
    fn at(base: String) -> Api {
        Api {
            base,
            http: sentinel::net::client(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Fires the page's sample alert whose name holds `name` through the webhook, as the
    /// Fire button does; asserts the webhook took it.
    async fn fire_sample(&self, name: &str) {
        let samples = self.get("/api/samples").await;
        let sample = samples
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"].as_str().unwrap().contains(name))
            .unwrap_or_else(|| panic!("no sample {name}: {samples}"))
            .clone();
        let (status, fired) = self
            .post(
                "/api/alerts",
                json!({"kind": "raw", "hook": sample["hook"], "body": sample["body"]}),
            )
            .await;
        assert_eq!(status, 200, "{fired}");
        assert_eq!(fired["results"][0]["status"], 200, "{fired}");
    }

    /// Polls `/api/state` until `find` answers.
    async fn wait_state<T>(&self, what: &str, find: impl Fn(&Value) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let st = self.get("/api/state").await;
            if let Some(v) = find(&st) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what} never showed: {st:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn messages(st: &Value) -> Vec<Value> {
    st["messages"].as_array().cloned().unwrap_or_default()
}

/// A message's text and every text in its blocks, as the page shows them.
fn shown(m: &Value) -> String {
    let mut out = m["text"].as_str().unwrap_or_default().to_string();
    collect_text(&m["blocks"], &mut out);
    out
}

fn collect_text(v: &Value, out: &mut String) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(t)) = o.get("text") {
                out.push('\n');
                out.push_str(t);
            }
            o.values().for_each(|x| collect_text(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_text(x, out)),
        _ => {}
    }
}

fn ephemeral_for(st: &Value, user: &str, needle: &str) -> Option<String> {
    st["ephemerals"].as_array()?.iter().find_map(|e| {
        let t = shown(e);
        (e["user"] == user && t.contains(needle)).then_some(t)
    })
}

#[sqlx::test]
async fn an_alert_a_command_and_the_approval_loop_through_the_page_api(pool: PgPool) {
    let page = Page::start(pool).await;

    // The page itself: served with a policy that forbids any outside or inline script.
    let r = page.http.get(&page.base).send().await.unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(r.text().await.unwrap().contains("Sentinel playground"));

    // The sample that offers actions, from the page's sample list, through the webhook.
    page.fire_sample("DemoServiceDown").await;

    // The thread: the root, then the runbook-based diagnosis citing the runbook.
    let root = page
        .wait_state("the incident root", |st| {
            messages(st)
                .into_iter()
                .find(|m| m["channel"] == ALERTS && shown(m).contains("DemoServiceDown"))
                .and_then(|m| m["ts"].as_str().map(str::to_string))
        })
        .await;
    let diagnosis = page
        .wait_state("the diagnosis in the thread", |st| {
            messages(st)
                .into_iter()
                .map(|m| (m["thread_ts"].clone(), shown(&m)))
                .find_map(|(t, s)| {
                    (t == root.as_str() && s.contains("Runbook-based diagnosis")).then_some(s)
                })
        })
        .await;
    assert!(diagnosis.contains("Demo service restarts"), "{diagnosis}");

    // Malformed JSON: the webhook's own 400 comes back for the page to show.
    let (status, bad) = page
        .post(
            "/api/alerts",
            json!({"kind": "raw", "hook": "alertmanager", "body": "{\"version\": \"4\", \"alerts\": ["}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(bad["results"][0]["status"], 400, "{bad}");
    assert!(
        bad["results"][0]["body"].as_str().unwrap().contains("JSON"),
        "{bad}"
    );

    // A command as Bob: its answer is an ephemeral only Bob sees.
    let (status, _) = page
        .post(
            "/api/command",
            json!({"user": "U0BOB", "channel": ALERTS, "text": "/sentinel incidents"}),
        )
        .await;
    assert_eq!(status, 200);
    let listed = page
        .wait_state("Bob's command answer", |st| {
            ephemeral_for(st, "U0BOB", "DemoServiceDown")
        })
        .await;
    assert!(listed.contains("firing"), "{listed}");

    // The proposal; Mallory may not approve: the bot refuses, privately.
    let proposal = page
        .wait_state("the proposed action", |st| {
            messages(st)
                .into_iter()
                .find(|m| {
                    m["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("Proposed action: Restart the demo service"))
                })
                .and_then(|m| m["ts"].as_str().map(str::to_string))
        })
        .await;
    let click = |user: &str| json!({"user": user, "channel": ALERTS, "ts": proposal, "action_id": "act_approve"});
    assert_eq!(page.post("/api/click", click("U0MALLORY")).await.0, 200);
    let refused = page
        .wait_state("Mallory's refusal", |st| {
            ephemeral_for(st, "U0MALLORY", "not an approver")
        })
        .await;
    assert!(refused.contains("Nothing ran"), "{refused}");

    // Bob is in @oncall: the action runs and the message shows it verified.
    assert_eq!(page.post("/api/click", click("U0BOB")).await.0, 200);
    let result = page
        .wait_state("the verified run", |st| {
            messages(st)
                .into_iter()
                .find(|m| m["ts"] == proposal.as_str() && shown(m).contains("Verified"))
                .map(|m| shown(&m))
        })
        .await;
    assert!(result.contains("restarted web"), "{result}");

    // The panel: the incident, the action as verified, the audit entries, the chain intact.
    let panel = page.get("/api/panel").await;
    let incident = panel["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["alertname"] == "DemoServiceDown")
        .unwrap_or_else(|| panic!("{panel:#}"));
    assert_eq!(incident["status"], "firing");
    let action = panel["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "restart-demo")
        .unwrap_or_else(|| panic!("{panel:#}"));
    assert_eq!(action["state"], "verified", "{panel:#}");
    let outcomes: Vec<&str> = panel["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert!(outcomes.contains(&"not_an_approver"), "{outcomes:?}");
    assert_eq!(panel["verify"]["ok"], true, "{panel:#}");
    assert!(
        panel["verify"]["events"].as_i64().unwrap() >= 3,
        "{panel:#}"
    );
    page.pg.shutdown().await;
}

#[sqlx::test]
async fn the_page_api_refuses_bad_requests_with_a_reason_and_escapes_nothing_away(pool: PgPool) {
    let page = Page::start(pool).await;
    let (status, e) = page
        .post(
            "/api/say",
            json!({"user": "U0EVE", "channel": ALERTS, "text": "hi"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("U0EVE"), "{e}");
    let (status, e) = page.post("/api/say", json!({"user": "U0ALICE"})).await;
    assert_eq!(status, 400);
    assert!(
        e["error"].as_str().unwrap().contains("missing field"),
        "{e}"
    );
    let (status, e) = page
        .post(
            "/api/command",
            json!({"user": "U0ALICE", "channel": ALERTS, "text": "/giphy cat"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        e["error"].as_str().unwrap().contains("only /sentinel"),
        "{e}"
    );
    let (status, e) = page
        .post(
            "/api/click",
            json!({"user": "U0ALICE", "channel": ALERTS, "ts": "1700000000.000100", "action_id": "act_approve"}),
        )
        .await;
    assert_eq!(status, 404, "{e}");
    let (status, e) = page
        .post("/api/alerts", json!({"kind": "storm", "count": 500}))
        .await;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("1 to 30"), "{e}");

    // Only the page drives it: no cross-site form posts, no other origin, no rebound name.
    let say = json!({"user": "U0ALICE", "channel": ALERTS, "text": "from elsewhere"});
    let attempts = [
        ("text/plain", None, None),
        ("application/json", Some("https://evil.example"), None),
        ("application/json", None, Some("evil.example:8080")),
    ];
    for (ctype, origin, host) in attempts {
        let mut req = page
            .http
            .post(format!("{}/api/say", page.base))
            .header("content-type", ctype)
            .body(say.to_string());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(h) = host {
            req = req.header("host", h);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403, "{ctype} {origin:?} {host:?}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"].is_string(), "{e}");
    }
    let st = page.get("/api/state").await;
    assert!(
        !st.to_string().contains("from elsewhere"),
        "nothing was posted"
    );

    // Hostile text is stored as Slack carries it (escaped), never as markup.
    let (status, _) = page
        .post(
            "/api/say",
            json!({"user": "U0ALICE", "channel": ALERTS, "text": "<script>alert(1)</script> @sentinel hi"}),
        )
        .await;
    assert_eq!(status, 200);
    let text = page
        .wait_state("Alice's message", |st| {
            messages(st)
                .into_iter()
                .find(|m| m["user"] == "U0ALICE")
                .and_then(|m| m["text"].as_str().map(str::to_string))
        })
        .await;
    assert_eq!(
        text,
        "&lt;script&gt;alert(1)&lt;/script&gt; <@U0SENTINEL> hi"
    );

    // The change feed announces changes as server-sent events.
    let mut r = page
        .http
        .get(format!("{}/api/events", page.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let first = tokio::time::timeout(WAIT, r.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: change"));
    page.pg.shutdown().await;
}

/// With an LLM configured (here the OpenAI-compatible test server), the thread shows its
/// draft instead of the runbook-based fallback.
#[sqlx::test]
async fn with_an_llm_configured_the_thread_shows_its_draft(pool: PgPool) {
    let llm = TestLlm::start(Reply::json(&crash_loop_draft()))
        .await
        .unwrap();
    let page = Page::start_with(pool, "127.0.0.1:0", Some(&llm)).await;
    page.fire_sample("KubePodCrashLooping").await;
    let draft = page
        .wait_state("the LLM's draft in the thread", |st| {
            messages(st)
                .into_iter()
                .map(|m| shown(&m))
                .find(|t| t.contains("checkout-api is crash looping after a release."))
        })
        .await;
    assert!(draft.contains("A bad release"), "{draft}");
    assert!(!llm.requests().is_empty());
    let st = page.get("/api/state").await;
    assert!(
        !messages(&st)
            .iter()
            .any(|m| shown(m).contains("Runbook-based diagnosis")),
        "no fallback: {st:#}"
    );
    page.pg.shutdown().await;
}

/// Trying Sentinel never reaches a real cluster: the bundled runbooks' `kubectl` actions
/// are proposed and approved as in production, but only described; the harmless `echo`
/// ones really run (the approval loop test above).
#[sqlx::test]
async fn bundled_kubectl_actions_are_only_described_in_the_playground(pool: PgPool) {
    let page = Page::start(pool).await;
    page.fire_sample("KubePodCrashLooping").await;
    let (ts, proposal) = page
        .wait_state("the kubectl proposal", |st| {
            messages(st).into_iter().find_map(|m| {
                let t = shown(&m);
                let proposed = m["text"]
                    .as_str()
                    .is_some_and(|x| x.starts_with("Proposed action: Restart checkout-api pods"));
                (proposed && t.contains("kubectl"))
                    .then(|| (m["ts"].as_str().unwrap().to_string(), t))
            })
        })
        .await;
    assert!(proposal.contains("nothing really runs"), "{proposal}");
    let click = json!({"user": "U0BOB", "channel": ALERTS, "ts": ts, "action_id": "act_approve"});
    assert_eq!(page.post("/api/click", click).await.0, 200);
    let ran = page
        .wait_state("the described run", |st| {
            messages(st)
                .into_iter()
                .map(|m| shown(&m))
                .find(|t| t.contains("dry run: would run kubectl"))
        })
        .await;
    assert!(
        ran.contains("rollout restart deployment/checkout-api"),
        "{ran}"
    );
    let panel = page.get("/api/panel").await;
    let action = panel["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "restart-checkout")
        .unwrap_or_else(|| panic!("{panel:#}"))
        .clone();
    assert!(
        ["succeeded", "verified"].contains(&action["state"].as_str().unwrap()),
        "{panel:#}"
    );
    page.pg.shutdown().await;
}

/// The open modal of `user`, once the bot has opened one: (view id, view).
async fn modal_of(page: &Page, user: &str) -> (String, Value) {
    page.wait_state("the modal", |st| {
        st["views"].as_array()?.iter().find_map(|v| {
            (v["user"] == user).then(|| (v["id"].as_str().unwrap().to_string(), v["view"].clone()))
        })
    })
    .await
}

#[sqlx::test]
async fn a_modal_opened_by_a_command_is_submitted_or_cancelled_through_the_page_api(pool: PgPool) {
    let page = Page::start(pool).await;
    let find = json!({"user": "U0BOB", "channel": "C0GENERAL", "text": "/sentinel find"});
    assert_eq!(page.post("/api/command", find.clone()).await.0, 200);
    let (id, view) = modal_of(&page, "U0BOB").await;
    assert_eq!(view["title"]["text"], "Search runbooks");
    assert_eq!(view["blocks"][0]["type"], "input");

    // Only Bob's modal (he ran the command) is his to submit; values must be text.
    let values = json!({"query": {"query": "disk filling up"}});
    let (status, e) = page
        .post(
            "/api/view/submit",
            json!({"user": "U0MALLORY", "view_id": id, "values": values}),
        )
        .await;
    assert_eq!(status, 404, "{e}");
    let (status, e) = page
        .post(
            "/api/view/submit",
            json!({"user": "U0BOB", "view_id": id, "values": {"query": {"query": 1}}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("not text"), "{e}");

    // Submitted: the modal closes and the answer comes in the channel.
    let (status, e) = page
        .post(
            "/api/view/submit",
            json!({"user": "U0BOB", "view_id": id, "values": values}),
        )
        .await;
    assert_eq!(status, 200, "{e}");
    let answer = page
        .wait_state("the answer to the search", |st| {
            messages(st)
                .into_iter()
                .map(|m| shown(&m))
                .find(|t| t.contains("Best runbook sections for") && t.contains("disk filling up"))
        })
        .await;
    assert!(answer.contains("Helpful"), "{answer}");
    page.wait_state("the modal closed", |st| {
        st["views"].as_array()?.is_empty().then_some(())
    })
    .await;

    // Opened again and cancelled: gone, and cannot be cancelled twice.
    assert_eq!(page.post("/api/command", find).await.0, 200);
    let (id, _) = modal_of(&page, "U0BOB").await;
    let close = json!({"user": "U0BOB", "view_id": id});
    assert_eq!(page.post("/api/view/close", close.clone()).await.0, 200);
    assert_eq!(page.post("/api/view/close", close).await.0, 404);
    let st = page.get("/api/state").await;
    assert_eq!(st["views"], json!([]), "{st:#}");
    page.pg.shutdown().await;
}

/// Waits until the element `dom_id` is shown (`want`) or hidden.
async fn wait_visible(b: &Browser, dom_id: &str, want: bool) {
    let deadline = Instant::now() + WAIT;
    while b.visible(dom_id).await != want {
        assert!(
            Instant::now() < deadline,
            "#{dom_id} never became {}",
            if want { "visible" } else { "hidden" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A malformed alert, modals and ephemerals in the browser: the webhook's refusal shows
/// under the editor; `/sentinel find` opens the search modal, an empty
/// query is refused before anything is sent, the answer's "Search again" opens it again
/// filled in; a private answer sits in time order and only its person sees it.
#[sqlx::test]
async fn in_a_real_browser_a_search_modal_and_private_answers_in_time_order(pool: PgPool) {
    let page = Page::start(pool).await;
    let b = Browser::start().await;
    b.goto(&page.base).await;
    b.wait_text("bot-status", "connected over Socket Mode")
        .await;
    // A first visit: the empty alert channel says where to start.
    let hint = b.wait_text("messages", "No incidents yet").await;
    assert!(
        hint.contains("Fire") && hint.contains("/sentinel help"),
        "{hint}"
    );

    // A malformed alert in the editor: the webhook's own refusal shows under it.
    b.script(
        "document.getElementById('alert-json').value = arguments[0];",
        json!(["{\"version\": \"4\", \"alerts\": ["]),
    )
    .await;
    b.click("//button[@id='fire']").await;
    let refused = b.wait_text("alert-result", "400").await;
    assert!(refused.contains("/hooks/alertmanager → 400"), "{refused}");
    assert!(refused.contains("malformed_json"), "{refused}");

    b.click("//ul[@id='channels']/li[@data-ch='C0GENERAL']")
        .await;
    b.wait_text("channel-name", "#general").await;

    b.type_into("//textarea[@id='composer-text']", "/sentinel find")
        .await;
    b.click("//form[@id='composer']//button[@type='submit']")
        .await;
    wait_visible(&b, "modal", true).await;
    assert_eq!(b.text_of("modal-title").await, "Search runbooks");
    assert_eq!(b.text_of("modal-submit").await, "Search");
    b.click("//button[@id='modal-submit']").await;
    b.wait_text("modal-blocks", "Please fill out this field.")
        .await;
    assert!(b.visible("modal").await, "an empty query is not sent");
    b.type_into("//div[@id='modal-blocks']//input", "disk filling up")
        .await;
    b.click("//button[@id='modal-submit']").await;
    wait_visible(&b, "modal", false).await;
    b.wait_text("messages", "Best runbook sections for").await;

    // The answer's own button opens the modal again with the query in it; Cancel closes it.
    b.click("//div[@id='messages']/div[contains(@class,'msg')][contains(., 'Best runbook sections for')]//button[contains(., 'Search again')]")
        .await;
    wait_visible(&b, "modal", true).await;
    let query = b
        .script(
            "return document.querySelector('#modal-blocks input').value;",
            json!([]),
        )
        .await;
    assert_eq!(query, "disk filling up");
    b.click("//button[@id='modal-close']").await;
    wait_visible(&b, "modal", false).await;

    // A private answer, then a message: shown in that order, the answer to Alice only.
    b.type_into("//textarea[@id='composer-text']", "/sentinel help")
        .await;
    b.click("//form[@id='composer']//button[@type='submit']")
        .await;
    b.wait_text("messages", "Only visible to you").await;
    b.type_into("//textarea[@id='composer-text']", "thanks, reading it now")
        .await;
    b.click("//form[@id='composer']//button[@type='submit']")
        .await;
    b.wait_text("messages", "thanks, reading it now").await;
    let order = b
        .script(
            "const ms = [...document.querySelectorAll('#messages > .msg')];              return [ms.findIndex((m) => m.classList.contains('ephemeral')),                      ms.findIndex((m) => m.innerText.includes('thanks, reading it now'))];",
            json!([]),
        )
        .await;
    let (eph, msg) = (order[0].as_i64().unwrap(), order[1].as_i64().unwrap());
    assert!(
        eph >= 0 && eph < msg,
        "the private answer comes first: {order}"
    );
    b.click("//select[@id='user']/option[@value='U0BOB']").await;
    let deadline = Instant::now() + WAIT;
    while b.text_of("messages").await.contains("Only visible to you") {
        assert!(Instant::now() < deadline, "Bob sees Alice's private answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.quit().await;
    page.pg.shutdown().await;
}

/// The thread pane's message holding `title`, and its button `label`.
fn button_on(title: &str, label: &str) -> String {
    format!(
        "//div[@id='thread-messages']/div[contains(@class,'msg')][contains(., '{title}')]//button[normalize-space()='{label}']"
    )
}

/// Clicks Approve on the restart proposal (medium risk) as the person chosen in the user
/// switcher; the button's confirm dialog comes first, as in Slack.
async fn approve_as(b: &Browser, user: &str) {
    b.click(&format!("//select[@id='user']/option[@value='{user}']"))
        .await;
    b.click(&button_on("Restart the demo service", "Approve"))
        .await;
    assert!(
        b.visible("dialog").await,
        "Approve asks for confirmation first"
    );
    assert_eq!(b.text_of("dialog-confirm").await, "Approve and run");
    b.click("//button[@id='dialog-confirm']").await;
    assert!(!b.visible("dialog").await);
}

/// The page in headless Chromium, as a visitor uses it. `PLAYGROUND_SCREENSHOT=path` saves
/// the final window there (how docs/playground.png is made).
#[sqlx::test]
async fn in_a_real_browser_an_alert_a_question_a_refusal_and_an_approved_run(pool: PgPool) {
    let page = Page::start(pool).await;
    let b = Browser::start().await;
    b.goto(&page.base).await;
    b.wait_text("bot-status", "connected over Socket Mode")
        .await;

    // The page's mrkdwn renderer, in the browser: formatting kept, markup never injected.
    let html = b
        .script(
            "return mrkdwn(arguments[0]);",
            json!([
                "*bold* _it_ ~st~ `co<de>` <https://example.com/a?b=1&amp;c=2|the &lt;link&gt;> <javascript:alert(1)|click> <@U0BOB> <#C0OPS> &lt;img src=x onerror=alert(1)&gt;"
            ]),
        )
        .await;
    assert_eq!(
        html.as_str().unwrap(),
        "<b>bold</b> <i>it</i> <s>st</s> <code>co&lt;de&gt;</code> \
         <a href=\"https://example.com/a?b=1&amp;c=2\" target=\"_blank\" rel=\"noopener noreferrer\">the &lt;link&gt;</a> \
         click <span class=\"mention\">@bob</span> <span class=\"mention\">#ops</span> \
         &lt;img src=x onerror=alert(1)&gt;"
    );

    // The form's alert (DemoServiceDown, service=web) through the real webhook, with a
    // hostile summary.
    b.click("//details/summary").await;
    b.type_into(
        "//form[@id='alert-form']//input[@name='summary']",
        " <img src=x onerror=\"document.title='pwned'\">",
    )
    .await;
    b.click("//form[@id='alert-form']//button[@type='submit']")
        .await;
    let result = b.wait_text("alert-result", "→").await;
    assert!(result.contains("/hooks/alertmanager → 200"), "{result}");
    let shown = b.wait_text("messages", "DemoServiceDown").await;
    assert!(
        shown.contains("<img src=x onerror="),
        "shown as text: {shown}"
    );
    let injected = b
        .script(
            "return document.querySelectorAll('#messages img, #incidents img').length + ' ' + document.title;",
            json!([]),
        )
        .await;
    assert_eq!(injected, "0 Sentinel playground");

    // The thread fills in: runbook sections, the diagnosis, the proposals.
    b.click("//div[@id='messages']//button[contains(@class,'replies')]")
        .await;
    b.wait_text("thread-messages", "Runbook-based diagnosis")
        .await;
    let thread = b
        .wait_text("thread-messages", "Restart the demo service")
        .await;
    assert!(thread.contains("Mitigation"), "{thread}");

    // A question in the thread, answered there.
    let before = b.text_of("thread-messages").await.matches("APP").count();
    b.type_into(
        "//textarea[@id='thread-text']",
        "@sentinel what should I check first?",
    )
    .await;
    b.click("//form[@id='thread-composer']//button[@type='submit']")
        .await;
    b.wait_text("thread-messages", "what should I check first?")
        .await;
    let deadline = Instant::now() + WAIT;
    while b.text_of("thread-messages").await.matches("APP").count() <= before {
        assert!(Instant::now() < deadline, "the question was not answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Mallory may not approve: refused in the thread where she clicked, and only she sees
    // why.
    approve_as(&b, "U0MALLORY").await;
    let refused = b.wait_text("thread-messages", "not an approver").await;
    assert!(refused.contains("Only visible to you"), "{refused}");
    assert!(!refused.contains("Verified"));

    // Bob approves: the action runs and the thread shows it verified.
    approve_as(&b, "U0BOB").await;
    let thread = b.wait_text("thread-messages", "Verified").await;
    assert!(thread.contains("restarted web"), "{thread}");
    assert!(
        !thread.contains("not an approver"),
        "Mallory's notice is hers alone"
    );

    // The panel: the action verified, the audit entries, the chain verified.
    b.wait_text("actions", "verified").await;
    let audit = b.wait_text("audit", "restart-demo").await;
    assert!(audit.contains("not_an_approver"), "{audit}");
    assert_eq!(b.text_of("verify").await, "verified ✓");
    b.wait_text("incidents", "DemoServiceDown").await;

    if let Ok(path) = std::env::var("PLAYGROUND_SCREENSHOT") {
        b.click("//details/summary").await; // folds the form: the audit log shows
        std::fs::write(path, b.screenshot().await).unwrap();
    }

    // The playground restarts: the page says it is reconnecting, then comes back by itself.
    let addr = page.pg.addr.to_string();
    let pool = page.pool.clone();
    page.pg.shutdown().await;
    let deadline = Instant::now() + WAIT;
    while !b.visible("banner").await {
        assert!(Instant::now() < deadline, "no reconnecting banner");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(b.text_of("banner").await.contains("reconnecting"));
    let page = Page::start_on(pool, &addr).await;
    let deadline = Instant::now() + WAIT;
    while b.visible("banner").await {
        assert!(Instant::now() < deadline, "the page did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.wait_text("bot-status", "connected over Socket Mode")
        .await;
    b.wait_text("incidents", "DemoServiceDown").await;
    b.quit().await;
    page.pg.shutdown().await;
}

/// The real `sentinel playground` in a directory holding a `scripts/db.sh` that hands out
/// this test's database, with no `DATABASE_URL` set: once the directory is Sentinel's
/// checkout (its `Cargo.toml`), it runs the script, as it starts the checkout's own
/// Postgres when none is named, then serves the page.
#[sqlx::test]
async fn the_command_starts_the_database_when_none_is_named_and_serves_the_page(pool: PgPool) {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("scripts/db.sh");
    let write_script = |body: &str| {
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let command = || {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_sentinel"));
        c.args(["playground", "--addr", "127.0.0.1:0", "--runbooks"])
            .arg(repo_path("runbooks"))
            .arg("--action-runbooks")
            .arg(repo_path("tests/data/actions"))
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("SENTINEL_MODEL_DIR", crate::helpers::embed::model_dir())
            .env("SENTINEL_EMBED_THREADS", "1")
            .env("SENTINEL_LLM", "off")
            .env("SENTINEL_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    };

    // Outside Sentinel's checkout the script is never run: the usual sentence instead.
    write_script("echo ran > ran.txt; exit 1");
    let out = command().output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATABASE_URL is not set"), "{err}");
    assert!(!dir.path().join("ran.txt").exists(), "{err}");
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"sentinel\"\n",
    )
    .unwrap();

    // A script that fails: one sentence naming it, and nothing served.
    write_script("echo 'initdb: cannot write' >&2; exit 1");
    let out = command().output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("initdb: cannot write")
            && err.contains("scripts/db.sh could not start the local Postgres"),
        "{err}"
    );

    let url = crate::helpers::process::url_of(&pool);
    write_script(&format!(
        "echo 'starting the test database' >&2\necho DATABASE_URL={url}"
    ));
    let mut child = command().spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Playground ready: ") {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_string();
            }
        }
        panic!("sentinel playground exited before it was ready")
    })
    .await
    .expect("ready within 2 minutes");
    let api = Api::at(base);
    let page = api.http.get(&api.base).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("Sentinel playground"));

    // The stack on it works: a form alert becomes an incident thread in #alerts.
    let form = json!({"kind": "form", "alertname": "DemoServiceDown", "severity": "warning",
        "labels": "service=web", "summary": "web fails its health check", "resolved": false});
    let (_, fired) = api.post("/api/alerts", form).await;
    assert_eq!(fired["results"][0]["status"], 200, "{fired}");
    api.wait_state("the incident thread", |st| {
        messages(st)
            .iter()
            .any(|m| m["channel"] == ALERTS && shown(m).contains("DemoServiceDown"))
            .then_some(())
    })
    .await;
    let incidents: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(incidents, 1, "stored in the database the script named");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}
