#!/usr/bin/env bash
# Make sure a headless browser is there for the console's browser tests: Debian's chromium
# and chromium-driver (Playwright drives /usr/bin/chromium; it cannot download browsers of
# its own here). Idempotent: an installed browser is reused and nothing is downloaded.
set -euo pipefail

BROWSER="${SKILLYARD_CHROMIUM:-/usr/bin/chromium}"

browser_ok() { [ -x "$BROWSER" ] && "$BROWSER" --headless --no-sandbox --version >/dev/null 2>&1; }

if browser_ok; then
  echo "browser: $("$BROWSER" --headless --no-sandbox --version 2>/dev/null | head -n 1)"
  exit 0
fi

if [ -n "${SKILLYARD_CHROMIUM:-}" ]; then
  echo "browser: SKILLYARD_CHROMIUM=$BROWSER does not run; point it at a working chromium or unset it." >&2
  exit 1
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "browser: no chromium at $BROWSER, and I can install it only as root on Debian." >&2
  echo "         Install Debian's 'chromium' and 'chromium-driver' (or any Chromium) and set" >&2
  echo "         SKILLYARD_CHROMIUM=/path/to/chromium, then retry." >&2
  exit 1
fi

echo "browser: installing chromium and chromium-driver with apt-get (about 1 min, once)..."
export DEBIAN_FRONTEND=noninteractive
# Another apt may hold the lock (a parallel install): wait for it rather than fail.
APT=(apt-get -o DPkg::Lock::Timeout=300 -qq)
"${APT[@]}" update >/dev/null || {
  echo "browser: 'apt-get update' failed (see apt's message above): check the package mirror, then retry." >&2
  exit 1
}
"${APT[@]}" install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null || {
  echo "browser: installing chromium failed (see apt's message above): install it yourself, then retry." >&2
  exit 1
}
if ! browser_ok; then
  echo "browser: chromium installed but '$BROWSER --headless --version' fails; run it by hand to see why." >&2
  exit 1
fi
echo "browser: $("$BROWSER" --headless --no-sandbox --version 2>/dev/null | head -n 1)"
