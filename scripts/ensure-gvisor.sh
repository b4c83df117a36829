#!/usr/bin/env bash
# Optional: gVisor (Debian's runsc) as a Docker runtime named "runsc".
# Installs runsc, registers it in /etc/docker/daemon.json (merging, never overwriting other
# settings) with the ptrace platform (KVM hangs on these machines) and --network=none,
# and makes the running dockerd reload its configuration with SIGHUP (never a second daemon).
set -euo pipefail
if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
  echo "gvisor: runsc is registered with the engine"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "gvisor: run as root (installs runsc and edits /etc/docker/daemon.json), or register runsc yourself" >&2
  exit 1
fi
if ! command -v runsc >/dev/null 2>&1; then
  echo "gvisor: installing Debian's runsc with apt-get..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq runsc >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq runsc >/dev/null; }
fi
RUNSC="$(command -v runsc)"
mkdir -p /etc/docker
python3 - "$RUNSC" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
conf = {}
if os.path.exists(path):
    with open(path) as f:
        text = f.read().strip()
        conf = json.loads(text) if text else {}
conf.setdefault("runtimes", {})["runsc"] = {"path": sys.argv[1], "runtimeArgs": ["--platform=ptrace", "--network=none"]}
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(conf, f, indent=2)
os.replace(tmp, path)
PY
PID="$(pgrep -x dockerd | head -1 || true)"
if [ -z "$PID" ]; then
  echo "gvisor: no dockerd runs; start it (make engine) and retry" >&2
  exit 1
fi
kill -HUP "$PID"
for i in $(seq 1 20); do
  if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
    echo "gvisor: runsc registered (platform ptrace); select it with SKILLYARD_RUNTIME=runsc or limits: {runtime: runsc}"
    exit 0
  fi
  sleep 1
done
echo "gvisor: dockerd did not pick up runsc; check /etc/docker/daemon.json and the daemon log" >&2
exit 1
