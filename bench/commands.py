"""Latency of a trivial command use and of session operations (run on its own).

    .venv/bin/python -m bench.commands [--rounds 20]

A command skill (`python scripts/echo.py ARG`, registered without a gate) is run cold
(a fresh container per use) and warm (the pool, back to back); a session is started once,
then a trivial command, a file upload and a download are timed in it. Interleaved rounds,
medians and p95 in ms. Prints JSON; nothing is asserted (speed goals live here, never in
tests). Removes the session, containers and skill image it made.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from .common import docker_client, quiet_logs, runner_image, say, settings, summary_ms

ECHO = "import sys\nprint(sys.argv[1])\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    quiet_logs()
    from runtime.testing import register
    from runtime.yard import Yard

    client = docker_client()
    runner = runner_image(client)
    files = {
        "SKILL.md": b"---\nname: bench-cmd\ndescription: Echo an argument.\n---\n# bench-cmd\n",
        "skillyard.yaml": b"commands:\n  echo: python scripts/echo.py\n",
        "scripts/echo.py": ECHO.encode(),
    }
    with tempfile.TemporaryDirectory(prefix="skillyard-bench-cmd-") as tmp:
        home = Path(tmp) / "home"
        cold = Yard(settings(home, runner_image=runner), pool=False, long_lived=True)
        warm = Yard(settings(home, runner_image=runner, pool_size=1), pool=True)
        register(cold, files)
        image = cold.image_for(cold.package("bench-cmd", 1))
        times: dict[str, list[float]] = {
            "command_cold": [],
            "command_warm": [],
            "session_exec": [],
            "session_put": [],
            "session_get": [],
        }
        argv = ["python", "scripts/echo.py", "hi"]
        warm.run_command("bench-cmd", argv)
        started = time.perf_counter()
        session = cold.session(["bench-cmd"])
        session_start_ms = round((time.perf_counter() - started) * 1000, 1)
        try:
            for i in range(args.rounds + 1):
                for key, call in (
                    ("command_cold", lambda: cold.run_command("bench-cmd", argv)),
                    ("command_warm", lambda: warm.run_command("bench-cmd", argv)),
                    (
                        "session_exec",
                        lambda: session.exec(["python", "/skills/bench-cmd/scripts/echo.py", "hi"]),
                    ),
                    ("session_put", lambda: session.write_file("f.bin", b"x" * 65536)),
                    ("session_get", lambda: session.read_file("f.bin")),
                ):
                    time.sleep(0.2)
                    t0 = time.perf_counter()
                    call()
                    if i:
                        times[key].append(time.perf_counter() - t0)
                if i and i % 10 == 0:
                    say(f"commands: round {i}/{args.rounds}")
        finally:
            session.close()
            warm.close()
            cold.close()
            client.images.remove(image, force=True)
    print(
        json.dumps(
            {"session_start_ms": session_start_ms, **{k: summary_ms(v) for k, v in times.items()}}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
