# Sourced by benches/e2e.sh: builds the test image from files on this machine with umoci.
#
# build_image LAYOUT TAG SCALE MULT WORK
#   Adds TAG to the OCI layout LAYOUT (created if missing): three layers,
#   1. mostly large files: /usr/lib/x86_64-linux-gnu (full scale) or its largest regular
#      files up to ~40 MB (small scale), MULT copies of it (MULT=5 for the flat-RSS variant);
#   2. many small files: /usr/share (full) or /usr/share/{perl,vim} (small);
#   3. deletes the largest directories of layer 2 (each under 40% of it, none nested in
#      another), so the layer is whiteouts only.
#   WORK is scratch space for the bundle; removed afterwards.
# image_summary LAYOUT TAG   one line: layer count and compressed sizes, from the manifest.
# unpacked_bytes LAYOUT TAG  the layers' uncompressed (tar) size in bytes, summed.

# Paths (relative to /) of the big-file layer's sources, one per line.
big_sources() {
  local scale=$1 lib=usr/lib/x86_64-linux-gnu
  [ -d "/$lib" ] || lib=usr/lib
  if [ "$scale" = full ]; then
    echo "$lib"
  else
    # Largest regular files, biggest first, until ~40 MB.
    find "/$lib" -maxdepth 1 -type f -size +1M -printf '%s %P\n' | sort -rn |
      awk -v lib="$lib" '{ if (sum + $1 > 40000000) next; sum += $1; print lib "/" $2 }'
  fi
}

small_sources() {
  local scale=$1 d
  if [ "$scale" = full ]; then
    echo usr/share
  else
    for d in usr/share/perl usr/share/vim usr/share/doc; do
      if [ -d "/$d" ]; then echo "$d"; fi
    done | head -n 2
  fi
}

# Copies the paths listed on stdin (relative to /) into DEST, keeping their paths.
copy_tree() {
  local dest=$1
  mkdir -p "$dest"
  tar -C / -cf - --files-from=- | tar -C "$dest" -xf -
}

# Directories to delete in layer 3: the largest below ROOTFS/usr/share, depth 1..3, each
# under 40% of the layer, not nested in one already picked, at most 3.
pick_deletions() {
  local rootfs=$1 total
  total=$(du -sk "$rootfs/usr/share" | awk '{ print $1 }')
  (cd "$rootfs" && du -k --max-depth=3 usr/share | sort -rn) |
    awk -v total="$total" '
      n == 3 { next } # read on to the end: an early exit would kill sort with SIGPIPE
      $2 == "usr/share" { next }
      $1 * 10 > total * 4 { next }
      {
        for (i = 1; i <= n; i++) {
          if (index($2 "/", picked[i] "/") == 1 || index(picked[i] "/", $2 "/") == 1) next
        }
        picked[++n] = $2; print $2
      }'
}

build_image() {
  local layout=$1 tag=$2 scale=$3 mult=$4 work=$5 b i d
  b=$work/bundle-$tag
  rm -rf "$b"
  [ -d "$layout" ] || umoci init --layout "$layout" >/dev/null
  umoci new --image "$layout:$tag" >/dev/null
  umoci unpack --image "$layout:$tag" "$b" >/dev/null

  for i in $(seq 1 "$mult"); do
    if [ "$i" -eq 1 ]; then d=$b/rootfs; else d=$b/rootfs/opt/copy$i; fi
    big_sources "$scale" | copy_tree "$d"
  done
  umoci repack --refresh-bundle --image "$layout:$tag" "$b" >/dev/null

  small_sources "$scale" | copy_tree "$b/rootfs"
  umoci repack --refresh-bundle --image "$layout:$tag" "$b" >/dev/null

  pick_deletions "$b/rootfs" >"$work/deleted-$tag"
  while read -r d; do
    rm -rf "${b:?}/rootfs/$d"
  done <"$work/deleted-$tag"
  umoci repack --refresh-bundle --image "$layout:$tag" "$b" >/dev/null
  umoci config --image "$layout:$tag" --config.cmd /bin/sh >/dev/null
  rm -rf "$b"
}

