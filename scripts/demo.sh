#!/usr/bin/env bash
# The main job on a machine without the internet: start Debian's docker-registry on
# loopback, build an image from local files with umoci and push it with skopeo, then pull
# and unpack it with `dist` and list the result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
. scripts/registry.sh
work=$(mktemp -d)
trap 'stop_registry; rm -rf "$work"' EXIT
start_registry "$work/registry"
echo "registry: $REGISTRY" >&2

# An image our code did not write: two layers from files on this machine.
umoci init --layout "$work/oci" >/dev/null
umoci new --image "$work/oci:demo" >/dev/null
umoci unpack --image "$work/oci:demo" "$work/bundle" >/dev/null
cp -a /etc/apt /etc/ssl "$work/bundle/rootfs/"
umoci repack --refresh-bundle --image "$work/oci:demo" "$work/bundle" >/dev/null
rm -rf "$work/bundle/rootfs/ssl"
echo "hello from dist-rs" > "$work/bundle/rootfs/hello.txt"
umoci repack --image "$work/oci:demo" "$work/bundle" >/dev/null
umoci config --image "$work/oci:demo" --config.cmd /bin/sh >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:demo" "docker://$REGISTRY/demo:latest"

cargo build -q --release --example dist
dist() { target/release/examples/dist --root "$work/root" --plain-http "$@"; }
dist pull "$REGISTRY/demo:latest"
dist images
dist unpack "$REGISTRY/demo:latest" "$work/rootfs"
echo "unpacked:" >&2
ls -la "$work/rootfs"
cat "$work/rootfs/hello.txt"
