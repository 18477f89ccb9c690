#!/usr/bin/env bash
# Stand-in for the floor bench binary (`cargo bench --bench floor`), same command line:
#
#   floor.sh --registry HOST:PORT --repository REPO --reference TAG --out DIR
#
# Over plain HTTP: reads the manifest, then downloads every layer at once, each piped
# through the fastest inflate on PATH (igzip, else pigz, else gzip) into `tar -x` of its own
# directory DIR/<i>/ (as overlay keeps layers). No digest checks, no ownership, no mtimes,
# no whiteout handling, no snapshots: only what no pull can avoid. Prints one line.
set -euo pipefail

registry= repository= reference= out=
while [ $# -gt 0 ]; do
  case $1 in
    --registry) registry=$2; shift 2 ;;
    --repository) repository=$2; shift 2 ;;
    --reference) reference=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "floor.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$registry" ] && [ -n "$repository" ] && [ -n "$reference" ] && [ -n "$out" ] ||
  { echo "usage: floor.sh --registry HOST:PORT --repository REPO --reference TAG --out DIR" >&2; exit 2; }

base=http://$registry/v2/$repository
accept='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
accept_index='application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json'
manifest=$(curl -fsS -H "Accept: $accept,$accept_index" "$base/manifests/$reference")
if [ "$(jq -r '.manifests != null' <<<"$manifest")" = true ]; then
  # An index: the first linux/amd64 entry (else the first).
  digest=$(jq -r '([.manifests[] | select(.platform.os == "linux" and .platform.architecture == "amd64")] + .manifests)[0].digest' <<<"$manifest")
  manifest=$(curl -fsS -H "Accept: $accept" "$base/manifests/$digest")
fi

if command -v igzip >/dev/null; then gunzip=(igzip -dc)
elif command -v pigz >/dev/null; then gunzip=(pigz -dc)
else gunzip=(gzip -dc); fi

mkdir -p "$out"
pids=() i=0
while read -r digest media; do
  case $media in
    *gzip) inflate=("${gunzip[@]}") ;;
    *zstd) inflate=(zstd -dc) ;;
    *) inflate=(cat) ;;
  esac
  mkdir -p "$out/$i"
  (curl -fsS "$base/blobs/$digest" | "${inflate[@]}" | tar -x -m --no-same-owner -C "$out/$i") &
  pids+=($!)
  i=$((i + 1))
done < <(jq -r '.layers[] | "\(.digest) \(.mediaType)"' <<<"$manifest")
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ "$rc" -eq 0 ] || { echo "floor.sh: a layer failed" >&2; exit 1; }
echo "floor (stand-in: curl | ${gunzip[0]} -dc | tar, per layer in parallel): $i layers into $out"
