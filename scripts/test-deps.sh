#!/usr/bin/env bash
# Real peers the tests use, from Debian's packages: promtool (`prometheus`) checks the
# /metrics scrape, a real Alertmanager (`prometheus-alertmanager`) posts to the webhook,
# and headless Chromium with its WebDriver (`chromium`, `chromium-driver`) drives the
# playground page. Idempotent: installs only what is missing. Needs root or sudo for apt-get.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing ${need[*]} from Debian's packages ..." >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
echo "test peers: $(command -v promtool) $(command -v prometheus-alertmanager) $(command -v chromium) $(command -v chromedriver)"
