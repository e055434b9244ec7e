//! Logging set-up: human-readable on a terminal, JSON with `SENTINEL_LOG_FORMAT=json`.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once. Logs go to stderr so `--json` output stays clean.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_env("SENTINEL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,sentinel=info"));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}
