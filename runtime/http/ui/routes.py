"""The console's pages: sign-in, skills, a skill (files, versions and diffs, gate report,
notes, run form, cost), costs, audit, and jobs (live over server-sent events).

Every page reads through the signed-in tenant's view (runtime/views.py) and the same
services the API uses (runtime/serving.py, runtime/accounting.py, the audit); a run from
the form takes the one tenant call path (input check, run slot, audited run). What one
key may not see is exactly as absent here as in the API: the same 404.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Annotated, Any, Literal

import anyio
import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ... import accounting
from ...costcurve import CostCurve, history, projection
from ...diffs import file_diffs
from ...errors import InvalidInput, NotFound
from ...names import NAME_PATTERN, is_skill_name
from ...serving import check_input
from ...tenants import TENANT_RE
from ...times import parse_when
from ...views import Target, TenantView
from ...yard import Yard
from ..deps import JobId, ScopeQ, SkillName, VersionQ
from ..errors import CALL_STATUS, request_id
from ..jobs import Job
from ..routers import jobs as job_routes
from ..schemas import call_out
from .charts import chart
from .console import PREFIX, Console, SignedIn, check_origin, console_of, is_tls
from .forms import form_input, run_form
from .present import TIERS, gate_view, tier_of
from .sessions import COOKIE_PATH, LOGIN_COOKIE, LOGIN_MAX_AGE_S, SESSION_COOKIE

log = structlog.get_logger(__name__)
router = APIRouter(prefix=PREFIX, include_in_schema=False)
AUDIT_EVENTS = ("call", "gate", "import", "rollback", "fix", "create")
SHARED_COST_HIDDEN = "The cost of shared skills (all tenants' use) is shown to admin keys only"
MAX_CHARTS = 12


async def _signed(request: Request) -> SignedIn:
    return await console_of(request).signed_in(request)


async def _checked(request: Request) -> SignedIn:
    return await console_of(request).csrf_checked(request)


Signed = Annotated[SignedIn, Depends(_signed)]
Checked = Annotated[SignedIn, Depends(_checked)]
ConsoleDep = Annotated[Console, Depends(console_of)]


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _fragment(request: Request, target: str) -> bool:
    """Whether htmx asked for just the element `target` (not a whole page)."""
    return _htmx(request) and request.headers.get("hx-target") == target


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path, never another site."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and not value.startswith(PREFIX + "/login")
        and "\\" not in value
        and all(" " < ch < "\x7f" for ch in value)
    ):
        return value
    return f"{PREFIX}/skills"


# -- signing in and out ------------------------------------------------------------------------------
@router.get("")
def home() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/skills", status_code=303)


def _login_page(
    request: Request, console: Console, *, next_: str, error: str | None = None, status: int = 200
) -> Response:
    nonce, token = console.sessions.login_nonce()
    response = console.page(
        request, "login.html", {"login_token": token, "next": next_, "error": error}, status=status
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_MAX_AGE_S,
        path=f"{PREFIX}/login",
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
    )
    return response


@router.get("/login")
async def login_form(request: Request, console: ConsoleDep, next: str | None = None) -> Response:
    """The sign-in form (a browser that is signed in goes on at once)."""
    if console.sessions.get(request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_page(request, console, next_=_safe_next(next))


@router.post("/login")
async def login(request: Request, console: ConsoleDep) -> Response:
    """Sign in with a tenant key: a new session (a new cookie, whatever the browser had)."""
    check_origin(request)
    form = await request.form()
    key, next_ = _text(form, "key").strip(), _safe_next(_text(form, "next"))
    if not console.sessions.login_ok(request.cookies.get(LOGIN_COOKIE), _text(form, "login_token")):
        return _login_page(
            request,
            console,
            next_=next_,
            error="the sign-in form was too old or did not come from this console: try again",
            status=403,
        )
    service = console.state.service
    tenant = await anyio.to_thread.run_sync(service.authenticate, f"Bearer {key}") if key else None
    if tenant is None:
        log.info("console_sign_in", outcome="refused", request_id=request_id(request))
        return _login_page(
            request,
            console,
            next_=next_,
            error="that key is not valid here: keys come from `skillyard tenant add NAME`",
            status=401,
        )
    console.sessions.close(request.cookies.get(SESSION_COOKIE))
    token = console.sessions.open(key, tenant.name)
    log.info("console_sign_in", outcome="ok", tenant=tenant.name, request_id=request_id(request))
    response = RedirectResponse(next_, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_tls(request)
    )
    response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
    return response


@router.post("/logout")
async def logout(request: Request, console: ConsoleDep, signed: Checked) -> Response:
    """Sign out: the session ends on the server, the cookie in the browser."""
    console.sessions.close(signed.token)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


# -- skills ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class SkillRow:
    name: str
    scope: str
    tier: str
    status: str
    version: int
    description: str
    tests: int
    failures: int
    coverage: float | None
    reasons: list[str]
    calls: int
    score: float | None = None


def _row(rec: Any, scope: str, score: float | None = None) -> SkillRow:
    g = rec.gate
    return SkillRow(
        rec.name,
        scope,
        tier_of(rec),
        rec.status,
        rec.version,
        rec.description,
        g.tests,
        g.failures + g.errors,
        g.coverage,
        list(g.reasons),
        rec.calls,
        score,
    )


@router.get("/skills")
def skills(
    request: Request,
    console: ConsoleDep,
    signed: Signed,
    q: Annotated[str, Query(max_length=500)] = "",
    scope: Literal["all", "private", "shared"] = "all",
    tier: Literal["", "verified", "instructions", "blocked"] = "",
) -> Response:
    """Every skill the key may see, with its tier and status; `q` searches (hybrid)."""
    view = signed.view
    if q.strip():
        rows = [_row(rec, sc, round(score, 3)) for rec, score, sc in view.search(q.strip(), limit=20)]
        if scope != "all":
            rows = [r for r in rows if r.scope == scope]
    else:
        rows = [_row(rec, sc) for rec, sc in view.records(scope)]
    if tier:
        rows = [r for r in rows if r.tier == tier]
    context = {"rows": rows, "q": q, "scope": scope, "tier": tier, "tiers": TIERS, "nav": "skills"}
    template = "_skills_table.html" if _fragment(request, "skills-table") else "skills.html"
    return console.page(request, template, context, signed=signed)


def _cost_visible(view: TenantView, target: Target) -> bool:
    return target.scope == "private" or view.admin


def _skill_cost(view: TenantView, target: Target) -> dict[str, Any] | None:
    """A skill's cost: its account, its projection chart and when it broke even (None:
    not this key's to see)."""
    if not _cost_visible(view, target):
        return None
    yard = target.yard
    cost = accounting.report(yard, target.name)[0]
    done = history(target.name, [cost], yard.ledger.llm_calls(target.name), yard.ledger.uses(target.name))
    return {"cost": cost, "chart": chart(projection(cost)), "history": done}


