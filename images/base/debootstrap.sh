#!/usr/bin/env bash
# Offline base image: Debian bookworm minbase with python3, venv and pip, made with
# debootstrap from a Debian mirror and loaded with `docker import`. Used where no
# container registry is reachable. Usage: debootstrap.sh TAG
set -euo pipefail
TAG="$1"
MIRROR="${SKILLYARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "base: installing debootstrap with apt-get..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
      || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  else
    echo "base: debootstrap is missing; install it (apt-get install debootstrap) or set SKILLYARD_BASE=registry on a machine that can pull python:3.11-slim" >&2
    exit 1
  fi
fi
ROOTFS="$(mktemp -d /tmp/skillyard-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
echo "base: debootstrap $SUITE from $MIRROR (about 1.5 min)..."
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
  "$SUITE" "$ROOTFS" "$MIRROR" > "$ROOTFS.log" 2>&1 || { tail -n 30 "$ROOTFS.log" >&2; exit 1; }
rm -f "$ROOTFS.log"
# Smaller image, and nothing in it that a sandboxed program could use to phone home.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/*
echo "base: docker import -> $TAG"
tar -C "$ROOTFS" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'CMD ["python3"]' \
  - "$TAG" >/dev/null
echo "base: built $TAG"
