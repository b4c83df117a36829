"""Tenants and their API keys.

Store: ``<home>/tenants.json`` (mode 0600, replaced atomically under a file lock). A key
looks like ``sy_<keyid>_<secret>``: ``keyid`` (12 chars of a-z0-9) is not secret and is
how a key is looked up; only a salted scrypt hash of the secret is stored, and the hash
is compared with :func:`hmac.compare_digest`. The full key is shown once, when it is made
(:meth:`Tenants.add_tenant`, :meth:`Tenants.add_key`, :meth:`Tenants.rotate_key`). A
process caches keys it has verified (under an HMAC with a per-process random pepper,
never the key itself) until ``tenants.json`` changes, so the slow hash is paid once per
key and process, and removing a tenant or a key takes effect at once.

Keys: a tenant has one or more (at most MAX_KEYS), each with an optional ``expires_at``
after which it opens nothing; rotating a key makes a new one and lets the old one expire
after an overlap, so clients can switch without a gap. When a key was last used is kept
apart, in ``<home>/keys-used.json``, to the minute (USE_RESOLUTION_S): writing it into
``tenants.json`` would throw every process's verified keys away on every request.

Invariants: a key authenticates only while its tenant exists, its record exists and it
has not expired; a tenant whose name is reserved (RESERVED_TENANTS: names the system
itself uses) is never created and never authenticated.

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from .config import get_settings
from .errors import InvalidTenantName, TenantConflict, TenantError, UnknownTenant
from .times import as_utc

log = structlog.get_logger(__name__)

TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"  # for JSON Schema / OpenAPI; Python code uses fullmatch
TENANT_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
KEY_RE = re.compile(r"sy_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")
TENANTS_FILE = "tenants.json"
LOCK_FILE = ".tenants.lock"
USED_FILE = "keys-used.json"
USED_LOCK_FILE = ".keys-used.lock"
USE_RESOLUTION_S = 60.0  # last_used is written at most this often per key and process
MAX_KEYS = 10  # keys per tenant, expired ones included until they are pruned
PRUNE_AFTER_S = 7 * 86400  # expired keys are dropped this long after they expired
DEFAULT_OVERLAP = timedelta(hours=1)  # how long a rotated key keeps working by default
MAX_OVERLAP = timedelta(days=30)
# scrypt: 16 MiB and ~50 ms per hash; the parameters are stored with each hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_KEYID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# Names the system itself uses where a tenant's name appears: `local` is the operator's
# identity in the audit trail and in jobs (runtime.views.TenantView.name), the others are
# scopes and words of the API. A tenant of such a name could read what is not its own.
RESERVED_TENANTS = frozenset({"local", "operator", "system", "skillyard", "shared", "private", "all", "auto"})


class Unset:
    """The type of UNSET: a parameter not given (None means something)."""


UNSET = Unset()


def validate_tenant(name: str) -> str:
    """`name` if it is a tenant name (1-32 of a-z, 0-9 and '-'), else InvalidTenantName."""
    if not isinstance(name, str) or not TENANT_RE.fullmatch(name):
        raise InvalidTenantName(
            f"invalid tenant name {name!r}: use 1-32 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return name


def validate_new_tenant(name: str) -> str:
    """`name` if a tenant may be created with it: a tenant name the system does not use."""
    validate_tenant(name)
    if name in RESERVED_TENANTS:
        raise InvalidTenantName(
            f"tenant name {name!r} is reserved (the system uses it: `local` is the operator's identity); "
            "pick another name"
        )
    return name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _iso(ts: datetime) -> str:
    return as_utc(ts).isoformat(timespec="seconds")


def _hash_secret(secret: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=128 * r * n * 2 + 1024 * 1024, dklen=32
    )


def _new_key(expires_at: datetime | None, label: str | None) -> tuple[str, dict[str, Any]]:
    """A new key (the only time it exists in full) and the record kept of it: its hash."""
    key_id = "".join(secrets.choice(_KEYID_ALPHABET) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    record: dict[str, Any] = {
        "id": key_id,
        "kdf": f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}",
        "salt": salt.hex(),
        "hash": _hash_secret(secret, salt).hex(),
        "created_at": _now(),
    }
    if expires_at is not None:
        record["expires_at"] = _iso(expires_at)
    if label:
        record["label"] = label
    return f"sy_{key_id}_{secret}", record


def _expiry(record: dict[str, Any]) -> float | None:
    """A key record's expiry as a POSIX time (None: it does not expire)."""
    raw = record.get("expires_at")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw)).timestamp()
    except ValueError:
        return 0.0  # unreadable: treat as expired, never as valid forever


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


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: never the key or its hash."""

    id: str
    tenant: str
    created_at: str
    expires_at: str | None = None
    last_used: str | None = None
    label: str | None = None

    @property
    def expired(self) -> bool:
        """Whether the key has expired (it opens nothing)."""
        return self.expires_at is not None and datetime.fromisoformat(self.expires_at) <= datetime.now(UTC)

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "label": self.label,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "expired": self.expired,
            "last_used": self.last_used,
        }


@dataclass(frozen=True)
class _KeyEntry:
    """A key as the process indexes it: its tenant, its record, its expiry (POSIX time)."""

    tenant: str
    record: dict[str, Any]
    expires: float | None


class Tenants:
    """The tenant registry of one SKILLYARD_HOME. Thread-safe; safe across processes."""

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home)
        self.path = self.home / TENANTS_FILE
        self.used_path = self.home / USED_FILE
        self._lock = threading.RLock()
        self._sig: tuple[int, int, int] | None = None
        self._data: dict[str, Any] = {"version": 1, "tenants": {}}
        self._keys: dict[str, _KeyEntry] = {}  # key id -> entry, rebuilt when the file changes
        self._pepper = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[str, str]] = {}  # hmac(pepper, key) -> (tenant, keyid)
        self._used: dict[str, float] = {}  # key id -> last use seen by this process (POSIX time)
        self._used_saved: dict[str, float] = {}  # key id -> the last use this process wrote
        self._uses_due = False

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
                self._keys = {
                    str(k.get("id", "")): _KeyEntry(name, k, _expiry(k))
                    for name, raw in data["tenants"].items()
                    for k in raw.get("keys", [])
                }
                self._verified.clear()
            return self._data

    @staticmethod
    def _write_json(path: Path, data: Any) -> None:
        """Write atomically: a 0600 temp file in the same folder, fsync, rename over."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        try:
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass

    def _save(self, data: dict[str, Any]) -> None:
        self._write_json(self.path, data)
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

    @staticmethod
    def _existing(data: dict[str, Any], name: str) -> dict[str, Any]:
        raw = data["tenants"].get(validate_tenant(name))
        if raw is None:
            raise UnknownTenant(f"no tenant {name!r}")
        return raw

    @staticmethod
    def _check_runs(max_concurrent_runs: int | None) -> None:
        if max_concurrent_runs is not None and not 1 <= int(max_concurrent_runs) <= 256:
            raise InvalidTenantName("max_concurrent_runs must be between 1 and 256")

    @staticmethod
    def _check_expiry(expires_at: datetime | None) -> None:
        if expires_at is not None and as_utc(expires_at) <= datetime.now(UTC):
            raise InvalidTenantName(f"expires_at {_iso(expires_at)} is in the past")

    @staticmethod
    def _prune_expired(raw: dict[str, Any]) -> None:
        """Drop key records that expired more than PRUNE_AFTER_S ago (they open nothing)."""
        cutoff = datetime.now(UTC).timestamp() - PRUNE_AFTER_S
        raw["keys"] = [k for k in raw.get("keys", []) if (_expiry(k) or float("inf")) > cutoff]

    def _info(self, tenant: str, record: dict[str, Any], used: dict[str, str] | None = None) -> KeyInfo:
        key_id = str(record.get("id", ""))
        seen = (used or {}).get(key_id)
        mine = self._used.get(key_id)
        if mine is not None:
            mine_iso = datetime.fromtimestamp(mine, UTC).isoformat(timespec="seconds")
            seen = max(seen, mine_iso) if seen else mine_iso
        return KeyInfo(
            id=key_id,
            tenant=tenant,
            created_at=str(record.get("created_at", "")),
            expires_at=record.get("expires_at"),
            last_used=seen,
            label=record.get("label"),
        )

    # -- tenants ---------------------------------------------------------------------------------
    def add_tenant(
        self,
        name: str,
        admin: bool = False,
        *,
        max_concurrent_runs: int | None = None,
        expires_at: datetime | None = None,
        label: str | None = None,
    ) -> str:
        """Create a tenant and return its API key (shown once; only its hash is kept).
        `expires_at`: when that key stops working (default: never)."""
        validate_new_tenant(name)
        self._check_runs(max_concurrent_runs)
        self._check_expiry(expires_at)
        key, record = _new_key(expires_at, label)

        def change(data: dict[str, Any]) -> None:
            if name in data["tenants"]:
                raise TenantConflict(f"tenant {name!r} exists; remove it first or pick another name")
            data["tenants"][name] = {
                "admin": bool(admin),
                "created_at": _now(),
                "max_concurrent_runs": max_concurrent_runs,
                "keys": [record],
            }

        self._modify(change)
        log.info("tenant_added", tenant=name, admin=bool(admin))
        return key

    def update(
        self, name: str, *, admin: bool | None = None, max_concurrent_runs: int | None | Unset = UNSET
    ) -> Tenant:
        """Change a tenant's admin flag or run limit (None: the server's default)."""
        if not isinstance(max_concurrent_runs, Unset):
            self._check_runs(max_concurrent_runs)

        def change(data: dict[str, Any]) -> Tenant:
            raw = self._existing(data, name)
            if admin is not None:
                raw["admin"] = bool(admin)
            if not isinstance(max_concurrent_runs, Unset):
                raw["max_concurrent_runs"] = max_concurrent_runs
            return self._tenant(name, raw)

        tenant = self._modify(change)
        log.info("tenant_updated", tenant=name, admin=tenant.admin, max_runs=tenant.max_concurrent_runs)
        return tenant

    def remove(self, name: str, *, purge: bool = False) -> bool:
        """Remove a tenant (its keys stop working at once). With purge, delete its skills too."""
        validate_tenant(name)

        def change(data: dict[str, Any]) -> bool:
            return data["tenants"].pop(name, None) is not None

        removed = self._modify(change)
        if purge:
            self.purge(name)
        return bool(removed)

    def purge(self, name: str) -> None:
        """Delete a tenant's private skills and workspace (`<home>/tenants/<name>`); its audit
        trail is kept. Close what has its store open first."""
        home = Tenant(name).home(self.home)
        if home.exists():
            shutil.rmtree(home)

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

    # -- keys ------------------------------------------------------------------------------------
    def keys(self, name: str) -> list[KeyInfo]:
        """The tenant's keys, oldest first (expired ones too, until they are pruned)."""
        raw = self._existing(self._load(), name)
        used = self._read_used()
        return [self._info(name, k, used) for k in raw.get("keys", [])]

    def add_key(
        self, name: str, *, expires_at: datetime | None = None, label: str | None = None
    ) -> tuple[str, KeyInfo]:
        """A new key for the tenant (shown once) and what may be shown of it."""
        self._check_expiry(expires_at)
        key, record = _new_key(expires_at, label)

        def change(data: dict[str, Any]) -> None:
            raw = self._existing(data, name)
            self._prune_expired(raw)
            if len(raw["keys"]) >= MAX_KEYS:
                raise TenantConflict(
                    f"tenant {name!r} has {len(raw['keys'])} keys, the most it may have: revoke one first"
                )
            raw["keys"].append(record)

        self._modify(change)
        log.info("key_added", tenant=name, key_id=record["id"])
        return key, self._info(name, record)

    def rotate_key(
        self,
        name: str,
        key_id: str,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        expires_at: datetime | None = None,
        label: str | None = None,
    ) -> tuple[str, KeyInfo, KeyInfo]:
        """Replace key `key_id` with a new one (shown once): the old key keeps working for
        `overlap` more (never longer than it would have), so clients can switch without a
        gap. Returns (new key, its info, the old key's info with its new expiry)."""
        if overlap < timedelta(0) or overlap > MAX_OVERLAP:
            raise InvalidTenantName(f"the overlap must be between 0 and {MAX_OVERLAP.days} days")
        self._check_expiry(expires_at)
        key, record = _new_key(expires_at, label)
        ends = datetime.now(UTC) + overlap

        def change(data: dict[str, Any]) -> dict[str, Any]:
            raw = self._existing(data, name)
            old = next((k for k in raw.get("keys", []) if k.get("id") == key_id), None)
            if old is None:
                raise UnknownTenant(f"tenant {name!r} has no key {key_id!r}")
            current = _expiry(old)
            if current is None or current > ends.timestamp():
                old["expires_at"] = _iso(ends)
            self._prune_expired(raw)
            if len(raw["keys"]) >= MAX_KEYS:
                raise TenantConflict(
                    f"tenant {name!r} has {len(raw['keys'])} keys, the most it may have: revoke one first"
                )
            raw["keys"].append(record)
            return dict(old)

        old = self._modify(change)
        log.info(
            "key_rotated", tenant=name, key_id=key_id, new_key_id=record["id"], old_expires=old["expires_at"]
        )
        return key, self._info(name, record), self._info(name, old, self._read_used())

    def revoke_key(self, name: str, key_id: str) -> KeyInfo:
        """Remove key `key_id`: it stops working at once (in every process: the file changes)."""

        def change(data: dict[str, Any]) -> dict[str, Any]:
            raw = self._existing(data, name)
            old = next((k for k in raw.get("keys", []) if k.get("id") == key_id), None)
            if old is None:
                raise UnknownTenant(f"tenant {name!r} has no key {key_id!r}")
            raw["keys"] = [k for k in raw["keys"] if k is not old]
            return old

        old = self._modify(change)
        log.info("key_revoked", tenant=name, key_id=key_id)
        return self._info(name, old, self._read_used())

    # -- when keys were last used ------------------------------------------------------------------
    def _read_used(self) -> dict[str, str]:
        try:
            data = json.loads(self.used_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _note_use(self, key_id: str) -> None:
        now = time.time()
        with self._lock:
            self._used[key_id] = now
            if now - self._used_saved.get(key_id, 0.0) >= USE_RESOLUTION_S:
                self._uses_due = True

    @property
    def uses_due(self) -> bool:
        """Whether a key's use is newer than what was written by USE_RESOLUTION_S: call save_uses."""
        return self._uses_due

    def save_uses(self) -> None:
        """Write when this process's keys were last used (merged with other processes')."""
        from filelock import FileLock

        with self._lock:
            if not self._uses_due:
                return
            self._uses_due = False
            mine = dict(self._used)
        try:
            with FileLock(str(self.home / USED_LOCK_FILE), timeout=5):
                merged = self._read_used()
                for key_id, ts in mine.items():
                    iso = datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
                    merged[key_id] = max(merged.get(key_id, iso), iso)
                self._load()  # keys made or revoked since: their uses are kept, or dropped
                known = self._keys
                self._write_json(self.used_path, {k: v for k, v in merged.items() if k in known})
        except Exception as exc:  # noqa: BLE001 - last_used is information: never fail a request for it
            log.warning("key_use_not_saved", error=str(exc)[:200])
            return
        with self._lock:
            for key_id, ts in mine.items():
                self._used_saved[key_id] = max(self._used_saved.get(key_id, 0.0), ts)

    # -- authentication --------------------------------------------------------------------------
    def _admit(self, tenant: str, key_id: str) -> Tenant | None:
        """`tenant` if key `key_id` still opens it: the key exists and has not expired, the
        tenant exists and its name is not reserved. Notes the key's use."""
        data = self._load()
        entry = self._keys.get(key_id)
        if entry is None or entry.tenant != tenant:
            return None
        if entry.expires is not None and entry.expires <= time.time():
            return None
        raw = data["tenants"].get(tenant)
        if raw is None:
            return None
        if tenant in RESERVED_TENANTS:
            log.error("tenant_name_reserved", tenant=tenant, fix="rename it in tenants.json")
            return None
        self._note_use(key_id)
        return self._tenant(tenant, raw)

    def authenticate_cached(self, key: str | None) -> Tenant | None:
        """The tenant of a key this process has verified already, else None (the key may
        still be valid: `authenticate` hashes it). No hashing, no file read unless the
        tenants file changed: cheap enough for an event loop."""
        if not key or not isinstance(key, str) or len(key) > 100:
            return None
        m = KEY_RE.fullmatch(key)
        if m is None:
            return None
        self._load()
        tag = hmac.new(self._pepper, key.encode(), hashlib.sha256).digest()
        with self._lock:
            hit = self._verified.get(tag)
        return None if hit is None else self._admit(*hit)

    def authenticate(self, key: str | None) -> Tenant | None:
        """The tenant a key belongs to, or None. Constant-time in the secret. Writes when
        keys were last used, when that is due."""
        tenant = self._authenticate(key)
        if self._uses_due:
            self.save_uses()
        return tenant

    def _authenticate(self, key: str | None) -> Tenant | None:
        if not key or not isinstance(key, str) or len(key) > 100:
            return None
        m = KEY_RE.fullmatch(key)
        if m is None:
            return None
        key_id, secret = m.group(1), m.group(2)
        self._load()
        tag = hmac.new(self._pepper, key.encode(), hashlib.sha256).digest()
        with self._lock:
            hit = self._verified.get(tag)
            entry = self._keys.get(key_id)
            sig = self._sig
        if hit is not None:
            return self._admit(*hit)
        if entry is None:
            return None
        try:
            _, n, r, p = str(entry.record.get("kdf", "scrypt:16384:8:1")).split(":")
            digest = _hash_secret(secret, bytes.fromhex(entry.record["salt"]), int(n), int(r), int(p))
            expected = bytes.fromhex(entry.record["hash"])
        except (KeyError, ValueError) as exc:
            log.error("tenant_key_record_unreadable", tenant=entry.tenant, error=str(exc))
            return None
        if not hmac.compare_digest(digest, expected):
            return None
        with self._lock:
            if sig == self._sig == self._signature():
                self._verified[tag] = (entry.tenant, key_id)
        return self._admit(entry.tenant, key_id)


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
