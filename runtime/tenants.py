"""Tenants, their API keys, and what each tenant may see and do.

Store: ``<home>/tenants.json`` (mode 0600, replaced atomically under a file lock). A key
looks like ``sy_<keyid>_<secret>``: ``keyid`` (12 chars of a-z0-9) is not secret and is
how a key is looked up; only a salted scrypt hash of the secret is stored, and the hash
is compared with :func:`hmac.compare_digest`. The full key is shown once, by
:meth:`Tenants.add_tenant`. A process caches keys it has verified (under an HMAC with a
per-process random pepper, never the key itself) until ``tenants.json`` changes, so the
slow hash is paid once per key and process, and removing a tenant takes effect at once.

Isolation is by construction: each tenant has its own Yard -- its own LanceDB store and
workspace under ``<home>/tenants/<tenant>/`` -- and the shared skills live in the default
store at ``<home>``. A :class:`TenantView` resolves a skill name to the tenant's private
skill if it has one, else to the shared one; it has no path to another tenant's store.
Only an admin key may change shared skills. A non-admin's calls of a shared skill run in
a per-tenant view of the shared store (``<home>/tenants/<tenant>/shared/``), so the
notes and failing inputs those calls leave stay with that tenant.
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
from typing import TYPE_CHECKING, Any, Literal

import click
import structlog

from .config import Settings, get_settings
from .errors import ConfigError, Forbidden, InvalidName, TenantError, UnknownSkill
from .names import validate_name

if TYPE_CHECKING:
    from .calls import CallResult
    from .records import SkillRecord
    from .yard import Yard

log = structlog.get_logger(__name__)

TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"  # for JSON Schema / OpenAPI; Python code uses fullmatch
TENANT_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
KEY_RE = re.compile(r"sy_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")
TENANTS_FILE = "tenants.json"
LOCK_FILE = ".tenants.lock"
DEFAULT_MAX_RUNS = 4
# scrypt: 16 MiB and ~50 ms per hash; the parameters are stored with each hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_KEYID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

Scope = Literal["auto", "private", "shared"]


def validate_tenant(name: str) -> str:
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
    name: str
    admin: bool = False
    created_at: str = ""
    max_concurrent_runs: int | None = None

    def home(self, base: Path) -> Path:
        return Path(base) / "tenants" / validate_tenant(self.name)

    def to_dict(self) -> dict[str, Any]:
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
        data = self._load()
        return [self._tenant(n, raw) for n, raw in sorted(data["tenants"].items())]

    def get(self, name: str) -> Tenant | None:
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


def tenant_settings(base: Settings, tenant: str) -> Settings:
    """Settings for a tenant's private yard: its own home and store; the shared wheelhouse and images."""
    home = Path(base.home) / "tenants" / validate_tenant(tenant)
    return base.model_copy(update={"home": home, "store_uri": None, "wheelhouse": base.wheel_dir})


def shared_view_settings(base: Settings, tenant: str) -> Settings:
    """Settings for a tenant's calls of shared skills: the shared store, a per-tenant workspace."""
    home = Path(base.home) / "tenants" / validate_tenant(tenant) / "shared"
    return base.model_copy(update={"home": home, "store_uri": base.store, "wheelhouse": base.wheel_dir})


# -- what a tenant sees ------------------------------------------------------------------------------
@dataclass
class Target:
    """A resolved skill: which yard holds it and whether it is the tenant's own or shared."""

    name: str
    scope: Literal["private", "shared"]
    yard: Yard  # the yard that holds it (and records changes to it)
    run_yard: Yard  # the yard whose workspace the tenant's calls write to
    record: SkillRecord