image_summary() {
  local layout=$1 tag=$2
  jq -r '[.layers[].size] as $s |
    "\($s | length) layers, \(($s | add) / 1e6 | floor) MB compressed (" +
    ([$s[] | if . < 1e4 then "\(.) B" elif . < 1e6 then "\(. / 1e3 | floor) kB" else "\(. / 1e6 * 10 | floor / 10) MB" end]
      | join(" + ")) + ")"' \
    "$(manifest_path "$layout" "$tag")"
}

# The manifest blob of TAG in LAYOUT.
manifest_path() {
  local layout=$1 tag=$2 manifest
  manifest=$(jq -r --arg t "$tag" \
    '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' \
    "$layout/index.json" | head -n 1)
  echo "$layout/blobs/sha256/${manifest#sha256:}"
}

unpacked_bytes() {
  local layout=$1 tag=$2 d total=0 n
  for d in $(jq -r '.layers[].digest' "$(manifest_path "$layout" "$tag")"); do
    n=$(gzip -dc "$layout/blobs/sha256/${d#sha256:}" | wc -c)
    total=$((total + n))
  done
  echo "$total"
}


# --- issue 17: the many-layer image and the scaled images -----------------------------
# Built without umoci (whose repack re-reads the whole bundle per layer): each layer is a
# staging directory made into a tar (`--hard-dereference`, so hard-linked copies are stored
# as files), compressed by pigz (gzip without it), and oci_image.py writes config, manifest
# and index.json.
#
# build_layers_image LAYOUT TAG NLAYERS NFILES WORK
#   NLAYERS layers of NFILES small text files each (source code and docs from
#   /usr/lib/python3*, /usr/share/perl*, /usr/share/vim, /usr/include, 1-16 kB each, as a
#   language runtime's layers hold), layer N under /opt/runtime/lN/ keeping the files'
#   own paths; a file is reused in a later layer only when the machine has too few.
# build_scaled_image LAYOUT TAG FACTOR SCALE WORK
#   The three layers of build_image (MULT 1) with their content scaled by FACTOR: 0.5 takes
#   about half of the big-file and of the many-file sources, 2 and 4 copy both that many
#   times (copy 1 at /, copy K under /opt/copyK); layer 3 is the whiteouts of the same
#   directories in every copy.

# layer_blob LAYOUT STAGE: the tar of STAGE's content as a gzip blob in LAYOUT; prints
# DIGEST:SIZE:DIFFID (hex digests) for oci_image.py.
layer_blob() {
  local layout=$1 stage=$2 tmp fifo sum_pid diff_id digest size gz=(gzip -n)
  command -v pigz >/dev/null && gz=(pigz -n)
  mkdir -p "$layout/blobs/sha256"
  tmp=$layout/blobs/layer.tmp.$$
  fifo=$tmp.fifo
  mkfifo "$fifo"
  sha256sum <"$fifo" >"$tmp.diffid" &
  sum_pid=$!
  (cd "$stage" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort |
    tar -cf - --hard-dereference --numeric-owner --sort=name --files-from=-) |
    tee "$fifo" | "${gz[@]}" >"$tmp"
  wait "$sum_pid"
  diff_id=$(cut -d' ' -f1 "$tmp.diffid")
  digest=$(sha256sum "$tmp" | cut -d' ' -f1)
  size=$(stat -c %s "$tmp")
  mv "$tmp" "$layout/blobs/sha256/$digest"
  rm -f "$fifo" "$tmp.diffid"
  echo "$digest:$size:$diff_id"
}

# Text files for build_layers_image, one path (relative to /) per line, in a fixed
# pseudo-random order (the same on every run on the same machine).
layer_text_files() {
  local d
  for d in usr/lib/python3 usr/lib/python3.11 usr/share/perl usr/share/perl5 usr/share/vim \
    usr/include usr/lib/x86_64-linux-gnu/perl; do
    [ -d "/$d" ] || continue
    find "/$d" -type f -size +1k -size -16k -printf "$d/%P\n" |
      grep -E '\.(py|pm|pl|pod|vim|h|txt|rst|sh|js|rb|c|md|html)$' || true
  done | sort -u | python3 -c '
import random, sys
files = sys.stdin.read().split()
random.Random(17).shuffle(files)
print("\n".join(files))'
}

