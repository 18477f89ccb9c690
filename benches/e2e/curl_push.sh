#!/usr/bin/env bash
# The raw-upload floor of benches/e2e.sh's push scenario: what any client must spend to
# push an image. For every blob of LAYOUT:TAG (config and layers), in parallel: curl POST
# to open an upload, then one monolithic streamed PUT of the file with ?digest=; then PUT
# the manifest under TAG. No existence checks, no hashing on the client.
#
# Usage: benches/e2e/curl_push.sh LAYOUT TAG REGISTRY REPO [PLAN]
#   REGISTRY  host:port, plain HTTP
#   PLAN      a file with what `--plan` prints, so a timed run does not parse the layout
#             (benches/e2e.sh writes it once, untimed)
#        benches/e2e/curl_push.sh --plan LAYOUT TAG   prints the plan
set -euo pipefail

plan_of() {
  python3 - "$1" "$2" <<'PY'
import json, sys
layout, tag = sys.argv[1], sys.argv[2]
index = json.load(open(f"{layout}/index.json"))
desc = next(m for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
print(desc["digest"], desc["mediaType"])
manifest = json.load(open(f"{layout}/blobs/sha256/{desc['digest'].split(':', 1)[1]}"))
for d in [manifest["config"]] + manifest["layers"]:
    print(d["digest"])
PY
}
if [ "$1" = --plan ]; then
  plan_of "$2" "$3"
  exit 0
fi

layout=$1 tag=$2 registry=$3 repo=$4
base=http://$registry/v2/$repo
# "manifest-digest media-type" then one blob digest per line.
if [ -n "${5:-}" ]; then
  plan=$(cat "$5")
else
  plan=$(plan_of "$layout" "$tag")
fi
read -r manifest media_type <<<"$(head -n 1 <<<"$plan")"
blob_file() { echo "$layout/blobs/sha256/${1#sha256:}"; }

upload() {
  local digest=$1 location sep
  location=$(curl -fsS -X POST -o /dev/null -D - "$base/blobs/uploads/" |
    awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
  case $location in http*) ;; *) location=http://$registry$location ;; esac
  case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
  # -T streams the file (no buffering of the whole blob) as the PUT body; an empty
  # `Expect:` keeps curl from waiting up to a second for a `100 Continue` first.
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -H 'Expect:' \
    -T "$(blob_file "$digest")" "$location${sep}digest=$digest"
}

pids=()
while read -r digest; do
  upload "$digest" &
  pids+=($!)
done < <(tail -n +2 <<<"$plan")
for pid in "${pids[@]}"; do
  wait "$pid"
done
curl -fsS -o /dev/null -X PUT -H "Content-Type: $media_type" \
  --data-binary @"$(blob_file "$manifest")" "$base/manifests/$tag"