@dataclass
class TenantView:
    """One tenant's window: its private yard, the shared yard, nothing else.

    ``tenant=None`` is the local operator (the CLI user, a stdio MCP server started without
    --tenant): no private store, full control of the shared one.
    """

    tenant: Tenant | None
    shared: Yard
    private: Yard | None = None
    shared_view: Yard | None = None

    @property
    def name(self) -> str:
        return self.tenant.name if self.tenant else "local"

    @property
    def admin(self) -> bool:
        return self.tenant is None or self.tenant.admin

    def resolve(self, name: str, scope: Scope = "auto", version: int | None = None) -> Target:
        """The skill NAME as this tenant sees it. Raises NotFound (also for invalid names)."""
        try:
            validate_name(name)
        except InvalidName as exc:
            raise UnknownSkill(f"no skill {name!r}") from exc
        if scope in ("auto", "private") and self.private is not None:
            rec = self.private.registry.get(name)
            if rec is not None:
                if version is not None:
                    rec = self.private.registry.get(name, version)
                    if rec is None:
                        raise UnknownSkill(f"no skill {name} v{version}")
                return Target(name, "private", self.private, self.private, rec)
        if scope in ("auto", "shared"):
            rec = self.shared.registry.get(name, version)
            if rec is not None:
                run_yard = self.shared if self.admin or self.shared_view is None else self.shared_view
                return Target(name, "shared", self.shared, run_yard, rec)
        what = f"{name} v{version}" if version is not None else name
        raise UnknownSkill(f"no skill {what}")  # each surface adds how to list skills there

    def check_change(self, target: Target) -> None:
        if target.scope == "shared" and not self.admin:
            raise Forbidden(
                f"{target.name} is a shared skill: only an admin key may change it "
                "(import your own version to shadow it)"
            )

    def yard_for_new(self, shared: bool) -> Yard:
        """Where an import or create goes."""
        if shared or self.private is None:
            if not self.admin:
                raise Forbidden("only an admin key may add shared skills")
            return self.shared
        return self.private

    def records(
        self, scope: Literal["private", "shared", "all"] = "all", status: str | None = None
    ) -> list[tuple[SkillRecord, str]]:
        """(record, scope) per visible skill; a private skill hides the shared one of its name."""
        out: list[tuple[SkillRecord, str]] = []
        names: set[str] = set()
        if scope in ("private", "all") and self.private is not None:
            for rec in self.private.list(status):
                out.append((rec, "private"))
                names.add(rec.name)
        if scope in ("shared", "all"):
            for rec in self.shared.list(status):
                if rec.name not in names:
                    out.append((rec, "shared"))
        return sorted(out, key=lambda t: t[0].name)

    def search(self, query: str, limit: int = 5) -> list[tuple[SkillRecord, float, str]]:
        """Hybrid search over the private and shared stores, merged rank by rank."""
        lists: list[list[tuple[SkillRecord, float, str]]] = []
        private_names: set[str] = set()
        if self.private is not None:
            lists.append([(r, s, "private") for r, s in self.private.search(query, limit=limit)])
            private_names = {r.name for r in self.private.list()}
        lists.append(
            [
                (r, s, "shared")
                for r, s in self.shared.search(query, limit=limit)
                if r.name not in private_names
            ]
        )
        merged: list[tuple[SkillRecord, float, str]] = []
        seen: set[str] = set()
        for rank in range(max((len(x) for x in lists), default=0)):
            for hits in lists:
                if rank < len(hits) and hits[rank][0].name not in seen:
                    merged.append(hits[rank])
                    seen.add(hits[rank][0].name)
        return merged[:limit]

    def run(self, target: Target, params: Any, version: int | None = None) -> CallResult:
        return target.run_yard.run(target.name, params, version=version)


