"""Fixtures and host-side probes for the attack suite (tests/security/test_attacks.py).

What lives here is trusted host code: it sets up what an attack could reach (a canary file,
secrets in the environment, real TCP/UDP listeners on the host) and looks at the host
afterwards (processes, files, containers, the runtime's own memory). Nothing here runs
inside a container.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandbox.docker_backend import LABEL_MANAGED, LABEL_PID

# `make test-gvisor` (SKILLYARD_RUNTIME=runsc): every container of the suite runs under gVisor, whose
# user-space kernel answers some probes differently (see docs/SECURITY.md, "Under gVisor").
GVISOR = os.environ.get("SKILLYARD_RUNTIME") == "runsc"
GATEWAY = "172.17.0.1"  # docker0: the default bridge's gateway, an address of this host
MB = 1024 * 1024


# -- markers: how the host recognises an attack's processes and files ------------------------------
def new_marker() -> str:
    """15 characters: fits /proc/PID/comm, so a payload can name its process after it."""
    return "sy" + uuid.uuid4().hex[:13]


def marker_pids(marker: str) -> list[int]:
    """Host PIDs (any namespace: the host sees container processes too) whose comm or argv carries the marker."""
    needle = marker.encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/comm", "rb") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if comm == needle[:15] or needle in cmdline:
            found.append(int(pid))
    return found


def ps_lines(marker: str) -> list[str]:
    """`ps` itself, as a cross-check of marker_pids: every process line (comm and argv) carrying the marker."""
    out = subprocess.run(["ps", "-eo", "pid=,comm=,args="], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if marker in line]


def wait_no_marker_pids(marker: str, timeout: float = 3.0) -> list[str]:
    """Processes of the attack still alive after `timeout` (killed ones may take a moment to be reaped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [str(p) for p in marker_pids(marker)] + ps_lines(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


class MarkerWatcher:
    """Polls the host's /proc while a call runs: proves the ps check can see the attack's processes."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.seen: list[int] = []
        self.seen_ps: list[str] = []  # what `ps` showed at that moment
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = marker_pids(self.marker)
            if pids and not self.seen:
                self.seen = pids
                self.seen_ps = ps_lines(self.marker)
            self._stop.wait(0.05)

    def __enter__(self) -> MarkerWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def host_files_named(marker: str, roots: list[Path]) -> list[str]:
    """Files on the host whose name carries the marker: top level of /tmp plus the given trees."""
    hits = [f"/tmp/{n}" for n in os.listdir("/tmp") if marker in n]
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            hits += [os.path.join(dirpath, n) for n in dirnames + filenames if marker in n]
    return hits


# -- the runtime's own memory ------------------------------------------------------------------------
def proc_status_kb(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise KeyError(field_name)


def reset_peak_rss() -> None:
    """Reset VmHWM (the peak RSS) of this process, so the next reading is the peak of what follows."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


# -- containers --------------------------------------------------------------------------------------
def unexpected_containers(yard, docker_client, timeout: float = 15.0) -> list[str]:
    """Containers made by this process that are not idle, running members of the yard's warm pool.

    Background removals (pool discards) and top-ups may be in flight: wait for them.
    """
    deadline = time.monotonic() + timeout
    while True:
        idle: set[str] = set()
        busy = False
        pool = yard._pool.backend if getattr(yard, "_pool", None) is not None else None
        if pool is not None:
            with pool._lock:
                idle = {w.cid for q in pool._idle.values() for w in q}
                busy = any(t.is_alive() for t in pool._fillers)
        ours = docker_client.api.containers(
            all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_PID}={os.getpid()}"]}
        )
        extra = [
            f"{c['Names'][0]} ({c['State']})" for c in ours if c["Id"] not in idle or c["State"] != "running"
        ]
        if (not extra and not busy) or time.monotonic() > deadline:
            return extra
        time.sleep(0.2)


# -- a canary on the host, outside the store ---------------------------------------------------------
@dataclass
class Canary:
    path: Path
    digest: str = ""
    stat: tuple = ()

    def snapshot(self) -> tuple[str, tuple]:
        st = self.path.stat()
        return hashlib.sha256(self.path.read_bytes()).hexdigest(), (
            st.st_mode,
            st.st_uid,
            st.st_size,
            st.st_mtime_ns,
        )

    def assert_untouched(self) -> None:
        assert self.path.exists(), "the canary file on the host was removed"
        assert self.snapshot() == (self.digest, self.stat), "the canary file on the host was changed"


@pytest.fixture(scope="module")
def canary(tmp_path_factory) -> Canary:
    path = tmp_path_factory.mktemp("canary") / "canary.txt"
    path.write_text(f"host canary {uuid.uuid4().hex}\n")
    path.chmod(0o644)
    c = Canary(path)
    c.digest, c.stat = c.snapshot()
    return c


# -- secrets the runtime holds -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def host_secrets():
    """API keys and SKILLYARD_* secrets in the runtime's environment for the whole module, set before the
    runtime (and so every container) is created. None may ever be visible inside a container."""
    secrets = {
        "OPENAI_API_KEY": f"sk-secret-{uuid.uuid4().hex}",
        "SKILLYARD_SECRET_TOKEN": f"sytok-{uuid.uuid4().hex}",
        "AWS_SECRET_ACCESS_KEY": f"aws-{uuid.uuid4().hex}",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in secrets.items():
            mp.setenv(k, v)
        yield secrets


# -- real listeners on the host ---------------------------------------------------------------------
@dataclass
class Listener:
    kind: str  # tcp or udp
    host: str
    port: int = 0
    hits: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Listener:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if self.kind == "tcp" else socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, 0))
        if self.kind == "tcp":
            s.listen(16)
        s.settimeout(0.2)
        self._sock, self.port = s, s.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                if self.kind == "tcp":
                    conn, addr = self._sock.accept()
                    self.hits.append(f"{addr[0]}:{addr[1]}")
                    conn.close()
                else:
                    data, addr = self._sock.recvfrom(65536)
                    self.hits.append(f"{addr[0]}:{data[:40]!r}")
            except (TimeoutError, OSError):
                continue

    def self_test(self) -> None:
        """The listener works: a connection/datagram from the host itself is seen (then forgotten)."""
        if self.kind == "tcp":
            with socket.create_connection((self.host, self.port), timeout=3):
                pass
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"self-test", (self.host, self.port))
        deadline = time.monotonic() + 3
        while not self.hits and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.hits, f"{self.kind} listener on {self.host}:{self.port} saw its own self-test"
        self.hits.clear()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            assert self._sock is not None
            self._sock.close()


