#!/usr/bin/env bash
# Measures, per feature set of the `dist` facade, the dependency count and the clean build
# time, and the same for oci-client (crates.io) in a throwaway project, for
# docs/dependencies.md. Usage: scripts/measure-deps.sh [oci-client version]
#
# count: `cargo tree -e normal --prefix none` de-duplicated (every crate linked into the
#        library, ours included, build scripts' own dependencies excluded);
# built: crates compiled by a clean `cargo build` (build dependencies included);
# time:  wall time of that clean `cargo build` (dev profile) with its own target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
oci_version=${1:-0.18}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

count() { cargo tree -e normal --prefix none "$@" | sed 's/ (\*)//; s/ (proc-macro)//' | sort -u | wc -l; }

clean_build() { # dir target args...
  local dir=$1 target=$2; shift 2
  local start end
  start=$(date +%s.%N)
  (cd "$dir" && CARGO_TARGET_DIR=$target cargo build --quiet "$@" 2>/dev/null)
  end=$(date +%s.%N)
  local built
  built=$(find "$target/debug/.fingerprint" -mindepth 1 -maxdepth 1 -type d | sed 's/-[0-9a-f]*$//' | sort -u | wc -l)
  printf '%s\t%s\n' "$built" "$(echo "$end - $start" | bc)"
}

echo -e "what\tcount\tbuilt\tseconds"
for features in "--no-default-features" "--no-default-features --features rootfs" \
  "--no-default-features --features remotes,aws-lc-rs" "--no-default-features --features remotes,ring" ""; do
  # shellcheck disable=SC2086
  n=$(count -p dist $features)
  # shellcheck disable=SC2086
  b=$(clean_build . "$work/t" -p dist $features)
  rm -rf "$work/t"
  echo -e "dist ${features:-(default)}\t$n\t$b"
done

mkdir -p "$work/oci/src"
cat >"$work/oci/Cargo.toml" <<TOML
[package]
name = "oci-measure"
version = "0.0.0"
edition = "2024"
publish = false
[dependencies]
oci-client = "$oci_version"
[workspace]
TOML
echo 'fn main() {}' >"$work/oci/src/main.rs"
(cd "$work/oci" && cargo generate-lockfile --quiet)
v=$(cd "$work/oci" && cargo tree --prefix none -e normal -p oci-client --depth 0)
# The throwaway project itself is not counted.
n=$(( $(cd "$work/oci" && count) - 1 ))
b=$(clean_build "$work/oci" "$work/t")
echo -e "$v (default features)\t$n\t$b"
