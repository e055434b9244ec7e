//! Running an argv: no shell, a cleared environment plus an allow-list, its own process
//! group (killed whole past the timeout or on Stop), output captured up to a cap and
//! redacted before anyone sees it.

use std::future::Future;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::redact::redact_patterns;

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub argv: &'a [String],
    pub timeout: Duration,
    /// Variables copied from Sentinel's own environment; everything else is cleared.
    pub env_allow: &'a [String],
    /// Bytes of output kept (stdout and stderr together, in arrival order).
    pub output_cap: usize,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    /// Killed by a signal it did not ask for (not by us).
    Signal,
    TimedOut,
    Stopped,
    /// The program could not be started (not found, not executable).
    NotStarted(String),
}

impl Exit {
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }

    /// The audit outcome and the thread's wording.
    pub fn describe(&self, timeout: Duration) -> String {
        match self {
            Exit::Code(c) => format!("exit status {c}"),
            Exit::Signal => "killed by a signal".into(),
            Exit::TimedOut => format!(
                "timed out after {} s; its process group was killed",
                timeout.as_secs()
            ),
            Exit::Stopped => "stopped on request; its process group was killed".into(),
            Exit::NotStarted(why) => format!("could not start: {why}"),
        }
    }

    pub fn code(&self) -> Option<i32> {
        match self {
            Exit::Code(c) => Some(*c),
            _ => None,
        }
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Ran {
    pub exit: Exit,
    /// Redacted, at most `output_cap` bytes (plus a note when cut).
    pub output: String,
    pub elapsed: Duration,
}

/// Runs `spec`; `started` is called once the process exists, `stop` ends it early.
pub async fn run(spec: &Spec<'_>, started: impl FnOnce(), stop: impl Future<Output = ()>) -> Ran {
    let t0 = Instant::now();
    let Some((program, args)) = spec.argv.split_first() else {
        return not_started("empty argv", t0);
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for key in spec.env_allow {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return not_started(&e.to_string(), t0),
    };
    started();
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let buf = Arc::new(Mutex::new(Capture::new(spec.output_cap)));
    let readers = [
        child
            .stdout
            .take()
            .map(|o| tokio::spawn(drain(o, buf.clone()))),
        child
            .stderr
            .take()
            .map(|e| tokio::spawn(drain(e, buf.clone()))),
    ];
    let exit = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => s.code().map_or(Exit::Signal, Exit::Code),
            Err(e) => Exit::NotStarted(e.to_string()),
        },
        () = tokio::time::sleep(spec.timeout) => Exit::TimedOut,
        () = stop => Exit::Stopped,
    };
    if matches!(exit, Exit::TimedOut | Exit::Stopped) {
        if let Some(pgid) = pgid {
            // The whole group: children the program started are stopped too.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let _ = child.wait().await;
    }
    for r in readers.into_iter().flatten() {
        // A grandchild that left the group may hold the pipe open: do not wait for it long.
        if tokio::time::timeout(Duration::from_secs(1), r)
            .await
            .is_err()
        {
            tracing::debug!("action output still open after exit; cut");
        }
    }
    let output = buf.lock().map(|c| c.text()).unwrap_or_default();
    Ran {
        exit,
        output,
        elapsed: t0.elapsed(),
    }
}

fn not_started(why: &str, t0: Instant) -> Ran {
    Ran {
        exit: Exit::NotStarted(redact_patterns(why)),
        output: String::new(),
        elapsed: t0.elapsed(),
    }
}

/// Output kept up to a cap; the rest is counted, not kept.
struct Capture {
    bytes: Vec<u8>,
    cap: usize,
    dropped: usize,
}

impl Capture {
    fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        let take = room.min(chunk.len());
        self.bytes.extend_from_slice(&chunk[..take]);
        self.dropped += chunk.len() - take;
    }

    fn text(&self) -> String {
        let mut s = redact_patterns(&String::from_utf8_lossy(&self.bytes));
        if self.dropped > 0 {
            s.push_str(&format!("\n… ({} more bytes not kept)", self.dropped));
        }
        s
    }
}

async fn drain(mut r: impl AsyncRead + Unpin, buf: Arc<Mutex<Capture>>) {
    let mut chunk = [0u8; 4096];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut b) = buf.lock() {
                    b.push(&chunk[..n]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    async fn run_for(a: &[&str], timeout_ms: u64) -> Ran {
        run_capped(a, timeout_ms, 64).await
    }

    async fn run_capped(a: &[&str], timeout_ms: u64, output_cap: usize) -> Ran {
        let argv = argv(a);
        let spec = Spec {
            argv: &argv,
            timeout: Duration::from_millis(timeout_ms),
            env_allow: &["PATH".to_string()],
            output_cap,
        };
        run(&spec, || {}, std::future::pending()).await
    }

    #[tokio::test]
    async fn arguments_stay_literal_without_a_shell() {
        let r = run_for(&["echo", "$HOME", "two words", "; rm -rf /"], 5_000).await;
        assert_eq!(r.exit, Exit::Code(0));
        assert_eq!(r.output, "$HOME two words ; rm -rf /\n");
    }

    #[tokio::test]
    async fn the_environment_is_cleared_but_for_the_allow_list() {
        let r = run_capped(&["env"], 5_000, 64 * 1024).await;
        let names: Vec<&str> = r
            .output
            .lines()
            .filter_map(|l| l.split('=').next())
            .collect();
        assert!(names.iter().all(|n| *n == "PATH"), "{:?}", r.output);
    }

    #[tokio::test]
    async fn exit_status_and_missing_programs_are_reported() {
        assert_eq!(run_for(&["false"], 5_000).await.exit, Exit::Code(1));
        let r = run_for(&["/nonexistent/program"], 5_000).await;
        assert!(matches!(r.exit, Exit::NotStarted(_)), "{:?}", r.exit);
        assert!(!r.exit.success());
    }

    #[tokio::test]
    async fn a_hanging_process_group_is_killed_at_the_timeout() {
        // `timeout` starts `sleep` as a child in the same group: both must go.
        let r = run_for(&["timeout", "60", "sleep", "60"], 300).await;
        assert_eq!(r.exit, Exit::TimedOut);
        assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    }

    #[tokio::test]
    async fn output_is_capped_and_redacted() {
        let r = run_for(&["seq", "1", "100000"], 5_000).await;
        assert!(r.output.len() < 200, "{}", r.output.len());
        assert!(r.output.contains("more bytes not kept"));
        let r = run_for(
            &[
                "echo",
                "token xoxb-1234567890-1234567890-abcdefghijABCDEFGHIJ",
            ],
            5_000,
        )
        .await;
        assert!(!r.output.contains("xoxb-1234567890"), "{}", r.output);
    }

    #[tokio::test]
    async fn stop_kills_the_run() {
        let argv = argv(&["sleep", "30"]);
        let spec = Spec {
            argv: &argv,
            timeout: Duration::from_secs(60),
            env_allow: &["PATH".to_string()],
            output_cap: 64,
        };
        let r = run(&spec, || {}, tokio::time::sleep(Duration::from_millis(200))).await;
        assert_eq!(r.exit, Exit::Stopped);
    }
}
