"""Tenants and their API keys.

Store: ``<home>/tenants.json`` (mode 0600, replaced atomically under a file lock). A key
looks like ``sy_<keyid>_<secret>``: ``keyid`` (12 chars of a-z0-9) is not secret and is
how a key is looked up; only a salted scrypt hash of the secret is stored, and the hash
is compared with :func:`hmac.compare_digest`. The full key is shown once, by
:meth:`Tenants.add_tenant`. A process caches keys it has verified (under an HMAC with a
per-process random pepper, never the key itself) until ``tenants.json`` changes, so the
slow hash is paid once per key and process, and removing a tenant takes effect at once.

What a tenant may see and do is runtime/views.py's; serving them, runtime/serving.py's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from .config import get_settings
from .errors import TenantError

log = structlog.get_logger(__name__)

TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"  # for JSON Schema / OpenAPI; Python code uses fullmatch
TENANT_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
KEY_RE = re.compile(r"sy_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")
TENANTS_FILE = "tenants.json"
LOCK_FILE = ".tenants.lock"
# scrypt: 16 MiB and ~50 ms per hash; the parameters are stored with each hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_KEYID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def validate_tenant(name: str) -> str:
    """`name` if it is a tenant name (1-32 of a-z, 0-9 and '-'), else TenantError."""
    if not isinstance(name, str) or not TENANT_RE.fullmatch(name):
        raise TenantError(
            f"invalid tenant name {name!r}: use 1-32 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _hash_secret(secret: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=128 * r * n * 2 + 1024 * 1024, dklen=32
    )


@dataclass(frozen=True)
class Tenant:
    """A tenant as stored: its name, whether it is an admin, its own run limit."""

    name: str
    admin: bool = False
    created_at: str = ""
    max_concurrent_runs: int | None = None

    def home(self, base: Path) -> Path:
        """The tenant's own state folder under `base`."""
        return Path(base) / "tenants" / validate_tenant(self.name)

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data (never with keys)."""
        return {
            "name": self.name,
            "admin": self.admin,
            "created_at": self.created_at,
            "max_concurrent_runs": self.max_concurrent_runs,
        }


class Tenants:
    """The tenant registry of one SKILLYARD_HOME. Thread-safe; safe across processes."""

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home)
        self.path = self.home / TENANTS_FILE
        self._lock = threading.RLock()
        self._sig: tuple[int, int, int] | None = None
        self._data: dict[str, Any] = {"version": 1, "tenants": {}}
        self._pepper = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[str, str]] = {}  # hmac(pepper, key) -> (tenant, keyid)

    # -- storage ---------------------------------------------------------------------------------
    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> dict[str, Any]:
        """The current contents, re-read only when the file changed (cheap per request)."""
        with self._lock:
            sig = self._signature()
            if sig != self._sig:
                if sig is None:
                    data: dict[str, Any] = {"version": 1, "tenants": {}}
                else:
                    try:
                        data = json.loads(self.path.read_text(encoding="utf-8"))
                    except (OSError, ValueError) as exc:
                        raise TenantError(
                            f"{self.path} is unreadable ({exc}); restore it or remove it"
                        ) from exc
                    if not isinstance(data, dict) or not isinstance(data.get("tenants"), dict):
                        raise TenantError(f"{self.path} is not a tenants file")
                self._data, self._sig = data, sig
                self._verified.clear()
            return self._data

    def _save(self, data: dict[str, Any]) -> None:
        """Write atomically: a 0600 temp file in the same folder, fsync, rename over."""
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{TENANTS_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        try:
            dfd = os.open(self.home, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        self._sig = None  # re-read on next access

    def _modify(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        from filelock import FileLock

        self.home.mkdir(parents=True, exist_ok=True)
        with self._lock, FileLock(str(self.home / LOCK_FILE), timeout=30):
            self._sig = None
            data = json.loads(json.dumps(self._load()))  # a private copy
            result = change(data)
            self._save(data)
            return result

    @staticmethod
    def _tenant(name: str, raw: dict[str, Any]) -> Tenant:
        return Tenant(
            name=name,
            admin=bool(raw.get("admin")),
            created_at=str(raw.get("created_at", "")),
            max_concurrent_runs=raw.get("max_concurrent_runs"),
        )

    # -- operations ------------------------------------------------------------------------------
    def add_tenant(self, name: str, admin: bool = False, *, max_concurrent_runs: int | None = None) -> str:
        """Create a tenant and return its API key (shown once; only its hash is kept)."""
        validate_tenant(name)
        if max_concurrent_runs is not None and not 1 <= int(max_concurrent_runs) <= 256:
            raise TenantError("max_concurrent_runs must be between 1 and 256")
        key_id = "".join(secrets.choice(_KEYID_ALPHABET) for _ in range(12))
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        digest = _hash_secret(secret, salt)

        def change(data: dict[str, Any]) -> None:
            if name in data["tenants"]:
                raise TenantError(f"tenant {name!r} exists; remove it first or pick another name")
            data["tenants"][name] = {
                "admin": bool(admin),
                "created_at": _now(),
                "max_concurrent_runs": max_concurrent_runs,
                "keys": [
                    {
                        "id": key_id,
                        "kdf": f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}",
                        "salt": salt.hex(),
                        "hash": digest.hex(),
                        "created_at": _now(),
                    }
                ],
            }

        self._modify(change)
        log.info("tenant_added", tenant=name, admin=bool(admin))
        return f"sy_{key_id}_{secret}"

    def remove(self, name: str, *, purge: bool = False) -> bool:
        """Remove a tenant (its keys stop working at once). With purge, delete its skills too."""
        validate_tenant(name)

        def change(data: dict[str, Any]) -> bool:
            return data["tenants"].pop(name, None) is not None

        removed = self._modify(change)
        if purge:
            home = Tenant(name).home(self.home)
            if home.exists():
                shutil.rmtree(home)
        return bool(removed)

    def list(self) -> list[Tenant]:
        """Every tenant, by name."""
        data = self._load()
        return [self._tenant(n, raw) for n, raw in sorted(data["tenants"].items())]

    def get(self, name: str) -> Tenant | None:
        """The tenant `name`, or None."""
        raw = self._load()["tenants"].get(name)
        return None if raw is None else self._tenant(name, raw)

    def __bool__(self) -> bool:
        return bool(self._load()["tenants"])

    def authenticate(self, key: str | None) -> Tenant | None:
        """The tenant a key belongs to, or None. Constant-time in the secret."""
        if not key or not isinstance(key, str) or len(key) > 100:
            return None
        m = KEY_RE.fullmatch(key)
        if m is None:
            return None
        key_id, secret = m.group(1), m.group(2)
        data = self._load()
        tag = hmac.new(self._pepper, key.encode(), hashlib.sha256).digest()
        with self._lock:
            hit = self._verified.get(tag)
        if hit is not None:
            raw = data["tenants"].get(hit[0])
            return None if raw is None else self._tenant(hit[0], raw)
        found: tuple[str, dict[str, Any]] | None = None
        for tname, raw in data["tenants"].items():
            for k in raw.get("keys", []):
                if hmac.compare_digest(str(k.get("id", "")), key_id):
                    found = (tname, k)
        if found is None:
            return None
        tname, rec = found
        try:
            _, n, r, p = str(rec.get("kdf", "scrypt:16384:8:1")).split(":")
            digest = _hash_secret(secret, bytes.fromhex(rec["salt"]), int(n), int(r), int(p))
            expected = bytes.fromhex(rec["hash"])
        except (KeyError, ValueError) as exc:
            log.error("tenant_key_record_unreadable", tenant=tname, error=str(exc))
            return None
        if not hmac.compare_digest(digest, expected):
            return None
        with self._lock:
            if self._sig == self._signature():
                self._verified[tag] = (tname, key_id)
        raw = data["tenants"].get(tname)
        return None if raw is None else self._tenant(tname, raw)


def bearer_key(authorization: str | None) -> str | None:
    """The key in an ``Authorization: Bearer KEY`` header's value, or None."""
    if not authorization:
        return None
    parts = authorization.strip().split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1].strip()


# -- module-level conveniences on the configured home -------------------------------------------------
def _store(home: str | Path | None = None) -> Tenants:
    return Tenants(home if home is not None else get_settings().home)


def add_tenant(
    name: str, admin: bool = False, *, home: str | Path | None = None, max_concurrent_runs: int | None = None
) -> str:
    """Add a tenant to `home` (default: the configured one); its key, shown once."""
    return _store(home).add_tenant(name, admin, max_concurrent_runs=max_concurrent_runs)


def authenticate(key: str, *, home: str | Path | None = None) -> Tenant | None:
    """The tenant `key` belongs to in `home`, or None."""
    return _store(home).authenticate(key)


def remove_tenant(name: str, *, home: str | Path | None = None, purge: bool = False) -> bool:
    """Remove a tenant of `home` (with `purge`, its skills too); whether there was one."""
    return _store(home).remove(name, purge=purge)


def list_tenants(*, home: str | Path | None = None) -> list[Tenant]:
    """The tenants of `home`, by name."""
    return _store(home).list()
