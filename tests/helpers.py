"""Helpers more than one test module uses: an ASGI app served by uvicorn on a free port
in a thread, the yard factory a test server makes its yards with, and an API server over
real HTTP whose skills are host functions (no container engine)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from runtime.config import Settings
from runtime.http import create_app
from runtime.tenants import Tenants
from runtime.testing import PrebuiltImages, register, skill_calls
from runtime.views import tenant_settings
from runtime.yard import Yard
from sandbox import Backend, Sandbox
from sandbox.testing import ScriptedBackend


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """`with ServerThread(app) as srv:` serves `app` at `srv.url` until the block ends."""

    def __init__(self, app, **config) -> None:
        """`config`: more uvicorn.Config options (e.g. ssl_certfile and ssl_keyfile: then https)."""
        self.port = free_port()
        self.scheme = "https" if config.get("ssl_certfile") else "http"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", **config
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def make_factory(backend: Backend, runner_image: str, **options):
    """A yard_factory for servers: yards on `backend`, with the runner image already built."""

    def factory(s: Settings) -> Yard:
        y = Yard(s, sandbox=Sandbox(backend), **options)
        y.runner = runner_image
        return y

    return factory


SKILL_MD = "---\nname: {name}\ndescription: {description}\n---\n# {name}\nUse it.\n"


def skill_files(
    name: str, description: str = "A test skill.", sidecar: str = "entrypoint: scripts/main.py:run\n"
) -> dict[str, bytes]:
    """A small package's files (its code never runs: the scripted backend answers)."""
    return {
        "SKILL.md": SKILL_MD.format(name=name, description=description).encode(),
        "skillyard.yaml": sidecar.encode(),
        "scripts/main.py": b"def run(params):\n    return params\n",
    }


class ScriptedServer:
    """The HTTP API over real HTTP (uvicorn in a thread) and real LanceDB, whose skills are
    the host functions `functions` (runtime.testing): what happens around a run, with no
    engine. `tenants`: name -> (admin, max_concurrent_runs); their keys are in `keys`.
    Use as a context manager; `client(tenant)` is an httpx client with that tenant's key."""

    def __init__(
        self,
        tmp: Path,
        functions: dict[str, Callable[[Any], Any]],
        *,
        tenants: dict[str, tuple[bool, int | None]],
        **app_options: Any,
    ) -> None:
        self.home = tmp / "home"
        self.settings = Settings(home=self.home, wheelhouse=tmp / "wheels", pool_size=0)
        self.backend = ScriptedBackend(skill_calls(functions))
        self.shared = self.yard(self.settings)
        store = Tenants(self.home)
        self.keys = {
            name: store.add_tenant(name, admin, max_concurrent_runs=runs)
            for name, (admin, runs) in tenants.items()
        }
        self.app = create_app(self.settings, yard_factory=self._factory, **app_options)
        self.server = ServerThread(self.app)
        self._private: list[Yard] = []

    def yard(self, settings: Settings) -> Yard:
        """A yard on the scripted backend."""
        return Yard(settings, sandbox=Sandbox(self.backend), images=PrebuiltImages(), pool=False)

    def _factory(self, s: Settings) -> Yard:
        return self.shared if s.home == self.settings.home else self.yard(s)

    def register_shared(self, name: str, **files: Any) -> Any:
        """Register `name` as a shared skill (no gate runs); its record."""
        return register(self.shared, skill_files(name, **files))

    def register_private(self, tenant: str, name: str, **options: Any) -> Any:
        """Register `name` as `tenant`'s private skill (in its own store); its record."""
        yard = self.yard(tenant_settings(self.settings, tenant))
        self._private.append(yard)
        gate = options.pop("gate", None)
        files = skill_files(name, **options)
        return register(yard, files) if gate is None else register(yard, files, gate=gate)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, tenant: str) -> httpx.Client:
        """An httpx client of the server with `tenant`'s key."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[tenant]}"}, timeout=60
        )

    def __enter__(self) -> ScriptedServer:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
        for yard in [self.shared, *self._private]:
            yard.close()
