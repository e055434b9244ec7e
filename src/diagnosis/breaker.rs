//! A circuit breaker for the LLM, so an outage costs one timeout, not one per incident.
//!
//! Closed: calls go through; `failures` consecutive failures (timeouts, 429s, 5xx,
//! transport errors) open it. Open: no call is made and diagnoses get the runbook fallback
//! at once. Every `probe` one call is let through (half-open): an answer closes the
//! circuit, a failure keeps it open for another `probe`.
//!
//! [`Circuit`] is the state machine, pure (every method takes `now`); [`Breaker`] shares
//! one between tasks, reads the clock and logs each change of state once.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::llm::LlmError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit (`SENTINEL_LLM_BREAKER_FAILURES`).
    pub failures: u32,
    /// While open, one call is let through this often (`SENTINEL_LLM_BREAKER_PROBE_SECS`).
    pub probe: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 3,
            probe: Duration::from_secs(30),
        }
    }
}

/// What a call's result says about the LLM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// It answered (even if the answer then failed validation).
    Success,
    /// Timeout, 429, 5xx or transport error: it is failing.
    Failure,
    /// Says nothing either way (a rejected request, a spent budget: no outage).
    Neutral,
}

impl CallOutcome {
    pub fn of(e: &LlmError) -> Self {
        match e {
            LlmError::Timeout(_)
            | LlmError::RateLimited { .. }
            | LlmError::Server(_)
            | LlmError::Transport(_) => CallOutcome::Failure,
            LlmError::Rejected { .. } | LlmError::Budget { .. } | LlmError::Empty => {
                CallOutcome::Neutral
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

/// Whether a call may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The circuit is closed.
    Call,
    /// The one call let through while open.
    Probe,
    /// Open (or a probe is already out): use the fallback.
    Reject,
}

/// A change of state, to be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Closed -> open after this many consecutive failures.
    Opened(u32),
    /// Open -> half-open: a probe is going out.
    Probing,
    /// The probe failed: open for another interval.
    ProbeFailed,
    /// The LLM answered: closed.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { probe_at: Instant },
    HalfOpen,
}

/// The breaker's state machine.
#[derive(Debug, Clone)]
pub struct Circuit {
    cfg: BreakerConfig,
    inner: Inner,
}

impl Circuit {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self {
            cfg: BreakerConfig {
                failures: cfg.failures.max(1),
                ..cfg
            },
            inner: Inner::Closed { failures: 0 },
        }
    }

    pub fn state(&self) -> State {
        match self.inner {
            Inner::Closed { .. } => State::Closed,
            Inner::Open { .. } => State::Open,
            Inner::HalfOpen => State::HalfOpen,
        }
    }

    /// May a call go out at `now`?
    pub fn admit(&mut self, now: Instant) -> (Admission, Option<Change>) {
        match self.inner {
            Inner::Closed { .. } => (Admission::Call, None),
            Inner::Open { probe_at } if now >= probe_at => {
                self.inner = Inner::HalfOpen;
                (Admission::Probe, Some(Change::Probing))
            }
            Inner::Open { .. } | Inner::HalfOpen => (Admission::Reject, None),
        }
    }

    /// Records the result of a call admitted as `admitted`.
    pub fn record(
        &mut self,
        admitted: Admission,
        outcome: CallOutcome,
        now: Instant,
    ) -> Option<Change> {
        let probe = admitted == Admission::Probe;
        match (self.inner, outcome) {
            // Any answer shows the LLM is back, whichever call brought it.
            (Inner::Closed { .. }, CallOutcome::Success) => {
                self.inner = Inner::Closed { failures: 0 };
                None
            }
            (Inner::Open { .. } | Inner::HalfOpen, CallOutcome::Success) => {
                self.inner = Inner::Closed { failures: 0 };
                Some(Change::Closed)
            }
            (Inner::Closed { failures }, CallOutcome::Failure) => {
                let failures = failures + 1;
                if failures >= self.cfg.failures {
                    self.inner = Inner::Open {
                        probe_at: now + self.cfg.probe,
                    };
                    Some(Change::Opened(failures))
                } else {
                    self.inner = Inner::Closed { failures };
                    None
                }
            }
            (Inner::HalfOpen, CallOutcome::Failure) if probe => {
                self.inner = Inner::Open {
                    probe_at: now + self.cfg.probe,
                };
                Some(Change::ProbeFailed)
            }
            // A probe that learnt nothing: the next call probes again.
            (Inner::HalfOpen, CallOutcome::Neutral) if probe => {
                self.inner = Inner::Open { probe_at: now };
                None
            }
            // Late results of calls let through before the circuit opened change nothing.
            _ => None,
        }
    }
}

/// A [`Circuit`] shared by concurrent diagnoses.
#[derive(Debug)]
pub struct Breaker {
    circuit: Mutex<Circuit>,
    cfg: BreakerConfig,
    /// Told when the circuit opens, so calls still waiting on the LLM stop waiting.
    opened: tokio::sync::Notify,
}

/// Leave to make one call; report its result with [`Permit::record`]. A probe dropped
/// unreported counts as failed, so the circuit never stays half-open.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    admitted: Admission,
    done: bool,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self {
            circuit: Mutex::new(Circuit::new(cfg)),
            cfg,
            opened: tokio::sync::Notify::new(),
        }
    }

    /// Resolves when the circuit next opens (from closed). Take it before the call: it
    /// hears every opening from the moment it is made.
    pub fn opened(&self) -> tokio::sync::futures::Notified<'_> {
        self.opened.notified()
    }

    pub fn state(&self) -> State {
        self.lock().state()
    }

    /// Leave to call the LLM now, or `None` while the circuit is open.
    pub fn admit(&self) -> Option<Permit<'_>> {
        let (admitted, change) = self.lock().admit(Instant::now());
        self.log(change);
        (admitted != Admission::Reject).then_some(Permit {
            breaker: self,
            admitted,
            done: false,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Circuit> {
        // The state stays consistent even if a holder panicked: every update is one store.
        self.circuit.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, admitted: Admission, outcome: CallOutcome) {
        let change = self.lock().record(admitted, outcome, Instant::now());
        self.log(change);
    }

    fn log(&self, change: Option<Change>) {
        let probe_secs = self.cfg.probe.as_secs_f64();
        match change {
            Some(Change::Opened(n)) => {
                tracing::warn!(
                    failures = n,
                    probe_secs,
                    "LLM circuit opened: diagnoses use the runbook fallback without asking the LLM; one call probes it every interval"
                );
                self.opened.notify_waiters();
            }
            Some(Change::Closed) => {
                tracing::warn!("LLM circuit closed: the LLM answers again")
            }
            Some(Change::Probing) => tracing::debug!("LLM circuit half-open: probing"),
            Some(Change::ProbeFailed) => {
                tracing::debug!(probe_secs, "LLM probe failed; circuit stays open")
            }
            None => {}
        }
    }
}

impl Permit<'_> {
    /// The one call let through while the circuit is open.
    pub fn is_probe(&self) -> bool {
        self.admitted == Admission::Probe
    }

    pub fn record(mut self, outcome: CallOutcome) {
        self.done = true;
        self.breaker.record(self.admitted, outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done && self.admitted == Admission::Probe {
            self.breaker.record(self.admitted, CallOutcome::Failure);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: Duration = Duration::from_secs(30);

    fn circuit() -> Circuit {
        Circuit::new(BreakerConfig {
            failures: 3,
            probe: PROBE,
        })
    }

    fn fail(c: &mut Circuit, now: Instant) -> Option<Change> {
        let (a, _) = c.admit(now);
        c.record(a, CallOutcome::Failure, now)
    }

    /// A circuit that opened at `t`.
    fn opened(t: Instant) -> Circuit {
        let mut c = circuit();
        while c.state() == State::Closed {
            fail(&mut c, t);
        }
        c
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let t = Instant::now();
        let mut c = circuit();
        assert_eq!(fail(&mut c, t), None);
        assert_eq!(fail(&mut c, t), None);
        // A success in between starts the count again.
        let (a, _) = c.admit(t);
        assert_eq!(c.record(a, CallOutcome::Success, t), None);
        assert_eq!(fail(&mut c, t), None);
        assert_eq!(fail(&mut c, t), None);
        // Neutral results (a rejected request, a spent budget) neither count nor reset.
        let (a, _) = c.admit(t);
        assert_eq!(c.record(a, CallOutcome::Neutral, t), None);
        assert_eq!(c.state(), State::Closed);
        assert_eq!(fail(&mut c, t), Some(Change::Opened(3)));
        assert_eq!(c.state(), State::Open);
        assert_eq!(c.admit(t + PROBE / 2), (Admission::Reject, None));
    }

    #[test]
    fn probes_once_per_interval_and_closes_on_an_answer() {
        let t = Instant::now();
        let mut c = opened(t);
        assert_eq!(
            c.admit(t + PROBE - Duration::from_millis(1)).0,
            Admission::Reject
        );
        let at = t + PROBE;
        assert_eq!(c.admit(at), (Admission::Probe, Some(Change::Probing)));
        // One probe at a time: everyone else still gets the fallback.
        assert_eq!(c.admit(at).0, Admission::Reject);
        // The probe fails: open for another interval from now.
        let later = at + Duration::from_secs(5);
        assert_eq!(
            c.record(Admission::Probe, CallOutcome::Failure, later),
            Some(Change::ProbeFailed)
        );
        assert_eq!(c.admit(later + PROBE / 2).0, Admission::Reject);
        let at = later + PROBE;
        assert_eq!(c.admit(at).0, Admission::Probe);
        assert_eq!(
            c.record(Admission::Probe, CallOutcome::Success, at),
            Some(Change::Closed)
        );
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.admit(at), (Admission::Call, None));
        // Closed again means the full count is needed to reopen.
        assert_eq!(fail(&mut c, at), None);
        assert_eq!(fail(&mut c, at), None);
        assert_eq!(fail(&mut c, at), Some(Change::Opened(3)));
    }

    #[test]
    fn late_results_of_earlier_calls() {
        let t = Instant::now();
        let mut c = opened(t);
        // Failures of calls that went out before it opened do not push the probe back.
        assert_eq!(
            c.record(Admission::Call, CallOutcome::Failure, t + PROBE / 2),
            None
        );
        assert_eq!(c.admit(t + PROBE).0, Admission::Probe);
        // But any answer shows the LLM is back.
        assert_eq!(
            c.record(Admission::Call, CallOutcome::Success, t + PROBE),
            Some(Change::Closed)
        );
    }

    #[test]
    fn a_probe_that_learns_nothing_lets_the_next_call_probe() {
        let t = Instant::now();
        let mut c = opened(t);
        let at = t + PROBE;
        assert_eq!(c.admit(at).0, Admission::Probe);
        assert_eq!(c.record(Admission::Probe, CallOutcome::Neutral, at), None);
        assert_eq!(c.admit(at).0, Admission::Probe);
    }

    #[test]
    fn llm_errors_are_classified() {
        assert_eq!(
            CallOutcome::of(&LlmError::Timeout(Duration::from_secs(1))),
            CallOutcome::Failure
        );
        assert_eq!(
            CallOutcome::of(&LlmError::RateLimited { retry_after: None }),
            CallOutcome::Failure
        );
        assert_eq!(
            CallOutcome::of(&LlmError::Server(502)),
            CallOutcome::Failure
        );
        assert_eq!(
            CallOutcome::of(&LlmError::Transport("refused".into())),
            CallOutcome::Failure
        );
        assert_eq!(
            CallOutcome::of(&LlmError::Budget { used: 2, budget: 1 }),
            CallOutcome::Neutral
        );
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_on_the_clock() {
        let b = Breaker::new(BreakerConfig {
            failures: 2,
            probe: PROBE,
        });
        // A call still out when the circuit opens hears of it.
        let out = b.admit().expect("closed");
        let opened = b.opened();
        for _ in 0..2 {
            b.admit().expect("closed").record(CallOutcome::Failure);
        }
        assert_eq!(b.state(), State::Open);
        tokio::time::timeout(Duration::from_millis(1), opened)
            .await
            .expect("told the circuit opened");
        // Its result, whenever it comes, changes nothing.
        drop(out);
        assert!(b.admit().is_none());
        tokio::time::advance(PROBE).await;
        // A probe abandoned without a result (its task was dropped) counts as failed.
        drop(b.admit().expect("probe"));
        assert_eq!(b.state(), State::Open);
        assert!(b.admit().is_none());
        tokio::time::advance(PROBE).await;
        let probe = b.admit().expect("probe");
        assert!(b.admit().is_none(), "one probe at a time");
        probe.record(CallOutcome::Success);
        assert_eq!(b.state(), State::Closed);
        assert!(b.admit().is_some());
    }
}
