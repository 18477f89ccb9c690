#!/bin/sh
# Runs each cargo-fuzz target for a set time and summarises what ran and what it found.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (default: 60 s each, every target)
#
# Targets live in fuzz/ (its own workspace). Builds are release with debug assertions and
# overflow checks (cargo-fuzz's default), under AddressSanitizer. Works on a stable
# toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags. The seed corpus in
# fuzz/corpus/<target>/ is read, never written: new inputs go to a temporary directory,
# so the repository's corpus stays a handful of small files. A crash stops that target;
# its input is kept in fuzz/artifacts/<target>/ and the script exits non-zero at the end.
set -eu

secs=${1:-60}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
targets=${*:-$(cargo fuzz list)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo fuzz build
failed=""
summary=""
for t in $targets; do
    mkdir -p "$work/$t"
    seeds=""
    [ -d "corpus/$t" ] && seeds="corpus/$t"
    echo "== $t: ${secs}s"
    status=0
    # -rss_limit_mb: a target may use memory, but a bomb that gets through shows up here.
    cargo fuzz run "$t" "$work/$t" $seeds -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        >"$work/$t.log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -n 1)
    cov=$(grep -Eo 'cov: [0-9]+' "$work/$t.log" | tail -n 1)
    corpus=$(find "$work/$t" -type f | wc -l)
    if [ "$status" -ne 0 ]; then
        failed="$failed $t"
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written|artifact_prefix' \
            "$work/$t.log" | head -n 20 || true
        line="$t: FAILED (exit $status) after ${runs:-?} runs; input in fuzz/artifacts/$t/"
    else
        line="$t: ok, ${runs:-?} runs in ${secs}s, ${cov:-cov ?}, corpus $corpus inputs"
    fi
    echo "$line"
    summary="$summary
$line"
done
echo "== summary$summary"
[ -z "$failed" ] || { echo "failed:$failed"; exit 1; }
