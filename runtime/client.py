"""A small Python client for the skillyard HTTP API (docs/API.md), on httpx.

    from runtime.client import SkillyardClient

    with SkillyardClient("http://127.0.0.1:8700", api_key) as sy:
        job = sy.import_package("skills/word-stats")     # a folder or a .tar.gz
        sy.wait(job["id"])
        result = sy.run("word-stats", {"text": "Hello there."})
        print(result["output"])

Errors come back as :class:`ApiError` (a :class:`SkillyardError`) with the HTTP status,
the server's message, the kind it named (``remote_kind``) and its request id. ``run``
returns the call result (a dict with ``ok``) when the skill ran -- ``ok`` false is the
skill's own failure -- and raises ApiError when it did not (input that does not fit the
skill: 422 ``invalid_input``; a version that may not run: 409 ``not_registered``; ...).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from .errors import ApiError
from .errors import SkillyardError as SkillyardError  # what callers catch: ApiError is one


class SkillyardClient:
    """The HTTP API of one skillyard server, as one tenant (the key's). `transport` lets a
    test answer requests in process (httpx.MockTransport, or an ASGI transport).
    Every method raises ApiError for an error answer (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "skillyard-client"},
        )

    # -- plumbing ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> SkillyardClient:
        """The client itself; leaving the block closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the client."""
        self.close()

    @staticmethod
    def _raise(resp: httpx.Response) -> None:
        try:
            body = resp.json()
        except ValueError:
            body = None
        message = (
            body.get("error")
            if isinstance(body, dict) and body.get("error")
            else resp.text[:300] or resp.reason_phrase
        )
        rid = (body.get("request_id") if isinstance(body, dict) else None) or resp.headers.get("x-request-id")
        raise ApiError(resp.status_code, str(message), rid, body)

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        kw["params"] = {k: v for k, v in (kw.get("params") or {}).items() if v is not None}
        resp = self._http.request(method, path, **kw)
        if resp.status_code >= 400:
            self._raise(resp)
        return resp

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self._request(method, path, **kw).json()

    # -- skills -----------------------------------------------------------------------------------------
    def list(
        self, scope: str = "all", status: str | None = None, tier: str | None = None
    ) -> list[dict[str, Any]]:
        """Skills this key sees (`scope`: all, private, shared; `status` and `tier` filter:
        tier instructions, verified or blocked)."""
        params = {"scope": scope, "status": status, "tier": tier}
        return self._json("GET", "/v1/skills", params={k: v for k, v in params.items() if v is not None})

    def get(self, name: str, *, version: int | None = None, scope: str = "auto") -> dict[str, Any]:
        """A skill's record, config, files, gate report and notes."""
        return self._json("GET", f"/v1/skills/{name}", params={"version": version, "scope": scope})

    def skill_md(self, name: str, *, version: int | None = None, scope: str = "auto") -> str:
        """The skill's SKILL.md, as an agent loads it."""
        return self._request(
            "GET", f"/v1/skills/{name}/skill.md", params={"version": version, "scope": scope}
        ).text

    def search(self, query: str, limit: int = 5) -> list[dict[str, Any]]:
        """Skills matching `query` by words and meaning, best first, with scores."""
        return self._json("GET", "/v1/search", params={"q": query, "limit": limit})

    def import_package(
        self,
        path: str | Path,
        *,
        shared: bool = False,
        force: bool = False,
        wait: bool = False,
        timeout: float = 600.0,
    ) -> dict[str, Any]:
        """Upload a skill folder (validated locally first) or a .tar.gz; returns the gate job
        (with wait=True: the finished job)."""
        p = Path(path)
        if p.is_dir():
            from .package import load_package, pack_files

            pkg = load_package(p)
            blob = pack_files(
                {f"{pkg.name}/{k}": v for k, v in pkg.files.items()},
                {f"{pkg.name}/{k}" for k in pkg.executable},
            )
        else:
            blob = p.read_bytes()
        job = self._json(
            "POST",
            "/v1/skills",
            params={"shared": str(shared).lower(), "force": str(force).lower()},
            content=blob,
            headers={"Content-Type": "application/gzip"},
        )
        return self.wait(job["id"], timeout=timeout) if wait else job

    def versions(self, name: str, *, scope: str = "auto") -> list[dict[str, Any]]:
        """Every version of a skill, oldest first, with its verdict."""
        return self._json("GET", f"/v1/skills/{name}/versions", params={"scope": scope})

    def rollback(self, name: str, version: int, *, scope: str = "auto") -> dict[str, Any]:
        """Make an earlier registered version current again; the record."""
        return self._json(
            "POST", f"/v1/skills/{name}/rollback", params={"scope": scope}, json={"version": version}
        )

    def delete(self, name: str, *, version: int | None = None, scope: str = "auto") -> dict[str, Any]:
        """Delete a skill (every version), or one version; what was deleted. The ledger keeps its rows."""
        path = f"/v1/skills/{name}" if version is None else f"/v1/skills/{name}/versions/{version}"
        return self._json("DELETE", path, params={"scope": scope})

    def tools(
        self, format: str = "openai", *, scope: str = "all", names: list[str] | None = None
    ) -> dict[str, Any]:
        """Tool definitions for the skills this key can call (format: openai, openai-chat,
        anthropic, mcp): {"format", "tools": [...], "skills": [...]}."""
        return self._json("GET", "/v1/tools", params={"format": format, "scope": scope, "name": names})

    def export(
        self, name: str, dest: str | Path | None = None, *, version: int | None = None, scope: str = "auto"
    ) -> bytes | Path:
        """The package as .tar.gz bytes, or (with dest) unpacked to DEST/NAME, which is returned."""
        blob = self._request(
            "GET", f"/v1/skills/{name}/export", params={"version": version, "scope": scope}
        ).content
        if dest is None:
            return blob
        from .package import unpack_files, write_files

        files, executable = unpack_files(blob)
        prefix = f"{name}/"
        target = Path(dest) / name
        write_files(
            {k[len(prefix) :]: v for k, v in files.items() if k.startswith(prefix)},
            target,
            {k[len(prefix) :] for k in executable if k.startswith(prefix)},
        )
        return target

    # -- calls and jobs -------------------------------------------------------------------------------------
    def run(
        self,
        name: str,
        input: Any = None,
        *,
        version: int | None = None,
        scope: str = "auto",
        async_: bool = False,
    ) -> dict[str, Any]:
        """Run a skill. Returns the call result when the skill ran ({"ok": true, "output": ...}, or
        {"ok": false, "error": {"kind": "exception" | "timeout" | ...}}); with async_=True, the job
        (poll it with job()/wait()). ApiError when it did not run (see the module docstring)."""
        body: dict[str, Any] = {"input": {} if input is None else input, "async": async_}
        if version is not None:
            body["version"] = version
        return self._json("POST", f"/v1/skills/{name}/run", params={"scope": scope}, json=body)

    def test(self, name: str, *, version: int | None = None, scope: str = "auto") -> dict[str, Any]:
        """Re-run a version's gate (records nothing); the job."""
        return self._json(
            "POST", f"/v1/skills/{name}/test", params={"scope": scope}, json={"version": version}
        )

    def fix(
        self, name: str, *, max_attempts: int = 3, allow_test_edits: bool = False, scope: str = "auto"
    ) -> dict[str, Any]:
        """Ask the LLM to repair a skill; the job."""
        return self._json(
            "POST",
            f"/v1/skills/{name}/fix",
            params={"scope": scope},
            json={"max_attempts": max_attempts, "allow_test_edits": allow_test_edits},
        )

    def create(
        self,
        task: str,
        *,
        name: str | None = None,
        shared: bool = False,
        max_attempts: int = 3,
        allow_test_edits: bool = False,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Have the LLM write a new skill for `task`; the job. An existing name is refused unless
        `replace`."""
        return self._json(
            "POST",
            "/v1/create",
            json={
                "task": task,
                "name": name,
                "shared": shared,
                "max_attempts": max_attempts,
                "allow_test_edits": allow_test_edits,
                "replace": replace,
            },
        )

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's state, and its result once it has finished."""
        return self._json("GET", f"/v1/jobs/{job_id}")

    def jobs(self) -> list[dict[str, Any]]:
        """This key's jobs of the last hour, oldest first."""
        return self._json("GET", "/v1/jobs")

    def wait(self, job_id: str, *, timeout: float = 600.0, poll: float = 0.25) -> dict[str, Any]:
        """Poll until the job has finished; returns it (check its state). TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in ("succeeded", "failed"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout:g} s")
            time.sleep(poll)

    def events(
        self, job_id: str, *, last_event_id: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's server-sent events as (event, data) pairs, ending with ("result", job)."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        with self._http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=None) as resp:
            if resp.status_code >= 400:
                resp.read()
                self._raise(resp)
            event, data = "message", []
            for line in resp.iter_lines():
                if line == "":
                    if data:
                        yield event, json.loads("\n".join(data))
                    event, data = "message", []
                elif line.startswith(":"):
                    continue
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())

    # -- tenants and keys (admin keys) ---------------------------------------------------------------
    def tenants(self) -> list[dict[str, Any]]:
        """Every tenant and its keys (never the keys themselves)."""
        return self._json("GET", "/v1/tenants")

    def tenant(self, name: str) -> dict[str, Any]:
        """One tenant and its keys."""
        return self._json("GET", f"/v1/tenants/{name}")

    def create_tenant(
        self,
        name: str,
        *,
        admin: bool = False,
        max_concurrent_runs: int | None = None,
        expires_in: str | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """Create a tenant: {"key": <its first key, shown once>, "info", "tenant"}."""
        body = {"name": name, "admin": admin, "max_concurrent_runs": max_concurrent_runs}
        body |= {k: v for k, v in {"expires_in": expires_in, "label": label}.items() if v is not None}
        return self._json("POST", "/v1/tenants", json=body)

    def update_tenant(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change a tenant's `admin` flag or `max_concurrent_runs` (None: the server's default)."""
        return self._json("PATCH", f"/v1/tenants/{name}", json=changes)

    def remove_tenant(self, name: str, *, purge: bool = False) -> dict[str, Any]:
        """Remove a tenant (its keys stop working at once); purge also deletes its skills."""
        return self._json("DELETE", f"/v1/tenants/{name}", params={"purge": str(purge).lower()})

    def keys(self, tenant: str) -> list[dict[str, Any]]:
        """A tenant's keys, with when each expires and was last used."""
        return self._json("GET", f"/v1/tenants/{tenant}/keys")

    def add_key(
        self, tenant: str, *, expires_in: str | None = None, label: str | None = None
    ) -> dict[str, Any]:
        """A new key for `tenant`: {"key": <shown once>, "info"}."""
        body = {k: v for k, v in {"expires_in": expires_in, "label": label}.items() if v is not None}
        return self._json("POST", f"/v1/tenants/{tenant}/keys", json=body)

    def rotate_key(
        self, tenant: str, key_id: str, *, overlap: str = "1h", expires_in: str | None = None
    ) -> dict[str, Any]:
        """Replace a key; the old one keeps working for `overlap`: {"key", "info", "previous"}."""
        body: dict[str, Any] = {"overlap": overlap}
        if expires_in is not None:
            body["expires_in"] = expires_in
        return self._json("POST", f"/v1/tenants/{tenant}/keys/{key_id}/rotate", json=body)

    def revoke_key(self, tenant: str, key_id: str) -> dict[str, Any]:
        """Revoke a key: it stops working at once."""
        return self._json("DELETE", f"/v1/tenants/{tenant}/keys/{key_id}")

    # -- accounting ----------------------------------------------------------------------------------------
    def cost(self, name: str | None = None, *, scope: str | None = None) -> Any:
        """Every skill's token account (scope: all, private, shared; default all), or one skill's
        (scope: auto, private, shared; default auto)."""
        if name is None:
            return self._json("GET", "/v1/cost", params={"scope": scope or "all"})
        return self._json("GET", f"/v1/cost/{name}", params={"scope": scope or "auto"})

    def audit(
        self,
        *,
        tenant: str | None = None,
        skill: str | None = None,
        since: str | None = None,
        until: str | None = None,
        event: str | None = None,
        outcome: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Audit entries, oldest first. since/until: ISO 8601 or relative (30m, 2h, 7d)."""
        return self._json(
            "GET",
            "/v1/audit",
            params={
                "tenant": tenant,
                "skill": skill,
                "since": since,
                "until": until,
                "event": event,
                "outcome": outcome,
                "limit": limit,
            },
        )
