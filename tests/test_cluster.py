"""skillyard on a real local multi-node Ray cluster (Ray's own `ray.cluster_utils.Cluster`:
a head and two workers on this machine, sharing its Docker engine), with real LanceDB.

What must hold: a sandbox on a node is as hardened as a local one; a skill is gated on a
node and called across nodes, calls of a skill staying on the nodes that hold its warm
containers; a node killed under load loses no call and counts none twice; a node that
comes back removes what the dead one left, by label; a node rebuilds an image removed
from it; images move between nodes through the object store.

Node identity comes from labels: every node of this cluster shares one engine, and every
container its agents make carries ``skillyard.cluster=<this module's cluster name>``, so
the clean-up checks here only ever look at (and touch) this cluster's containers.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import docker.errors
import pytest
import ray
from ray.cluster_utils import Cluster

from runtime.config import Settings
from runtime.yard import Yard
from sandbox import Limits, RunSpec, SandboxError
from sandbox.node_agent import LABEL_CLUSTER, LABEL_NODE
from sandbox.ray_backend import RayBackend
from tests.conftest import WHEELHOUSE, write_skill
from tests.helpers import free_port

# Quick failure detection, as `skillyard cluster up` starts its head: a killed node is
# declared dead in about 1.5 s (Ray's default is 30 s).
SYSTEM_CONFIG = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
}
NODE = {"num_cpus": 1, "resources": {"skillyard": 1}, "object_store_memory": 80 * 1024**2}

NAPPER = textwrap.dedent('''
    import time


    def run(params):
        """Double n, after sleeping `sleep` seconds (calls stay in flight that long)."""
        time.sleep(params.get("sleep", 0))
        return {"n": double(params["n"])}


    def double(n):
        return n * 2
''')
NAPPER_TESTS = textwrap.dedent("""
    from scripts.main import double, run


    def test_double():
        assert double(3) == 6 and double(-2) == -4


    def test_run():
        assert run({"n": 5}) == {"n": 10}
        assert run({"n": 1, "sleep": 0.01}) == {"n": 2}
""")


@pytest.fixture(scope="module")
def ray_cluster(docker_client):
    """A head and two workers, each offering one `skillyard` resource; afterwards every node
    agent is stopped and not one container of this cluster may remain."""
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "_system_config": SYSTEM_CONFIG})
    for _ in range(2):
        cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.name = f"test-{uuid.uuid4().hex[:8]}"  # this module's containers, by label
    try:
        yield cluster
    finally:
        try:
            from sandbox.node_agent import AgentConfig
            from sandbox.ray_backend import cluster as ray_cluster_of

            handle = ray_cluster_of(cluster.address, AgentConfig(cluster=cluster.name))
            handle.stop_agents()
            handle.close()
        finally:
            ray.shutdown()
            cluster.shutdown()
            left = docker_client.api.containers(
                all=True, filters={"label": f"{LABEL_CLUSTER}={cluster.name}"}
            )
            for container in left:
                docker_client.api.remove_container(container["Id"], force=True)
            assert not left, f"the cluster's agents left containers behind: {[c['Names'] for c in left]}"


@pytest.fixture(scope="module")
def cluster_settings(ray_cluster, runner_image, tmp_path_factory) -> Settings:
    return Settings(
        home=tmp_path_factory.mktemp("cluster-home"),
        wheelhouse=WHEELHOUSE,
        mutants=0,  # the mutation check has its own tests; here the gate only has to run on a node
        runner_image=runner_image,
        cluster=ray_cluster.address,
        cluster_name=ray_cluster.name,
    )


@pytest.fixture(scope="module")
def cluster_yard(cluster_settings, tmp_path_factory):
    """A server-like yard on the cluster (warm pools on the nodes), with `napper` registered."""
    yard = Yard(cluster_settings, pool=True)
    folder = write_skill(
        tmp_path_factory.mktemp("skills"), "napper", script=NAPPER, tests={"test_main.py": NAPPER_TESTS}
    )
    outcome = yard.add(folder)
    assert outcome.status == "registered", outcome.reasons
    yield yard
    yard.close()


def backend_of(yard: Yard) -> RayBackend:
    backend = yard.sandbox.backend
    assert isinstance(backend, RayBackend)
    return backend


def runs_per_node(backend: RayBackend) -> dict[str, int]:
    return {node: status["runs"] for node, status in backend.cluster.each("status").items()}


def ours(docker_client, name: str, **labels: str) -> list[dict]:
    wanted = [f"{LABEL_CLUSTER}={name}", *(f"{k}={v}" for k, v in labels.items())]
    return docker_client.api.containers(all=True, filters={"label": wanted})


PROBE = textwrap.dedent("""
    import errno, os, socket
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1)
        net = "reached"
    except OSError as exc:
        net = errno.errorcode.get(exc.errno, str(exc.errno))
    try:
        open("/root-write-test", "w")
        root = "writable"
    except OSError as exc:
        root = errno.errorcode.get(exc.errno, str(exc.errno))
    flags = [status[k].strip() for k in ("CapEff", "NoNewPrivs", "Seccomp")]
    print(os.getuid(), *flags, net, root)
