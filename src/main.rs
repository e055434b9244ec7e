//! The `sentinel` binary: argument parsing over the library.

use clap::Parser;
use sentinel::cli::{run, Cli};
use sentinel::error::UserError;

fn main() {
    fix_compute_threads();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("failed to start the async runtime");
    let code = runtime.block_on(async_main());
    std::process::exit(code);
}

/// The embedder's GEMMs and kernels run on rayon's global pool, which sizes itself from
/// `RAYON_NUM_THREADS` or else from logical CPUs: use physical cores (hyper-threads share
/// one core's vector units), within the CPUs this process may use, cgroup quotas included.
/// Set while the process is still single-threaded: changing the environment is only sound
/// before any thread starts.
fn fix_compute_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
        let n = num_cpus::get_physical().clamp(1, allowed);
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

async fn async_main() -> i32 {
    // reqwest, hyper-rustls and the WebSocket client all use rustls: pick its provider first.
    sentinel::net::install_crypto();
    let cli = Cli::parse();
    let json = cli.log_json
        || std::env::var("SENTINEL_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    sentinel::telemetry::init(json);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<UserError>() {
                Some(u) => eprintln!("error: {u}"),
                None => eprintln!("error: {e:#}"),
            }
            2
        }
    }
}
