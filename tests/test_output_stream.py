"""Live output (RunSpec.on_output), capped collected files and collection inside one root,
on a real engine: one-shot containers and warm pools."""

from __future__ import annotations

import textwrap
import time

import pytest

from sandbox import Limits, RunSpec
from sandbox.pool import WarmPool

SLOW_PRINTER = textwrap.dedent("""
    import sys, time
    for i in range(3):
        print(f"line {i}", flush=True)
        sys.stderr.write(f"err {i}\\n"); sys.stderr.flush()
        time.sleep(0.4)
""")


def collecting():
    chunks: list[tuple[str, bytes, float]] = []

    def on_output(stream: str, data: bytes) -> None:
        chunks.append((stream, data, time.monotonic()))

    return chunks, on_output


def joined(chunks, stream: str) -> bytes:
    return b"".join(data for name, data, _ in chunks if name == stream)


@pytest.mark.parametrize("warm", [False, True], ids=["one-shot", "warm-pool"])
def test_output_arrives_while_the_program_runs(backend, runner_image, warm):
    chunks, on_output = collecting()
    spec = RunSpec(image=runner_image, argv=["python3", "-c", SLOW_PRINTER], owner="streamtest")
    spec.on_output = on_output
    pool = WarmPool(backend, size=1) if warm else None
    try:
        started = time.monotonic()
        result = (pool or backend).run(spec)
        ended = time.monotonic()
    finally:
        if pool is not None:
            pool.close()
    assert result.exit_code == 0, result
    assert joined(chunks, "stdout") == result.stdout == b"line 0\nline 1\nline 2\n"
    assert joined(chunks, "stderr") == result.stderr == b"err 0\nerr 1\nerr 2\n"
    first_line = next(when for name, data, when in chunks if b"line 0" in data)
    # The first line was passed on before the program ended (it sleeps 1.2 s after it).
    assert first_line - started < ended - started - 0.6, (first_line - started, ended - started)


def test_streamed_output_stops_at_the_cap(backend, runner_image):
    chunks, on_output = collecting()
    spec = RunSpec(
        image=runner_image,
        argv=["python3", "-c", "import sys; sys.stdout.write('x' * 5_000_000)"],
        limits=Limits(max_stdout=10_000),
        on_output=on_output,
        owner="streamtest",
    )
    result = backend.run(spec)
    assert result.exit_code == 0 and result.stdout_truncated
    assert result.stdout_bytes == 5_000_000
    assert joined(chunks, "stdout") == result.stdout == b"x" * 10_000


def test_a_program_cannot_forge_output_frames(backend, runner_image):
    chunks, on_output = collecting()
    fake = "\\n@@SKILLYARD-STDOUT 0000 5\\nforged"
    spec = RunSpec(
        image=runner_image,
        argv=["python3", "-c", f"print('{fake}')"],
        on_output=on_output,
        owner="streamtest",
    )
    result = backend.run(spec)
    assert result.exit_code == 0
    assert joined(chunks, "stdout") == result.stdout  # the frame-like text is just output
    assert b"@@SKILLYARD-STDOUT" in result.stdout


def test_collected_files_are_capped_and_say_so(backend, runner_image):
    spec = RunSpec(
        image=runner_image,
        argv=["sh", "-c", "head -c 3000 /dev/zero > big; echo small > small"],
        limits=Limits(max_collect=1024),
        collect=["/tmp/work/big", "/tmp/work/small"],
        owner="streamtest",
    )
    result = backend.run(spec)
    assert result.files["/tmp/work/big"] == b"\0" * 1024
    assert result.files["/tmp/work/small"] == b"small\n"
    assert result.truncated_files == ["/tmp/work/big"]


def test_collect_root_refuses_a_symlinked_folder(backend, runner_image):
    spec = RunSpec(
        image=runner_image,
        argv=["sh", "-c", "echo secret > /tmp/outside; ln -s /tmp d; ln -s /etc e; echo in > ok"],
        collect=["/tmp/work/d/outside", "/tmp/work/e/hostname", "/tmp/work/ok"],
        collect_root="/tmp/work",
        owner="streamtest",
    )
    result = backend.run(spec)
    assert result.files == {"/tmp/work/ok": b"in\n"}
    assert sorted(result.missing_files) == ["/tmp/work/d/outside", "/tmp/work/e/hostname"]


def test_the_working_dir_holds_only_what_the_run_put_there(backend, runner_image):
    limits = Limits(tmpfs={"/tmp": "16m", "/work": "16m"})
    spec = RunSpec(
        image=runner_image,
        argv=["sh", "-c", "ls -A /work"],
        cwd="/work",
        files={"/work/a.txt": b"a"},
        limits=limits,
        owner="streamtest",
    )
    result = backend.run(spec)
    assert result.stdout == b"a.txt\n"  # no bookkeeping file in a tmpfs root
