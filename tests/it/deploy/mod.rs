//! The deploy artifacts (issue 16), checked as far as this machine can without a Docker
//! daemon or a cluster: the Dockerfile builds the way the Makefile does, fly.toml keeps the
//! bot running and migrates on release, docker-compose.yml runs the official pgvector
//! image, the Helm chart lints, renders and validates, and every health check any of them
//! configures answers on a running `sentinel serve`.

mod compose;
mod fly;
mod helm;
mod image;
mod live;

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Parser;
use sentinel::cli::Cli;
pub use sentinel::cli::Command as Sub;
use sentinel::config::Config;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The webhook port Sentinel listens on when nothing says otherwise.
pub fn default_port() -> u16 {
    Config::from_env(&HashMap::new())
        .unwrap()
        .alerts
        .listen
        .port()
}

/// The port of a `host:port` listen address.
pub fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("`{addr}` is not host:port"))
}

/// `args` (without the program name) as the `sentinel` command line parses them.
pub fn subcommand(args: &[&str]) -> Sub {
    Cli::try_parse_from(std::iter::once("sentinel").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("`sentinel {}` is no command: {e}", args.join(" ")))
        .command
}

/// Variables that hold credentials: never in a committed file's settings.
pub fn is_secret(var: &str) -> bool {
    var == "DATABASE_URL"
        || var.starts_with("SLACK_") && var.ends_with("_TOKEN")
        || ["_TOKEN", "_SECRET", "_KEY"]
            .iter()
            .any(|s| var.ends_with(s))
}
