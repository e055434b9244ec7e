//! Retries with exponential backoff and full jitter, shared by every outbound client.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(250),
            max: Duration::from_secs(8),
        }
    }
}

/// What a failed attempt means for the next one.
pub enum Verdict {
    /// Give up now.
    Fatal,
    /// Try again after the usual backoff.
    Retry,
    /// Try again after at least this long (a server's `Retry-After`).
    RetryAfter(Duration),
}

impl Backoff {
    /// Delay before attempt `n` (1-based retry count): random in [0, min(max, base * 2^n)].
    pub fn delay(&self, n: u32) -> Duration {
        let cap = self
            .base
            .saturating_mul(2u32.saturating_pow(n.min(16)))
            .min(self.max);
        let ms = cap.as_millis() as u64;
        Duration::from_millis(if ms == 0 {
            0
        } else {
            rand::thread_rng().gen_range(0..=ms)
        })
    }

    /// Runs `op` until it succeeds, `classify` says `Fatal`, or attempts run out.
    pub async fn run<T, E, F, Fut>(
        &self,
        mut op: F,
        classify: impl Fn(&E) -> Verdict,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt >= self.attempts.max(1) => return Err(e),
                Err(e) => match classify(&e) {
                    Verdict::Fatal => return Err(e),
                    Verdict::Retry => tokio::time::sleep(self.delay(attempt)).await,
                    Verdict::RetryAfter(d) => {
                        tokio::time::sleep(d.max(self.delay(attempt)).min(self.max.max(d))).await
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn delay_is_capped() {
        let b = Backoff {
            attempts: 3,
            base: Duration::from_millis(100),
            max: Duration::from_millis(300),
        };
        for n in 1..20 {
            assert!(b.delay(n) <= Duration::from_millis(300));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_then_stops() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, &str> = Backoff::default()
            .run(
                || async {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    if n < 2 {
                        Err("busy")
                    } else {
                        Ok(n)
                    }
                },
                |_| Verdict::Retry,
            )
            .await;
        assert_eq!(r, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_stops_at_once_and_attempts_are_bounded() {
        let calls = AtomicU32::new(0);
        let r: Result<(), &str> = Backoff::default()
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err("bad request")
                },
                |_| Verdict::Fatal,
            )
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        let _: Result<(), &str> = Backoff::default()
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err("down")
                },
                |_| Verdict::Retry,
            )
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
