#!/usr/bin/env bash
# Installs the real peers the tests run against (Debian packages), only when missing:
# the CNCF distribution registry, skopeo, umoci, containerd (ctr) and htpasswd; and
# cargo-machete, the unused-dependency check of scripts/test.sh; and ferro-oci-server.
# Also what building needs beyond cargo and a C compiler: nasm and autotools for ISA-L,
# the gzip inflate of dist-rootfs' default `isal` feature (built from its bundled source).
set -euo pipefail
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v umoci >/dev/null || need+=(umoci)
command -v containerd >/dev/null || need+=(containerd)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v nasm >/dev/null || need+=(nasm)
command -v autoconf >/dev/null || need+=(autoconf)
command -v automake >/dev/null || need+=(automake)
command -v libtoolize >/dev/null || need+=(libtool)
command -v make >/dev/null || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo-machete >/dev/null; then
  echo "installing: cargo-machete" >&2
  cargo install --locked --quiet cargo-machete
fi
# The second, independent registry (OCI 1.1: referrers, chunked uploads, Link pagination).
if ! command -v ferro-oci-server >/dev/null && [ ! -x "$HOME/.cargo/bin/ferro-oci-server" ]; then
  echo "installing: ferro-oci-server" >&2
  # A debug build: about 30 s to install instead of minutes, and fast enough for the tests.
  cargo install --locked --quiet --debug ferro-oci-server --version 1.0.0
fi
