//! The `sentinel` command line: clap definitions, and `run`, which hands each subcommand to
//! its code (here for the small ones, else in its module: `bench`, `demo`, ...).
//!
//! The subcommands and their `--json` outputs are a stable contract (see README).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::app::App;
use crate::audit;
use crate::bench::{self, eval};
use crate::demo::{self, DemoArgs};
use crate::knowledge::{ingest, SearchRequest};
use crate::slack::recorder::Recorder;
use crate::slack::SlackPort;
use crate::stack::{listener_options, Parts, SlackSide, Stack};

#[derive(Debug, Parser)]
#[command(
    name = "sentinel",
    version,
    about = "First responder for on-call engineers"
)]
pub struct Cli {
    /// Log as JSON lines (also SENTINEL_LOG_FORMAT=json).
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply database migrations.
    Migrate,
    /// Ingest runbooks (markdown files or folders) into the knowledge base.
    Ingest(IngestArgs),
    /// Search the knowledge base.
    Search(SearchArgs),
    /// Measure quality.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Measure speed.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Ingest the bundled runbooks and answer a sample alert, then play a short Slack
    /// session against the built-in Slack emulator and print the channel.
    Demo(DemoArgs),
    /// The whole product in a browser: the Slack emulator with Sentinel in it, a web page
    /// to act as people, fire alerts and watch incidents, actions and the audit log.
    Playground(crate::playground::PlaygroundArgs),
    /// Receive alert webhooks (Alertmanager, Grafana, generic) and store them.
    ServeWebhooks(ServeWebhooksArgs),
    /// Run the Slack bot (Socket Mode) until Ctrl-C.
    Serve,
    /// Probe this deployment's webhook server (SENTINEL_WEBHOOK_ADDR) at /healthz: exit 0
    /// when it answers 2xx, 1 otherwise (the Docker image's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
    /// The tamper-evident audit log of actions (needs SENTINEL_AUDIT_KEY to verify).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check this deployment end to end (Slack, database, model, LLM, webhooks): a
    /// checklist with a fix for each failure; exit 1 when a check fails.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as one JSON object (docs/doctor.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain: exit 0 when intact, 1 naming the first bad sequence number.
    Verify(AuditVerifyArgs),
    /// Write the log (or part of it) as JSON lines on stdout.
    Export(AuditExportArgs),
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Print the result as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// A head published earlier (`SEQ:HASH`, from the audit channel or the log): the log
    /// must reach it and hold that hash there (catches rows cut off the end).
    #[arg(long, value_parser = audit::verify::parse_anchor)]
    pub anchor: Option<audit::Head>,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Rows appended at or after this time (RFC 3339, or a date for midnight UTC).
    #[arg(long, value_parser = audit::export::parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Rows of this incident only (`42` or `#42`).
    #[arg(long, value_parser = parse_incident)]
    pub incident: Option<i64>,
}

fn parse_incident(s: &str) -> Result<i64, String> {
    s.trim()
        .trim_start_matches('#')
        .parse()
        .map_err(|_| format!("`{s}` is not an incident number"))
}

#[derive(Debug, Args)]
pub struct ServeWebhooksArgs {
    /// Also run the incident engine, printing what it would post in Slack on stdout
    /// (needs SENTINEL_ALERT_CHANNEL).
    #[arg(long)]
    pub console: bool,
    /// With --console: answer new incidents with runbook sections from the knowledge base.
    #[arg(long, requires = "console")]
    pub runbooks: bool,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Probe /readyz (database reachable, Slack connected, not draining) instead.
    #[arg(long)]
    pub ready: bool,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or folders; a runbook's identity is its path relative to the one given.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the report as one JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    pub text: String,
    /// The alert name, matched exactly against runbooks' `alerts`, title and file name.
    #[arg(long)]
    pub alert: Option<String>,
    /// The alert's runbook_url, matched against runbooks' `urls` and paths.
    #[arg(long)]
    pub runbook_url: Option<String>,
    #[arg(short, long, default_value_t = 5)]
    pub k: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Recall@1, recall@5 and MRR over a JSONL file of queries with expected runbooks.
    Retrieval(eval::RetrievalArgs),
    /// With no LLM: how often the runbook-based diagnosis cites the expected runbook.
    Fallback(eval::FallbackArgs),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Embedding throughput and single-query latency.
    Embed(bench::embed::EmbedArgs),
    /// The whole query path (embed + hybrid search) on a scratch database of N chunks.
    Search(bench::search::SearchArgs),
    /// Webhook intake over HTTP: alerts stored per second, with de-duplication.
    Intake(bench::intake::IntakeArgs),
    /// An alert storm through the whole pipeline into a Slack-like rate-limited notifier.
    Storm(bench::alerts::StormArgs),
    /// Webhook received to runbook reply posted (emulated Slack), p50 and p99.
    AlertLatency(bench::alerts::LatencyArgs),
    /// Socket Mode ack latency under a burst of envelopes whose work is slow.
    SlackAck(bench::slack_ack::SlackAckArgs),
    /// Subject in -> diagnosis posted, with an instantly answering test LLM, on N chunks.
    Diagnosis(bench::diagnosis::BenchArgs),
    /// Redaction on the corpora of tests/data/redaction: secrets leaked, near misses changed.
    Redaction(bench::redaction::RedactionArgs),
    /// Hash-chained audit appends from two replicas, and `audit verify` over a large log.
    Audit(bench::audit::AuditArgs),
    /// Clicks through the emulator: click to process started, and doubled or redelivered
    /// clicks (exactly one run each).
    Actions(bench::actions::ActionsArgs),
    /// A burst of incidents while the LLM hangs: roots, runbook replies and fallbacks
    /// posted, then drafts again once it answers.
    LlmOutage(bench::outage::OutageArgs),
    /// `sentinel serve` from exec to ready, and its idle memory with the model loaded.
    Startup(bench::startup::StartupArgs),
}

