"""Dependencies and image families, on a real engine: requirements resolve from the
wheelhouse's pool (offline) or the package index, are pinned with hashes and installed with
--require-hashes; a missing wheel names its package; families are checked before any build."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import textwrap
import zipfile

import pytest

from runtime.build import build_requirements_image
from sandbox import SandboxError, WheelMissing
from sandbox.images import LOCK_FILE, ensure_wheels, fetch_debs, wheel_pool
from tests.conftest import ROOT, write_skill


def tiny_wheel(name: str = "sy_tiny", version: str = "1.0", answer: int = 42) -> tuple[str, bytes]:
    """A pure-Python wheel made here (no index, no build tool): `import sy_tiny; sy_tiny.ANSWER`."""
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": f"ANSWER = {answer}\n".encode(),
        f"{dist}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n".encode()
        ),
        f"{dist}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: skillyard-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }

    def record_line(path: str, data: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"{path},sha256={digest},{len(data)}"

    record = "\n".join(record_line(p, d) for p, d in files.items()) + f"\n{dist}.dist-info/RECORD,,\n"
    files[f"{dist}.dist-info/RECORD"] = record.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return f"{dist}-py3-none-any.whl", buf.getvalue()


@pytest.fixture
def wheelhouse(tmp_path):
    folder = tmp_path / "wheelhouse"
    for dist in ("sy_tiny", "sy_forged"):
        name, data = tiny_wheel(dist)
        (wheel_pool(folder) / name).write_bytes(data)
    return folder


def test_requirements_resolve_offline_from_the_pool_with_a_hash_lock(wheelhouse):
    folder = ensure_wheels(["sy-tiny==1.0"], wheelhouse)
    data = (wheel_pool(wheelhouse) / "sy_tiny-1.0-py3-none-any.whl").read_bytes()
    lock = (folder / LOCK_FILE).read_text().splitlines()
    assert lock == [f"sy-tiny==1.0 --hash=sha256:{hashlib.sha256(data).hexdigest()}"]
    assert ensure_wheels(["sy-tiny==1.0"], wheelhouse) == folder  # complete: reused as it is


def test_the_build_installs_exactly_the_locked_files(wheelhouse, docker_client, runner_image):
    folder = ensure_wheels(["sy-forged==1.0"], wheelhouse)
    # Another file under the locked name: pip's --require-hashes refuses it, the build fails
    # (and so leaves no image behind).
    name, forged = tiny_wheel("sy_forged", answer=666)
    (folder / name).write_bytes(forged)
    with pytest.raises(SandboxError, match="(?i)hash"):
        build_requirements_image(docker_client, ["sy-forged==1.0"], runner_image, wheelhouse, who="forged")


def test_a_skill_with_a_pool_requirement_gates_and_runs(yard, tmp_path, wheelhouse, docker_client):
    yard.settings = yard.settings.model_copy(update={"wheelhouse": wheelhouse})
    yard.images.settings = yard.settings
    script = "import sys\nimport sy_tiny\n\nif __name__ == '__main__':\n"
    script += "    print(sy_tiny.ANSWER + int(sys.argv[1]))\n"
    tests = textwrap.dedent("""
        import sy_tiny  # the judge has the requirements too

        def test_adds(skill):
            assert sy_tiny.ANSWER == 42
            assert skill.run(["python", "scripts/main.py", "1"]).stdout == b"43\\n"
            assert skill.run(["python", "scripts/main.py", "-2"]).stdout == b"40\\n"
    """)
    d = write_skill(
        tmp_path,
        "tiny-user",
        script=script,
        tests={"test_it.py": tests},
        sidecar="requirements: ['sy-tiny==1.0']\ncommands:\n  add: python scripts/main.py\n",
    )
    outcome = yard.add(d)
    assert outcome.status == "registered", outcome.reasons
    image = docker_client.images.get(yard.image_for(yard.package("tiny-user", 1)))
    deps = docker_client.images.get(image.labels["skillyard.deps"])
    assert deps.labels["skillyard.kind"] == "deps"
    run = yard.run_command("tiny-user", ["python", "scripts/main.py", "8"])
    assert run.ok and run.stdout == b"50\n"
    lock = yard.sandbox.run(["cat", "/opt/venv/skillyard-requirements.lock"], image=image.id)
    assert lock.stdout.startswith(b"sy-tiny==1.0 --hash=sha256:")
    yard.close()
    docker_client.images.remove(image.id, force=True)  # the skill image (the session's check would too)
    docker_client.images.remove(deps.id, force=True)  # and the deps image this test made


def test_a_missing_wheel_names_the_package_and_records_nothing(yard, tmp_path):
    missing = "skillyard-surely-no-such-package==9.9.9"
    with pytest.raises(WheelMissing) as caught:
        ensure_wheels([missing], tmp_path / "empty-wheelhouse")
    assert caught.value.package.startswith("skillyard-surely-no-such-package")
    assert "skillyard wheelhouse add" in str(caught.value)
    d = write_skill(
        tmp_path,
        "needs-missing",
        script="def run(params):\n    return {}\n",
        tests={"test_x.py": "def test_x():\n    assert True\n"},
        sidecar=f"entrypoint: scripts/main.py:run\nrequirements: ['{missing}']\n",
    )
    outcome = yard.add(d)
    assert outcome.status == "error"
    assert "skillyard-surely-no-such-package" in outcome.reasons[0], outcome.reasons
    assert yard.registry.get("needs-missing") is None


def test_an_unknown_family_is_rejected_before_any_build(yard, tmp_path, docker_client):
    d = write_skill(
        tmp_path,
        "cobol-job",
        script="def run(params):\n    return {}\n",
        tests={"test_x.py": "def test_x():\n    assert True\n"},
        sidecar="entrypoint: scripts/main.py:run\nfamily: cobol\n",
    )
    outcome = yard.add(d)
    assert outcome.status == "rejected"
    assert "no image family 'cobol'" in outcome.reasons[0] and "node" in outcome.reasons[0]
    assert not outcome.built
    assert not docker_client.images.list(filters={"label": "skillyard.skill=cobol-job"})
    assert yard.registry.get("cobol-job") is None


def test_family_packages_that_do_not_exist_fail_clearly(tmp_path, docker_client, runner_image):
    from sandbox.images import image_file

    status = image_file(docker_client, runner_image, "/var/lib/dpkg/status")
    assert b"Package: python3" in status
    with pytest.raises(SandboxError, match="fetching Debian packages failed"):
        fetch_debs(["skillyard-no-such-debian-package"], status, tmp_path / "debs")


def test_families_run_their_programs(docker_client, runner_image, backend):
    from sandbox import Sandbox
    from sandbox.images import Images
    from tests.conftest import WHEELHOUSE

    images = Images(docker_client, WHEELHOUSE)
    node = images.ensure_family("node", runner_image)
    docs = images.ensure_family("documents", runner_image)
    sandbox = Sandbox(backend)
    assert sandbox.run(["node", "-e", "console.log(6 * 7)"], image=node).stdout == b"42\n"
    version = sandbox.run(["pdftotext", "-v"], image=docs)
    assert b"pdftotext version" in version.stderr
    assert docker_client.images.get(node).labels["skillyard.kind"] == "family"


def test_cli_wheelhouse_add_and_list(tmp_path):
    env = {
        **os.environ,
        "SKILLYARD_HOME": str(tmp_path / "home"),
        "SKILLYARD_WHEELHOUSE": str(tmp_path / "wh"),
    }
    cli = str(ROOT / ".venv" / "bin" / "skillyard")
    added = subprocess.run(
        [cli, "wheelhouse", "add", "six==1.16.0", "--json"], capture_output=True, env=env, timeout=300
    )
    assert added.returncode == 0, added.stderr.decode()
    assert json.loads(added.stdout)["wheels"] == ["six-1.16.0-py2.py3-none-any.whl"]
    listed = subprocess.run([cli, "wheelhouse", "list", "--json"], capture_output=True, env=env, timeout=60)
    assert "six-1.16.0-py2.py3-none-any.whl" in json.loads(listed.stdout)["wheels"]
    bad = subprocess.run(
        [cli, "wheelhouse", "add", "six; rm -rf /"], capture_output=True, env=env, timeout=60
    )
    assert bad.returncode == 1 and b"plain specifier" in bad.stderr
