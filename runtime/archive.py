"""Deterministic skill packages: a folder <-> tar.gz bytes, plus a content hash.

The registry stores each version's package as one tar.gz blob. Packing is
deterministic (sorted entries, zeroed mtimes/owners, normalised modes, gzip
header without a timestamp), so the same folder always gives the same bytes,
and `content_hash` hashes the *files*, not the archive, so it is stable across
packers and lets the caller skip re-gating an unchanged skill (`Registry.find`).

Package *policy* (size limits, forbidden file types, symlinks) is checked
elsewhere before anything is packed; `unpack` is nonetheless safe on untrusted
bytes: it uses tarfile's "data" filter (no absolute paths, no `..`, no links
out of the destination, no device files) and refuses anything but regular
files and directories.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

# Written into the hash so a change of the hashing scheme changes every hash.
_HASH_SCHEME = b"skillyard-content-v1\0"
# Never packed or hashed: caches and editor litter that do not change behaviour.
_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".git", ".mypy_cache", ".ruff_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _files(root: Path) -> list[tuple[str, Path]]:
    """(posix relative path, absolute path) of every regular file under root, sorted."""
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for fn in filenames:
            if fn.endswith(_SKIP_SUFFIXES):
                continue
            path = Path(dirpath) / fn
            if path.is_symlink() or not path.is_file():
                raise ValueError(f"not a regular file: {path.relative_to(root)}")
            out.append((path.relative_to(root).as_posix(), path))
    out.sort(key=lambda item: item[0])
    return out


def _mode(path: Path) -> int:
    return 0o755 if os.access(path, os.X_OK) else 0o644


def content_hash(root: str | os.PathLike[str]) -> str:
    """sha256 over (relative path, exec bit, file sha256) of every file: 64 hex chars."""
    root = Path(root)
    h = hashlib.sha256(_HASH_SCHEME)
    for rel, path in _files(root):
        file_digest = hashlib.sha256(path.read_bytes()).hexdigest()
        h.update(f"{rel}\0{_mode(path):o}\0{file_digest}\n".encode())
    return h.hexdigest()


def pack(root: str | os.PathLike[str]) -> bytes:
    """The folder's files as deterministic tar.gz bytes (paths relative to the folder)."""
    root = Path(root)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in _files(root):
            data = path.read_bytes()
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = _mode(path)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def unpack(data: bytes, dest: str | os.PathLike[str]) -> Path:
    """Extract package bytes into dest (created if missing); returns dest."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"package entry {m.name!r} is not a regular file or directory")
        tar.extractall(dest, members=members, filter="data")
    return dest
