"""The proxy's cost per chat request (`skillyard proxy`, runtime/proxy.py), interleaved in one
run: the `openai` SDK straight to a scripted upstream on loopback, and the same request
through the proxy (uvicorn on loopback, real LanceDB, the offline embedder) with no skill
matched, with one instructions skill injected, and with one skill run as a tool (two
upstream rounds; the run is answered by sandbox.testing.ScriptedBackend, so the figure is
the proxy's own work, not a container's -- bench/latency.py has those), streamed and not.

    .venv/bin/python bench/proxy.py [--rounds 30]

Nothing is asserted; the figures are printed (median, p95, and the proxy's added median).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()

    import structlog
    from openai import OpenAI

    from runtime import logs, tiers
    from runtime.config import Settings
    from runtime.http import create_app
    from runtime.llm import LLM
    from runtime.package import package_from_files
    from runtime.tenants import Tenants
    from runtime.testing import PrebuiltImages, register, skill_calls
    from runtime.yard import Yard
    from sandbox import Sandbox
    from sandbox.testing import ScriptedBackend
    from tests.helpers import ServerThread
    from tests.llm_server import ScriptedLLM

    logs.configure("ERROR")
    structlog.get_logger().info("quiet")
    home = Path(tempfile.mkdtemp(prefix="sy-bench-proxy-")) / "home"
    settings = Settings(home=home, proxy_learn=False)
    backend = ScriptedBackend(
        skill_calls({"temp-convert": lambda p: {"fahrenheit": p["celsius"] * 9 / 5 + 32}})
    )

    def factory(s: Settings) -> Yard:
        return Yard(s, sandbox=Sandbox(backend), images=PrebuiltImages(), pool=False, long_lived=True)

    shared = factory(settings)
    register(
        shared,
        {
            "SKILL.md": b"---\nname: temp-convert\ndescription: Convert a temperature from Celsius to "
            b"Fahrenheit.\n---\nCall it with celsius.\n",
            "skillyard.yaml": b"entrypoint: scripts/main.py:run\ninput_schema:\n  type: object\n",
            "scripts/main.py": b"def run(p):\n    return {}\n",
        },
    )
    metric = (
        b"---\nname: metric-units\ndescription: Answer with metric units, lengths in metres.\n---\nNo miles."
    )
    tiers.register(shared, package_from_files("metric-units", {"SKILL.md": metric}))
    shared.close()
    key = Tenants(home).add_tenant("bench")
    upstream = ScriptedLLM().start()
    app = create_app(
        settings, yard_factory=factory, upstream=LLM(settings, base_url=upstream.url, api_key="k")
    )
    paths: dict[str, list[float]] = {}
    with ServerThread(app) as srv:
        direct = OpenAI(base_url=upstream.url, api_key="k", max_retries=0)
        proxied = OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0)

        def ask(client: OpenAI, text: str, stream: bool = False) -> Any:
            messages = [{"role": "user", "content": text}]
            if stream:
                return list(client.chat.completions.create(model="m", messages=messages, stream=True))
            return client.chat.completions.create(model="m", messages=messages)

        cases = {
            "direct to the upstream": (lambda: ask(direct, "Tell me a joke about penguins"), 1),
            "proxy, no skill matched": (lambda: ask(proxied, "Tell me a joke about penguins"), 1),
            "proxy, 1 skill injected": (lambda: ask(proxied, "How far is a mile? Use metric units."), 1),
            "proxy, 1 tool run (2 rounds)": (lambda: ask(proxied, "Convert 20 celsius to fahrenheit"), 2),
            "proxy, 1 tool run, streamed": (
                lambda: ask(proxied, "Convert 20 celsius to fahrenheit", True),
                2,
            ),
        }

        def script(rounds: int) -> None:
            if rounds == 2:
                upstream.tool_call("temp-convert", {"celsius": 20})
            upstream.reply("An answer.")

        for call, rounds in cases.values():  # one untimed warm-up each
            script(rounds)
            call()
        for _ in range(args.rounds):
            for name, (call, rounds) in cases.items():
                time.sleep(0.05)
                script(rounds)
                started = time.perf_counter()
                call()
                paths.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    upstream.stop()
    base = statistics.median(paths["direct to the upstream"])
    print(f"{'path':34} {'p50 ms':>8} {'p95 ms':>8} {'added p50':>10}")
    for name, times in paths.items():
        times.sort()
        p50, p95 = statistics.median(times), times[int(0.95 * (len(times) - 1))]
        print(f"{name:34} {p50:8.1f} {p95:8.1f} {p50 - base:+10.1f}")


if __name__ == "__main__":
    main()
