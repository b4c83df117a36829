"""The server the serving bench drives (bench/serving.py): the HTTP API over uvicorn in this
process, its skills host functions (runtime.testing) so that the figures are the serving
layer's own, not a container's. Run with PYTHONPATH pointing at another source tree to
measure that tree's code the same way.

    python bench/serving_server.py HOME PORT     # prints {"keys": {...}} on stdout once serving

Tenants: `flood` (one run at a time: its further runs are refused), `calm`. Skills: `hold`
(holds its run until the file HOME/release exists) and `echo`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import uvicorn

from runtime.config import Settings
from runtime.http import create_app
from runtime.package import parse_skill_md  # noqa: F401 - both trees have it: a sanity import
from runtime.tenants import Tenants
from runtime.testing import PrebuiltImages, register, skill_calls
from runtime.yard import Yard
from sandbox import Sandbox
from sandbox.testing import ScriptedBackend


def files(name: str) -> dict[str, bytes]:
    return {
        "SKILL.md": f"---\nname: {name}\ndescription: Bench skill {name}.\n---\n# {name}\n".encode(),
        "skillyard.yaml": b"entrypoint: scripts/main.py:run\n",
        "scripts/main.py": b"def run(params):\n    return params\n",
    }


def main() -> None:
    home, port = Path(sys.argv[1]), int(sys.argv[2])
    release = home / "release"

    def hold(params):
        deadline = time.monotonic() + 600
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"held": True}

    settings = Settings(home=home, pool_size=0)
    backend = ScriptedBackend(skill_calls({"hold": hold, "echo": lambda p: p}))

    def yard(s: Settings) -> Yard:
        return Yard(s, sandbox=Sandbox(backend), images=PrebuiltImages(), pool=False)

    shared = yard(settings)
    register(shared, files("hold"))
    register(shared, files("echo"))
    tenants = Tenants(home)
    keys = {"flood": tenants.add_tenant("flood", max_concurrent_runs=1), "calm": tenants.add_tenant("calm")}
    app = create_app(settings, yard_factory=lambda s: shared if s.home == settings.home else yard(s))
    print(json.dumps({"keys": keys}), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