@dataclass
class HostListeners:
    tcp_lo: Listener
    udp_lo: Listener
    tcp_gw: Listener | None
    udp_gw: Listener | None

    @property
    def all(self) -> list[Listener]:
        return [x for x in (self.tcp_lo, self.udp_lo, self.tcp_gw, self.udp_gw) if x is not None]

    def assert_untouched(self) -> None:
        for lst in self.all:
            assert lst.hits == [], (
                f"a container reached the host's {lst.kind} listener on {lst.host}:{lst.port}: {lst.hits}"
            )


@pytest.fixture(scope="module")
def host_listeners() -> HostListeners:
    """TCP and UDP listeners on the host's 127.0.0.1 and on docker0 (172.17.0.1), each self-tested."""
    has_gw = os.path.exists("/sys/class/net/docker0")
    lst = HostListeners(
        tcp_lo=Listener("tcp", "127.0.0.1").start(),
        udp_lo=Listener("udp", "127.0.0.1").start(),
        tcp_gw=Listener("tcp", GATEWAY).start() if has_gw else None,
        udp_gw=Listener("udp", GATEWAY).start() if has_gw else None,
    )
    for x in lst.all:
        x.self_test()
    yield lst
    for x in lst.all:
        x.stop()


class ExplodingBackend:
    """A sandbox backend that fails the test on any use: package checks must never reach Docker."""

    name = "exploding"

    def run(self, spec):
        raise AssertionError(f"a rejected package reached the sandbox: {spec.argv}")

    def gc(self, *, everything: bool = False):
        raise AssertionError("a rejected package reached the sandbox (gc)")

    def info(self):
        raise AssertionError("a rejected package reached the sandbox (info)")

    @property
    def client(self):
        raise AssertionError("a rejected package reached the Docker engine (image build)")

    def close(self) -> None:
        pass
