#!/usr/bin/env bash
# End-to-end benchmark of issue 7: `dist` against containerd (ctr), skopeo and umoci, on
# the same machine in the same run, everything on tmpfs (/dev/shm).
#
# Starts Debian's docker-registry on loopback, pushes a 3-layer test image built from files
# on this machine (big files / many small files / whiteouts), then runs, alternating
# dist, peer, dist, peer:
#   dist pull --snapshotter native   vs  ctr images pull --snapshotter native
#   dist pull --snapshotter overlay  vs  ctr images pull --snapshotter overlayfs
#   dist pull + dist unpack DIR      vs  skopeo copy (to an OCI layout) + umoci unpack
#   warm re-pull (same root/daemon) of dist and of ctr, with blob bytes from the
#   registry's access log; peak RSS of every step (GNU time %M; containerd's VmHWM);
#   a pull of a variant image with a 5x larger big-file layer (flat RSS);
#   push of the test image from a fresh store to an empty registry (storage on tmpfs):
#   dist push vs skopeo copy oci:… docker://… vs ctr images push, with a curl floor
#   (benches/e2e/curl_push.sh: POST + monolithic PUT of every blob in parallel, then the
#   manifest), and dist's re-push of the same image (time, blob bytes uploaded).
#   dist import --unpack of an OCI archive of the image  vs  ctr images import (unpacks)
#     and skopeo copy oci-archive:… oci:… + umoci unpack;
#   dist export of the image  vs  ctr images export, and a floor: tar -cf of its blobs.
# Issue 17 added, each with a floor measured in the same run:
#   floor      the floor bench binary (download every layer at once, inflate, write each
#              layer into its own directory; no checks), and the same with --verify (the
#              two SHA-256 passes any verifying pull makes), against plain `dist pull REF`
#              (the default snapshotter); every pull time is also reported as a ratio to it;
#   bandwidth  the registry in a network namespace behind a veth pair shaped by tc tbf
#              (400 Mbit/s): curl of every blob at once (the link's floor), dist pull,
#              ctr (overlayfs), skopeo + umoci, the floor binary;
#   layers     an image of 40 layers of 300 small text files (~0.4 MB each): dist pull
#              (default, native, overlay), dist pull + unpack, ctr (overlayfs), skopeo +
#              umoci, the floor binary;
#   scaling    the test image at 0.5x, 1x, 2x and 4x its content: time and peak RSS of a
#              cold dist pull and of the floor; plotted as an SVG (--plot) the report links;
#   rust       benches/peer-oci-client (oci-client + flate2 + tar) against dist pull +
#              dist unpack, time and peak RSS.
# Prints a markdown table of medians and ratios to stdout and writes it to --out.
#
# Usage: benches/e2e.sh [--scale full|small] [--runs N] [--out FILE] [--dist BIN] [--keep]
#                        [--prepare] [--only S[,S...]] [--floor BIN] [--peer BIN]
#                        [--plot FILE] [--link-rate RATE]
#   --scale small  a few tens of MB instead of ~500 MB compressed; for quick checks
#   --runs N       cold runs per tool (default 3)
#   --out FILE     where to write the markdown (default benches/e2e-results.md); a file
#                  with <!-- e2e:begin --> and <!-- e2e:end --> lines (docs/performance.md)
#                  gets only the part between them replaced
#   --dist BIN     use this dist binary instead of `cargo build --release --example dist`
#                  (which honours CARGO_TARGET_DIR)
#   --keep         keep the work directory (logs of every run) instead of deleting it
#   --prepare      only build (and cache) the test images of the chosen scenarios, push
#                  them and build dist, the floor and the Rust peer; the first full-scale
#                  build takes several minutes (tens on a busy machine), kept out of the run
#   --only S       run only these scenarios, comma-separated: pull, push, archive, floor,
#                  bandwidth, layers, scaling, rust (default: all of them)
#   --floor BIN    use this floor binary (CLI: --registry H:P --repository R --reference T
#                  --out DIR) instead of `cargo bench --bench floor --no-run`, or
#                  benches/e2e/floor.sh (curl | igzip | tar) when that bench does not build
#   --peer BIN     use this peer-oci-client binary instead of building benches/peer-oci-client
#   --plot FILE    where the scaling SVG goes (default: scaling.svg next to --out)
#   --link-rate R  the shaped link's rate for tc tbf (default 400mbit)
# Run as root (containerd, overlay mounts and network namespaces need it). The built image and
# the registry storage are cached in /dev/shm/dist-e2e-cache/<scale> between runs (the
# many-layer and scaled images in <scale>-layers and <scale>-scaling); delete to rebuild.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
here=$repo/benches/e2e

scale=full
runs=3
out=$repo/benches/e2e-results.md
dist_bin=
keep=0
prepare=0
only=
floor_bin=
peer_bin=
plot=
link_rate=400mbit
while [ $# -gt 0 ]; do
  case $1 in
    --scale) scale=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --dist) dist_bin=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --prepare) prepare=1; shift ;;
    --only) only=$2; shift 2 ;;
    --floor) floor_bin=$2; shift 2 ;;
    --peer) peer_bin=$2; shift 2 ;;
    --plot) plot=$2; shift 2 ;;
    --link-rate) link_rate=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $scale in full | small) ;; *) echo "--scale must be full or small" >&2; exit 2 ;; esac
scenarios=(pull push archive floor bandwidth layers scaling rust)
for s in ${only//,/ }; do
  case " ${scenarios[*]} " in *" $s "*) ;; *) echo "--only takes a comma-separated list of: ${scenarios[*]}" >&2; exit 2 ;; esac
done
# want S: whether scenario S runs.
want() { [ -z "$only" ] || case ",$only," in *",$1,"*) true ;; *) false ;; esac; }
case $runs in '' | *[!0-9]* | 0) echo "--runs must be a positive integer" >&2; exit 2 ;; esac
out=$(realpath -m "$out")
dist_given=0
[ -z "$dist_bin" ] || { dist_bin=$(realpath "$dist_bin"); dist_given=1; }
[ -z "$floor_bin" ] || floor_bin=$(realpath "$floor_bin")
[ -z "$peer_bin" ] || peer_bin=$(realpath "$peer_bin")
if [ -z "$plot" ]; then plot=$(dirname "$out")/scaling.svg; fi
plot=$(realpath -m "$plot")
cd "$repo"
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root: containerd and overlay mounts need it" >&2
  exit 2
