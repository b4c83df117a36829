"""Routes over skills as records and packages: list, show, SKILL.md, search, import,
versions, rollback, delete, export, and the skills as tool definitions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
import structlog
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from ... import exports
from ...audit import audited
from ...package import pack_files
from ..deps import ScopeQ, SkillName, State, VersionQ, View, caller, job_response
from ..errors import request_id
from ..jobs import Job
from ..schemas import (
    BODY_ERRORS,
    COMMON_ERRORS,
    SKILL_ERRORS,
    DeletedOut,
    JobOut,
    RollbackRequest,
    SearchHitOut,
    SkillDetailOut,
    SkillOut,
    ToolsOut,
    error_doc,
    skill_out,
)
from ..uploads import parse_upload, read_upload

router = APIRouter(tags=["skills"])
log = structlog.get_logger(__name__)

_ARCHIVE = {"schema": {"type": "string", "format": "binary"}}
# What an upload may be sent as: these types and no others (the guard's 415 for the rest).
_IMPORT_BODY = {
    "required": True,
    "description": "The skill folder as a .tar.gz or .tar (files at the root or in one folder named like the "
    "skill), as the body or as the multipart field 'file'.",
    "content": {
        "application/gzip": _ARCHIVE,
        "application/x-gzip": _ARCHIVE,
        "application/x-tar": _ARCHIVE,
        "application/octet-stream": _ARCHIVE,
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
    },
}


@router.get("/skills", response_model=list[SkillOut], responses=COMMON_ERRORS)
def list_skills(
    view: View,
    scope: Literal["private", "shared", "all"] = "all",
    status: Literal["registered", "blocked", "retired"] | None = None,
    tier: Literal["instructions", "verified", "blocked"] | None = None,
) -> list[SkillOut]:
    """Skills you can see: your private ones and the shared ones (a private skill hides the
    shared one of its name); `status` and `tier` filter."""
    return [skill_out(rec, sc) for rec, sc in view.records(scope, status) if tier in (None, rec.tier)]


@router.get("/skills/{name}", response_model=SkillDetailOut, responses=SKILL_ERRORS)
def get_skill(
    view: View, name: SkillName, scope: ScopeQ = "auto", version: VersionQ = None
) -> SkillDetailOut:
    """A skill's record, its skillyard.yaml config, file list, gate report and memory."""
    target = view.resolve(name, scope, version)
    pkg = target.yard.package(name, target.record.version)
    notes = target.run_yard.memory_text(name) if (target.scope == "private" or view.admin) else None
    return skill_out(
        target.record,
        target.scope,
        SkillDetailOut,
        config=pkg.config.model_dump(mode="json"),
        files=sorted(pkg.files),
        gate_report=target.record.gate_report or None,
        memory=notes,
    )


@router.get(
    "/skills/{name}/skill.md",
    response_class=Response,
    responses={
        **SKILL_ERRORS,
        200: {
            "content": {"text/markdown": {"schema": {"type": "string"}}},
            "description": "The SKILL.md, as an agent loads it",
        },
    },
)
def get_skill_md(view: View, name: SkillName, scope: ScopeQ = "auto", version: VersionQ = None) -> Response:
    """The skill's SKILL.md (Agent Skills frontmatter + instructions)."""
    target = view.resolve(name, scope, version)
    pkg = target.yard.package(name, target.record.version)
    return Response(pkg.skill_md, media_type="text/markdown; charset=utf-8")


