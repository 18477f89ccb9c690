#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
echo "== fmt";     cargo fmt --all --check
echo "== docs";    scripts/check-docs.sh
echo "== unused dependencies"; cargo machete
echo "== clippy";  cargo clippy --workspace --all-targets -- -D warnings
echo "== build";   cargo build --workspace --examples
# The facade's feature sets: content + images alone (no HTTP, no TLS), each optional part
# alone, the other TLS crypto provider; rootfs alone inflates with pure Rust (`pure-rust`, no
# ISA-L, whose build needs nasm and autotools), `isal` adds ISA-L.
# All targets without features, so a target that needs one and does not declare it in
# `required-features` fails here.
echo "== build dist --no-default-features"
cargo build -p dist --no-default-features --all-targets
for features in rootfs,pure-rust remotes ring rootfs,ring isal; do
  echo "== build dist --no-default-features --features $features"
  cargo build -p dist --no-default-features --features "$features"
done
echo "== test";    cargo test --workspace --lib --bins --tests --examples
# A crate outside the workspace that implements the traits itself and pulls through the
# public API alone (tests/downstream/README.md); it builds with the workspace's lock file.
echo "== downstream"
cp Cargo.lock tests/downstream/Cargo.lock
cargo fmt --manifest-path tests/downstream/Cargo.toml --check
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo clippy --manifest-path tests/downstream/Cargo.toml --offline --all-targets -- -D warnings
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo test --manifest-path tests/downstream/Cargo.toml --offline
# Compiled, never run as tests; in the test profile, which reuses the build above (the bench
# profile rebuilt every dependency optimised: minutes of a CI run for the same check).
echo "== benches"; cargo build --workspace --benches
echo "== doctest"; cargo test --workspace --doc
echo "== doc";     RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps
# Every crate packages (metadata, readme, license) and its archive builds on its own
# (about 90 s: the dependencies are already built). `--allow-dirty` so a local run with
# uncommitted work checks the same thing.
echo "== package"
# The verification unpacks each crate from a local overlay registry into cargo's source cache
# under its name and version, and reuses what an earlier run unpacked there: drop those
# stale copies (only `cargo package` of this workspace creates them) so today's sources
# are the ones verified.
# Cargo never rebuilds a registry crate of the same version, so the artifacts an earlier
# verification built from those copies go too.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/dist-{content,images,reference,remotes,rootfs}-*
target_dir=${CARGO_TARGET_DIR:-target}
for dep in "$target_dir"/debug/deps/dist_*.d; do
  [ -e "$dep" ] && grep -q '/registry/src/-' "$dep" || continue
  stem=$(basename "$dep" .d)                 # dist_content-<hash>
  rm -rf "$target_dir"/debug/deps/{,lib}"$stem".* \
    "$target_dir"/debug/.fingerprint/"${stem//_/-}"
done
cargo package --workspace --allow-dirty --quiet
echo "== examples"
scripts/examples.sh
