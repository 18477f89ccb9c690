#!/usr/bin/env bash
# Runs the small focused examples end to end so they cannot rot.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -f examples/dist.rs ] || [ -d examples/dist ]; then
  printf 'hello, dist\n' > "$tmp/blob"
  cargo run -q --example dist -- --root "$tmp/root" ingest --expected-size 12 demo-ref < "$tmp/blob"
  cargo run -q --example dist -- --root "$tmp/root" list
fi