fi

log() { printf '[e2e %s] %s\n' "$(date +%T)" "$*" >&2; }

# --- dependencies --------------------------------------------------------------------
scripts/install-deps.sh
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
# ip and tc: the bandwidth scenario's network namespace and shaped link.
command -v tc >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  log "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# shellcheck source=scripts/registry.sh
. scripts/registry.sh
# shellcheck source=benches/e2e/containerd.sh
. "$here/containerd.sh"
# shellcheck source=benches/e2e/image.sh
. "$here/image.sh"
# shellcheck source=benches/e2e/link.sh
. "$here/link.sh"

# --- work dirs and cleanup -------------------------------------------------------------
work=$(mktemp -d /dev/shm/dist-e2e.XXXXXX)
cache=/dev/shm/dist-e2e-cache/$scale
results=$work/results.tsv
logs=$work/logs
mkdir -p "$logs" "$cache"
: >"$results"
CTRD_PID=
CTRD_DIR=
REGISTRY_PID=
PUSH_REGISTRY_PID=
AUX_PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM ERR
  # Best effort from here on; stop_registry's `kill && wait` returns the registry's 143,
  # which must neither abort the cleanup nor become our status.
  set +e
  ctrd_stop
  # Defined with the push scenario, further down than an early exit (--prepare) gets.
  if declare -F stop_push_registry >/dev/null; then stop_push_registry; fi
  link_down
  local p
  for p in "${AUX_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  stop_registry
  umount_under "$work"
  if [ "$keep" = 1 ]; then
    log "kept work directory $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
# Say where a `set -e` exit came from (functions and subshells too).
set -E
trap 'log "failed (status $?) at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# --- measuring -------------------------------------------------------------------------
record() { printf '%s\t%s\n' "$1" "$2" >>"$results"; }

# Last meaningful stderr line of a failed step, for the table.
why() {
  local f=$1 msg
  msg=$({ grep -v '^\s*$' "$f.err" 2>/dev/null | grep -v '^Command exited' || true; } |
    tail -n 1 | tr '\t|' '  ' | cut -c1-160)
  echo "${msg:-exited with status $(cat "$f.rc" 2>/dev/null)}"
}

# timed NAME CMD...: runs CMD with stdout/stderr in $logs/NAME.{out,err}; sets SECS (wall
# clock) and RSS_KIB (GNU time %M, which covers `timeout`'s child); returns CMD's status.
# A step that hangs is killed after $step_timeout seconds and reported as failed.
step_timeout=1200
timed() {
  local name=$1 t0 t1 rc=0
  shift
  t0=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$logs/$name.rss" timeout -k 10 "$step_timeout" "$@" \
    >"$logs/$name.out" 2>"$logs/$name.err" || rc=$?
  t1=$(date +%s%N)
  echo "$rc" >"$logs/$name.rc"
  if [ "$rc" -eq 124 ]; then
    echo "timed out after $step_timeout s" >>"$logs/$name.err"
  fi
  SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  RSS_KIB=$(tail -n 1 "$logs/$name.rss")
  if [ "$rc" -ne 0 ]; then
    log "  $name failed ($rc): $(why "$logs/$name")"
  fi
  return "$rc"
}

# Blob bytes the registry served since access-log line $1 (GETs of /blobs/, 200 or 206).
reg_lines() { wc -l <"$regdir/registry.log"; }
reg_blob_bytes() {
  sleep 0.3 # the access log line is written after the response completes
  tail -n +"$(($1 + 1))" "$regdir/registry.log" |
    awk '$6 == "\"GET" && $7 ~ /\/blobs\/sha256:/ && ($9 == 200 || $9 == 206) { n += $10 }
         END { print n + 0 }'
}

# --- the test image --------------------------------------------------------------------
recipe=2 # bump when build_image changes, to invalidate caches
layout=$cache/oci
regdir=$cache/registry
if [ "$(cat "$cache/stamp" 2>/dev/null)" != "$recipe" ]; then
  log "building the $scale test image in $layout (cached for the next runs)"
  rm -rf "$layout" "$regdir" "$cache/stamp" "$cache/bench-oci.tar"
  build_image "$layout" bench "$scale" 1 "$work"
  cp "$work/deleted-bench" "$cache/deleted"
  log "building the variant with a 5x big-file layer"
  build_image "$layout" big "$scale" 5 "$work"
  echo "$recipe" >"$cache/stamp"
fi
for tag in bench big; do
  [ -s "$cache/unpacked-$tag" ] || unpacked_bytes "$layout" "$tag" >"$cache/unpacked-$tag"
done
# "N layers, X MB compressed (a + b + c), Y MB as tar" for the report.
describe() {
  printf '%s, %d MB as tar' "$(image_summary "$layout" "$1")" "$(($(cat "$cache/unpacked-$1") / 1000000))"
}
log "image: $(describe bench)"

start_registry "$regdir"
log "registry: $REGISTRY"
ref=$REGISTRY/bench:bench
big_ref=$REGISTRY/bench:big
if [ ! -e "$regdir/pushed" ]; then
  log "pushing to the registry"
  for tag in bench big; do
    skopeo copy -q --dest-tls-verify=false "oci:$layout:$tag" "docker://$REGISTRY/bench:$tag"
  done
  touch "$regdir/pushed"
fi

# --- issue 17's images: many layers, and the test image scaled ---------------------------
# Each in its own cache directory with its own registry (the main cache stays valid).
# start_aux_registry DIR: one more docker-registry; scripts/registry.sh keeps one in
# REGISTRY/REGISTRY_PID, so the main one's are saved around the start. Sets AUX_REGISTRY;
# the cleanup stops it.
start_aux_registry() {
  local src=$REGISTRY src_pid=$REGISTRY_PID
  start_registry "$1" || { REGISTRY=$src REGISTRY_PID=$src_pid; return 1; }
  AUX_REGISTRY=$REGISTRY
  AUX_PIDS+=("$REGISTRY_PID")
  REGISTRY=$src REGISTRY_PID=$src_pid
}