def _skill_context(
    view: TenantView, name: str, scope: str, version: int | None
) -> tuple[Target, dict[str, Any]]:
    """Everything the skill page shows."""
    target = view.resolve(name, scope, version)
    yard, rec = target.yard, target.record
    pkg = yard.package(name, rec.version)
    versions = yard.versions(name)
    has_code = pkg.config.entrypoint is not None
    example = pkg.config.examples[0].input if pkg.config.examples else None
    earlier = [v.version for v in versions if v.version < rec.version]
    context = {
        "nav": "skills",
        "target": target,
        "rec": rec,
        "scope_q": scope,
        "tier": tier_of(rec),
        "pkg": pkg,
        "files": sorted((path, len(data)) for path, data in pkg.files.items()),
        "versions": [(v, tier_of(v)) for v in versions],
        "diff_from": earlier[-1] if earlier else None,
        "gate": gate_view(rec.gate_report),
        "memory": target.run_yard.memory_text(name) if _cost_visible(view, target) else None,
        "form": run_form(pkg.config.input_schema, example),
        "runnable": has_code and rec.status == "registered",
        "has_code": has_code,
        "cost": _skill_cost(view, target),
        "cost_hidden": SHARED_COST_HIDDEN,
        "result": None,
        "result_status": 200,
        "job": None,
        "oob": False,  # a run's htmx answer also swaps the cost section in (out of band)
    }
    return target, context


