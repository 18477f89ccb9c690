# Sourced by benches/e2e.sh: a registry behind a bandwidth-limited link.
#
# link_up RATE STORAGE LOGDIR
#   Creates a network namespace and a veth pair (host end A.B.C.1/30, namespace end
#   A.B.C.2/30, in 10.77.x.0/30 with x the first subnet no address on this host uses),
#   shapes both directions with `tc qdisc ... tbf rate RATE` (netem is not available on
#   these kernels), and starts docker-registry inside the namespace, listening only on
#   A.B.C.2:5000, serving the registry storage STORAGE (read only in practice).
#   Sets LINK_REGISTRY (host:port); logs go to LOGDIR.
# link_down
#   Stops that registry and deletes the namespace and the veth pair; safe to call twice,
#   and from the EXIT trap after a failure half way through link_up.
LINK_NS=
LINK_VETH=
LINK_REGISTRY=
LINK_REGISTRY_PID=

link_up() {
  local rate=$1 storage=$2 logdir=$3 x net port=5000
  for x in $(seq 0 255); do
    ip -o -4 addr show | grep -q " 10\.77\.$x\." || { net=10.77.$x; break; }
  done
  [ -n "${net:-}" ] || { echo "no free 10.77.x.0/30 subnet" >&2; return 1; }
  LINK_NS=dist-e2e-$$
  LINK_VETH=e2e$$h
  ip netns add "$LINK_NS" || return 1
  ip link add "$LINK_VETH" type veth peer name "e2e$$r" || return 1
  ip link set "e2e$$r" netns "$LINK_NS" &&
    ip addr add "$net.1/30" dev "$LINK_VETH" &&
    ip link set "$LINK_VETH" up &&
    ip -n "$LINK_NS" addr add "$net.2/30" dev "e2e$$r" &&
    ip -n "$LINK_NS" link set "e2e$$r" up &&
    ip -n "$LINK_NS" link set lo up || return 1
  # Downloads leave the namespace's end; requests and uploads the host's. A burst of 256 kB
  # lets GSO packets through; `latency` bounds the queue.
  tc qdisc add dev "$LINK_VETH" root tbf rate "$rate" burst 256kb latency 100ms &&
    ip netns exec "$LINK_NS" tc qdisc add dev "e2e$$r" root tbf rate "$rate" burst 256kb latency 100ms ||
    return 1
  cat >"$logdir/link-registry.yml" <<EOC
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $storage
http:
  addr: $net.2:$port
EOC
  ip netns exec "$LINK_NS" docker-registry serve "$logdir/link-registry.yml" \
    >"$logdir/link-registry.log" 2>&1 &
  LINK_REGISTRY_PID=$!
  local _
  for _ in $(seq 100); do
    if curl -fsS "http://$net.2:$port/v2/" >/dev/null 2>&1; then
      LINK_REGISTRY=$net.2:$port
      return 0
    fi
    kill -0 "$LINK_REGISTRY_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the registry in namespace $LINK_NS did not come up; log:" >&2
  tail -n 20 "$logdir/link-registry.log" >&2
  return 1
}

link_down() {
  if [ -n "$LINK_REGISTRY_PID" ]; then
    kill "$LINK_REGISTRY_PID" 2>/dev/null || true
    wait "$LINK_REGISTRY_PID" 2>/dev/null || true
    LINK_REGISTRY_PID=
  fi
  if [ -n "$LINK_NS" ]; then
    ip netns del "$LINK_NS" 2>/dev/null || true
    LINK_NS=
  fi
  if [ -n "$LINK_VETH" ]; then
    # Gone with its peer's namespace; deleted here if link_up failed before the move.
    ip link del "$LINK_VETH" 2>/dev/null || true
    LINK_VETH=
  fi
  LINK_REGISTRY=
  return 0
}
