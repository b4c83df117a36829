"""Every error the runtime raises on purpose, in one tree, each with its ``kind``.

The root, :class:`SkillyardError`, and the sandbox's branch live in ``sandbox/errors.py``
(the bottom of the import graph); the rest is here::

    SkillyardError                     internal
    ├── SandboxError                   sandbox          the engine failed, not the program
    │   └── ImageMissing               sandbox
    ├── InvalidInput (+ ValueError)    invalid_input    input refused before anything ran
    │   ├── InvalidName                invalid_input    not a skill name
    │   └── PackageError               package          a package that is not valid
    │       └── ArchiveTooLarge        too_large        an archive that expands past the limits (a bomb)
    ├── NotFound                       not_found        no such version, package or job
    │   └── UnknownSkill               not_found        no skill of that name (for this caller)
    ├── Forbidden                      forbidden        may read it, may not change it
    ├── Unauthorized                   unauthorized     no valid API key
    ├── TooBusy                        too_busy         over a per-tenant limit; retry later
    │   ├── TooManyRuns                too_many_runs
    │   └── TooManyJobs                too_many_jobs
    ├── RegistryError                  registry         a refused change of the registry
    │   └── NotRegistered              not_registered   the version may not run (blocked, retired)
    ├── StoreError                     store            the LanceDB store failed (lock, write)
    ├── SkillError                     skill            a lifecycle step refused
    ├── TenantError                    tenant           a tenant operation refused (its file is unreadable)
    │   ├── InvalidTenantName          invalid_input    not a tenant name, or a reserved one
    │   ├── UnknownTenant              not_found        no such tenant or key
    │   └── TenantConflict             conflict         a change that clashes (a name taken, too many keys)
    ├── ConfigError                    config           a setting or an optional part is wrong
    │   └── TokenizerDataError         config
    ├── LLMUnavailable                 llm_unavailable  no LLM endpoint is configured
    ├── LLMError                       llm              the LLM endpoint failed
    │   └── UpstreamError              upstream         the proxy's upstream model failed or refused
    ├── FixError                       fix              a fix or create run could not go on
    └── ApiError                       api              the HTTP API answered with an error (client)

Each surface maps kinds once, in one place: the CLI in ``runtime/cli/errors.py``, the
HTTP API in ``runtime/http/errors.py``, the MCP server in ``runtime/mcp_server.py``
(``tool_error``), the audit trail with :func:`error_kind`. Only :class:`InvalidInput`
also subclasses a built-in (ValueError): pydantic validators report a ValueError as a
field error, and Python callers have always caught bad input that way.

Arguments that break a function's contract (a version that is not an int, an unknown
status) are plain ValueError/TypeError: programming errors, not part of the tree.
"""

from __future__ import annotations

import sys
from typing import Any

from sandbox.errors import ImageMissing, SandboxError, SkillyardError

__all__ = [
    "ApiError",
    "ArchiveTooLarge",
    "ConfigError",
    "FixError",
    "Forbidden",
    "ImageMissing",
    "InvalidInput",
    "InvalidName",
    "InvalidTenantName",
    "LLMError",
    "LLMUnavailable",
    "NotFound",
    "NotRegistered",
    "PackageError",
    "RegistryError",
    "SandboxError",
    "SkillError",
    "SkillyardError",
    "StoreError",
    "TenantConflict",
    "TenantError",
    "TokenizerDataError",
    "TooBusy",
    "TooManyJobs",
    "TooManyRuns",
    "Unauthorized",
    "UnknownSkill",
    "UnknownTenant",
    "UpstreamError",
    "error_kind",
]


class InvalidInput(SkillyardError, ValueError):
    """Input that may not be used (a name, a package, a call's input), refused before
    anything was run or stored."""

    kind = "invalid_input"


class InvalidName(InvalidInput):
    """Not a skill name (a-z, 0-9 and single hyphens, at most 64), or not a content hash:
    refused before the store is touched (names reach SQL filters)."""


class PackageError(InvalidInput):
    """A package was rejected. `file` is the offending path relative to the package (or '')."""

    kind = "package"

    def __init__(self, file: str, problem: str) -> None:
        self.file = file
        self.problem = problem
        super().__init__(f"{file}: {problem}" if file else problem)


class ArchiveTooLarge(PackageError):
    """An archive whose decompressed bytes (every gzip member, every header record) pass
    what a package within the limits can need: a compression bomb. Refused before more is
    made."""

    kind = "too_large"


class NotFound(SkillyardError):
    """No such version, package or job (for this caller: another tenant's is as absent)."""

    kind = "not_found"


class UnknownSkill(NotFound):
    """No skill of that name (or version) for this caller. The message is only the fact
    ("no skill NAME"); each surface adds where its user can find the skills there."""


class Forbidden(SkillyardError):
    """The caller may read this but not change it."""

    kind = "forbidden"


class Unauthorized(SkillyardError):
    """No API key, or one that is not valid (here)."""

    kind = "unauthorized"


class TooBusy(SkillyardError):
    """Over a per-tenant limit; `retry_after` is how many seconds to wait before retrying."""

    kind = "too_busy"
    retry_after = 1


class TooManyRuns(TooBusy):
    """The tenant's concurrent runs are all in use (per server process)."""

    kind = "too_many_runs"


class TooManyJobs(TooBusy):
    """The tenant has as many jobs queued or running as it may."""

    kind = "too_many_jobs"
    retry_after = 5


class RegistryError(SkillyardError):
    """A change the registry refuses: a transition its invariants forbid (registering a
    version whose gate failed, rolling back to a blocked one)."""

    kind = "registry"


class NotRegistered(RegistryError):
    """The version exists but may not run: its gate blocked it, or it was retired."""

    kind = "not_registered"


