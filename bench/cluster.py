"""The cluster benchmark: skillyard on a local multi-node Ray cluster on this one machine
(Ray's own `ray.cluster_utils.Cluster`; every node offers one CPU and one `skillyard`
resource, and every node uses this machine's one Docker engine).

    .venv/bin/python bench/cluster.py                 # full run; appends to BENCHMARKS.md
    .venv/bin/python bench/cluster.py --quick --no-markdown
    make bench-cluster

Sections (paths compared are interleaved, round by round, in one process):

- nodes: for 1, 2 and 3 nodes (a fresh cluster each), calls/s of the one-line skill from
  CONCURRENCY threads through a yard on the cluster, and through a local pooled yard in
  the rounds between. All nodes share this machine's 2 cores, so more nodes cannot add
  throughput here: the figures show what the cluster costs, not what it scales to.
- dispatch: one call at a time, on the 3-node cluster: a warm sandbox run through the
  local WarmPool and through the RayBackend (same spec), a bare actor round trip, and a
  skill call through a local and a cluster yard. Ray's dispatch overhead per call is the
  difference of the medians, in ms and as a ratio to the local call.
- images: how a skill image reaches a node: built there (from the package and the shared
  wheelhouse) against `docker save` on one node, the object store, `docker load` on another.
- humaneval: the 164 HumanEval problems gated end to end on the 3-node cluster
  (Yard.add_many, each gate sent whole to one node).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import humaneval  # noqa: E402 - after the path is set
from bench.common import (  # noqa: E402
    Ledger,
    docker_client,
    machine_info,
    quiet_logs,
    remove_images,
    runner_image,
    say,
    settings,
    write_trivial_skill,
)

SKILL = "bench-echo"
CONCURRENCY = 8
HEALTH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
}
NODE = {"num_cpus": 1, "resources": {"skillyard": 1}, "object_store_memory": 300 * 1024**2}


def ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1)


class LocalRegistry:
    """Debian's docker-registry on 127.0.0.1 (the engine trusts 127.0.0.0/8 over plain HTTP),
    stopped by its process id; None where it is not installed (`make test` installs it)."""

    def __init__(self, proc: Any, address: str) -> None:
        self.proc, self.address = proc, address

    @classmethod
    def start(cls, root: Path) -> LocalRegistry | None:
        import shutil
        import socket
        import subprocess
        import urllib.request

        binary = shutil.which("docker-registry")
        if binary is None:
            say("  images: no docker-registry here: push/pull not measured (make test installs it)")
            return None
        root.mkdir(parents=True, exist_ok=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        (root / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
        )
        proc = subprocess.Popen(
            [binary, "serve", str(root / "config.yml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                return cls(proc, f"127.0.0.1:{port}")
            except OSError:
                time.sleep(0.2)
        proc.terminate()
        return None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


class OnCluster:
    """A fresh local cluster of `nodes` nodes, joined by this process, with a cluster yard
    (the trivial skill registered) and a local pooled yard of the same store."""

    def __init__(self, nodes: int, runner: str, home: Path, folder: Path) -> None:
        import ray
        from ray.cluster_utils import Cluster

        from runtime.yard import Yard

        self.name = f"bench-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        self.ray_cluster = Cluster(initialize_head=True, head_node_args={**NODE, "_system_config": HEALTH})
        for _ in range(nodes - 1):
            self.ray_cluster.add_node(**NODE)
        self.ray_cluster.wait_for_nodes()
        ray.init(address=self.ray_cluster.address, log_to_driver=False, logging_level="warning")
        self.start_s = round(time.perf_counter() - started, 1)
        common = {"runner_image": runner, "pool_size": CONCURRENCY, "mutants": 0}
        self.settings = settings(home, cluster=self.ray_cluster.address, cluster_name=self.name, **common)
        self.yard = Yard(self.settings, pool=True)
        outcome = self.yard.add(folder)
        if outcome.status != "registered":
            raise SystemExit(f"bench: the trivial skill did not register on the cluster: {outcome.reasons}")
        self.local = Yard(settings(home, **common), pool=True)
        self.local.runner = runner

    @property
    def backend(self) -> Any:
        return self.yard.sandbox.backend

    def close(self) -> list[str]:
        """Stop everything; the skill image tags the nodes made (for the clean-up)."""
        import ray

        tags = [
            tag
            for images in self.backend.cluster.each("images").values()
            if isinstance(images, dict)
            for tag in images.values()
            if tag.startswith("skillyard/skill-")
        ]
        self.yard.close()
        self.local.close()
        self.backend.cluster.stop_agents()
        self.backend.cluster.close()
        ray.shutdown()
        self.ray_cluster.shutdown()
        return tags


def hammer(run: Callable[[], Any], calls: int) -> tuple[float, list[float], int]:
    """`calls` calls from CONCURRENCY threads: (wall seconds, latencies, errors)."""
    latencies: list[float] = []
    errors = [0]

    def one(_: int) -> None:
        started = time.perf_counter()
        result = run()
        latencies.append(time.perf_counter() - started)
        if not (result.ok and result.output == {"ok": 1}):
            errors[0] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(calls)))
    return time.perf_counter() - started, latencies, errors[0]


def section_nodes(on: OnCluster, nodes: int, calls: int, rounds: int) -> dict[str, Any]:
    """Cluster and local batches, alternating; calls/s from the sums."""
    for yard in (on.yard, on.local):  # warm both: every node and the local pool get containers
        hammer(lambda y=yard: y.run(SKILL, {}), CONCURRENCY * 2)
    totals: dict[str, list[Any]] = {"cluster": [0.0, [], 0], "local": [0.0, [], 0]}
    for i in range(rounds):
        for label, yard in (("cluster", on.yard), ("local", on.local))[:: 1 if i % 2 == 0 else -1]:
            wall, lat, errors = hammer(lambda y=yard: y.run(SKILL, {}), calls // rounds)
            totals[label][0] += wall
            totals[label][1] += lat
            totals[label][2] += errors
        say(f"  nodes={nodes}: round {i + 1}/{rounds}")
    out: dict[str, Any] = {"nodes": nodes, "cluster_start_s": on.start_s}
    for label, (wall, lat, errors) in totals.items():
        out[label] = {
            "calls": len(lat),
            "calls_per_s": round(len(lat) / wall, 1),
            "p50_ms": ms(lat),
            "p95_ms": p95(lat),
            "errors": errors,
        }
    out["ratio_cluster_to_local"] = round(out["cluster"]["calls_per_s"] / out["local"]["calls_per_s"], 2)
    out["runs_per_node"] = sorted(
        s["runs"] for s in on.backend.cluster.each("status").values() if isinstance(s, dict)
    )
    return out


def section_dispatch(on: OnCluster, runner: str, rounds: int) -> dict[str, Any]:
    """One at a time, interleaved: local WarmPool vs RayBackend on the same spec; a bare actor
    round trip; a skill call through a local and a cluster yard."""
    import ray

    from sandbox import RunSpec
    from sandbox.docker_backend import DockerBackend
    from sandbox.pool import WarmPool

    spec = RunSpec(image=runner, argv=["python3", "-c", "pass"], owner="bench", prestart=True)
    pool = WarmPool(DockerBackend(), size=1)
    backend = on.backend
    agent = next(iter(backend.cluster.agents().values()))
    paths: dict[str, Callable[[], Any]] = {
        "sandbox run, local WarmPool": lambda: pool.run(spec),
        "sandbox run, RayBackend (warm pool on a node)": lambda: backend.run(spec),
        "bare Ray actor round trip": lambda: ray.get(agent.images.remote()),
        "skill call, local Yard(pool=True)": lambda: on.local.run(SKILL, {}),
        "skill call, cluster Yard": lambda: on.yard.run(SKILL, {}),
    }
    for run in paths.values():  # warm every path
        run()
        run()
    times: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for i in range(rounds):
            for name, run in paths.items():
                time.sleep(0.05)  # the prestarted process is ready on both paths alike
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
            if (i + 1) % 10 == 0:
                say(f"  dispatch: round {i + 1}/{rounds}")
    finally:
        pool.close()
    out = {name: {"p50_ms": ms(t), "p95_ms": p95(t), "n": len(t)} for name, t in times.items()}
    local = out["sandbox run, local WarmPool"]["p50_ms"]
    remote = out["sandbox run, RayBackend (warm pool on a node)"]["p50_ms"]
    out["overhead_sandbox_ms"] = round(remote - local, 2)
    out["ratio_sandbox"] = round(remote / local, 2)
    local_call, cluster_call = (
        out["skill call, local Yard(pool=True)"]["p50_ms"],
        out["skill call, cluster Yard"]["p50_ms"],
    )
    out["overhead_call_ms"] = round(cluster_call - local_call, 2)
    out["ratio_call"] = round(cluster_call / local_call, 2)
    return out


def section_images(on: OnCluster, client: Any, home: Path, rounds: int) -> dict[str, Any]:
    """Per round, a new package (so a new image): built on node A; then moved A -> B through
    the object store (save on A, the image removed, load on B). Sizes from the engine."""
    import ray

    from runtime.cluster import SkillImage, node_settings
    from runtime.package import load_package

    agents = on.backend.cluster.agents(refresh=True)
    first, second = sorted(agents)[:2]
    node_cfg = node_settings(on.settings)
    build, save, load, sizes, tags = [], [], [], [], []
    push, pull = [], []
    registry = LocalRegistry.start(home / "registry")
    try:
        for i in range(rounds + (1 if registry else 0)):
            folder = write_trivial_skill(home / f"img-{i}", name="bench-image")
            (folder / "resources").mkdir(exist_ok=True)
            (folder / "resources" / "nonce.txt").write_text(uuid.uuid4().hex)
            pkg = load_package(folder, on.settings)
            started = time.perf_counter()
            tag = ray.get(agents[first].execute.remote(SkillImage(node_cfg, pkg)))
            build.append(time.perf_counter() - started)
            tags.append(tag)
            sizes.append(client.images.get(tag).attrs["Size"])
            started = time.perf_counter()
            saved = agents[first].save_image.remote(tag)
            ray.wait([saved], timeout=600)
            save.append(time.perf_counter() - started)
            client.images.remove(tag, force=True)
            started = time.perf_counter()
            ray.get(agents[second].load_image.remote(saved), timeout=600)
            load.append(time.perf_counter() - started)
            del saved
            if registry is not None:
                remote = f"{registry.address}/bench/{tag.partition('/')[2]}"
                repo, _, version = remote.rpartition(":")
                client.api.tag(tag, repo, version)
                started = time.perf_counter()
                for line in client.api.push(repo, tag=version, stream=True, decode=True):
                    if "error" in line:
                        raise SystemExit(f"bench: push to the local registry failed: {line['error']}")
                push.append(time.perf_counter() - started)
                client.images.remove(remote, force=True)
                client.images.remove(tag, force=True)
                started = time.perf_counter()
                client.images.pull(repo, tag=version)
                pull.append(time.perf_counter() - started)
                tags.append(remote)
            say(f"  images: round {i + 1}")
    finally:
        remove_images(client, tags)
        if registry is not None:
            registry.stop()
    out = {
        "rounds": rounds,
        "image_mb": round(statistics.median(sizes) / 1e6, 1),
        "build_on_node_s": round(statistics.median(build), 2),
        "save_to_object_store_s": round(statistics.median(save), 2),
        "load_from_object_store_s": round(statistics.median(load), 2),
        "move_total_s": round(statistics.median(save) + statistics.median(load), 2),
        "ratio_move_to_build": round(
            (statistics.median(save) + statistics.median(load)) / statistics.median(build), 1
        ),
    }
    if push:
        # The first push also uploads the runner's layers; later ones only the skill layer.
        out["first_push_s"] = round(push[0], 2)
        out["push_s"] = round(statistics.median(push[1:]), 2)
        out["pull_s"] = round(statistics.median(pull[1:]), 2)
    return out


def section_humaneval(
    on: OnCluster, client: Any, home: Path, limit: int | None, workers: int
) -> dict[str, Any]:
    from runtime.yard import Yard

    ledger = Ledger(run_id=uuid.uuid4().hex[:8])
    ledger.snapshot(client)
    folders = humaneval.write_all(home / "he", limit, nonce=f"cluster-{ledger.run_id}")
    ledger.add_folders(folders)
    yard = Yard(on.settings.model_copy(update={"mutants": 10, "home": home / "he-home"}), pool=False)
    done = [0]

    def progress(outcome: Any) -> None:
        done[0] += 1
        if outcome.status != "registered" or done[0] % 20 == 0:
            say(f"  humaneval: {done[0]}/{len(folders)} ({outcome.name} {outcome.status})")

    started = time.perf_counter()
    try:
        outcomes = yard.add_many(folders, workers=workers, on_result=progress)
    finally:
        wall = time.perf_counter() - started
        yard.close()
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    gated_on = on.backend.cluster.each("status")
    removed, _ = remove_images(client, ledger.images(client))
    return {
        "skills": len(outcomes),
        "workers": workers,
        "wall_s": round(wall, 1),
        "statuses": statuses,
        "not_registered": [
            {"name": o.name, "status": o.status, "reasons": o.reasons[:2]}
            for o in outcomes
            if o.status != "registered"
        ],
        "nodes": len(gated_on),
        "images_removed": len(removed),
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"\n### {report['date']}: cluster run (bench/cluster.py{' --quick' if report['quick'] else ''})\n",
        f"Commit `{m.get('skillyard_commit')}`; {m.get('cpu_model')}, {m.get('cores')} cores, "
        f"{m.get('memory')}; Docker {m.get('docker')}; "
        f"Ray {report['ray']}; load average at start {report['load_start']}, at end {report['load_end']}. "
        "Every node is a process group on this one machine using its one Docker engine; "
        f"{CONCURRENCY} client threads. Wall time {report['wall_s']} s.\n",
        "| section | metric | value |",
        "|---|---|---|",
    ]
    for row in report["nodes"]:
        c, loc = row["cluster"], row["local"]
        lines.append(
            f"| nodes | {row['nodes']} node(s) (cluster up in {row['cluster_start_s']} s) | cluster "
            f"{c['calls_per_s']} calls/s (p50 {c['p50_ms']} ms, p95 {c['p95_ms']} ms, errors {c['errors']}); "
            f"local, interleaved: {loc['calls_per_s']} calls/s (p50 {loc['p50_ms']} ms); ratio "
            f"{row['ratio_cluster_to_local']}x; runs per node {row['runs_per_node']} |"
        )
    d = report.get("dispatch")
    if d:
        for name, v in d.items():
            if isinstance(v, dict):
                lines.append(
                    f"| dispatch | {name} (n={v['n']}) | p50 {v['p50_ms']} ms, p95 {v['p95_ms']} ms |"
                )
        lines.append(
            f"| dispatch | Ray's overhead per call | sandbox run +{d['overhead_sandbox_ms']} ms "
            f"({d['ratio_sandbox']}x the local run); skill call +{d['overhead_call_ms']} ms "
            f"({d['ratio_call']}x the local call) |"
        )
    i = report.get("images")
    if i:
        lines.append(
            f"| images | a skill image ({i['image_mb']} MB with its layers), median of {i['rounds']} | "
            f"built on the node {i['build_on_node_s']} s; moved: save {i['save_to_object_store_s']} s + "
            f"load {i['load_from_object_store_s']} s = {i['move_total_s']} s "
            f"({i['ratio_move_to_build']}x the build) |"
        )
        if "push_s" in i:
            lines.append(
                f"| images | the same through a local registry (docker-registry on 127.0.0.1) | push "
                f"{i['push_s']} s + pull {i['pull_s']} s (the skill layer; the first push, with the runner's "
                f"layers: {i['first_push_s']} s) |"
            )
    h = report.get("humaneval")
    if h:
        lines.append(
            f"| humaneval | {h['skills']} skills gated on {h['nodes']} nodes, workers={h['workers']} | "
            f"{h['wall_s']} s wall; {h['statuses']} |"
        )
        for item in h["not_registered"]:
            lines.append(
                f"| humaneval | not registered: {item['name']} ({item['status']}) | "
                f"{'; '.join(item['reasons'])[:200]} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a dry run")
    parser.add_argument("--no-humaneval", action="store_true")
    parser.add_argument("--no-markdown", action="store_true", help="do not append to BENCHMARKS.md")
    parser.add_argument("--workers", type=int, default=3, help="humaneval: gates at once (default 3)")
    args = parser.parse_args(argv)
    import os

    import ray

    quiet_logs()
    client = docker_client()
    runner = runner_image(client)
    machine = machine_info(client)
    calls, rounds, dispatch_rounds, image_rounds = (48, 2, 8, 1) if args.quick else (240, 6, 40, 3)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "machine": machine,
        "ray": ray.__version__,
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "nodes": [],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="skillyard-bench-cluster-") as tmp:
        home = Path(tmp)
        folder = write_trivial_skill(home / "src", name=SKILL)
        (folder / "resources").mkdir(exist_ok=True)
        (folder / "resources" / "bench-run.txt").write_text(uuid.uuid4().hex)  # this run's own image
        image_tags: list[str] = []
        for nodes in (1, 2, 3):
            say(f"cluster: {nodes} node(s)")
            on = OnCluster(nodes, runner, home / f"n{nodes}", folder)
            try:
                report["nodes"].append(section_nodes(on, nodes, calls, rounds))
                if nodes == 3:
                    say("cluster: dispatch overhead")
                    report["dispatch"] = section_dispatch(on, runner, dispatch_rounds)
                    say("cluster: images")
                    report["images"] = section_images(on, client, home / "images", image_rounds)
                    if not args.no_humaneval:
                        say("cluster: humaneval")
                        report["humaneval"] = section_humaneval(
                            on, client, home, 20 if args.quick else None, args.workers
                        )
            finally:
                image_tags += on.close()
        remove_images(client, image_tags)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["load_end"] = [round(x, 2) for x in os.getloadavg()]
    out = ROOT / "bench" / "results" / "cluster-latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    print(text)
    if not args.no_markdown:
        with open(ROOT / "BENCHMARKS.md", "a") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