layers_cache=/dev/shm/dist-e2e-cache/$scale-layers
layers_recipe=1
if [ "$scale" = full ]; then layers_n=40 layers_files=300; else layers_n=10 layers_files=100; fi
if want layers; then
  if [ "$(cat "$layers_cache/stamp" 2>/dev/null)" != "$layers_recipe" ]; then
    log "building the $layers_n-layer image in $layers_cache (cached for the next runs)"
    rm -rf "$layers_cache"
    mkdir -p "$layers_cache"
    build_layers_image "$layers_cache/oci" layers "$layers_n" "$layers_files" "$work"
    unpacked_bytes "$layers_cache/oci" layers >"$layers_cache/unpacked"
    echo "$layers_recipe" >"$layers_cache/stamp"
  fi
  start_aux_registry "$layers_cache/registry"
  layers_registry=$AUX_REGISTRY
  layers_ref=$layers_registry/layers:layers
  if [ ! -e "$layers_cache/registry/pushed" ]; then
    skopeo copy -q --dest-tls-verify=false "oci:$layers_cache/oci:layers" "docker://$layers_ref"
    touch "$layers_cache/registry/pushed"
  fi
  log "many-layer image: $(image_summary "$layers_cache/oci" layers | sed 's/ (.*//'), $(($(cat "$layers_cache/unpacked") / 1000000)) MB as tar; $layers_files files a layer"
fi

# The scaled images: built one at a time, pushed, and their layout deleted (the registry
# keeps them), so tmpfs holds each only once; sizes are kept in size-<tag> files.
scaling_cache=/dev/shm/dist-e2e-cache/$scale-scaling
scaling_recipe=1
factors=(0.5 1 2 4)
if want scaling; then
  if [ "$(cat "$scaling_cache/stamp" 2>/dev/null)" != "$scaling_recipe" ]; then
    rm -rf "$scaling_cache"
    mkdir -p "$scaling_cache"
  fi
  start_aux_registry "$scaling_cache/registry"
  scaling_registry=$AUX_REGISTRY
  if [ "$(cat "$scaling_cache/stamp" 2>/dev/null)" != "$scaling_recipe" ]; then
    for f in "${factors[@]}"; do
      log "building the ${f}x image in $scaling_cache (cached for the next runs)"
      rm -rf "$scaling_cache/oci"
      build_scaled_image "$scaling_cache/oci" "x$f" "$f" "$scale" "$work"
      printf '%s\t%s\t%s\n' "$f" \
        "$(jq '[.layers[].size] | add' "$(manifest_path "$scaling_cache/oci" "x$f")")" \
        "$(unpacked_bytes "$scaling_cache/oci" "x$f")" >"$scaling_cache/size-x$f"
      image_summary "$scaling_cache/oci" "x$f" >"$scaling_cache/summary-x$f"
      skopeo copy -q --dest-tls-verify=false "oci:$scaling_cache/oci:x$f" \
        "docker://$scaling_registry/scaling:x$f"
      rm -rf "$scaling_cache/oci"
    done
    echo "$scaling_recipe" >"$scaling_cache/stamp"
  fi
  for f in "${factors[@]}"; do log "scaled image ${f}x: $(cat "$scaling_cache/summary-x$f")"; done
fi

# --- dist ------------------------------------------------------------------------------
if [ -z "$dist_bin" ]; then
  log "building dist (cargo build --release --example dist)"
  if cargo build -q --release --example dist; then
    dist_bin=${CARGO_TARGET_DIR:-$repo/target}/release/examples/dist
  else
    log "dist did not build; its rows will show the failure"
    dist_bin=$work/dist-did-not-build
    printf '#!/bin/sh\necho "dist did not build (cargo build --release --example dist failed)" >&2\nexit 1\n' >"$dist_bin"
    chmod +x "$dist_bin"
  fi
fi

# --- the floor binary and the Rust peer ------------------------------------------------
# The floor: `cargo bench --bench floor` of the root package when it has one (its
# executable from cargo's JSON), else the shell stand-in with the same command line.
floor_kind="--floor $floor_bin"
if [ -z "$floor_bin" ] && { want pull || want floor || want rust || want bandwidth || want layers || want scaling; }; then
  floor_kind="the bench binary (cargo bench --bench floor)"
  log "building the floor (cargo bench --bench floor --no-run)"
  if cargo bench -q --bench floor --no-run --message-format=json >"$work/floor-build.json" 2>"$work/floor-build.err"; then
    floor_bin=$(jq -r 'select(.reason == "compiler-artifact" and .target.name == "floor" and .executable != null) | .executable' \
      "$work/floor-build.json" | tail -n 1)
  fi
  if [ -z "$floor_bin" ]; then
    floor_bin=$here/floor.sh
    floor_kind="the stand-in benches/e2e/floor.sh (curl | igzip -dc | tar, a layer each, in parallel): no floor bench built"
    log "no floor bench ($(grep -m1 -i error "$work/floor-build.err" | cut -c1-120)); using $floor_bin"
  fi
fi
if [ -z "$peer_bin" ] && want rust; then
  peer_target=${CARGO_TARGET_DIR:-$repo/target}/peer-oci-client
  log "building the Rust peer (cargo build --release --manifest-path benches/peer-oci-client/Cargo.toml)"
  if cargo build -q --release --locked --manifest-path benches/peer-oci-client/Cargo.toml \
    --target-dir "$peer_target"; then
    peer_bin=$peer_target/release/peer-oci-client
  else
    log "the Rust peer did not build; its rows will show the failure"
    peer_bin=$work/peer-did-not-build
    printf '#!/bin/sh\necho "peer-oci-client did not build" >&2\nexit 1\n' >"$peer_bin"
    chmod +x "$peer_bin"
  fi
fi

if [ "$prepare" = 1 ]; then
  log "prepared: images cached in $cache, dist at $dist_bin, floor ${floor_bin:-not needed}, peer ${peer_bin:-not needed}"
  exit 0
fi

