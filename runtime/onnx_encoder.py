"""The BERT encoder of runtime.embeddings, run by ONNX Runtime when it is installed.

Why: the numpy forward pass of a search query (~12 tokens) takes 12-18 ms on the
2-core target, most of it OpenBLAS streaming 42 MB of fp32 weights (more than the
32 MB L3) and packing them for each small matrix product, one query at a time.
ONNX Runtime packs the weights once, when the session is
made, and fuses the elementwise work: the same query takes 6-10 ms, and the vectors
agree with numpy's to ~1e-7 (measured 2026-12-02, AMD EPYC, 2 cores: search at 100k
rows p50 35.3 -> 24.9 ms idle, 42.1 -> 33.1 ms with a core busy).

The graph is built here from the weights numpy already holds (embeddings LayerNorm
and the encoder layers; token lookup and pooling stay in numpy) and serialised with a
small protobuf writer for the handful of ONNX fields it uses, field numbers from
onnx/onnx.proto.

Why not the `onnx` package's helpers, measured again on 2026-12-06 (onnx 1.23.2, the
same 2-core machine): ``import onnx.helper`` takes 0.76-1.07 s (0.84 s of it is
ml_dtypes' native extension), and building this graph with ``helper.make_node`` /
``numpy_helper.from_array`` and ``SerializeToString`` takes 0.18-0.62 s, against 0.03 s
here (the weights are written once, as views; the library copies each array twice).
Both produce the same 42,604,544 bytes, and ONNX Runtime's outputs from the two are
identical. The build runs on a background thread only once numpy has spent
ONNX_AFTER_NUMPY_SECONDS (0.25 s, the build's cost) embedding: with the library the
build would cost ~1.3 s of a core and the GIL, the threshold would have to follow, and
the package would be a new dependency. So the small writer stays; it is covered by the
parity tests in tests/test_embeddings.py.
"""

from __future__ import annotations

import importlib
import os
import struct
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import structlog

log = structlog.get_logger(__name__)

OPSET = 17  # LayerNormalization is in the default domain from opset 17
IR_VERSION = 8
_FLOAT, _INT64 = 1, 7  # TensorProto.DataType
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7  # AttributeProto.AttributeType


