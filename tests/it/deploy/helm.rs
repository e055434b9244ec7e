//! The Helm chart, linted, rendered and validated offline by scripts/helm-render.py.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use super::{default_port, is_secret, read, repo, subcommand, Sub};

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
pub fn render(values: Value) -> Vec<Value> {
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

pub fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
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
    let documented = read(".env.example");
    for e in c["env"].as_array().unwrap() {
        let var = e["name"].as_str().unwrap();
        assert!(
            documented.contains(&format!("{var}=")),
            "{var} is no setting"
        );
    }
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