# --- the runs --------------------------------------------------------------------------
# dist_pull_run SNAP KEY I: cold pull into a fresh root, then a warm re-pull of it.
# An empty SNAP is plain `dist pull REF`: whatever snapshotter dist picks by default.
dist_pull_run() {
  local snap=$1 key=$2 i=$3 root=$work/dist-$2-$i mark flag=()
  [ -z "$snap" ] || flag=(--snapshotter "$snap")
  if timed "dist-$key-$i" "$dist_bin" --root "$root" --plain-http pull "${flag[@]}" "$ref"; then
    record "time.dist_$key" "$SECS"
    record "rss.dist_$key" "$RSS_KIB"
    mark=$(reg_lines)
    if timed "dist-warm-$key-$i" "$dist_bin" --root "$root" --plain-http pull "${flag[@]}" "$ref"; then
      record "time.dist_warm_$key" "$SECS"
      record "bytes.dist_warm_$key" "$(reg_blob_bytes "$mark")"
    else
      record "time.dist_warm_$key" "!$(why "$logs/dist-warm-$key-$i")"
    fi
  else
    record "time.dist_$key" "!$(why "$logs/dist-$key-$i")"
  fi
  umount_under "$root"
  rm -rf "$root"
}

# ctr_pull_run SNAP KEY I: fresh daemon, cold pull, warm re-pull, daemon peak RSS.
ctr_pull_run() {
  local snap=$1 key=$2 i=$3 dir=$work/ctr-$2-$i mark cold_rss=
  if ! ctrd_start "$dir"; then
    record "time.ctr_$key" "!containerd did not start"
    rm -rf "$dir"
    return 0
  fi
  if timed "ctr-$key-$i" ctr --address "$CTRD_SOCK" images pull --plain-http --snapshotter "$snap" "$ref"; then
    record "time.ctr_$key" "$SECS"
    cold_rss=$RSS_KIB
    mark=$(reg_lines)
    if timed "ctr-warm-$key-$i" ctr --address "$CTRD_SOCK" images pull --plain-http --snapshotter "$snap" "$ref"; then
      record "time.ctr_warm_$key" "$SECS"
      record "bytes.ctr_warm_$key" "$(reg_blob_bytes "$mark")"
    else
      record "time.ctr_warm_$key" "!$(why "$logs/ctr-warm-$key-$i")"
    fi
  else
    record "time.ctr_$key" "!$(why "$logs/ctr-$key-$i")"
  fi
  ctrd_stop
  if [ -n "$cold_rss" ] && [ -n "$CTRD_HWM_KIB" ]; then
    record "rss.ctr_$key" "$((cold_rss + CTRD_HWM_KIB))"
  fi
  cp "$dir/containerd.log" "$logs/containerd-$key-$i.log" 2>/dev/null || true
  rm -rf "$dir"
}

# dist_unpack_run I [KEY REF]: `dist pull REF` then `dist unpack REF DIR` (default: the
# test image, key dist_unpack).
dist_unpack_run() {
  local i=$1 key=${2:-dist_unpack} r=${3:-$ref} root=$work/${2:-dist_unpack}-$1 secs rss
  if timed "$key-pull-$i" "$dist_bin" --root "$root" --plain-http pull "$r"; then
    secs=$SECS rss=$RSS_KIB
    if timed "$key-unpack-$i" "$dist_bin" --root "$root" unpack "$r" "$root.rootfs"; then
      record "time.$key" "$(awk -v a="$secs" -v b="$SECS" 'BEGIN { printf "%.3f", a + b }')"
      record "rss.$key" "$((rss > RSS_KIB ? rss : RSS_KIB))"
    else
      record "time.$key" "!unpack: $(why "$logs/$key-unpack-$i")"
    fi
  else
    record "time.$key" "!pull: $(why "$logs/$key-pull-$i")"
  fi
  umount_under "$root"
  rm -rf "$root" "$root.rootfs"
}

# skopeo_umoci_run I [KEY REF]: skopeo copy to an OCI layout, then umoci unpack.
skopeo_umoci_run() {
  local i=$1 key=${2:-skopeo_umoci} r=${3:-$ref} dir=$work/${2:-skopeo_umoci}-$1 secs rss
  mkdir -p "$dir"
  if timed "$key-skopeo-$i" skopeo copy --src-tls-verify=false "docker://$r" "oci:$dir/oci:bench"; then
    secs=$SECS rss=$RSS_KIB
    if timed "$key-umoci-$i" umoci unpack --image "$dir/oci:bench" "$dir/bundle"; then
      record "time.$key" "$(awk -v a="$secs" -v b="$SECS" 'BEGIN { printf "%.3f", a + b }')"
      record "rss.$key" "$((rss > RSS_KIB ? rss : RSS_KIB))"
    else
      record "time.$key" "!umoci: $(why "$logs/$key-umoci-$i")"
    fi
  else
    record "time.$key" "!skopeo: $(why "$logs/$key-skopeo-$i")"
  fi
  rm -rf "$dir"
}

# floor_run KEY HOST:PORT REPO TAG I [FLOOR OPTIONS...]: the floor binary into a fresh
# directory.
floor_run() {
  local key=$1 reg=$2 repo=$3 tag=$4 i=$5 dir=$work/$1-$5
  shift 5
  if timed "$key-$i" "$floor_bin" --registry "$reg" --repository "$repo" --reference "$tag" \
    --out "$dir" "$@"; then
    record "time.$key" "$SECS"
    record "rss.$key" "$RSS_KIB"
  else
    record "time.$key" "!$(why "$logs/$key-$i")"
  fi
  rm -rf "$dir"
}

# cold_dist KEY REF I [PULL OPTIONS...]: a cold `dist pull` into a fresh root.
cold_dist() {
  local key=$1 r=$2 i=$3 root=$work/$1-$3
  shift 3
  if timed "$key-$i" "$dist_bin" --root "$root" --plain-http pull "$@" "$r"; then
    record "time.$key" "$SECS"
    record "rss.$key" "$RSS_KIB"
  else
    record "time.$key" "!$(why "$logs/$key-$i")"
  fi
  umount_under "$root"
  rm -rf "$root"
}

# cold_ctr KEY REF SNAP I: a fresh containerd, a cold `ctr images pull`; RSS = ctr's own +
# the daemon's VmHWM.
cold_ctr() {
  local key=$1 r=$2 snap=$3 i=$4 dir=$work/$1-$4 rss=
  if ! ctrd_start "$dir"; then
    record "time.$key" "!containerd did not start"
    rm -rf "$dir"
    return 0
  fi
  if timed "$key-$i" ctr --address "$CTRD_SOCK" images pull --plain-http --snapshotter "$snap" "$r"; then
    record "time.$key" "$SECS"
    rss=$RSS_KIB
  else
    record "time.$key" "!$(why "$logs/$key-$i")"
  fi
  ctrd_stop
  if [ -n "$rss" ] && [ -n "$CTRD_HWM_KIB" ]; then record "rss.$key" "$((rss + CTRD_HWM_KIB))"; fi
  rm -rf "$dir"
}