@router.get("/search", response_model=list[SearchHitOut], responses=COMMON_ERRORS)
def search(
    view: View,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[SearchHitOut]:
    """Hybrid (words + meaning) search over the registered skills you can see."""
    return [skill_out(r, sc, SearchHitOut, score=round(float(s), 6)) for r, s, sc in view.search(q, limit)]


@router.post(
    "/skills",
    status_code=202,
    response_model=JobOut,
    responses={
        **COMMON_ERRORS,
        **BODY_ERRORS,
        403: error_doc("shared=true without an admin key"),
        429: error_doc("Too many jobs"),
    },
    openapi_extra={"requestBody": _IMPORT_BODY},
)
async def import_skill(
    request: Request, state: State, view: View, shared: bool = False, force: bool = False
) -> JSONResponse:
    """Import a skill package: validated now (422 if invalid), gated as a job (202). The job's result
    says registered, blocked or unchanged."""
    rid = request_id(request)
    with state.service.refusals_audited("import", view, request_id=rid):
        yard = view.yard_for_new(shared)
    state.check_room(request, caller(request), "import")  # before the upload is read, let alone unpacked
    blob = await read_upload(request, state.upload_limit)
    pkg = await anyio.to_thread.run_sync(parse_upload, blob, state.settings)
    scope = "shared" if yard is view.shared else "private"

    def work(job: Job) -> dict[str, Any]:
        with audited(
            state.service.audit,
            "import",
            tenant=view.name,
            skill=pkg.name,
            scope=scope,
            job_id=job.id,
            request_id=rid,
        ) as entry:
            outcome = yard.add_package(pkg, force=force)
            entry.update(version=outcome.version, outcome=outcome.status)
            return {**outcome.to_dict(), "scope": scope}

    return job_response(state.submit(request, view, "import", pkg.name, scope, work))


@router.get("/skills/{name}/versions", response_model=list[SkillOut], responses=SKILL_ERRORS)
def versions(view: View, name: SkillName, scope: ScopeQ = "auto") -> list[SkillOut]:
    """Every version of the skill, oldest first, with its gate verdict."""
    target = view.resolve(name, scope)
    return [skill_out(r, target.scope) for r in target.yard.versions(name)]


@router.post(
    "/skills/{name}/rollback",
    response_model=SkillOut,
    responses={
        **SKILL_ERRORS,
        **BODY_ERRORS,
        403: error_doc("A shared skill and no admin key"),
        409: error_doc("That version cannot be made current"),
    },
)
def rollback(
    request: Request, state: State, view: View, name: SkillName, body: RollbackRequest, scope: ScopeQ = "auto"
) -> SkillOut:
    """Make an earlier registered version current again."""
    rid = request_id(request)
    target = view.resolve(name, scope)
    with state.service.refusals_audited("rollback", view, name, request_id=rid):
        view.check_change(target)
    rec = target.yard.rollback(name, body.version)
    state.service.audit.record(
        "rollback",
        tenant=view.name,
        skill=name,
        version=rec.version,
        scope=target.scope,
        outcome="ok",
        request_id=rid,
    )
    return skill_out(rec, target.scope)


def _delete(
    request: Request, state: State, view: View, name: str, scope: str, version: int | None
) -> DeletedOut:
    rid = request_id(request)
    target = view.resolve(name, scope, version)
    with state.service.refusals_audited("delete", view, name, request_id=rid):
        view.check_change(target)
    removed = target.yard.delete(name, version)
    left = target.yard.registry.versions(name)
    state.service.audit.record(
        "delete",
        tenant=view.name,
        skill=name,
        version=version,
        versions=[r.version for r in removed],
        scope=target.scope,
        outcome="ok",
        request_id=rid,
    )
    return DeletedOut(
        name=name, scope=target.scope, versions=[r.version for r in removed], skill_deleted=not left
    )


@router.delete(
    "/skills/{name}",
    response_model=DeletedOut,
    responses={**SKILL_ERRORS, 403: error_doc("A shared skill and no admin key")},
)
def delete_skill(
    request: Request, state: State, view: View, name: SkillName, scope: ScopeQ = "auto"
) -> DeletedOut:
    """Delete the skill: every version, its package and its notes. Its ledger rows stay (GET /v1/cost
    still reports its account) and so does the registry's history; its version numbers are never
    given out again. A private skill of that name goes before a shared one (`scope` picks)."""
    return _delete(request, state, view, name, scope, None)


@router.delete(
    "/skills/{name}/versions/{version}",
    response_model=DeletedOut,
    responses={
        **SKILL_ERRORS,
        403: error_doc("A shared skill and no admin key"),
        409: error_doc("The current version while others exist: roll back first"),
    },
)
def delete_version(
    request: Request,
    state: State,
    view: View,
    name: SkillName,
    version: Annotated[int, Path(ge=1, le=2**31)],
    scope: ScopeQ = "auto",
) -> DeletedOut:
    """Delete one version (a blocked one, or an older one). The current version can be deleted only
    when it is the last (409 otherwise: roll back to another version first)."""
    return _delete(request, state, view, name, scope, version)


@router.get("/tools", response_model=ToolsOut, responses=COMMON_ERRORS)
def tools(
    view: View,
    format: Annotated[
        Literal["openai", "openai-chat", "anthropic", "mcp"],
        Query(description="openai (Responses API), openai-chat (Chat Completions), anthropic or mcp."),
    ] = "openai",
    scope: Literal["private", "shared", "all"] = "all",
    name: Annotated[list[str] | None, Query(description="Only these skills (repeat the parameter).")] = None,
) -> ToolsOut:
    """Tool definitions for the registered skills you can call -- your private ones and the shared
    ones (a private skill hides the shared one of its name) -- in one agent's shape. Pass `tools` to
    that agent's API; call a tool with POST /v1/skills/{name}/run."""
    wanted = set(name) if name else None
    out, listed = [], []
    for rec, sc in view.records(scope, "registered"):
        if wanted is not None and rec.name not in wanted:
            continue
        yard = view.private if sc == "private" and view.private is not None else view.shared
        try:
            pkg = yard.package(rec.name, rec.version)
        except Exception as exc:  # noqa: BLE001 - one unreadable package must not hide the others
            log.warning("tool_skipped", skill=rec.name, error=str(exc)[:200])
            continue
        if not pkg.config.entrypoint:
            continue  # instructions only: nothing to call
        out.append(exports.tool_definition(pkg, format))
        listed.append({"name": rec.name, "version": rec.version, "scope": sc})
    return ToolsOut(format=format, tools=out, skills=listed)


@router.get(
    "/skills/{name}/export",
    response_class=Response,
    responses={
        **SKILL_ERRORS,
        200: {
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "NAME/... as a .tar.gz: a valid Agent Skills folder",
        },
    },
)
def export(view: View, name: SkillName, scope: ScopeQ = "auto", version: VersionQ = None) -> Response:
    """The skill's package as a .tar.gz holding one folder NAME/ (re-importable as is)."""
    target = view.resolve(name, scope, version)
    pkg = target.yard.package(name, target.record.version)
    blob = pack_files(
        {f"{name}/{p}": d for p, d in pkg.files.items()}, {f"{name}/{p}" for p in pkg.executable}
    )
    return Response(
        blob,
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{name}-v{target.record.version}.tar.gz"'},
    )