def installed() -> bool:
    """Whether onnxruntime is installed, without importing it (importing costs ~0.16 s,
    which a one-shot CLI that never builds the encoder must not pay)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def available() -> bool:
    """Whether onnxruntime can be imported (it is an optional speed-up)."""
    try:
        importlib.import_module("onnxruntime")
    except Exception:  # noqa: BLE001 - ImportError, or a broken native library
        return False
    return True


# --------------------------------------------------------------------------- protobuf


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64: ten bytes of two's complement, as protobuf does
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _field_chunks(number: int, chunks: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """A length-delimited field as pieces, joined once at the end: the weights are 42 MB,
    and concatenating them at every level of nesting copied them five times (0.36 s)."""
    return [_varint(number << 3 | 2) + _varint(sum(len(c) for c in chunks)), *chunks]


def _field_str(number: int, text: str) -> bytes:
    return _field_bytes(number, text.encode())


def _field_int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_float(number: int, value: float) -> bytes:
    return _varint(number << 3 | 5) + struct.pack("<f", value)


def _attribute(name: str, value: int | float | Sequence[int]) -> bytes:
    out = _field_str(1, name)
    if isinstance(value, (list, tuple)):
        return out + b"".join(_field_int(8, int(v)) for v in value) + _field_int(20, _ATTR_INTS)
    if isinstance(value, int):
        return out + _field_int(3, value) + _field_int(20, _ATTR_INT)
    return out + _field_float(2, value) + _field_int(20, _ATTR_FLOAT)


def _tensor(name: str, array: np.ndarray) -> list[bytes | memoryview]:
    kind = {np.dtype(np.float32): _FLOAT, np.dtype(np.int64): _INT64}[array.dtype]
    dims = b"".join(_field_int(1, d) for d in array.shape)
    raw = memoryview(np.ascontiguousarray(array)).cast("B")  # a view: no copy until the final join
    return [dims + _field_int(2, kind) + _field_str(8, name), *_field_chunks(9, [raw])]


def _value_info(name: str, dims: Sequence[int | str]) -> bytes:
    shape = b"".join(
        _field_bytes(1, _field_int(1, d) if isinstance(d, int) else _field_str(2, d)) for d in dims
    )
    tensor_type = _field_int(1, _FLOAT) + _field_bytes(2, shape)
    return _field_str(1, name) + _field_bytes(2, _field_bytes(1, tensor_type))


class _GraphBuilder:
    """Nodes and initializers of one ONNX graph; every node has one output."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.initializers: list[list[bytes | memoryview]] = []
        self._count = 0

    def const(self, name: str, value: Any, dtype: Any = np.float32) -> str:
        self.initializers.append(_tensor(name, np.asarray(value, dtype=dtype)))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: int | float | Sequence[int]) -> str:
        self._count += 1
        out = f"{op_type.lower()}_{self._count}"
        node = b"".join(_field_str(1, i) for i in inputs) + _field_str(2, out) + _field_str(3, out)
        node += _field_str(4, op_type) + b"".join(_field_bytes(5, _attribute(k, v)) for k, v in attrs.items())
        self.nodes.append(node)
        return out

    def model(
        self, inputs: list[tuple[str, Sequence[int | str]]], output: str, output_dims: Sequence[int | str]
    ) -> bytes:
        graph: list[bytes | memoryview] = [
            b"".join(_field_bytes(1, n) for n in self.nodes) + _field_str(2, "encoder")
        ]
        for tensor in self.initializers:
            graph += _field_chunks(5, tensor)
        graph.append(
            b"".join(_field_bytes(11, _value_info(name, dims)) for name, dims in inputs)
            + _field_bytes(12, _value_info(output, output_dims))
        )
        opset = _field_str(1, "") + _field_int(2, OPSET)
        head = _field_int(1, IR_VERSION) + _field_str(2, "skillyard")
        return b"".join([head, *_field_chunks(7, graph), _field_bytes(8, opset)])


