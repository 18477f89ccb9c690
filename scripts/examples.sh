#!/usr/bin/env bash
# Runs the small focused examples end to end so they cannot rot: apply, walk, resolve.
# (The `dist` example has its own end-to-end tests in tests/dist_cli.rs.)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/registry.sh
tmp=$(mktemp -d)
trap 'stop_registry; rm -rf "$tmp"' EXIT

echo "-- apply" >&2
cargo run -q --example apply -- --demo "$tmp/applied" | grep -q '^sha256:'
test -f "$tmp/applied/etc/motd"

echo "-- walk" >&2
# An OCI layout's blobs/ is the content store's layout, so a umoci image can be walked.
umoci init --layout "$tmp/walk/content" >/dev/null
umoci new --image "$tmp/walk/content:v1" >/dev/null
digest=$(grep -o 'sha256:[0-9a-f]\{64\}' "$tmp/walk/content/index.json" | head -1)
cargo run -q --example walk -- "$tmp/walk" "$digest" | grep -q 'image.config.v1+json'

echo "-- resolve" >&2
start_registry "$tmp/registry"
skopeo copy -q --dest-tls-verify=false "oci:$tmp/walk/content:v1" "docker://$REGISTRY/walk:v1"
cargo run -q --example resolve -- --plain-http "$REGISTRY/walk:v1" | jq -e '.digest' >/dev/null
echo "examples ok" >&2