class NotRunnable(RegistryError):
    """The skill is instructions only: there is nothing to run; read its SKILL.md."""

    kind = "not_runnable"


class StoreError(SkillyardError):
    """The LanceDB store failed: its lock stayed busy, it was closed, a write failed."""

    kind = "store"


class SkillError(SkillyardError):
    """A lifecycle step was refused; the message says what to do next."""

    kind = "skill"


class TenantError(SkillyardError):
    """A tenant operation was refused (bad name, duplicate, unreadable tenants file)."""

    kind = "tenant"


class InvalidTenantName(TenantError, InvalidInput):
    """Not a tenant name (1-32 of a-z, 0-9 and '-'), or one the system reserves."""

    kind = "invalid_input"


class UnknownTenant(TenantError, NotFound):
    """No tenant (or no key of the tenant) of that name or id."""

    kind = "not_found"


class TenantConflict(TenantError):
    """A tenant change that clashes with what exists: the name is taken, the tenant has as
    many keys as it may, an admin removing its own tenant."""

    kind = "conflict"


class ConfigError(SkillyardError):
    """A setting has a value skillyard cannot use, or an optional part is not installed."""

    kind = "config"


class TokenizerDataError(ConfigError):
    """The offline tokenizer data is missing or does not match its published hash."""


class LLMUnavailable(SkillyardError):
    """No LLM endpoint is configured."""

    kind = "llm_unavailable"


class LLMError(SkillyardError):
    """The endpoint failed (down, rate-limited, timed out, bad answer). The message says what to do.

    `attempts` is the number of HTTP requests sent (1 + retries), `elapsed_s` the wall time
    they took, and `failed` one record per request that failed (runtime.llm.FailedRequest), so
    the ledger keeps a row for every request and the message can say what was spent waiting."""

    kind = "llm"

    def __init__(
        self, message: str, *, attempts: int = 0, elapsed_s: float = 0.0, failed: list | None = None
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.elapsed_s = elapsed_s
        self.failed = list(failed or [])


class UpstreamError(LLMError):
    """The proxy's upstream model failed or refused a client's request. `status` is the
    upstream's HTTP status (None: it timed out or could not be reached), `reason` the
    runtime.llm.FailedRequest reason, and `error` the upstream's own error object, which the
    proxy relays only where it speaks to the client (a bad request, a rate limit): never
    for a refused key, whose message may quote the upstream key."""

    kind = "upstream"

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        reason: str,
        error: dict[str, Any] | None = None,
        attempts: int = 0,
        elapsed_s: float = 0.0,
        failed: list | None = None,
    ) -> None:
        super().__init__(message, attempts=attempts, elapsed_s=elapsed_s, failed=failed)
        self.status = status
        self.reason = reason
        self.error = error

    def client_status(self) -> int:
        """The status the proxy's client gets: the upstream's for a request the client can
        fix (400, 404, 413, 422) or a rate limit (429); 504 for a timeout; 502 otherwise
        (the upstream failed, refused the proxy's own key, or could not be reached)."""
        if self.status in (400, 404, 413, 422, 429):
            return int(self.status)
        if self.reason == "timeout":
            return 504
        return 502

    def client_message(self) -> str:
        """What the proxy's client may hear: the upstream's own message where it is about
        the client's request; a fixed text where it is about the proxy (its key, the
        upstream's health), so no upstream key or address reaches a client."""
        status = self.client_status()
        relayed = ""
        if isinstance(self.error, dict) and isinstance(self.error.get("message"), str):
            relayed = self.error["message"][:1000]
        if status in (400, 404, 413, 422) and relayed:
            return f"the upstream model refused the request: {relayed}"
        if status == 429:
            return "the upstream model is rate-limiting requests; retry later"
        if status == 504:
            return "the upstream model did not answer in time; retry later"
        if self.status in (401, 403):
            return (
                "the proxy's upstream refused its credentials; tell the operator (the server log has details)"
            )
        return "the upstream model failed or could not be reached; retry later"

    @classmethod
    def of(cls, exc: LLMError) -> UpstreamError:
        """The upstream failure an LLMError of the proxy's upstream client describes."""
        last = exc.failed[-1] if exc.failed else None
        return cls(
            str(exc),
            status=last.status if last is not None else None,
            reason=last.reason if last is not None else "connection",
            error=last.error if last is not None else None,
            attempts=exc.attempts,
            elapsed_s=exc.elapsed_s,
            failed=exc.failed,
        )


class FixError(SkillyardError):
    """The fix or create run could not go on; the message says why and what to do."""

    kind = "fix"


class ApiError(SkillyardError):
    """The HTTP API answered with an error (raised by runtime.client.SkillyardClient):
    `status`, the server's `message`, its `request_id`, the parsed `body`, and
    `remote_kind`, the kind the server named (invalid_input, not_found, too_many_runs, ...)."""

    kind = "api"

    def __init__(self, status: int, message: str, request_id: str | None = None, body: Any = None) -> None:
        self.status = status
        self.message = message
        self.request_id = request_id
        self.body = body
        self.remote_kind = body.get("kind") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status}: {message}" + (f" (request {request_id})" if request_id else ""))


def error_kind(exc: BaseException) -> str:
    """A short, stable name for why an action failed, never its message (that may quote
    inputs): the error's ``kind``; ``engine`` for an error the docker SDK raised itself;
    ``internal`` for anything else (a bug)."""
    if isinstance(exc, SkillyardError):
        return exc.kind
    # Only if the docker SDK is loaded could one of its errors exist: no import needed.
    docker_errors = sys.modules.get("docker.errors")
    if docker_errors is not None and isinstance(exc, docker_errors.DockerException):
        return "engine"
    return "internal"
