//! The fake of the Slack port for tests, benchmarks and the console: [`Recorder`] keeps
//! every call and the current text of every message; it can fail the next calls on demand,
//! answer 429s as Slack's per-channel limits would ([`Recorder::slack_like`]), and hand
//! each call to an observer ([`Recorder::console`] prints what would be posted for
//! `serve-webhooks --console`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::message::{Marker, Message};
use super::port::{PortError, SlackPort};

/// What sees each call as it is recorded.
type Observer = Box<dyn Fn(&Call) + Send + Sync>;

/// One recorded call.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Post {
        channel: String,
        ts: String,
        msg: Message,
    },
    Update {
        channel: String,
        ts: String,
        msg: Message,
    },
    Reply {
        channel: String,
        thread_ts: String,
        ts: String,
        msg: Message,
    },
    React {
        channel: String,
        ts: String,
        emoji: String,
    },
}

/// In-memory notifier: records calls, hands out increasing `ts` values, keeps the current
/// version of every message, optionally fails the next calls.
#[derive(Default)]
pub struct Recorder {
    calls: Mutex<Vec<Call>>,
    seq: AtomicU64,
    /// Errors returned (and consumed) before any call succeeds.
    failures: Mutex<Vec<PortError>>,
    /// Sees every call as it is recorded (printing, counting).
    observer: Option<Observer>,
    /// Slack's per-channel limits, when emulated.
    limits: Option<Limits>,
    /// 429 answers given.
    pub throttled: AtomicU64,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A recorder that also hands every call it records to `observe`.
    pub fn observed(observe: impl Fn(&Call) + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            observer: Some(Box::new(observe)),
            ..Self::default()
        })
    }

    /// A recorder behind Slack's limits, emulated: `chat.postMessage` about one per second
    /// per channel (a burst of 3), `chat.update` about 50 a minute. Over the limit a call is
    /// refused with `RateLimited(retry_after)` and not recorded.
    pub fn slack_like() -> Arc<Self> {
        Arc::new(Self {
            limits: Some(Limits {
                post_interval: Duration::from_secs(1),
                update_interval: Duration::from_millis(1200),
                burst: 3,
                buckets: Mutex::new(HashMap::new()),
            }),
            ..Self::default()
        })
    }

    /// Prints every call on stdout as a person would read it in Slack (for
    /// `serve-webhooks --console`).
    pub fn console() -> Arc<Self> {
        Self::observed(print_call)
    }

    /// The next calls fail with these errors, in order.
    pub fn fail_next(&self, errors: Vec<PortError>) {
        let mut f = self.failures.lock().expect("lock");
        f.extend(errors);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }

    /// Root messages posted (not replies).
    pub fn roots(&self) -> Vec<(String, String, Message)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Post { channel, ts, msg } => Some((channel, ts, msg)),
                _ => None,
            })
            .collect()
    }

    pub fn replies(&self, thread_ts: &str) -> Vec<Message> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Reply {
                    thread_ts: t, msg, ..
                } if t == thread_ts => Some(msg),
                _ => None,
            })
            .collect()
    }

    pub fn reactions(&self, ts: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::React { ts: t, emoji, .. } if t == ts => Some(emoji),
                _ => None,
            })
            .collect()
    }

    /// What Slack shows now for message `ts` (the last post or update).
    pub fn current(&self, ts: &str) -> Option<Message> {
        self.calls().into_iter().fold(None, |cur, c| match c {
            Call::Post { ts: t, msg, .. }
            | Call::Update { ts: t, msg, .. }
            | Call::Reply { ts: t, msg, .. }
                if t == ts =>
            {
                Some(msg)
            }
            _ => cur,
        })
    }

    fn next_ts(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        format!("1700000000.{n:06}")
    }

    /// Whether a call goes through: injected failures first, then the emulated limits
    /// (`limit`: the channel, and whether the call is an update).
    fn admit(&self, limit: Option<(&str, bool)>) -> Result<(), PortError> {
        {
            let mut f = self.failures.lock().expect("lock");
            if !f.is_empty() {
                return Err(f.remove(0));
            }
        }
        match (&self.limits, limit) {
            (Some(l), Some((channel, update))) => l.take(channel, update).inspect_err(|_| {
                self.throttled.fetch_add(1, Ordering::Relaxed);
            }),
            _ => Ok(()),
        }
    }

    fn record(&self, c: Call) {
        if let Some(o) = &self.observer {
            o(&c);
        }
        self.calls.lock().expect("lock").push(c);
    }
}

#[async_trait]
impl SlackPort for Recorder {
    async fn post(&self, channel: &str, msg: &Message) -> Result<String, PortError> {
        self.admit(Some((channel, false)))?;
        let ts = self.next_ts();
        self.record(Call::Post {
            channel: channel.into(),
            ts: ts.clone(),
            msg: msg.clone(),
        });
        Ok(ts)
    }

    async fn update(&self, channel: &str, ts: &str, msg: &Message) -> Result<(), PortError> {
        self.admit(Some((channel, true)))?;
        self.record(Call::Update {
            channel: channel.into(),
            ts: ts.into(),
            msg: msg.clone(),
        });
        Ok(())
    }

