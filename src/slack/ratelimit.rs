//! Per-key pacing (GCRA): about one call per interval per channel, with a small burst.
//!
//! A caller reserves its slot under a short lock and sleeps outside it, so concurrent
//! posts to one channel go out in order, spaced, and other channels are not held up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    /// How far ahead of the steady rate a key may run (burst - 1 intervals).
    tolerance: Duration,
    tat: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    pub fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// How long the caller must wait before sending for `key` (the slot is reserved).
    pub fn reserve(&self, key: &str) -> Duration {
        let now = Instant::now();
        let mut map = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, t| *t > now);
        }
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let allowed_at = tat.checked_sub(self.tolerance).unwrap_or(now).max(now);
        map.insert(key.to_string(), tat + self.interval);
        allowed_at - now
    }

    /// Pushes `key`'s next slot at least `d` into the future (after a 429).
    pub fn penalize(&self, key: &str, d: Duration) {
        let until = Instant::now() + d;
        let mut map = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(key.to_string()).or_insert(until);
        *e = (*e).max(until + self.tolerance);
    }

    pub async fn wait(&self, key: &str) {
        let d = self.reserve(key);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval_per_key() {
        let p = Pacer::new(Duration::from_secs(100), 3);
        let waits: Vec<_> = (0..5)
            .map(|_| Duration::from_secs(p.reserve("C1").as_secs_f64().round() as u64 / 100))
            .collect();
        assert_eq!(waits, [0, 0, 0, 1, 2].map(Duration::from_secs).to_vec());
        // Another channel is not held up.
        assert_eq!(p.reserve("C2"), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn penalty_pushes_the_next_slot_back() {
        let p = Pacer::new(Duration::from_secs(1), 2);
        assert_eq!(p.reserve("C1"), Duration::ZERO);
        p.penalize("C1", Duration::from_secs(10));
        assert!(p.reserve("C1") >= Duration::from_secs(10));
    }
}
