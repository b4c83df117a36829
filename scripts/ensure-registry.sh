#!/usr/bin/env bash
# For the cluster tests: Debian's docker-registry (the reference image registry), run by the
# tests themselves on 127.0.0.1 (the engine trusts 127.0.0.0/8 over plain HTTP). Installing it
# must not leave a registry service running: where systemd runs, the package's own unit is
# stopped and disabled.
set -euo pipefail
if command -v docker-registry >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "registry: the cluster tests need docker-registry; install it (apt-get install docker-registry)" >&2
  exit 1
fi
echo "registry: installing Debian's docker-registry for the cluster tests..."
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq docker-registry >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq docker-registry >/dev/null; }
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
command -v docker-registry >/dev/null 2>&1 || { echo "registry: docker-registry did not install; see apt's output" >&2; exit 1; }
