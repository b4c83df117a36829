"""Helpers more than one test module uses: an ASGI app served by uvicorn on a free port
in a thread, and the yard factory a test server makes its yards with."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from runtime.config import Settings
from runtime.yard import Yard
from sandbox import Backend, Sandbox


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