# peer_run KEY REF I: the Rust peer (oci-client + flate2 + tar) into a fresh directory.
peer_run() {
  local key=$1 r=$2 i=$3 dir=$work/$1-$3
  if timed "$key-$i" "$peer_bin" "$r" "$dir"; then
    record "time.$key" "$SECS"
    record "rss.$key" "$RSS_KIB"
  else
    record "time.$key" "!$(why "$logs/$key-$i")"
  fi
  rm -rf "$dir"
}

# curl_link_run I: the shaped link's floor, every blob at once to /dev/null; also records
# the bytes and the throughput (MB/s), to check that the shaping holds.
curl_link_run() {
  local i=$1 bytes
  if timed "bw_curl-$i" "$here/curl_pull.sh" "$LINK_REGISTRY" bench bench; then
    bytes=$(tail -n 1 "$logs/bw_curl-$i.out")
    record time.bw_curl "$SECS"
    record bytes.bw_curl "$bytes"
    record rate.bw_curl "$(awk -v b="$bytes" -v s="$SECS" 'BEGIN { printf "%.1f", b / s / 1e6 }')"
  else
    record time.bw_curl "!$(why "$logs/bw_curl-$i")"
  fi
}

# --- push -------------------------------------------------------------------------------
# An empty registry per push run, storage under $work (tmpfs); scripts/registry.sh keeps
# one registry in REGISTRY/REGISTRY_PID, so the source's are saved around the start.
start_push_registry() {
  local dir=$1 src=$REGISTRY src_pid=$REGISTRY_PID
  start_registry "$dir" || { REGISTRY=$src REGISTRY_PID=$src_pid; return 1; }
  PUSH_REGISTRY=$REGISTRY PUSH_REGISTRY_PID=$REGISTRY_PID PUSH_REGISTRY_DIR=$dir
  REGISTRY=$src REGISTRY_PID=$src_pid
}
stop_push_registry() {
  if [ -n "${PUSH_REGISTRY_PID:-}" ]; then
    kill "$PUSH_REGISTRY_PID" 2>/dev/null || true
    wait "$PUSH_REGISTRY_PID" 2>/dev/null || true
    PUSH_REGISTRY_PID=
    rm -rf "$PUSH_REGISTRY_DIR"
  fi
  return 0
}

# Blob bytes uploaded to the push registry since access-log line $1: the sizes (from the
# layout) of the blobs named by successful blob-upload PUTs, plus 1 byte per PATCH (which
# the access log cannot size) so that any upload shows as non-zero.
push_lines() { wc -l <"$PUSH_REGISTRY_DIR/registry.log"; }
push_blob_bytes() {
  sleep 0.3
  tail -n +"$(($1 + 1))" "$PUSH_REGISTRY_DIR/registry.log" | python3 -c '
import os, re, sys, urllib.parse
layout, n = sys.argv[1], 0
for line in sys.stdin:
    m = re.search(r"\"(PUT|PATCH) (\S*/blobs/uploads/\S*) HTTP/[\d.]+\" (\d+)", line)
    if not m or not m.group(3).startswith("2"):
        continue
    if m.group(1) == "PATCH":
        n += 1
        continue
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(m.group(2)).query)
    d = q.get("digest", [""])[0]
    p = os.path.join(layout, "blobs", *d.split(":", 1))
    n += os.path.getsize(p) if os.path.exists(p) else 1
print(n)' "$layout"
}

# dist_push_run I: a fresh root fetched from the source registry (not timed), then a timed
# push to an empty registry and a timed re-push of the same image.
dist_push_run() {
  local i=$1 root=$work/dist-push-$i mark
  if ! timed "dist-fetch-for-push-$i" "$dist_bin" --root "$root" --plain-http fetch "$ref"; then
    record "time.dist_push" "!fetch: $(why "$logs/dist-fetch-for-push-$i")"
    rm -rf "$root"
    return 0
  fi
  if ! start_push_registry "$work/push-registry-$i"; then
    record "time.dist_push" "!the push registry did not start"
    rm -rf "$root"
    return 0
  fi
  local dst=$PUSH_REGISTRY/bench:bench
  if timed "dist-push-$i" "$dist_bin" --root "$root" --plain-http push "$dst" "$ref"; then
    record "time.dist_push" "$SECS"
    record "rss.dist_push" "$RSS_KIB"
    mark=$(push_lines)
    if timed "dist-repush-$i" "$dist_bin" --root "$root" --plain-http push "$dst" "$ref"; then
      record "time.dist_repush" "$SECS"
      record "bytes.dist_repush" "$(push_blob_bytes "$mark")"
    else
      record "time.dist_repush" "!$(why "$logs/dist-repush-$i")"
    fi
  else
    record "time.dist_push" "!$(why "$logs/dist-push-$i")"
  fi
  stop_push_registry
  rm -rf "$root"
}

# skopeo_push_run I: skopeo pushes from its own store, the cached OCI layout.
skopeo_push_run() {
  local i=$1
  if ! start_push_registry "$work/push-registry-$i"; then
    record "time.skopeo_push" "!the push registry did not start"
    return 0
  fi
  if timed "skopeo-push-$i" skopeo copy -q --dest-tls-verify=false "oci:$layout:bench" \
    "docker://$PUSH_REGISTRY/bench:bench"; then
    record "time.skopeo_push" "$SECS"
    record "rss.skopeo_push" "$RSS_KIB"
  else
    record "time.skopeo_push" "!$(why "$logs/skopeo-push-$i")"
  fi
  stop_push_registry
}