    async fn reply(
        &self,
        channel: &str,
        thread_ts: &str,
        msg: &Message,
    ) -> Result<String, PortError> {
        self.admit(Some((channel, false)))?;
        let ts = self.next_ts();
        self.record(Call::Reply {
            channel: channel.into(),
            thread_ts: thread_ts.into(),
            ts: ts.clone(),
            msg: msg.clone(),
        });
        Ok(ts)
    }

    async fn react(&self, channel: &str, ts: &str, emoji: &str) -> Result<(), PortError> {
        self.admit(None)?;
        self.record(Call::React {
            channel: channel.into(),
            ts: ts.into(),
            emoji: emoji.into(),
        });
        Ok(())
    }

    async fn find_marked(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        _oldest: &str,
        marker: &Marker,
    ) -> Result<Option<String>, PortError> {
        self.admit(None)?;
        Ok(self.calls().into_iter().find_map(|c| match c {
            Call::Post {
                channel: c,
                ts,
                msg,
            } if thread_ts.is_none() && c == channel => {
                (msg.marker() == Some(marker)).then_some(ts)
            }
            Call::Reply {
                channel: c,
                thread_ts: t,
                ts,
                msg,
            } if c == channel && Some(t.as_str()) == thread_ts => {
                (msg.marker() == Some(marker)).then_some(ts)
            }
            _ => None,
        }))
    }
}

/// One call as a person would read it in Slack.
fn print_call(c: &Call) {
    let (what, channel, ts, msg) = match c {
        Call::Post { channel, ts, msg } => ("new message in".to_string(), channel, ts, msg),
        Call::Update { channel, ts, msg } => ("message edited in".to_string(), channel, ts, msg),
        Call::Reply {
            channel,
            thread_ts,
            ts,
            msg,
        } => (
            format!("thread reply (thread {thread_ts}) in"),
            channel,
            ts,
            msg,
        ),
        Call::React { channel, ts, emoji } => {
            println!("── reaction :{emoji}: on #{channel} ts={ts}");
            return;
        }
    };
    println!("── {what} #{channel} ts={ts}");
    for line in msg.text().lines() {
        println!("   {line}");
    }
}

/// Token buckets per (channel, post or update), as Slack refills them.
struct Limits {
    post_interval: Duration,
    update_interval: Duration,
    burst: u32,
    buckets: Mutex<HashMap<(String, bool), Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: tokio::time::Instant,
}

impl Limits {
    fn take(&self, channel: &str, update: bool) -> Result<(), PortError> {
        let interval = if update {
            self.update_interval
        } else {
            self.post_interval
        };
        let now = tokio::time::Instant::now();
        let mut buckets = self.buckets.lock().expect("lock");
        let b = buckets
            .entry((channel.to_string(), update))
            .or_insert(Bucket {
                tokens: f64::from(self.burst),
                at: now,
            });
        let refill = now.duration_since(b.at).as_secs_f64() / interval.as_secs_f64();
        b.tokens = (b.tokens + refill).min(f64::from(self.burst));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) * interval.as_secs_f64();
            Err(PortError::RateLimited(Duration::from_secs_f64(wait)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Message {
        Message::text_only(&crate::slack::mrkdwn::Mrkdwn::own(s))
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_refuses_bursts_and_recovers() {
        let n = Recorder::slack_like();
        let m = text("x");
        for _ in 0..3 {
            n.post("C1", &m).await.unwrap();
        }
        let e = n.post("C1", &m).await.unwrap_err();
        assert!(matches!(e, PortError::RateLimited(d) if d <= Duration::from_secs(1)));
        // Another channel has its own budget.
        n.post("C2", &m).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        n.post("C1", &m).await.unwrap();
        assert_eq!(n.roots().len(), 5);
        assert_eq!(n.throttled.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn marked_posts_and_replies_are_found_again() {
        let n = Recorder::new();
        let m = Marker::new("sentinel_incident_root", 7);
        let root = n.post("C", &text("root").marked(m.clone())).await.unwrap();
        assert_eq!(
            n.find_marked("C", None, "0", &m).await.unwrap(),
            Some(root.clone())
        );
        assert_eq!(n.find_marked("D", None, "0", &m).await.unwrap(), None);
        let other = Marker::new("sentinel_incident_root", 8);
        assert_eq!(n.find_marked("C", None, "0", &other).await.unwrap(), None);
        let r = Marker::new("sentinel_runbook_reply", 7);
        let reply = n
            .reply("C", &root, &text("sections").marked(r.clone()))
            .await
            .unwrap();
        assert_eq!(
            n.find_marked("C", Some(&root), "0", &r).await.unwrap(),
            Some(reply)
        );
        assert_eq!(n.find_marked("C", None, "0", &r).await.unwrap(), None);
    }

    #[tokio::test]
    async fn recording_keeps_current_text_and_injected_failures() {
        let n = Recorder::new();
        n.fail_next(vec![PortError::Transient("boom".into())]);
        assert!(n.post("C", &text("a")).await.is_err());
        let ts = n.post("C", &text("a")).await.unwrap();
        n.update("C", &ts, &text("b")).await.unwrap();
        assert_eq!(n.current(&ts).unwrap().text(), "b");
        assert_eq!(n.roots().len(), 1);
    }
}
