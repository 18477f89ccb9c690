# Sourced by scripts: start Debian's docker-registry on a free loopback port with its
# storage in "$1"; sets REGISTRY (host:port) and REGISTRY_PID, stopped by stop_registry.
start_registry() {
  local dir=$1 port
  mkdir -p "$dir/storage"
  for _ in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$dir/config.yml" <<EOC
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOC
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    REGISTRY_PID=$!
    for _ in $(seq 50); do
      if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
        REGISTRY=127.0.0.1:$port
        return 0
      fi
      kill -0 "$REGISTRY_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$REGISTRY_PID" 2>/dev/null || true
  done
  echo "could not start docker-registry; log:" >&2
  cat "$dir/registry.log" >&2
  return 1
}

stop_registry() {
  if [ -n "${REGISTRY_PID:-}" ]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
  fi
  return 0
}
