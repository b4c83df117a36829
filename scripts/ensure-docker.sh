#!/usr/bin/env bash
# Make sure a Docker engine answers. Reuse a running one; otherwise, on Debian as
# root, install docker.io and start dockerd in the background. Never starts a
# second daemon (a second dockerd would fight over docker0 and /var/lib/docker).
set -euo pipefail

SOCK="${DOCKER_HOST:-unix:///var/run/docker.sock}"
SOCK_PATH="${SOCK#unix://}"
LOG=/var/log/skillyard-dockerd.log

engine_up() { docker info >/dev/null 2>&1; }

if engine_up; then
  echo "docker: engine is running ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
  exit 0
fi

if [ -n "${DOCKER_HOST:-}" ] && [[ "$DOCKER_HOST" != unix://* ]]; then
  echo "docker: DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST." >&2
  exit 1
fi

if [ "$(id -u)" != 0 ]; then
  echo "docker: no engine answers at $SOCK and I am not root, so I cannot start one." >&2
  echo "        Start Docker (e.g. 'sudo systemctl start docker') or add yourself to the docker group, then retry." >&2
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "docker: no dockerd and no apt-get; install Docker Engine for your OS, start it, then retry." >&2
    exit 1
  fi
  echo "docker: installing docker.io with apt-get (about 30 s)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || {
    echo "docker: 'apt-get update' failed (see apt's message above): check the package mirror and network, then retry." >&2
    exit 1
  }
  apt-get install -y -qq docker.io >/dev/null || {
    echo "docker: installing docker.io failed (see apt's message above): install Docker Engine yourself, start it, then retry." >&2
    exit 1
  }
fi

if pgrep -x dockerd >/dev/null 2>&1; then
  echo "docker: a dockerd process exists but does not answer yet; waiting for it (not starting a second one)"
else
  echo "docker: starting dockerd in the background (log: $LOG)"
  # setsid: the daemon must outlive make and the shell that started it.
  setsid dockerd >"$LOG" 2>&1 < /dev/null &
fi

for i in $(seq 1 60); do
  if [ -S "$SOCK_PATH" ] && engine_up; then
    echo "docker: engine is up after ${i}s ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
echo "docker: dockerd did not answer within 60 s; see $LOG" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