/// Runs a subcommand; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    // The doctor reports a configuration error as a failed check instead of exiting on it.
    if let Command::Doctor(a) = &cli.command {
        return Ok(doctor(a).await);
    }
    let app = App::from_env()?;
    match cli.command {
        Command::Migrate => migrate(&app).await,
        Command::Ingest(a) => ingest(&app, a).await,
        Command::Search(a) => search(&app, a).await,
        Command::Eval(EvalCommand::Retrieval(a)) => eval::run_retrieval(&app, a).await,
        Command::Eval(EvalCommand::Fallback(a)) => eval::fallback(&app, a).await,
        Command::Bench(BenchCommand::Embed(a)) => bench::embed::run(&app, a).await,
        Command::Bench(BenchCommand::Search(a)) => bench::search::run(&app, a).await,
        Command::Bench(BenchCommand::Intake(a)) => bench::intake::run(&app, a).await,
        Command::Bench(BenchCommand::Storm(a)) => bench::alerts::storm(&app, a).await,
        Command::Bench(BenchCommand::AlertLatency(a)) => bench::alerts::latency(&app, a).await,
        Command::Bench(BenchCommand::SlackAck(a)) => bench::slack_ack::run(a).await,
        Command::Bench(BenchCommand::Diagnosis(a)) => bench::diagnosis::run(&app, a).await,
        Command::Bench(BenchCommand::Redaction(a)) => bench::redaction::run(a),
        Command::Bench(BenchCommand::LlmOutage(a)) => bench::outage::run(&app, a).await,
        Command::Bench(BenchCommand::Audit(a)) => bench::audit::run(&app, a).await,
        Command::Bench(BenchCommand::Actions(a)) => bench::actions::run(&app, a).await,
        Command::Bench(BenchCommand::Startup(a)) => bench::startup::run(&app, a).await,
        Command::Demo(a) => demo::run(&app, a).await,
        Command::Playground(a) => crate::playground::run(&app, a).await,
        Command::ServeWebhooks(a) => serve_webhooks(&app, a).await,
        Command::Serve => serve(&app).await,
        Command::Healthcheck(a) => healthcheck(&app, a).await,
        Command::Audit(AuditCommand::Verify(a)) => audit_verify(&app, a).await,
        Command::Audit(AuditCommand::Export(a)) => audit_export(&app, a).await,
        Command::Doctor(a) => Ok(doctor(&a).await),
    }
}

async fn doctor(a: &DoctorArgs) -> i32 {
    let report =
        crate::doctor::run(crate::config::Config::from_env(&crate::config::ProcessEnv)).await;
    if a.json {
        println!("{}", crate::doctor::render::json(&report));
    } else {
        print!("{}", crate::doctor::render::text(&report));
    }
    report.exit_code()
}

async fn audit_verify(app: &App, a: AuditVerifyArgs) -> anyhow::Result<i32> {
    let key = app.config.audit.require_key()?;
    let pool = app.pool().await?;
    let report = audit::verify_with(&pool, key, a.anchor.as_ref()).await?;
    if a.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.summary());
    }
    Ok(if report.ok() { 0 } else { 1 })
}

