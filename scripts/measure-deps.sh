#!/usr/bin/env bash
# Measures, per feature set of the `dist` facade, the dependency count and the clean build
# time, and the same for oci-client (crates.io) in a throwaway project, for
# docs/dependencies.md. Usage: scripts/measure-deps.sh [oci-client version]
#
# count: `cargo tree -e normal --prefix none` de-duplicated (every crate linked into the
#        library, ours included, build scripts' own dependencies excluded);
# built: crates compiled by a clean `cargo build` (build dependencies included);
# wall, cpu: wall time and CPU time (user + sys) of that clean `cargo build` (dev profile),
#        each with its own target directory.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
oci_version=${1:-0.18}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

count() { cargo tree -e normal --prefix none "$@" | sed 's/ (\*)//; s/ (proc-macro)//' | sort -u | wc -l; }

clean_build() { # dir target args...
  local dir=$1 target=$2; shift 2
  # Wall seconds, and CPU seconds (user + sys of every rustc): on a shared machine the
  # CPU time is the steadier of the two.
  (cd "$dir" && CARGO_TARGET_DIR=$target /usr/bin/time -f "%e %U %S" -o "$work/time" \
    cargo build --quiet "$@" 2>"$work/build.log") || { cat "$work/build.log" >&2; return 1; }
  local built
  built=$(find "$target/debug/.fingerprint" -mindepth 1 -maxdepth 1 -type d | sed 's/-[0-9a-f]*$//' | sort -u | wc -l)
  awk -v b="$built" '{ printf "%s\t%.0f\t%.0f\n", b, $1, $2 + $3 }' "$work/time"
}

echo -e "what\tcount\tbuilt\twall s\tcpu s"
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
