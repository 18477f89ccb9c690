#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
echo "== fmt";     cargo fmt --all --check
echo "== clippy";  cargo clippy --workspace --all-targets -- -D warnings
echo "== build";   cargo build --workspace --examples
echo "== test";    cargo test --workspace --lib --bins --tests --examples
echo "== benches"; cargo bench --workspace --no-run   # compiled, never run as tests
echo "== doctest"; cargo test --workspace --doc
echo "== doc";     RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps
echo "== examples"
scripts/examples.sh
