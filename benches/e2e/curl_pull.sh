#!/usr/bin/env bash
# The download floor of a link: every blob of an image (config and layers) fetched at once
# by curl to /dev/null, over plain HTTP. Prints the bytes received in total.
#
#   curl_pull.sh HOST:PORT REPO TAG
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: curl_pull.sh HOST:PORT REPO TAG" >&2; exit 2; }
base=http://$1/v2/$2
accept='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
manifest=$(curl -fsS -H "Accept: $accept" "$base/manifests/$3")
sizes=$(mktemp)
trap 'rm -f "$sizes" "$sizes".*' EXIT
pids=() n=0
for digest in $(jq -r '.config.digest, .layers[].digest' <<<"$manifest"); do
  curl -fsS -o /dev/null -w '%{size_download}\n' "$base/blobs/$digest" >"$sizes.$n" &
  pids+=($!)
  n=$((n + 1))
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ "$rc" -eq 0 ] || { echo "curl_pull.sh: a blob failed" >&2; exit 1; }
cat "$sizes".* | awk '{ n += $1 } END { print n }'