class Yards:
    """The yards one server process serves: the shared one, and per tenant a private one and a
    view of the shared one. Yards are made by `yard_factory(settings)` and kept for the process."""

    def __init__(
        self,
        settings: Settings,
        yard_factory: Callable[[Settings], Yard] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._factory = yard_factory
        self._progress = progress
        self._lock = threading.Lock()
        self._yards: dict[tuple[str, str], Yard] = {}
        self.shared = self._make(settings)

    def _make(self, settings: Settings) -> Yard:
        if self._factory is not None:
            yard = self._factory(settings)
        else:
            from .yard import Yard

            shared = getattr(self, "shared", None)
            # long-lived whatever the pool: a server with pool_size 0 (cold calls only) still
            # keeps accounting off the call path
            yard = Yard(settings, sandbox=shared.sandbox if shared is not None else None, long_lived=True)
        if self._progress is not None:
            yard.progress = self._progress
        return yard

    def _get(self, kind: str, tenant: str, make_settings: Callable[[Settings, str], Settings]) -> Yard:
        key = (kind, tenant)
        with self._lock:
            yard = self._yards.get(key)
            if yard is None:
                yard = self._yards[key] = self._make(make_settings(self.settings, tenant))
                # Warm containers are pooled per tenant: one that served this tenant serves no other.
                yard.tenant = tenant
            return yard

    def all(self) -> list[Yard]:
        with self._lock:
            return [self.shared, *self._yards.values()]

    def close(self) -> None:
        """Stop every yard's warm containers (call at shutdown)."""
        for yard in self.all():
            close = getattr(yard, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - shutting down: log and go on
                    log.warning("yard_close_failed", home=str(yard.settings.home), error=str(exc))

    def view(self, tenant: Tenant | None) -> TenantView:
        if tenant is None:
            return TenantView(tenant=None, shared=self.shared)
        private = self._get("private", tenant.name, tenant_settings)
        shared_view = None if tenant.admin else self._get("shared", tenant.name, shared_view_settings)
        return TenantView(tenant=tenant, shared=self.shared, private=private, shared_view=shared_view)

    def forget(self, tenant: str) -> None:
        with self._lock:
            for kind in ("private", "shared"):
                self._yards.pop((kind, tenant), None)


def configured_max_runs(settings: Settings | None = None) -> int:
    """The per-tenant default of concurrent runs for a server process: the settings' max_concurrent_runs
    if they have one, else SKILLYARD_MAX_CONCURRENT_RUNS, else DEFAULT_MAX_RUNS. Each server process
    (HTTP, MCP) counts its own runs: the limit is per process, not across processes."""
    value = getattr(settings, "max_concurrent_runs", None) if settings is not None else None
    if value is None:
        value = os.environ.get("SKILLYARD_MAX_CONCURRENT_RUNS", "").strip() or DEFAULT_MAX_RUNS
    try:
        n = int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"SKILLYARD_MAX_CONCURRENT_RUNS={value!r} is not a whole number") from exc
    if n < 1:
        raise ConfigError(f"SKILLYARD_MAX_CONCURRENT_RUNS={n} must be at least 1")
    return n


class RunLimiter:
    """Concurrent runs per tenant: try_acquire is non-blocking (over the limit -> False)."""

    def __init__(self, default_limit: int = DEFAULT_MAX_RUNS) -> None:
        self.default_limit = max(1, int(default_limit))
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def limit_for(self, tenant: Tenant | None) -> int:
        if tenant is not None and tenant.max_concurrent_runs:
            return int(tenant.max_concurrent_runs)
        return self.default_limit

    def try_acquire(self, tenant: Tenant | None) -> bool:
        name = tenant.name if tenant else "local"
        with self._lock:
            n = self._counts.get(name, 0)
            if n >= self.limit_for(tenant):
                return False
            self._counts[name] = n + 1
            return True

    def release(self, tenant: Tenant | None) -> None:
        name = tenant.name if tenant else "local"
        with self._lock:
            n = self._counts.get(name, 0) - 1
            if n <= 0:
                self._counts.pop(name, None)
            else:
                self._counts[name] = n

    def active(self, tenant: Tenant | None) -> int:
        with self._lock:
            return self._counts.get(tenant.name if tenant else "local", 0)


# -- module-level conveniences on the configured home -------------------------------------------------
def _store(home: str | Path | None = None) -> Tenants:
    return Tenants(home if home is not None else get_settings().home)


def add_tenant(
    name: str, admin: bool = False, *, home: str | Path | None = None, max_concurrent_runs: int | None = None
) -> str:
    return _store(home).add_tenant(name, admin, max_concurrent_runs=max_concurrent_runs)


def authenticate(key: str, *, home: str | Path | None = None) -> Tenant | None:
    return _store(home).authenticate(key)


def remove_tenant(name: str, *, home: str | Path | None = None, purge: bool = False) -> bool:
    return _store(home).remove(name, purge=purge)


def list_tenants(*, home: str | Path | None = None) -> list[Tenant]:
    return _store(home).list()


# -- CLI -------------------------------------------------------------------------------------------
def _quiet_logs() -> None:
    """Run standalone (not under the main CLI, which sets logging up), log to stderr only."""
    if not structlog.is_configured():
        from . import logs

        logs.configure("WARNING")


@click.group("tenant")
def tenant_group() -> None:
    """Tenants of the HTTP API and their API keys."""
    _quiet_logs()


@tenant_group.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="The key may change shared skills.")
@click.option(
    "--max-runs", type=int, default=None, help=f"Concurrent runs allowed (default {DEFAULT_MAX_RUNS})."
)
@click.option("--json", "as_json", is_flag=True)
def tenant_add(name: str, admin: bool, max_runs: int | None, as_json: bool) -> None:
    """Add tenant NAME and print its API key (once: only a hash of it is stored)."""
    try:
        key = add_tenant(name, admin, max_concurrent_runs=max_runs)
    except TenantError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"tenant": name, "admin": admin, "key": key}))
    else:
        click.echo(key)
        click.echo(
            f"tenant {name}{' (admin)' if admin else ''} added; the key above is shown only now: "
            "store it safely (Authorization: Bearer KEY)",
            err=True,
        )


@tenant_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def tenant_list(as_json: bool) -> None:
    """Tenants (never their keys)."""
    try:
        tenants = list_tenants()
    except TenantError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in tenants], indent=2))
        return
    if not tenants:
        click.echo("no tenants: add one with `skillyard tenant add NAME [--admin]`")
    for t in tenants:
        click.echo(
            f"{t.name:<34}{'admin' if t.admin else 'tenant':<8}{t.created_at}"
            f"{'  max-runs ' + str(t.max_concurrent_runs) if t.max_concurrent_runs else ''}"
        )


@tenant_group.command("remove")
@click.argument("name")
@click.option("--purge", is_flag=True, help="Also delete the tenant's private skills and workspace.")
def tenant_remove(name: str, purge: bool) -> None:
    """Remove tenant NAME: its key stops working at once."""
    try:
        removed = remove_tenant(name, purge=purge)
    except TenantError as exc:
        raise click.ClickException(str(exc)) from exc
    if not removed:
        raise click.ClickException(f"no tenant {name!r}")
    click.echo(
        f"tenant {name} removed"
        + (" with its skills" if purge else " (its skills are kept; --purge deletes them)")
    )


if __name__ == "__main__":  # python -m runtime.tenants add NAME [--admin]
    tenant_group()
