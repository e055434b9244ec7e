//! A real Alertmanager posting to a real `sentinel serve` (issue 16): alerts fired through
//! Alertmanager's API are grouped into one incident thread, resolved there, and an alert
//! fired while Sentinel is stopped arrives once it is back (Alertmanager retries).

use std::time::{Duration, Instant};

use sentinel::slack::emulator::{Emulator, State, BOT_USER_ID};
use sqlx::PgPool;

use crate::helpers::alertmanager::{alert, config, Alertmanager};
use crate::helpers::app::HOOK_TOKEN;
use crate::helpers::process::{serve_env_on_a_fixed_port, url_of, Replica};
use crate::helpers::slack::{emulator, Shown};

const ALERTS: &str = "C0ALERTS";
/// Generous bound for anything to show: group_wait 1 s, then Sentinel's own path.
const SHOWN: Duration = Duration::from_secs(60);

/// Sentinel's top-level messages in `ALERTS` that show `name`, as shown.
fn roots(st: &State, name: &str) -> Vec<(String, String)> {
    st.messages
        .iter()
        .filter(|m| m.channel == ALERTS && m.thread_ts.is_none())
        .filter(|m| m.user.as_deref() == Some(BOT_USER_ID) && m.shown().contains(name))
        .map(|m| (m.ts.clone(), m.shown()))
        .collect()
}

/// Sentinel's replies in the thread of `ts`, as shown.
fn replies(st: &State, ts: &str) -> Vec<String> {
    st.messages
        .iter()
        .filter(|m| m.channel == ALERTS && m.thread_ts.as_deref() == Some(ts) && m.ts != ts)
        .filter(|m| m.user.as_deref() == Some(BOT_USER_ID))
        .map(|m| m.shown())
        .collect()
}

/// Waits until `name`'s one root shows every string in `parts`; returns its ts.
async fn root_showing(emu: &Emulator, am: &Alertmanager, name: &str, parts: &[&str]) -> String {
    emu.wait_for(SHOWN, |st| {
        let r = roots(st, name);
        (r.len() == 1 && parts.iter().all(|p| r[0].1.contains(p))).then(|| r[0].0.clone())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no root of {name} showing {parts:?} within {SHOWN:?}; roots: {:?}\nalertmanager:\n{}",
            roots(&emu.state(), name),
            am.log()
        )
    })
}

#[sqlx::test]
async fn alertmanager_groups_resolves_and_retries_across_a_restart_of_sentinel(pool: PgPool) {
    let emu = emulator().await;
    // A fixed port: Alertmanager's receiver URL must still be right after the restart.
    let (env, port) = serve_env_on_a_fixed_port(&emu, &url_of(&pool));
    let mut sentinel = Replica::spawn(&env).await;
    let am = Alertmanager::start(&config(
        &format!("http://127.0.0.1:{port}/hooks/alertmanager"),
        HOOK_TOKEN,
    ))
    .await;

    // Fire: two pods of one alert, one group (group_by: [alertname]), one thread.
    let name = "CheckoutLatencyHigh";
    am.post(&[alert(name, "api-0", false), alert(name, "api-1", false)])
        .await;
    let ts = root_showing(
        &emu,
        &am,
        name,
        &["[FIRING]", "2 of 2 alerts firing", "api-0", "api-1"],
    )
    .await;

    // Resolve both: Alertmanager sends the resolved group; the same thread says so.
    am.post(&[alert(name, "api-0", true), alert(name, "api-1", true)])
        .await;
    let resolved_ts = root_showing(&emu, &am, name, &["[RESOLVED]", "0 of 2 alerts firing"]).await;
    assert_eq!(resolved_ts, ts, "the same thread is resolved");
    emu.wait_for(SHOWN, |st| {
        replies(st, &ts)
            .iter()
            .any(|r| r.contains("Resolved: all 2 alert(s)"))
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no resolution reply: {:?}", replies(&emu.state(), &ts)));

    // Sentinel stops; an alert fired meanwhile fails to deliver and Alertmanager retries.
    assert!(sentinel.stop().await.success(), "{}", sentinel.output());
    let failed = "alertmanager_notification_requests_failed_total";
    let webhook = r#"integration="webhook""#;
    let failures_before = am.counter(failed, webhook).await;
    let late = "PaymentsQueueBacklog";
    am.post(&[alert(late, "worker-0", false)]).await;
    let deadline = Instant::now() + SHOWN;
    while am.counter(failed, webhook).await <= failures_before {
        assert!(
            Instant::now() < deadline,
            "Alertmanager never tried to notify the stopped Sentinel:\n{}",
            am.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back up on the same address: the retried notification is stored and shown.
    let mut sentinel = Replica::spawn(&env).await;
    root_showing(
        &emu,
        &am,
        late,
        &["[FIRING]", "1 of 1 alerts firing", "worker-0"],
    )
    .await;
    assert!(
        am.log().contains("Notify attempt failed, will retry later"),
        "{}",
        am.log()
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts WHERE alertname = $1")
        .bind(late)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 1, "the late alert is stored, once");
    {
        let st = emu.state();
        assert_eq!(roots(&st, name).len(), 1, "still one thread for {name}");
        assert_eq!(roots(&st, late).len(), 1, "one thread for {late}");
    }
    assert!(sentinel.stop().await.success(), "{}", sentinel.output());
}
