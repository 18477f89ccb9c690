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
      $2 == "usr/share" { next }
      $1 * 10 > total * 4 { next }
      {
        for (i = 1; i <= n; i++) {
          if (index($2 "/", picked[i] "/") == 1 || index(picked[i] "/", $2 "/") == 1) next
        }
        picked[++n] = $2; print $2
        if (n == 3) exit
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