# ctr_push_run I: a fresh daemon pulls the image (not timed), then pushes it.
ctr_push_run() {
  local i=$1 dir=$work/ctr-push-$i
  if ! ctrd_start "$dir"; then
    record "time.ctr_push" "!containerd did not start"
    rm -rf "$dir"
    return 0
  fi
  if timed "ctr-pull-for-push-$i" ctr --address "$CTRD_SOCK" images pull --plain-http "$ref" &&
    start_push_registry "$work/push-registry-$i"; then
    if timed "ctr-push-$i" ctr --address "$CTRD_SOCK" images push --plain-http \
      "$PUSH_REGISTRY/bench:bench" "$ref"; then
      record "time.ctr_push" "$SECS"
    else
      record "time.ctr_push" "!$(why "$logs/ctr-push-$i")"
    fi
    stop_push_registry
  else
    record "time.ctr_push" "!pull: $(why "$logs/ctr-pull-for-push-$i")"
  fi
  ctrd_stop
  rm -rf "$dir"
}

# --- archives: import and export ------------------------------------------------------
# The OCI archive of the test image (skopeo writes it once per cache).
archive=$cache/bench-oci.tar
archive_name=bench.local/bench:bench

dist_import_run() {
  local i=$1 root=$work/dist-import-$i
  if timed "dist-import-$i" "$dist_bin" --root "$root" import --unpack --snapshotter native \
    --name "$archive_name" "$archive"; then
    record time.dist_import "$SECS"
    record rss.dist_import "$RSS_KIB"
  else
    record time.dist_import "!$(why "$logs/dist-import-$i")"
  fi
  umount_under "$root"
  rm -rf "$root"
}

ctr_import_run() {
  local i=$1 dir=$work/ctr-import-$i
  if ! ctrd_start "$dir"; then
    record time.ctr_import "!containerd did not start"
    rm -rf "$dir"
    return 0
  fi
  if timed "ctr-import-$i" ctr --address "$CTRD_SOCK" images import --snapshotter native \
    --base-name "${archive_name%:*}" "$archive"; then
    record time.ctr_import "$SECS"
  else
    record time.ctr_import "!$(why "$logs/ctr-import-$i")"
  fi
  ctrd_stop
  rm -rf "$dir"
}

# curl_push_run I: the raw-upload floor.
curl_push_run() {
  local i=$1
  if ! start_push_registry "$work/push-registry-$i"; then
    record "time.curl_push" "!the push registry did not start"
    return 0
  fi
  [ -s "$work/curl-plan" ] || "$here/curl_push.sh" --plan "$layout" bench >"$work/curl-plan"
  if timed "curl-push-$i" "$here/curl_push.sh" "$layout" bench "$PUSH_REGISTRY" bench "$work/curl-plan"; then
    record "time.curl_push" "$SECS"
  else
    record "time.curl_push" "!$(why "$logs/curl-push-$i")"
  fi
  stop_push_registry
}

skopeo_umoci_import_run() {
  local i=$1 dir=$work/skopeo-import-$i secs
  mkdir -p "$dir"
  if timed "skopeo-import-$i" skopeo copy "oci-archive:$archive:bench" "oci:$dir/oci:bench"; then
    secs=$SECS
    if timed "umoci-import-$i" umoci unpack --image "$dir/oci:bench" "$dir/bundle"; then
      record time.skopeo_umoci_import "$(awk -v a="$secs" -v b="$SECS" 'BEGIN { printf "%.3f", a + b }')"
    else
      record time.skopeo_umoci_import "!umoci: $(why "$logs/umoci-import-$i")"
    fi
  else
    record time.skopeo_umoci_import "!skopeo: $(why "$logs/skopeo-import-$i")"
  fi
  rm -rf "$dir"
}

# Export sources, made once (untimed): a dist root and a containerd holding the image.
export_root=$work/dist-export-src
export_ctrd=$work/ctr-export-src
prepare_exports() {
  "$dist_bin" --root "$export_root" import --name "$archive_name" "$archive" >/dev/null
  ctrd_start "$export_ctrd" &&
    ctr --address "$CTRD_SOCK" images import --no-unpack --base-name "${archive_name%:*}" \
      "$archive" >/dev/null
}

