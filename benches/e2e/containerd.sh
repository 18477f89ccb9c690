# Sourced by benches/e2e.sh: a throwaway containerd daemon per run, rooted in a temp dir.
#
# ctrd_start DIR   starts containerd with root, state and sockets under DIR; sets CTRD_PID
#                  and CTRD_SOCK. The CRI plugin and snapshotters this run does not use are
#                  disabled so the daemon needs nothing outside DIR.
# ctrd_stop        sets CTRD_HWM_KIB (the daemon's peak RSS, VmHWM), stops it, unmounts
#                  anything it left mounted under its DIR.
# umount_under DIR unmounts every mount point at or below DIR, deepest first.

umount_under() {
  local dir=$1 mp
  [ -n "$dir" ] || return 0
  # /proc/mounts escapes spaces etc. as octal; our temp paths have none.
  while read -r mp; do
    umount -l "$mp" 2>/dev/null || true
  done < <(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r)
}

ctrd_start() {
  local dir=$1
  mkdir -p "$dir/root" "$dir/state" "$dir/opt"
  CTRD_DIR=$dir
  CTRD_SOCK=$dir/containerd.sock
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$CTRD_SOCK"

[ttrpc]
  address = "$CTRD_SOCK.ttrpc"

[debug]
  address = "$dir/debug.sock"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF
  containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  CTRD_PID=$!
  local _
  for _ in $(seq 100); do
    if [ -S "$CTRD_SOCK" ] && ctr --address "$CTRD_SOCK" version >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$CTRD_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "containerd did not come up; log:" >&2
  tail -n 20 "$dir/containerd.log" >&2
  ctrd_stop
  return 1
}

ctrd_stop() {
  CTRD_HWM_KIB=
  if [ -n "${CTRD_PID:-}" ]; then
    CTRD_HWM_KIB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$CTRD_PID/status" 2>/dev/null || true)
    kill "$CTRD_PID" 2>/dev/null || true
    wait "$CTRD_PID" 2>/dev/null || true
    CTRD_PID=
  fi
  if [ -n "${CTRD_DIR:-}" ]; then
    umount_under "$CTRD_DIR"
  fi
  return 0
}
