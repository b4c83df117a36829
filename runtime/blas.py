"""How many threads numpy's bundled OpenBLAS uses, and one-thread blocks.

A small matrix product (one search query's embedding) is faster on one BLAS thread when
the other core is busy (see embeddings.SINGLE_THREAD_MAX_TOKENS): OpenBLAS's threads only
pay when a core is idle. The count is process-wide, so overlapping one-thread blocks in
several threads are counted, and the last to leave puts the count back.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _openblas_thread_setter() -> Any | None:
    """numpy's bundled OpenBLAS ``openblas_set_num_threads_local`` (0.3.27+), which sets
    the thread count and returns the previous one. Despite its name it is process-wide
    (a thread started while it is lowered sees the lowered count), hence the counting
    in single_blas_thread. None when numpy uses another BLAS."""
    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(libs.glob("libscipy_openblas*.so*")) if libs.is_dir() else []:
        try:
            fn = ctypes.CDLL(str(path)).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
        return fn
    return None


_set_blas_threads = _openblas_thread_setter()
_blas_lock = threading.Lock()
_blas_limited = 0  # blocks inside single_blas_thread, in all threads
_blas_saved = 0  # the thread count to put back when the last one leaves


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS thread (a no-op without numpy's OpenBLAS).

    The count is process-wide, so overlapping blocks in several threads are counted:
    the first lowers it, the last puts the saved count back (a bulk embedding that
    runs meanwhile is single-threaded too, which costs time, never correctness)."""
    global _blas_limited, _blas_saved
    if _set_blas_threads is None:
        yield
        return
    with _blas_lock:
        if _blas_limited == 0:
            _blas_saved = _set_blas_threads(1)
        _blas_limited += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_limited -= 1
            if _blas_limited == 0:
                _set_blas_threads(_blas_saved)


def blas_threads() -> int | None:
    """OpenBLAS's thread count now (None without numpy's OpenBLAS)."""
    if _set_blas_threads is None:
        return None
    with _blas_lock:
        previous = _set_blas_threads(1)
        _set_blas_threads(previous)
    return previous