@router.get("/skills/{name}")
def skill(
    request: Request,
    console: ConsoleDep,
    signed: Signed,
    name: SkillName,
    scope: ScopeQ = "auto",
    version: VersionQ = None,
) -> Response:
    """One skill: instructions, files, versions, gate report, notes, run form and cost."""
    _, context = _skill_context(signed.view, name, scope, version)
    return console.page(request, "skill.html", context, signed=signed)


@router.get("/skills/{name}/files/{path:path}")
def skill_file(
    request: Request,
    console: ConsoleDep,
    signed: Signed,
    name: SkillName,
    path: str,
    scope: ScopeQ = "auto",
    version: VersionQ = None,
) -> Response:
    """One file of a version, as text (escaped) when it is UTF-8."""
    target = signed.view.resolve(name, scope, version)
    pkg = target.yard.package(name, target.record.version)
    data = pkg.files.get(path)
    if data is None:
        raise NotFound(f"{name} v{target.record.version} has no file {path!r}")
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    context = {"nav": "skills", "target": target, "path": path, "text": text, "size": len(data)}
    return console.page(request, "file.html", context, signed=signed)


@router.get("/skills/{name}/diff")
def skill_diff(
    request: Request,
    console: ConsoleDep,
    signed: Signed,
    name: SkillName,
    scope: ScopeQ = "auto",
    from_: Annotated[int | None, Query(alias="from", ge=1, le=2**31)] = None,
    to: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> Response:
    """What changed between two versions (default: the current one and the one before)."""
    new = signed.view.resolve(name, scope, to)
    numbers = [v.version for v in new.yard.versions(name)]
    if from_ is None:
        earlier = [n for n in numbers if n < new.record.version]
        if not earlier:
            raise NotFound(f"{name} has no version before v{new.record.version} to compare with")
        from_ = earlier[-1]
    old = signed.view.resolve(name, new.scope, from_)
    a = new.yard.package(name, old.record.version).files
    b = new.yard.package(name, new.record.version).files
    diffs = file_diffs(a, b, f"v{old.record.version}", f"v{new.record.version}")
    context = {"nav": "skills", "target": new, "old": old.record, "new": new.record, "diffs": diffs}
    context["numbers"] = numbers
    return console.page(request, "diff.html", context, signed=signed)


# -- running ----------------------------------------------------------------------------------------
def _version_field(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 2**31:
        raise InvalidInput(f"version {text[:20]!r} is not a version number")
    return int(text)


def _run(
    request: Request, console: Console, signed: SignedIn, name: str, scope: str, posted: dict[str, str]
) -> Response:
    """Read the form, run the skill through the one call path, show the result (htmx: the
    result and the refreshed cost chart; without JavaScript: the whole skill page)."""
    state, view, rid = console.state, signed.view, request_id(request)
    service = state.service
    # The run limit first, as on the API (runtime.serving): a refusal reads no store.
    service.acquire_run(view.tenant, name, request_id=rid, via="console")
    handed_off = False
    try:
        target, context = _skill_context(view, name, scope, _version_field(posted.get("version", "")))
        params = form_input(context["form"], posted)
        check_input(params)
        status = 200
        if posted.get("async") == "on":
            job = _run_job(state, view, target, params, rid)
            handed_off = True  # the job gives the slot back when it ends
            context["job"] = job.out()
            status = 202
        else:
            result = service.run(view, target, params, request_id=rid, via="console")
            out = call_out(result, target.scope)
            status = 200 if out.ok or out.error is None else CALL_STATUS.get(out.error.kind, 200)
            context["result"] = out
    finally:
        if not handed_off:
            service.release_run(view.tenant)
    if "result" in context and _cost_visible(view, target):
        target.run_yard.flush()  # the use just made, in the chart
        context["cost"] = _skill_cost(view, target)
    context["result_status"] = status
    context["oob"] = _htmx(request)
    template = "_run_result.html" if _htmx(request) else "skill.html"
    return console.page(request, template, context, signed=signed, status=status)


def _run_job(state: Any, view: TenantView, target: Target, params: Any, rid: str | None) -> Job:
    """The run as a job (it holds the run slot until it ends)."""
    service = state.service

    def work(job: Job) -> dict[str, Any]:
        job.emit("progress", {"message": f"{target.name}: running"})
        result = service.run(view, target, params, request_id=rid, job_id=job.id, via="console")
        job.emit("progress", {"message": f"{target.name}: {'ok' if result.ok else 'failed'}"})
        return call_out(result, target.scope).model_dump(mode="json")

    return state.jobs.submit(
        view.name,
        "run",
        target.name,
        target.scope,
        work,
        counted=False,
        on_done=lambda _: service.release_run(view.tenant),
    )


@router.post("/skills/{name}/run")
async def run(
    request: Request, console: ConsoleDep, signed: Checked, name: SkillName, scope: ScopeQ = "auto"
) -> Response:
    """Run the skill on the form's input, in the sandbox."""
    form = await request.form()
    posted = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    return await anyio.to_thread.run_sync(partial(_run, request, console, signed, name, scope, posted))


@router.post("/skills/{name}/test")
async def test(
    request: Request, console: ConsoleDep, signed: Checked, name: SkillName, scope: ScopeQ = "auto"
) -> Response:
    """Re-run the gate on the current version (a job; nothing is recorded), then the jobs page."""
    from ..routers.work import test_skill

    state = console.state
    await anyio.to_thread.run_sync(partial(test_skill, request, state, signed.view, name, None, scope))
    return RedirectResponse(f"{PREFIX}/jobs", status_code=303)


# -- costs ---------------------------------------------------------------------------------------------
def _visible_yards(view: TenantView) -> list[tuple[Yard, str]]:
    """The yards whose cost this key may see: its own; the shared one for admins."""
    yards: list[tuple[Yard, str]] = []
    if view.private is not None:
        yards.append((view.private, "private"))
    if view.admin:
        yards.append((view.shared, "shared"))
    return yards


@dataclasses.dataclass
class Account:
    """One yard's cost report and its ledger rows (read once per page)."""

    scope: str
    yard: Yard
    report: list[accounting.SkillCost]
    calls: list[dict[str, Any]]
    uses: list[dict[str, Any]]


def _overall(accounts: list[Account]) -> CostCurve:
    """The history of every skill shown, one curve (names tagged by scope: a private and a
    shared skill may share a name)."""
    costs: list[accounting.SkillCost] = []
    calls: list[dict[str, Any]] = []
    uses: list[dict[str, Any]] = []
    for a in accounts:
        costs += [dataclasses.replace(c, skill=f"{a.scope}:{c.skill}") for c in a.report]
        calls += [{**r, "skill": f"{a.scope}:{r['skill']}"} for r in a.calls]
        uses += [{**r, "skill": f"{a.scope}:{r['skill']}"} for r in a.uses]
    return history("all skills", costs, calls, uses)


@router.get("/costs")
def costs(
    request: Request,
    console: ConsoleDep,
    signed: Signed,
    skill: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=64)] = None,
) -> Response:
    """What the skills cost and saved, overall and per skill, with N* marked."""
    accounts = [
        Account(scope, yard, accounting.report(yard), yard.ledger.llm_calls(), yard.ledger.uses())
        for yard, scope in _visible_yards(signed.view)
    ]
    overall = _overall(accounts)
    rows = []
    for a in accounts:
        for cost in a.report:
            done = history(cost.skill, [cost], a.calls, a.uses)  # history() keeps this skill's rows only
            rows.append({"scope": a.scope, "cost": cost, "history": done})
    chosen = [r for r in rows if skill is None or r["cost"].skill == skill]
    chosen.sort(key=lambda r: (-r["cost"].invested_tokens, -r["cost"].uses, r["cost"].skill))
    charts = [chart(projection(r["cost"])) for r in chosen[:MAX_CHARTS]]
    unattributed = [(a.scope, accounting.unattributed(a.yard.ledger)) for a in accounts]
    context = {
        "nav": "costs",
        "rows": rows,
        "overall": chart(overall),
        "overall_curve": overall,
        "charts": charts,
        "more": max(0, len(chosen) - MAX_CHARTS),
        "skill": skill,
        "unattributed": [(s, u) for s, u in unattributed if u["llm_calls"]],
        "shared_hidden": None if signed.view.admin else SHARED_COST_HIDDEN,
    }
    return console.page(request, "costs.html", context, signed=signed)


