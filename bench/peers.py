"""Peers measured in the same run as skillyard (bench/requirements.txt installs them into the
bench's environment only): llm-sandbox's reused session (`execute_command`: a `docker exec` in a
container kept open) and epicbox (a fresh container per run). Both run `python3 -c 'print(1)'`
in the runner image, the image skillyard's own rows use; neither can pull an image here.

Each peer is optional: if it is missing or fails to start, the latency section says why and
goes on without it. Containers they leave are removed (and counted) at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .common import say

ARGV_SHELL = "python3 -c 'print(1)'"


@dataclass
class Peer:
    key: str
    label: str
    call: Callable[[], bool]  # True when the output was right
    close: Callable[[], None]
    containers: set[str] = field(default_factory=set)


def llm_sandbox_session(runner: str) -> Peer:
    """llm-sandbox 0.3.x: one session (one container) reused for every call, as its docs show."""
    from llm_sandbox import SandboxSession

    session = SandboxSession(lang="python", image=runner, keep_template=True, verbose=False)
    session.open()
    cid = getattr(getattr(session, "container", None), "id", None)

    def call() -> bool:
        out = session.execute_command(ARGV_SHELL)
        return out.exit_code == 0 and out.stdout.strip() == "1"

    return Peer(
        "llm_sandbox_exec",
        "llm-sandbox SandboxSession reused, execute_command",
        call,
        session.close,
        {cid} if cid else set(),
    )


def epicbox_run(runner: str) -> Peer:
    """epicbox 1.1.0: `epicbox.run` starts a fresh container per call and removes it."""
    import epicbox
    import epicbox.utils
    from urllib3.util.retry import Retry

    class CompatibleRetry(Retry):
        """epicbox 1.1.0 passes urllib3 1.x's `method_whitelist`; urllib3 2 calls it
        `allowed_methods`. Same meaning, nothing else changed."""

        def __init__(self, *args: Any, method_whitelist: Any = None, **kwargs: Any) -> None:
            if method_whitelist is not None:
                kwargs.setdefault("allowed_methods", method_whitelist)
            super().__init__(*args, **kwargs)

    epicbox.utils.Retry = CompatibleRetry
    epicbox.configure(profiles=[epicbox.Profile("python", runner)])

    def call() -> bool:
        result = epicbox.run("python", ARGV_SHELL, limits={"cputime": 10, "memory": 256})
        return result.get("exit_code") == 0 and result.get("stdout", b"").strip() == b"1"

    return Peer("epicbox_run", "epicbox.run (a fresh container per call)", call, lambda: None)


def start(runner: str) -> tuple[list[Peer], dict[str, str]]:
    """The peers that start here, and why the others do not."""
    peers, skipped = [], {}
    for make in (llm_sandbox_session, epicbox_run):
        try:
            peer = make(runner)
            if not peer.call():  # one untimed call: it works, and its first-use costs are paid
                raise RuntimeError("wrong output")
            peers.append(peer)
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run here is reported, not fatal
            skipped[make.__name__] = f"{type(exc).__name__}: {str(exc)[:200]}"
            say(f"latency: peer {make.__name__} skipped: {skipped[make.__name__]}")
    return peers, skipped


def stop(peers: list[Peer], client: Any) -> int:
    """Close the peers; remove any container they left. Returns how many were left."""
    left = 0
    for peer in peers:
        try:
            peer.close()
        except Exception as exc:  # noqa: BLE001 - reported; its containers are removed below
            say(f"latency: closing {peer.key} failed: {exc}")
        for cid in peer.containers:
            try:
                client.api.remove_container(cid, force=True)
                left += 1
            except Exception:  # noqa: BLE001 - already gone: what should happen
                pass
    return left