build_layers_image() {
  local layout=$1 tag=$2 nlayers=$3 nfiles=$4 work=$5 stage n list total specs=()
  stage=$work/stage-$tag
  list=$work/layer-files-$tag
  layer_text_files >"$list"
  total=$(wc -l <"$list")
  [ "$total" -gt 0 ] || { echo "no text files found for the many-layer image" >&2; return 1; }
  for n in $(seq 1 "$nlayers"); do
    rm -rf "$stage"
    # Files (n-1)*nfiles .. n*nfiles-1 of the list, wrapping around.
    awk -v from=$(((n - 1) * nfiles)) -v count="$nfiles" -v total="$total" '
      { f[NR - 1] = $0 }
      END { for (i = 0; i < count; i++) print f[(from + i) % total] }' "$list" |
      copy_tree "$stage/opt/runtime/l$n"
    specs+=("$(layer_blob "$layout" "$stage")")
  done
  python3 "$(dirname "${BASH_SOURCE[0]}")/oci_image.py" "$layout" "$tag" "${specs[@]}"
  rm -rf "$stage" "$list"
}

# About half (by bytes) of the paths on stdin (relative to /): directories are taken apart
# one level, and an entry is kept (in name order) when its middle falls in the first half.
half_of() {
  local p
  while read -r p; do
    if [ -d "/$p" ]; then
      find "/$p" -mindepth 1 -maxdepth 1 -printf "$p/%P\n"
    else
      echo "$p"
    fi
  done | sort | while read -r p; do
    printf '%s\t%s\n' "$(du -sb "/$p" | cut -f1)" "$p"
  done | awk -F'\t' '{ size[NR] = $1; path[NR] = $2; total += $1 }
    END { for (i = 1; i <= NR; i++) if (sum + size[i] / 2 <= total / 2) { sum += size[i]; print path[i] } }'
}

# scaled_stage STAGE FACTOR: copies the paths on stdin into STAGE as FACTOR copies (copy 1
# at STAGE/, copy K hard-linked at STAGE/opt/copyK/; 0.5 is one copy of what it is given).
scaled_stage() {
  local stage=$1 factor=$2 k top
  copy_tree "$stage"
  [ "$factor" = 0.5 ] && return 0
  for k in $(seq 2 "$factor"); do
    mkdir -p "$stage/opt/copy$k"
    for top in "$stage"/*; do
      [ "$(basename "$top")" = opt ] || cp -al "$top" "$stage/opt/copy$k/"
    done
  done
}

build_scaled_image() {
  local layout=$1 tag=$2 factor=$3 scale=$4 work=$5 stage k d copies specs=()
  stage=$work/stage-$tag
  copies=$factor
  [ "$factor" = 0.5 ] && copies=1
  rm -rf "$stage"
  if [ "$factor" = 0.5 ]; then big_sources "$scale" | half_of; else big_sources "$scale"; fi |
    scaled_stage "$stage" "$factor"
  specs+=("$(layer_blob "$layout" "$stage")")
  rm -rf "$stage"
  if [ "$factor" = 0.5 ]; then small_sources "$scale" | half_of; else small_sources "$scale"; fi |
    scaled_stage "$stage" "$factor"
  specs+=("$(layer_blob "$layout" "$stage")")
  pick_deletions "$stage" >"$work/deleted-$tag"
  rm -rf "$stage"
  mkdir -p "$stage"
  for k in $(seq 1 "$copies"); do
    while read -r d; do
      if [ "$k" -eq 1 ]; then d=$stage/$d; else d=$stage/opt/copy$k/$d; fi
      mkdir -p "$(dirname "$d")"
      : >"$(dirname "$d")/.wh.$(basename "$d")"
    done <"$work/deleted-$tag"
  done
  specs+=("$(layer_blob "$layout" "$stage")")
  rm -rf "$stage"
  python3 "$(dirname "${BASH_SOURCE[0]}")/oci_image.py" "$layout" "$tag" "${specs[@]}"
}
