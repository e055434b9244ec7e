#!/usr/bin/env python3
"""Lint and render a Helm chart offline with the Helm v4 SDK (PyPI `helm-python-sdk`,
import `helm_python`), as `helm lint` and `helm template` would; no cluster, no helm binary.

Usage: helm-render.py CHART [VALUES_JSON]
Prints the rendered manifests as one JSON array of objects (templates in name order, empty
documents and NOTES.txt left out). With kubernetes-validate installed, every manifest of a
built-in kind is validated against the Kubernetes schemas (custom resources are skipped).
Exit 1 with the reasons on stderr when lint finds errors or a manifest is invalid.
"""
import json
import sys

import yaml
import helm_python as helm

KUBE_VERSION = "1.30.0"


def main() -> int:
    chart_dir = sys.argv[1]
    values = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    report = helm.lint(chart_dir, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
    problems += [{"error": e} for e in report.get("errors") or []]
    if problems:
        for p in problems:
            print(f"helm lint: {p.get('path', '')}: {p['error']}", file=sys.stderr)
        return 1
    with helm.Chart.load(chart_dir) as chart:
        rendered = chart.render(values, name="sentinel", namespace="sentinel", is_install=True)
    docs = []
    for name in sorted(rendered):
        if name.endswith("NOTES.txt"):
            continue
        docs += [(name, doc) for doc in yaml.safe_load_all(rendered[name]) if doc]
    try:
        import kubernetes_validate as kv
    except ImportError:
        kv = None
    if kv is not None:
        for name, doc in docs:
            try:
                kv.validate(doc, KUBE_VERSION, strict=True)
            except kv.SchemaNotFoundError:
                continue  # a custom resource (ServiceMonitor): no schema to check against
            except kv.ValidationError as e:
                where = ".".join(str(p) for p in e.absolute_path)
                print(f"{name}: {doc.get('kind')} {where}: {e.message}", file=sys.stderr)
                return 1
    print(json.dumps([doc for _, doc in docs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