export_runs() {
  local i=$1
  if timed "dist-export-$i" "$dist_bin" --root "$export_root" export "$work/dist-export.tar" \
    "$archive_name"; then
    record time.dist_export "$SECS"
    record rss.dist_export "$RSS_KIB"
  else
    record time.dist_export "!$(why "$logs/dist-export-$i")"
  fi
  rm -f "$work/dist-export.tar"
  if timed "ctr-export-$i" ctr --address "$CTRD_SOCK" images export "$work/ctr-export.tar" \
    "$archive_name"; then
    record time.ctr_export "$SECS"
  else
    record time.ctr_export "!$(why "$logs/ctr-export-$i")"
  fi
  rm -f "$work/ctr-export.tar"
  # The floor: the same blobs (the export root's store holds exactly this image) into a tar.
  if timed "tar-floor-$i" tar -cf "$work/floor.tar" -C "$export_root/content" blobs; then
    record time.tar_floor "$SECS"
  else
    record time.tar_floor "!$(why "$logs/tar-floor-$i")"
  fi
  rm -f "$work/floor.tar"
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
t_start=$(date +%s)
for i in $(seq 1 "$runs"); do
  want pull || want floor || want rust || break
  log "run $i/$runs: floor";                  floor_run floor "$REGISTRY" bench bench "$i"
  if [ "$floor_bin" != "$here/floor.sh" ]; then
    log "run $i/$runs: floor with digest checks"; floor_run floor_verify "$REGISTRY" bench bench "$i" --verify
  fi
  if want pull || want floor; then
    log "run $i/$runs: dist pull (default snapshotter)"; dist_pull_run "" default "$i"
  fi
  if want pull; then
    log "run $i/$runs: dist pull (native)";     dist_pull_run native native "$i"
    log "run $i/$runs: ctr pull (native)";      ctr_pull_run native native "$i"
    log "run $i/$runs: dist pull (overlay)";    dist_pull_run overlay overlay "$i"
    log "run $i/$runs: ctr pull (overlayfs)";   ctr_pull_run overlayfs overlay "$i"
  fi
  if want pull || want rust; then
    log "run $i/$runs: dist pull + unpack";     dist_unpack_run "$i"
  fi
  if want pull; then
    log "run $i/$runs: skopeo copy + umoci unpack"; skopeo_umoci_run "$i"
  fi
  if want rust; then
    log "run $i/$runs: peer-oci-client (oci-client + flate2 + tar)"; peer_run peer_oci_client "$ref" "$i"
  fi
done
for i in $(seq 1 "$runs"); do
  want push || break
  log "run $i/$runs: dist push (and re-push)"; dist_push_run "$i"
  log "run $i/$runs: skopeo copy oci: docker:"; skopeo_push_run "$i"
  log "run $i/$runs: ctr images push";        ctr_push_run "$i"
  log "run $i/$runs: curl floor";             curl_push_run "$i"
done

if want pull; then
  log "flat RSS: dist pull (native) of the image with a 5x big-file layer"
  root=$work/dist-big
  if timed dist-big "$dist_bin" --root "$root" --plain-http pull --snapshotter native "$big_ref"; then
    record time.dist_big "$SECS"
    record rss.dist_big "$RSS_KIB"
  else
    record rss.dist_big "!$(why "$logs/dist-big")"
  fi
  umount_under "$root"
  rm -rf "$root"
fi
if want archive; then
if [ ! -s "$archive" ]; then
  log "writing the OCI archive of the image (cached)"
  skopeo copy -q "oci:$layout:bench" "oci-archive:$archive:bench"
fi
for i in $(seq 1 "$runs"); do
  log "run $i/$runs: dist import --unpack";  dist_import_run "$i"
  log "run $i/$runs: ctr images import";     ctr_import_run "$i"
  log "run $i/$runs: skopeo copy oci-archive: + umoci unpack"; skopeo_umoci_import_run "$i"
done
log "export: preparing a dist root and a containerd holding the image"
if prepare_exports; then
  for i in $(seq 1 "$runs"); do
    log "run $i/$runs: dist export, ctr images export, tar -cf floor"; export_runs "$i"
  done
else
  record time.dist_export "!preparing the export sources failed"
fi
ctrd_stop
fi

if want bandwidth; then
  log "bandwidth: the registry in a network namespace behind a $link_rate link (tc tbf)"
  if link_up "$link_rate" "$regdir/storage" "$work"; then
    bw_ref=$LINK_REGISTRY/bench:bench
    log "link registry: $LINK_REGISTRY"
    for i in $(seq 1 "$runs"); do
      log "run $i/$runs: curl of every blob over the link"; curl_link_run "$i"
      log "run $i/$runs: dist pull over the link";  cold_dist bw_dist "$bw_ref" "$i"
      log "run $i/$runs: ctr pull (overlayfs) over the link"; cold_ctr bw_ctr "$bw_ref" overlayfs "$i"
      log "run $i/$runs: skopeo + umoci over the link"; skopeo_umoci_run "$i" bw_skopeo_umoci "$bw_ref"
      log "run $i/$runs: floor over the link";      floor_run bw_floor "$LINK_REGISTRY" bench bench "$i"
    done
  else
    record time.bw_dist "!the shaped link did not come up (see the log)"
  fi
  link_down
fi

if want layers; then
  for i in $(seq 1 "$runs"); do
    log "run $i/$runs: $layers_n layers: floor"; floor_run layers_floor "$layers_registry" layers layers "$i"
    log "run $i/$runs: $layers_n layers: dist pull (default)"; cold_dist layers_dist_default "$layers_ref" "$i"
    log "run $i/$runs: $layers_n layers: dist pull (native)"; cold_dist layers_dist_native "$layers_ref" "$i" --snapshotter native
    log "run $i/$runs: $layers_n layers: dist pull (overlay)"; cold_dist layers_dist_overlay "$layers_ref" "$i" --snapshotter overlay
    log "run $i/$runs: $layers_n layers: ctr pull (overlayfs)"; cold_ctr layers_ctr_overlay "$layers_ref" overlayfs "$i"
    log "run $i/$runs: $layers_n layers: dist pull + unpack"; dist_unpack_run "$i" layers_dist_unpack "$layers_ref"
    log "run $i/$runs: $layers_n layers: skopeo + umoci"; skopeo_umoci_run "$i" layers_skopeo_umoci "$layers_ref"
  done
fi

if want scaling; then
  for i in $(seq 1 "$runs"); do
    for f in "${factors[@]}"; do
      log "run $i/$runs: ${f}x image: floor";     floor_run "scaling_floor_x$f" "$scaling_registry" scaling "x$f" "$i"
      log "run $i/$runs: ${f}x image: dist pull"; cold_dist "scaling_dist_x$f" "$scaling_registry/scaling:x$f" "$i"
    done
  done
  for f in "${factors[@]}"; do cat "$scaling_cache/size-x$f"; done >"$work/scaling.tsv"
fi
elapsed=$(($(date +%s) - t_start))

# --- the report ------------------------------------------------------------------------
rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  rev="$rev (with uncommitted changes)"
fi
if [ "$dist_given" = 1 ]; then rev="$dist_bin (given with --dist; the script is $rev)"; fi
meta=$work/meta.tsv
{
  printf 'date\t%s (runs took %d s)\n' "$started" "$elapsed"
  printf 'machine\t%s CPUs, %s, %s MiB RAM, Linux %s\n' "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    "$(awk '/^MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)" "$(uname -r)"
  printf 'tools\tdist %s; %s; skopeo %s; umoci %s; docker-registry %s\n' "$rev" \
    "$(containerd --version | awk '{ print $1, $3 }')" \
    "$(skopeo --version | awk '{ print $3 }')" "$(umoci --version | awk '{ print $3 }')" \
    "$(docker-registry --version 2>/dev/null | awk '{ print $NF }')"
  printf 'image (%s scale)\t%s; layer 3 deletes %s\n' "$scale" \
    "$(describe bench)" "$(paste -sd, "$cache/deleted" | sed 's/,/, /g')"
  printf '5x variant\t%s\n' "$(describe big)"
  if want layers; then
    printf 'many-layer image\t%s, %d MB as tar, %s files a layer\n' \
      "$(image_summary "$layers_cache/oci" layers | sed 's/ (.*//')" \
      "$(($(cat "$layers_cache/unpacked") / 1000000))" "$layers_files"
  fi
  if want scaling; then
    for f in "${factors[@]}"; do
      printf 'scaled image %sx\t%s\n' "$f" "$(cat "$scaling_cache/summary-x$f")"
    done
  fi
  if [ -n "$floor_bin" ]; then printf 'floor\t%s\n' "$floor_kind"; fi
  if want bandwidth; then
    printf 'shaped link\t`tc qdisc add dev VETH root tbf rate %s burst 256kb latency 100ms` on both ends of a veth pair; the registry runs in its own network namespace\n' "$link_rate"
  fi
  printf 'machine load\t%s (load average at the end of the runs; the runs share the CPUs with whatever else runs)\n' \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'cold runs per tool\t%s, everything on tmpfs (/dev/shm)\n' "$runs"
  printf 'command\t`benches/e2e.sh --scale %s --runs %s%s`\n' "$scale" "$runs" "${only:+ --only $only}"
  if want layers || want bandwidth || want scaling || want rust || want floor; then
    printf 'not run\t%s\n' "$(for s in "${scenarios[@]}"; do want "$s" || echo "$s"; done | paste -sd, | sed 's/,/, /g')"
  fi
} >"$meta"
cat >"$work/commands.md" <<'EOF'
### Commands timed (per run, fresh roots; REF = 127.0.0.1:PORT/bench:bench)

- dist, native / overlay: `dist --root ROOT --plain-http pull --snapshotter native|overlay REF`;
  the warm re-pull is the same command again on the same ROOT.
- containerd: a fresh `containerd --config CFG` (root, state and socket in a temp dir, CRI
  disabled) per run, then `ctr --address SOCK images pull --plain-http --snapshotter native|overlayfs REF`,
  and again for the warm re-pull. Peak RSS = the daemon's VmHWM + ctr's own.
- dist pull + unpack: `dist --root ROOT --plain-http pull REF` then `dist --root ROOT unpack REF DIR`.
- skopeo + umoci: `skopeo copy --src-tls-verify=false docker://REF oci:DIR/oci:bench` then
  `umoci unpack --image DIR/oci:bench BUNDLE`.
- import: `dist --root ROOT import --unpack --snapshotter native --name NAME ARCHIVE` vs
  `ctr images import --snapshotter native --base-name NAME ARCHIVE` (fresh daemon, unpacks)
  and `skopeo copy oci-archive:ARCHIVE:bench oci:DIR/oci:bench` + `umoci unpack`; ARCHIVE is
  the image as an OCI archive written by skopeo.
- export: `dist export OUT NAME` vs `ctr images export OUT NAME`, each from a store holding
  the image; the floor is `tar -cf OUT -C ROOT/content blobs` (the same blobs, no index).
- Peak RSS: GNU `/usr/bin/time -f %M`. Blob bytes: sum of the response sizes of blob GETs in
  the registry's access log during the warm re-pull.
- Push, each to a fresh empty registry with its storage on tmpfs (DST = 127.0.0.1:PORT2/bench:bench):
  dist from a root filled by an untimed `dist fetch REF`: `dist --root ROOT --plain-http push DST REF`,
  then the same again for the re-push; skopeo from the cached OCI layout:
  `skopeo copy --dest-tls-verify=false oci:LAYOUT:bench docker://DST`; containerd after an
  untimed `ctr images pull`: `ctr images push --plain-http DST REF`; the floor:
  `benches/e2e/curl_push.sh LAYOUT bench 127.0.0.1:PORT2 bench` (curl POST, then a monolithic
  `PUT` of every blob in parallel, then the manifest). Re-push blob bytes: the sizes of the
  blobs named by successful upload `PUT`s (and 1 per `PATCH`) in the access log.
- The floor: `FLOOR --registry 127.0.0.1:PORT --repository bench --reference bench --out DIR`
  (every layer downloaded at once, inflated with dist-rootfs's inflate, its entries written
  into DIR/<i>/ with plain open/write, mkdir, symlink and link calls; no digest checks, no
  metadata, no snapshots), on the same image and tmpfs, alternating with the pulls; and the
  same with `--verify` (SHA-256 of every compressed blob and tar stream, checked against the
  manifest and the config's DiffIDs). The default snapshotter's pull is plain
  `dist --root ROOT --plain-http pull REF`.
- Bandwidth-limited link: docker-registry in a network namespace, serving the same storage,
  reached over a veth pair whose two ends are shaped by `tc ... tbf` (the rate above);
  REF = 10.77.x.2:5000/bench:bench. The link's floor: `benches/e2e/curl_pull.sh` (curl of the
  config and every layer at once, to /dev/null); then `dist pull REF` (default snapshotter),
  `ctr images pull --plain-http --snapshotter overlayfs REF` (fresh daemon),
  `skopeo copy --src-tls-verify=false` + `umoci unpack`, and the floor binary over the link.
- Many layers: the same commands against the many-layer image (its own registry), plus
  `dist pull --snapshotter native|overlay`.
- Scaling: `dist pull REF` (default snapshotter) and the floor on the test image built at
  0.5x, 1x, 2x and 4x its content (one cache, one registry); each root deleted after its run.
- Rust peer: `peer-oci-client REF DIR` (benches/peer-oci-client: oci-client's `Client::pull`
  with anonymous auth over plain HTTP, every layer in memory, then `flate2` + `tar::Archive::unpack`
  of each layer in order into DIR), against `dist pull REF` + `dist unpack REF DIR`. It checks
  no DiffID, applies no whiteouts (`.wh.` files land as files) and is confined to DIR only as
  far as `tar::Archive::unpack` itself refuses `..` paths.
EOF

mkdir -p "$(dirname "$out")"
report_args=()
if want bandwidth; then report_args+=(--link-rate "$link_rate"); fi
if want scaling; then
  report_args+=(--scaling "$work/scaling.tsv" --plot "$plot"
    --plot-link "$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$plot" "$(dirname "$out")")")
  mkdir -p "$(dirname "$plot")"
fi
python3 "$here/report.py" --results "$results" --meta "$meta" --commands "$work/commands.md" \
  "${report_args[@]}" >"$work/report.md"
cat "$work/report.md"
# A file with <!-- e2e:begin --> ... <!-- e2e:end --> markers (docs/performance.md) gets
# only that section replaced, keeping the prose around it; any other file is overwritten.
python3 - "$out" "$work/report.md" <<'PY'
import sys
out, report = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- e2e:begin -->", "<!-- e2e:end -->"
try:
    old = open(out).read()
except FileNotFoundError:
    old = ""
if begin in old and end in old and old.index(begin) < old.index(end):
    new = old[: old.index(begin) + len(begin)] + "\n" + report + old[old.index(end):]
else:
    new = report
open(out, "w").write(new)
PY
log "wrote $out"