def build_model(
    emb_ln: tuple[np.ndarray, np.ndarray], layers: Sequence[Any], heads: int, eps: float
) -> bytes:
    """The post-LN BERT encoder as serialised ONNX: inputs `x` (batch, seq, hidden), the
    summed token + position + type embeddings, and `bias` (batch, 1, 1, seq), the additive
    attention mask; output `y` (batch, seq, hidden), the last hidden state.

    `layers` are runtime.embeddings._Layer (weights stored (in, out), Q/K/V fused), and
    each step mirrors Embedder._layer_forward."""
    hidden = int(layers[0].qkv_w.shape[0])
    head_dim = hidden // heads
    g = _GraphBuilder()
    g.const("qkv_shape", [0, 0, 3, heads, head_dim], np.int64)  # 0: keep that dimension
    g.const("hidden_shape", [0, 0, hidden], np.int64)
    g.const("scale", 1.0 / np.sqrt(head_dim))
    g.const("half", 0.5)
    g.const("one", 1.0)
    g.const("inv_sqrt2", 0.7071067811865476)
    for i in range(3):
        g.const(f"index{i}", i, np.int64)

    def layer_norm(x: str, gamma: np.ndarray, beta: np.ndarray, prefix: str) -> str:
        return g.op(
            "LayerNormalization",
            x,
            g.const(f"{prefix}_gamma", gamma),
            g.const(f"{prefix}_beta", beta),
            axis=-1,
            epsilon=float(eps),
        )

    def linear(x: str, w: np.ndarray, b: np.ndarray, prefix: str) -> str:
        return g.op("Add", g.op("MatMul", x, g.const(f"{prefix}_w", w)), g.const(f"{prefix}_b", b))

    x = layer_norm("x", *emb_ln, prefix="emb_ln")
    for n, layer in enumerate(layers):
        p = f"layer{n}"
        qkv = linear(x, layer.qkv_w, layer.qkv_b, f"{p}_qkv")
        qkv = g.op(
            "Transpose", g.op("Reshape", qkv, "qkv_shape"), perm=[2, 0, 3, 1, 4]
        )  # (3, b, heads, s, d)
        q, k, v = (g.op("Gather", qkv, f"index{i}", axis=0) for i in range(3))
        scores = g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2]))
        probs = g.op("Softmax", g.op("Add", g.op("Mul", scores, "scale"), "bias"), axis=-1)
        ctx = g.op("Reshape", g.op("Transpose", g.op("MatMul", probs, v), perm=[0, 2, 1, 3]), "hidden_shape")
        attn = linear(ctx, layer.attn_out_w, layer.attn_out_b, f"{p}_attn_out")
        x = layer_norm(g.op("Add", attn, x), layer.attn_ln_g, layer.attn_ln_b, f"{p}_attn_ln")
        h = linear(x, layer.ffn_in_w, layer.ffn_in_b, f"{p}_ffn_in")
        # exact GELU, 0.5 * h * (1 + erf(h / sqrt(2))): ONNX Runtime fuses the pattern
        gelu = g.op(
            "Mul", g.op("Mul", h, "half"), g.op("Add", g.op("Erf", g.op("Mul", h, "inv_sqrt2")), "one")
        )
        ffn = linear(gelu, layer.ffn_out_w, layer.ffn_out_b, f"{p}_ffn_out")
        x = layer_norm(g.op("Add", ffn, x), layer.ffn_ln_g, layer.ffn_ln_b, f"{p}_ffn_ln")
    y = g.op("Identity", x)
    return g.model(
        [("x", ["batch", "seq", hidden]), ("bias", ["batch", 1, 1, "seq"])], y, ["batch", "seq", hidden]
    )


# --------------------------------------------------------------------------- session


class OnnxEncoder:
    """An ONNX Runtime session of the encoder. `run` is thread-safe.

    Threads: at most `threads` (default min(2, cores)) and no spinning: ONNX Runtime's
    idle threads otherwise spin for a while after each run, which on two cores takes
    CPU from the LanceDB queries beside it. A session belongs to the process that made
    it (its thread pool does not survive fork); `usable` says whether this one can run."""

    def __init__(self, model: bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.pid = os.getpid()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads or min(2, os.cpu_count() or 1))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: its warnings go to stderr, not our logs
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.output = self._session.get_outputs()[0].name

    @property
    def usable(self) -> bool:
        """Whether this process made the session (a forked child cannot use it)."""
        return os.getpid() == self.pid

    def run(self, x: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """The encoder layers' output for embeddings `x` and attention `bias`."""
        return self._session.run([self.output], {"x": x, "bias": bias})[0]


class LazyEncoder:
    """Builds an OnnxEncoder on a background thread once `start` is called; until it is
    ready (or if building fails) `get` returns None and the caller uses numpy."""

    def __init__(self, build: Any) -> None:
        self._build = build
        self._encoder: OnnxEncoder | None = None
        self._started = False
        self._lock = threading.Lock()
        self.ready = threading.Event()  # set when building has finished, either way
        self.error: str | None = None

    def start(self, background: bool = True) -> None:
        """Start building (in the background unless told otherwise); once."""
        with self._lock:
            if self._started:
                return
            self._started = True
        if background:
            threading.Thread(target=self._run, name="onnx-encoder-build", daemon=True).start()
        else:
            self._run()

    def _run(self) -> None:
        try:
            self._encoder = self._build()
        except Exception as exc:  # noqa: BLE001 - numpy stays the encoder; say why once
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("onnxruntime encoder unavailable; embeddings stay on numpy", error=self.error[:300])
        finally:
            self.ready.set()

    def get(self) -> OnnxEncoder | None:
        """The built encoder, if it is ready and usable here, else None."""
        enc = self._encoder
        return enc if enc is not None and enc.usable else None