""")


def test_a_sandbox_on_every_node_is_as_hardened_as_a_local_one(
    ray_cluster, cluster_yard, sandbox, runner_image
):
    """Not by construction alone: the same probe, run locally and on each node, sees the same
    uid, capabilities, no-new-privileges, seccomp mode, no network and read-only root."""
    spec = RunSpec(image=runner_image, argv=["python3", "-c", PROBE], limits=Limits(timeout=20))
    local = sandbox.run(spec.argv, image=runner_image, limits=spec.limits)
    assert local.exit_code == 0, local.stderr
    expected = local.stdout.decode().split()
    assert expected == ["65534", "0000000000000000", "1", "2", "ENETUNREACH", "EROFS"]

    per_node = backend_of(cluster_yard).cluster.each("run", spec, None, False)
    assert len(per_node) == 3
    for node, result in per_node.items():
        assert not isinstance(result, BaseException), f"{node[:8]}: {result}"
        assert result.exit_code == 0, result.stderr
        assert result.stdout.decode().split() == expected, f"node {node[:8]} differs"


def test_a_channel_never_crosses_the_cluster(cluster_yard, runner_image):
    backend = backend_of(cluster_yard)
    spec = RunSpec(image=runner_image, argv=["true"], channel=lambda message: message)
    with pytest.raises(SandboxError, match="cannot cross the cluster"):
        backend.run(spec)


def test_gated_on_a_node_then_called_across_nodes_with_affinity(cluster_settings, cluster_yard):
    backend = backend_of(cluster_yard)
    report = cluster_yard.record("napper").gate_report
    assert report["passed"] and report["tests"] == 2

    # One call at a time, of a kind no node has run yet (a tenant's own warm pool): the
    # first lands anywhere, and every next one finds a free warm container on that node
    # and stays there although two other nodes are idle.
    tenant = Yard(cluster_settings, pool=True, tenant="affinity")
    try:
        before = runs_per_node(backend)
        for n in range(6):
            assert tenant.run("napper", {"n": n}).output == {"n": 2 * n}
        grew = sorted(runs - before.get(node, 0) for node, runs in runs_per_node(backend).items())
        assert grew == [0, 0, 6], grew
    finally:
        tenant.close()

    # Many at once: more than one node's warm containers can serve, so they spread.
    before = runs_per_node(backend)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: cluster_yard.run("napper", {"n": n, "sleep": 0.2}), range(24)))
    assert [r.output for r in results] == [{"n": 2 * n} for n in range(24)], [r.error for r in results]
    after = runs_per_node(backend)
    busy = [node for node in after if after[node] > before.get(node, 0)]
    assert len(busy) >= 2, f"24 calls 8 at a time used only {len(busy)} node(s)"


def test_same_call_accounted_twice_is_one_use(cluster_yard):
    """A call accounted again under its id (a retried write, a replayed journal, a second
    server) adds no use row and does not move the counters."""
    record = cluster_yard.record("napper")
    cluster_yard.flush()
    uses, calls = len(cluster_yard.ledger.uses("napper")), cluster_yard.record("napper").calls
    call_id = uuid.uuid4().hex
    result = cluster_yard.call(record, {"n": 4}, call_id=call_id)
    assert result.ok
    from runtime import calling

    calling.account(cluster_yard, cluster_yard._accounting, record, {"n": 4}, result, call_id)
    cluster_yard.flush()
    rows = cluster_yard.ledger.uses("napper")
    assert len(rows) == uses + 1 and sum(r["id"] == call_id for r in rows) == 1
    assert cluster_yard.record("napper").calls == calls + 1
    indexed = {tuple(ix.columns) for ix in cluster_yard.ledger.store.table("uses").list_indices()}
    assert ("id",) in indexed  # the upsert looks the id up, it does not scan the table


def _agent_pid(backend: RayBackend, node: str) -> int:
    return int(backend.cluster.each("status")[node]["pid"])


def _kill_node(ray_cluster, backend: RayBackend, node) -> None:
    """As a machine failure: the agent's process and the node's raylet die at once."""
    os.kill(_agent_pid(backend, node.node_id), signal.SIGKILL)
    ray_cluster.remove_node(node, allow_graceful=False)


def test_node_killed_under_load_loses_no_call_and_counts_each_once(ray_cluster, cluster_yard):
    backend = backend_of(cluster_yard)
    cluster_yard.flush()
    uses_before = len(cluster_yard.ledger.uses("napper"))
    calls_before = cluster_yard.record("napper").calls
    lost_before = backend.cluster.lost_work
    victim = sorted(ray_cluster.worker_nodes, key=lambda n: n.node_id)[0]
    total = 40
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(cluster_yard.run, "napper", {"n": n, "sleep": 0.4}) for n in range(total)]
        deadline = time.monotonic() + 60
        while runs_per_node(backend).get(victim.node_id, 0) < 2:  # it is serving calls now
            assert time.monotonic() < deadline, "the victim node never got a call"
            time.sleep(0.05)
        _kill_node(ray_cluster, backend, victim)
        results = [f.result() for f in futures]

    failed = [(r.error.kind, r.error.message[:200]) for r in results if not r.ok]
    assert not failed, failed
    assert [r.output for r in results] == [{"n": 2 * n} for n in range(total)]
    assert backend.cluster.lost_work > lost_before, "no call was in flight on the killed node"
    cluster_yard.flush()
    assert len(cluster_yard.ledger.uses("napper")) == uses_before + total
    assert cluster_yard.record("napper").calls == calls_before + total
    assert victim.node_id not in backend.cluster.agents(refresh=True)


def test_a_node_back_removes_what_the_dead_one_left(ray_cluster, cluster_yard, docker_client, runner_image):
    backend = backend_of(cluster_yard)
    victim = sorted(ray_cluster.worker_nodes, key=lambda n: n.node_id)[0]
    # Every node gets a warm container of this kind; then the victim dies with nothing in
    # flight, so no server notices and no survivor collects: the container stays behind.
    spec = RunSpec(image=runner_image, argv=["true"], owner="cluster-test")
    assert all(r.exit_code == 0 for r in backend.cluster.each("run", spec, None, True).values())
    _kill_node(ray_cluster, backend, victim)
    deadline = time.monotonic() + 30
    while any(n["NodeID"] == victim.node_id and n["Alive"] for n in ray.nodes()):
        assert time.monotonic() < deadline, "Ray never declared the killed node dead"
        time.sleep(0.2)
    left = ours(docker_client, ray_cluster.name, **{LABEL_NODE: victim.node_id})
    assert left, "the killed node's warm container should still be on the engine"

    back = ray_cluster.add_node(**NODE)
    ray_cluster.wait_for_nodes()
    agents = backend.cluster.agents(refresh=True)
    assert back.node_id in agents and victim.node_id not in agents
    ray.get([agent.status.remote() for agent in agents.values()])  # every agent has started
    assert not ours(docker_client, ray_cluster.name, **{LABEL_NODE: victim.node_id})


def test_an_image_removed_from_a_node_is_made_there_again(cluster_settings, cluster_yard, docker_client):
    backend = backend_of(cluster_yard)
    cold = Yard(cluster_settings, pool=False)  # fresh containers: a warm one would not need the image
    try:
        assert cold.run("napper", {"n": 1}).ok
        tags = {
            tag
            for images in backend.cluster.each("images").values()
            for name, tag in images.items()
            if name.startswith("skill:napper@")
        }
        assert len(tags) == 1, tags  # one engine here: every node that made it made the same tag
        (tag,) = tags
        docker_client.images.remove(tag, force=True)
        result = cold.run("napper", {"n": 21})
        assert result.ok and result.output == {"n": 42}, result.error
        assert docker_client.images.get(tag)
    finally:
        cold.close()


def test_an_image_moves_between_nodes_through_the_object_store(cluster_yard, docker_client):
    """`docker save` on one node, the object store, `docker load` on another. The two share
    an engine here, so the image is removed in between: the load must bring it back, the
    same image. (A tiny image of the test's own: skill images on this shared engine may be
    removed by other test sessions at any time; bench/cluster.py moves real ones.)"""
    tag = f"skillyard-test/moved:{uuid.uuid4().hex[:12]}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    repo, _, version = tag.partition(":")
    docker_client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=version)
    try:
        image_id = docker_client.images.get(tag).id
        agents = backend_of(cluster_yard).cluster.agents(refresh=True)
        holder, target = sorted(agents)[:2]
        saved = agents[holder].save_image.remote(tag)  # stays in the object store
        ray.wait([saved], timeout=60)
        docker_client.images.remove(tag, force=True)
        ray.get(agents[target].load_image.remote(saved), timeout=60)
        assert docker_client.images.get(tag).id == image_id
    finally:
        try:
            docker_client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """An image registry of the test's own (Debian's docker-registry, installed by `make test`)
    on 127.0.0.1, which the engine trusts over plain HTTP; stopped by its process id."""
    binary = shutil.which("docker-registry")
    assert binary, (
        "the cluster tests need docker-registry: `make test` installs it (scripts/ensure-registry.sh)"
    )
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    (root / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    with open(root / "log", "wb") as out:
        proc = subprocess.Popen(
            [binary, "serve", str(root / "config.yml")], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (root / "log").read_text()[-2000:]
                time.sleep(0.2)
        yield f"127.0.0.1:{port}/skillyard-test"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_with_a_registry_a_node_pulls_what_another_node_pushed(
    cluster_settings, cluster_yard, registry, docker_client
):
    """The first node to need a skill image builds and pushes it; the next pulls it: the
    same image (a build would make a new one), not built again."""
    from runtime.cluster import SkillImage, node_settings, registry_ref

    settings = node_settings(cluster_settings.model_copy(update={"image_registry": registry}))
    pkg = cluster_yard.package("napper", 1)
    remote = registry_ref(registry, pkg)
    agents = backend_of(cluster_yard).cluster.agents(refresh=True)
    first, second = sorted(agents)[:2]
    try:
        built = ray.get(agents[first].execute.remote(SkillImage(settings, pkg)), timeout=300)
        pushed = docker_client.images.get(remote).id
        assert docker_client.images.get(built).id == pushed
        for tag in (built, remote):  # one engine here: make the second node find nothing
            docker_client.images.remove(tag, force=True)
        got = ray.get(agents[second].execute.remote(SkillImage(settings, pkg)), timeout=300)
        assert got == remote and docker_client.images.get(remote).id == pushed
    finally:
        try:
            docker_client.images.remove(remote, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_a_ledger_made_before_call_ids_gets_its_index_and_upserts(tmp_path):
    """A store whose `uses` table predates call ids (no index on `id`, random row ids) is
    migrated once; then a use recorded twice under one call id is one row."""
    import lancedb

    from runtime.ledger import USES, USES_SCHEMA, Ledger

    db = lancedb.connect(tmp_path / "store")
    old = db.create_table(USES, schema=USES_SCHEMA)
    row = {"id": uuid.uuid4().hex, "ts": datetime.now(UTC), "skill": "old", "version": 1}
    old.add([{**row, "context_tokens": 5, "outcome": "ok", "duration_ms": 1.0}])
    assert not old.list_indices()

    ledger = Ledger(tmp_path / "store")
    call_id = uuid.uuid4().hex
    recorded = [
        ledger.record_use(
            skill="new", version=1, context_tokens=7, outcome="ok", duration_ms=2.0, call_id=call_id
        )
        for _ in range(2)
    ]
    assert recorded == [True, False]
    assert "ledger-0002-uses-id-index" in ledger.store.applied_migrations()
    assert ("id",) in {tuple(ix.columns) for ix in ledger.store.table(USES).list_indices()}
    assert [r["skill"] for r in ledger.uses()] == ["old", "new"]
    with pytest.raises(ValueError, match="32 lower-case hex"):
        ledger.record_use(
            skill="new", version=1, context_tokens=7, outcome="ok", duration_ms=2.0, call_id="x"
        )


def test_local_use_never_imports_ray():
    """`make demo` stays local and needs no Ray: the CLI, the yard and the servers' modules
    import it only when a cluster is used."""
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import runtime.cli, runtime.yard, runtime.serving, runtime.http.app, sandbox\n"
        "assert CliRunner().invoke(runtime.cli.cli, ['--help']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