async fn audit_export(app: &App, a: AuditExportArgs) -> anyhow::Result<i32> {
    let pool = app.pool().await?;
    let filter = audit::export::Filter {
        since: a.since,
        incident_id: a.incident,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let n = audit::export::export(&pool, &filter, &mut out).await?;
    eprintln!("exported {n} audit events");
    Ok(0)
}

/// The audit head's anchor for a long-running process: logs the head hourly and posts it
/// to `SENTINEL_AUDIT_CHANNEL` through `port` when both are there. Without the key, says
/// that actions cannot be recorded.
fn spawn_anchor(
    app: &App,
    pool: &sqlx::PgPool,
    port: Option<Arc<dyn SlackPort>>,
) -> tokio::task::JoinHandle<()> {
    let cfg = &app.config.audit;
    if cfg.key.is_none() {
        tracing::warn!(
            "SENTINEL_AUDIT_KEY is not set: actions cannot be audited, so none will run"
        );
    }
    let slack = port.zip(cfg.channel.clone());
    tokio::spawn(audit::anchor::run(
        pool.clone(),
        cfg.key.clone(),
        slack,
        audit::anchor::EVERY,
    ))
}

async fn healthcheck(app: &App, a: HealthcheckArgs) -> anyhow::Result<i32> {
    let path = if a.ready { "/readyz" } else { "/healthz" };
    let url = crate::http::probe::url(app.config.alerts.listen, path);
    Ok(match crate::http::probe::check(&url).await {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(why) => {
            eprintln!("unhealthy: {why}");
            1
        }
    })
}

async fn migrate(app: &App) -> anyhow::Result<i32> {
    app.pool().await?;
    eprintln!("migrations applied");
    Ok(0)
}

async fn ingest(app: &App, a: IngestArgs) -> anyhow::Result<i32> {
    let kb = app.knowledge().await?;
    let report = ingest::ingest(
        &kb.pool,
        kb.embedder.as_ref(),
        &a.paths,
        std::io::stderr().is_terminal() && !a.json,
    )
    .await?;
    for f in &report.failed {
        eprintln!("skipped {}: {}", f.path, f.reason);
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.summary_line());
    }
    Ok(if report.failed.is_empty() { 0 } else { 1 })
}

async fn search(app: &App, a: SearchArgs) -> anyhow::Result<i32> {
    let kb = app.knowledge().await?;
    let hits = kb
        .search(&SearchRequest {
            text: a.text,
            alert: a.alert,
            runbook_url: a.runbook_url,
            k: a.k,
        })
        .await?;
    if a.json {
        println!("{}", serde_json::to_string(&hits)?);
    } else if hits.is_empty() {
        println!(
            "no runbook sections found (is anything ingested? try `sentinel ingest runbooks`)"
        );
    } else {
        for h in &hits {
            println!(
                "{:>2}. {:.4}  {}#{}  [{}]",
                h.rank,
                h.score,
                h.runbook_path,
                h.anchor,
                h.heading()
            );
            println!("    {}", crate::text::excerpt(&h.body, 160));
        }
    }
    Ok(0)
}

async fn serve(app: &App) -> anyhow::Result<i32> {
    let slack = app.config.require_slack()?.clone();
    let listener = app.webhook_listener().await?;
    let kb = app.knowledge().await?;
    let port: Arc<dyn SlackPort> = Arc::new(crate::stack::slack_client(&slack, &app.metrics)?);
    let anchor = spawn_anchor(app, &kb.pool, Some(port));
    let parts = Parts {
        pool: kb.pool.clone(),
        alerts: app.config.alerts.clone(),
        listener,
        slack: SlackSide::Bot {
            listener: listener_options(&slack),
            config: slack,
        },
        diagnoser: Some(Arc::new(app.diagnoser(kb))),
        actions: app.actions(),
        metrics: app.metrics.clone(),
        metrics_listener: app.metrics_listener().await?,
    };
    let code = run_stack(app, parts, "Sentinel is connected to Slack; webhooks").await;
    anchor.abort();
    code
}

async fn serve_webhooks(app: &App, a: ServeWebhooksArgs) -> anyhow::Result<i32> {
    let listener = app.webhook_listener().await?;
    let (pool, diagnoser) = if a.runbooks {
        let kb = app.knowledge().await?;
        (kb.pool.clone(), Some(Arc::new(app.diagnoser(kb))))
    } else {
        (app.pool().await?, None)
    };
    let slack = if a.console {
        SlackSide::Port(Recorder::console())
    } else {
        SlackSide::StoreOnly
    };
    let parts = Parts {
        pool,
        alerts: app.config.alerts.clone(),
        listener,
        slack,
        diagnoser,
        actions: app.actions(),
        metrics: app.metrics.clone(),
        metrics_listener: app.metrics_listener().await?,
    };
    run_stack(app, parts, "listening for webhooks").await
}

/// Starts the stack, says where webhooks go, and runs it until SIGTERM or Ctrl-C.
async fn run_stack(app: &App, parts: Parts, started: &str) -> anyhow::Result<i32> {
    let stack = Stack::start(parts).await?;
    eprintln!(
        "{started} on http://{}/hooks/{{alertmanager,grafana,generic}}; Ctrl-C to stop",
        stack.webhook_addr
    );
    stack
        .run_until(shutdown_signal(), app.config.shutdown_grace)
        .await;
    Ok(0)
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes, Fly and systemd send on a deploy).
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await
            }
        }
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_search_flags() {
        let cli = Cli::try_parse_from([
            "sentinel",
            "search",
            "pod crash",
            "--alert",
            "KubePodCrashLooping",
            "-k",
            "3",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Search(a) => {
                assert_eq!(a.k, 3);
                assert_eq!(a.alert.as_deref(), Some("KubePodCrashLooping"));
                assert!(a.json);
            }
            _ => panic!("wrong subcommand"),
        }
    }
}
