//! The `sentinel` binary: argument parsing over the library.

use clap::Parser;
use sentinel::cli::{run, Cli};
use sentinel::error::UserError;

#[tokio::main]
async fn main() {
    // reqwest, hyper-rustls and the WebSocket client all use rustls: pick its provider first.
    sentinel::net::install_crypto();
    let cli = Cli::parse();
    let json = cli.log_json
        || std::env::var("SENTINEL_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    sentinel::telemetry::init(json);
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<UserError>() {
                Some(u) => eprintln!("error: {u}"),
                None => eprintln!("error: {e:#}"),
            }
            2
        }
    };
    std::process::exit(code);
}