# -- audit ----------------------------------------------------------------------------------------------
@router.get("/audit")
def audit(
    request: Request,
    console: ConsoleDep,
    signed: Signed,
    tenant: Annotated[str, Query(max_length=32)] = "",
    skill: Annotated[str, Query(max_length=64)] = "",
    event: Literal["", "call", "gate", "import", "rollback", "fix", "create"] = "",
    outcome: Annotated[str, Query(max_length=32)] = "",
    since: Annotated[str, Query(max_length=64)] = "",
    until: Annotated[str, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> Response:
    """Who ran what: the audit trail, newest first, filtered. Admin keys see every tenant's."""
    view = signed.view
    tenant, skill = tenant.strip(), skill.strip()  # an empty box of the filter form: no filter
    if tenant and not TENANT_RE.fullmatch(tenant):
        raise InvalidInput(f"{tenant!r} is not a tenant name (a-z, 0-9 and '-')")
    if skill and not is_skill_name(skill):
        raise InvalidInput(f"{skill!r} is not a skill name (a-z, 0-9 and single hyphens)")
    try:
        lo = parse_when(since) if since else None
        hi = parse_when(until) if until else None
    except ValueError as exc:
        raise InvalidInput(f"invalid time filter: {exc}") from exc
    if not view.admin:
        tenant = view.name  # a tenant key sees only its own entries, whatever it asks for
    entries = console.state.service.audit.query(tenant or None, skill or None, lo, hi, event=event or None)
    if outcome:
        entries = [e for e in entries if e.get("outcome") == outcome]
    columns = ("ts", "tenant", "event", "skill", "version", "scope", "outcome", "error", "duration_ms", "via")
    entries = [
        {**{k: e.get(k) for k in columns}, "ids": [e[k] for k in ("request_id", "job_id") if e.get(k)]}
        for e in entries[-limit:][::-1]
    ]
    context = {
        "nav": "audit",
        "entries": entries,
        "filters": {
            "tenant": tenant,
            "skill": skill,
            "event": event,
            "outcome": outcome,
            "since": since,
            "until": until,
            "limit": limit,
        },
        "events": AUDIT_EVENTS,
    }
    template = "_audit_table.html" if _fragment(request, "audit-table") else "audit.html"
    return console.page(request, template, context, signed=signed)


# -- jobs and sessions ------------------------------------------------------------------------------------
@router.get("/jobs")
def jobs(request: Request, console: ConsoleDep, signed: Signed) -> Response:
    """This key's jobs and runs now, live: the table refreshes itself and each job that is
    not done streams its events (server-sent, as the API's /v1/jobs/{id}/events)."""
    state, view = console.state, signed.view
    listed = sorted(state.jobs.list(view.name), key=lambda j: j.created_at, reverse=True)
    context = {
        "nav": "jobs",
        "jobs": [j.out() for j in listed],
        "runs_active": state.service.runs.active(view.tenant),
        "runs_limit": state.service.runs.limit_for(view.tenant),
        # Sessions are not offered by this server yet; the panel says so until they are.
        "sessions": None,
    }
    template = "_jobs_table.html" if _fragment(request, "jobs-table") else "jobs.html"
    return console.page(request, template, context, signed=signed)


@router.get("/jobs/{job_id}/events")
async def job_events(request: Request, console: ConsoleDep, signed: Signed, job_id: JobId) -> Response:
    """A job's events, server-sent: the API's stream, for the signed-in browser (an
    EventSource cannot send an Authorization header; the session cookie stands in)."""
    return await job_routes.job_events(request, console.state, signed.view, job_id)
