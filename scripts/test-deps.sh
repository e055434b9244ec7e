#!/usr/bin/env bash
# Real peers the tests use, from Debian's packages: promtool (`prometheus`) checks the
# /metrics scrape, a real Alertmanager (`prometheus-alertmanager`) posts to the webhook,
# and headless Chromium with its WebDriver (`chromium`, `chromium-driver`) drives the
# playground page. Debian's PostgreSQL (`postgresql`, built with OpenSSL, unlike the
# pgserver wheel) serves the database TLS tests.
# From PyPI, into a venv under .dev/: the Helm v4 SDK (`helm-python-sdk`; Debian has no
# helm) lints and renders the chart offline, `kubernetes-validate` checks its manifests.
# Idempotent: installs only what is missing. Needs root or sudo for apt-get.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
# Debian's own python3 makes venvs only with python3-venv (ensurepip).
python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing ${need[*]} from Debian's packages ..." >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.dev/helm-venv"
helm_pkgs=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML==6.0.4)
if ! "$venv/bin/python" -c 'import helm_python, kubernetes_validate, yaml' >/dev/null 2>&1; then
  echo "Installing ${helm_pkgs[*]} into $venv ..." >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${helm_pkgs[@]}" >&2
fi
echo "test peers: $venv/bin/python (helm_python)"
echo "test peers: $(command -v promtool) $(command -v prometheus-alertmanager) $(command -v chromium) $(command -v chromedriver)"
