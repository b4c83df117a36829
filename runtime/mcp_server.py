"""skillyard as an MCP server (official `mcp` SDK, 2.x low-level Server), over stdio or
streamable HTTP. The `skillyard mcp` command (runtime/cli) starts it.

Every verified skill with an entrypoint is a tool: name = skill name, description = the
skill's description, inputSchema = its input_schema made portable (runtime/exports.py: a
schema whose root is not an object is offered as ``{"input": <schema>}`` and unwrapped on
the way in; top-level combinators are flattened and stated in the description). Calling a
tool runs the skill in the sandbox through the same call path as the HTTP API
(runtime.serving); the JSON output comes back as text content and as structured content
(an object output as is, anything else as ``{"result": ...}``); a failed call is an
``isError`` result saying what went wrong. Four more tools: ``search_skills``,
``load_skill``, ``test_skill`` and ``fix_skill``. The tool list is read from the registry
on every ``tools/list``, so it is always the registry's current state.

Skills are also readable, which is all an instructions-only skill is (runtime/records.py):
every registered skill's SKILL.md is a resource (``skillyard://skills/NAME/SKILL.md``; any
text file of the skill can be read by its path under the same prefix), every
instructions-only skill is a prompt (its instructions as a user message), and
``load_skill`` returns a skill's SKILL.md (or one of its text files) to a client that
uses neither resources nor prompts.

Who is asking: over stdio, the local user (the shared store, full control), or with
``--tenant NAME`` that tenant's view (its private skills and the shared ones). Over HTTP,
every request needs ``Authorization: Bearer <key>`` and is served as that key's tenant
(``--tenant NAME`` then admits only that tenant's keys).

Errors are mapped once, in :func:`tool_error`.
"""

from __future__ import annotations

import base64
import binascii
import json
import traceback
from collections.abc import Callable
from typing import Any

import anyio
import structlog

from .audit import audited
from .commands import CommandRequest
from .config import Settings, get_settings, version
from .errors import InvalidInput, SkillyardError, TenantError, Unauthorized, UnknownSkill
from .exports import call_input, mcp_tool
from .fixer import Fixer
from .names import NAME_PATTERN
from .records import INSTRUCTIONS, SkillRecord
from .serving import Service, check_input
from .tenants import Tenant
from .views import TenantView
from .yard import Yard

log = structlog.get_logger(__name__)

# Underscores: no skill can be named so.
BUILTIN_TOOLS = (
    "search_skills",
    "load_skill",
    "test_skill",
    "fix_skill",
    "run_command",
    "session_start",
    "session_exec",
    "session_write_file",
    "session_read_file",
    "session_close",
)
B64 = "base64"
COMMAND_PROPERTIES: dict[str, Any] = {
    "argv": {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "maxItems": 256,
        "description": "One of the skill's commands, then your arguments (relative paths: its working dir).",
    },
    "stdin": {"type": "string", "description": "Text for the command's stdin."},
    "files": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": f"Input files: relative path -> content, {B64}.",
    },
    "outputs": {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 8,
        "description": f"Files the command writes, returned ({B64}, capped).",
    },
}
RESOURCE_PREFIX = "skillyard://skills/"
MAX_RESOURCE_BYTES = 512 * 1024  # a file read through a resource or load_skill
RESOURCE_NOT_FOUND = -32002  # the MCP spec's code for an unknown resource
FIND_HINT = (
    "the tools list (tools/list) has every skill you can call; search_skills finds one by what it does"
)
# As the HTTP API answers them: these kinds' messages speak to the operator, not the agent.
FIXED_TEXT = {
    "sandbox": "the container engine is unavailable; try again later",
    "store": "the skill store is busy or unavailable; try again later",
}


def ok_result(output: Any, *, is_error: bool = False) -> dict[str, Any]:
    """A CallToolResult (as a dict) carrying `output`."""
    return {
        "content": [{"type": "text", "text": json.dumps(output, ensure_ascii=False)}],
        "structured_content": output if isinstance(output, dict) else {"result": output},
        "is_error": is_error,
    }


def error_result(message: str) -> dict[str, Any]:
    """An isError CallToolResult (as a dict) saying `message`."""
    return {"content": [{"type": "text", "text": message}], "is_error": True}


def command_tool_description(description: str, commands: dict[str, Any]) -> str:
    """A command skill's tool description: the skill's, then each command it offers."""
    lines = [description, "", "Commands (argv begins with one of these, then your arguments):"]
    for _, command in sorted(commands.items()):
        lines.append(
            f"- {' '.join(command.run)}" + (f": {command.description}" if command.description else "")
        )
    return "\n".join(lines)[:4000]


def tool_error(exc: SkillyardError) -> dict[str, Any]:
    """The MCP server's one mapping from errors to what an agent is told."""
    if isinstance(exc, UnknownSkill):
        return error_result(f"{exc}: {FIND_HINT}")
    if exc.kind == "invalid_input":
        return error_result(f"invalid_input: {exc}")
    if exc.kind in FIXED_TEXT:
        log.error(f"{exc.kind}_error", error=str(exc)[:500])
        return error_result(FIXED_TEXT[exc.kind])
    return error_result(str(exc))


class SkillTools:
    """The tools one MCP server offers, independent of the transport. `service` holds the
    keys, yards, run limiter and audit log (runtime.serving)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        tenant: str | None = None,
        http: bool = False,
        yard_factory: Callable[[Settings], Yard] | None = None,
        max_concurrent_runs: int | None = None,
    ) -> None:
        settings = settings or get_settings()
        self.http = http
        # Per process: this server's runs only (an HTTP server beside it counts its own).
        self.service = Service(
            settings, yard_factory=yard_factory, max_concurrent_runs=max_concurrent_runs, only_tenant=tenant
        )
        self.fixed: Tenant | None = None
        if tenant is not None:
            self.fixed = self.service.tenants.get(tenant)
            if self.fixed is None:
                raise TenantError(f"no tenant {tenant!r}: `skillyard tenant list` shows them")

    def view_for(self, ctx: Any) -> TenantView:
        """Who asks: the fixed view over stdio, the key's tenant over HTTP."""
        if not self.http:
            return self.service.view(self.fixed)
        headers = getattr(getattr(ctx, "request", None), "headers", None) or {}
        tenant = self.service.authenticate(headers.get("authorization"))
        if tenant is None:
            raise Unauthorized("missing or invalid API key")
        return self.service.view(tenant)

    # -- tools/list ------------------------------------------------------------------------------
    def skill_tools(self, view: TenantView) -> list[dict[str, Any]]:
        """Every verified skill `view` sees that has an entrypoint, as a tool."""
        tools = []
        for rec, scope in view.records("all", "registered"):
            if not rec.runnable:
                continue  # instructions only: a resource, a prompt and load_skill's, never a tool
            yard = view.private if scope == "private" and view.private is not None else view.shared
            try:
                pkg = yard.package(rec.name, rec.version)
            except Exception as exc:  # noqa: BLE001 - one unreadable package must not hide the others
                log.warning("mcp_tool_skipped", skill=rec.name, error=str(exc)[:200])
                continue
            if not pkg.config.entrypoint:
                if pkg.config.commands:  # a command skill: its tool runs its commands
                    tools.append(
                        {
                            "name": rec.name,
                            "description": command_tool_description(rec.description, pkg.config.commands),
                            "input_schema": {
                                "type": "object",
                                "properties": COMMAND_PROPERTIES,
                                "required": ["argv"],
                                "additionalProperties": False,
                            },
                        }
                    )
                continue
            tools.append(mcp_tool(pkg, rec.description))
        return tools

    # -- resources and prompts: skills to read -----------------------------------------------------
    @staticmethod
    def readable(view: TenantView) -> list[SkillRecord]:
        """The registered skills `view` sees: every one can be read."""
        return [rec for rec, _ in view.records("all", "registered")]

    def list_resources(self, view: TenantView) -> list[dict[str, Any]]:
        """Every readable skill's SKILL.md, as a resource."""
        return [
            {
                "uri": f"{RESOURCE_PREFIX}{rec.name}/SKILL.md",
                "name": rec.name,
                "title": f"{rec.name} ({rec.tier})",
                "description": rec.description,
                "mime_type": "text/markdown",
            }
            for rec in self.readable(view)
        ]

    def read_file(self, view: TenantView, name: str, path: str = "SKILL.md") -> str:
        """The text of `path` in the registered skill `name` (UnknownSkill, InvalidInput)."""
        target = view.resolve(name)
        if target.record.status != "registered":
            raise UnknownSkill(f"no registered skill {name}")
        pkg = target.yard.package(name, target.record.version)
        data = pkg.files.get(path)
        if data is None:
            shown = ", ".join(sorted(p for p in pkg.files if not p.startswith("tests/"))[:30])
            raise InvalidInput(f"{name} has no file {path!r}; its files: {shown}")
        if len(data) > MAX_RESOURCE_BYTES:
            raise InvalidInput(
                f"{name}/{path} is {len(data)} bytes; files over {MAX_RESOURCE_BYTES} are not served"
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{name}/{path} is not a text file") from exc

    def read_resource(self, view: TenantView, uri: str) -> tuple[str, str]:
        """(text, MIME type) of a resource URI (see RESOURCE_PREFIX)."""
        rest = uri.removeprefix(RESOURCE_PREFIX) if uri.startswith(RESOURCE_PREFIX) else ""
        name, _, path = rest.partition("/")
        if not name or not path:
            raise InvalidInput(
                f"not a skill resource: {uri!r} (they look like {RESOURCE_PREFIX}NAME/SKILL.md)"
            )
        text = self.read_file(view, name, path)
        return text, "text/markdown" if path.endswith(".md") else "text/plain"

    def list_prompts(self, view: TenantView) -> list[dict[str, Any]]:
        """Every instructions-only skill, as a prompt."""
        return [
            {"name": rec.name, "description": rec.description}
            for rec in self.readable(view)
            if rec.tier == INSTRUCTIONS
        ]

    def get_prompt(self, view: TenantView, name: str) -> dict[str, Any]:
        """The prompt of an instructions-only skill: its SKILL.md as one user message."""
        target = view.resolve(name)
        if target.record.status != "registered" or target.record.tier != INSTRUCTIONS:
            raise UnknownSkill(f"no instructions-only skill {name} (prompts/list has them)")
        text = self.read_file(view, name)
        return {
            "description": target.record.description,
            "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
        }

    @staticmethod
    def builtin_tools() -> list[dict[str, Any]]:
        """search_skills, test_skill and fix_skill: what every view offers besides its skills."""
        name = {
            "type": "string",
            "pattern": NAME_PATTERN,
            "maxLength": 64,
            "description": "A skill name.",
        }
        return [
            {
                "name": "search_skills",
                "description": "Find skills by what they do (words and meaning). Returns names, "
                "descriptions, tiers and scores: call a verified skill by its name; read an "
                "instructions one with load_skill.",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "minLength": 1, "maxLength": 500},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
                    },
                    "required": ["query"],
                    "additionalProperties": False,
                },
            },
            {
                "name": "load_skill",
                "description": "Read a skill's instructions (its SKILL.md), or another text file of "
                "it by path (e.g. references/guide.md). Instructions-only skills have no code: "
                "load them and follow them.",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "name": name,
                        "path": {
                            "type": "string",
                            "maxLength": 1024,
                            "default": "SKILL.md",
                            "description": "A file of the skill (default: SKILL.md).",
                        },
                    },
                    "required": ["name"],
                    "additionalProperties": False,
                },
            },
            {
                "name": "test_skill",
                "description": "Re-run a skill's test gate in its container (records nothing) "
                "and report the verdict: tests, failures, coverage and reasons.",
                "input_schema": {
                    "type": "object",
                    "properties": {"name": name, "version": {"type": "integer", "minimum": 1}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
            },
            {
                "name": "fix_skill",
                "description": "Ask the LLM to repair a blocked or failing skill; each attempt is "
                "regated as a new version. Needs an LLM endpoint (OPENAI_BASE_URL).",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "name": name,
                        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3},
                    },
                    "required": ["name"],
                    "additionalProperties": False,
                },
            },
        ]

    @staticmethod
    def command_and_session_tools() -> list[dict[str, Any]]:
        """run_command (any skill's commands) and the session tools."""
        session_id = {"type": "string", "pattern": "^[0-9a-f]{24}$", "description": "From session_start."}
        path = {"type": "string", "maxLength": 1024, "description": "A path in /work (relative to it)."}
        name = {"type": "string", "pattern": NAME_PATTERN, "maxLength": 64}
        return [
            {
                "name": "run_command",
                "description": "Run one of a skill's commands (programs with argv, files in and out) in a "
                "fresh sandbox. The skill's commands are in its description and SKILL.md.",
                "input_schema": {
                    "type": "object",
                    "properties": {"skill": {**name, "description": "A skill name."}, **COMMAND_PROPERTIES},
                    "required": ["skill", "argv"],
                    "additionalProperties": False,
                },
            },
            {
                "name": "session_start",
                "description": "Start a workspace: a sandbox container with these skills read-only under "
                "/skills/NAME and a writable /work that lasts between commands (no network). Returns its id.",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "skills": {"type": "array", "items": name, "minItems": 1, "maxItems": 16},
                        "idle_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
                    },
                    "required": ["skills"],
                    "additionalProperties": False,
                },
            },
            {
                "name": "session_exec",
                "description": "Run a command in a session (any program in it), in /work; returns exit code, "
                "stdout and stderr. Processes do not outlive the command; files in /work do.",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "session": session_id,
                        "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "stdin": {"type": "string"},
                        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                    },
                    "required": ["session", "argv"],
                    "additionalProperties": False,
                },
            },
            {
                "name": "session_write_file",
                "description": "Write a file in a session's /work: `content` (text) or `content_base64`.",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "session": session_id,
                        "path": path,
                        "content": {"type": "string"},
                        "content_base64": {"type": "string"},
                    },
                    "required": ["session", "path"],
                    "additionalProperties": False,
                },
            },
            {
                "name": "session_read_file",
                "description": "Read a file from a session's /work: `content` when it is UTF-8 text, else "
                "`content_base64`.",
                "input_schema": {
                    "type": "object",
                    "properties": {"session": session_id, "path": path},
                    "required": ["session", "path"],
                    "additionalProperties": False,
                },
            },
            {
                "name": "session_close",
                "description": "End a session (its container and /work are removed).",
                "input_schema": {
                    "type": "object",
                    "properties": {"session": session_id},
                    "required": ["session"],
                    "additionalProperties": False,
                },
            },
        ]

    def list_tools(self, view: TenantView) -> list[dict[str, Any]]:
        """Every tool `view` may call."""
        return self.builtin_tools() + self.command_and_session_tools() + self.skill_tools(view)

    # -- tools/call ------------------------------------------------------------------------------
    def call(self, view: TenantView, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """A CallToolResult as a dict: content, structured_content, is_error."""
        try:
            if name == "search_skills":
                return self._search(view, args)
            if name == "load_skill":
                return self._load(view, args)
            if name == "test_skill":
                return self._test(view, args)
            if name == "fix_skill":
                return self._fix(view, args)
            if name == "run_command":
                skill = str(args.get("skill", ""))
                with self.service.run_slot(view.tenant, skill, via="mcp"):  # first: a refusal reads nothing
                    return self._command(view, skill, args)
            if name.startswith("session_"):
                return self._session(view, name, args)
            return self._run(view, name, args)
        except SkillyardError as exc:
            return tool_error(exc)

    def _search(self, view: TenantView, args: dict[str, Any]) -> dict[str, Any]:
        query = args.get("query")
        limit = args.get("limit", 5)
        if (
            not isinstance(query, str)
            or not query.strip()
            or not isinstance(limit, int)
            or not 1 <= limit <= 20
        ):
            return error_result(
                "search_skills needs a non-empty string 'query' and an integer 'limit' of 1-20"
            )
        hits = [
            {
                "name": r.name,
                "description": r.description,
                "scope": sc,
                "tier": r.tier,
                "version": r.version,
                "score": round(float(s), 6),
            }
            for r, s, sc in view.search(query[:500], limit)
        ]
        return ok_result({"results": hits})

    def _load(self, view: TenantView, args: dict[str, Any]) -> dict[str, Any]:
        name, path = args.get("name"), args.get("path", "SKILL.md")
        if not isinstance(name, str) or not isinstance(path, str):
            return error_result("load_skill needs a skill 'name' and optionally a file 'path'")
        text = self.read_file(view, name, path)
        return {"content": [{"type": "text", "text": text}], "is_error": False}

    def _test(self, view: TenantView, args: dict[str, Any]) -> dict[str, Any]:
        name, version = args.get("name"), args.get("version")
        if not isinstance(name, str) or (
            version is not None and (not isinstance(version, int) or version < 1)
        ):
            return error_result("test_skill needs a skill 'name' and optionally an integer 'version' >= 1")
        target = view.resolve(name, "auto", version)
        with audited(
            self.service.audit,
            "gate",
            tenant=view.name,
            skill=name,
            version=target.record.version,
            scope=target.scope,
            via="mcp",
        ) as entry:
            report = target.yard.test(name, target.record.version)
            entry.update(
                outcome="passed" if report.passed else "blocked", tests=report.tests, coverage=report.coverage
            )
        failing = [
            {"test": c.name, "status": c.status, "message": c.message[:300]}
            for c in report.cases
            if c.status != "passed"
        ]
        return ok_result({**report.summary, "version": target.record.version, "failing": failing[:20]})

    def _fix(self, view: TenantView, args: dict[str, Any]) -> dict[str, Any]:
        name, attempts = args.get("name"), args.get("max_attempts", 3)
        if not isinstance(name, str) or not isinstance(attempts, int) or not 1 <= attempts <= 5:
            return error_result("fix_skill needs a skill 'name' and an integer 'max_attempts' of 1-5")
        target = view.resolve(name)
        with self.service.refusals_audited("fix", view, name, via="mcp"):
            view.check_change(target)
        fixer = Fixer(target.yard)  # LLMUnavailable: an error result
        with audited(
            self.service.audit,
            "fix",
            tenant=view.name,
            skill=name,
            version=target.record.version,
            scope=target.scope,
            via="mcp",
        ) as entry:
            outcome = fixer.fix(name, max_attempts=attempts)
            entry.update(version=outcome.version, outcome=outcome.status, tokens=outcome.tokens)
        return ok_result(outcome.to_dict(), is_error=outcome.status != "fixed")

    def _command(self, view: TenantView, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """A command of the skill `name` (the command tool of a command skill, or run_command)."""
        target = view.resolve(name)
        argv, stdin, files, outputs = (
            args.get("argv"),
            args.get("stdin", ""),
            args.get("files", {}),
            args.get("outputs", []),
        )
        if not isinstance(stdin, str) or not isinstance(files, dict) or not isinstance(outputs, list):
            raise InvalidInput("stdin is text, files an object of base64 strings, outputs a list of names")
        try:
            data = {str(k): base64.b64decode(str(v), validate=True) for k, v in files.items()}
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"files must hold base64: {exc}") from exc
        request = CommandRequest(argv if isinstance(argv, list) else [], stdin.encode(), data, outputs)
        check_input(args)
        result = self.service.run_command(view, target, request, via="mcp")  # the caller holds a run slot
        out = result.to_dict()
        for key in ("stdout_b64", "stderr_b64", "limits"):
            out.pop(key, None)
        if result.error is not None and result.error.kind not in ("exit", "timeout", "oom"):
            return {**error_result(f"{result.error.kind}: {result.error.message}"), "structured_content": out}
        return ok_result(out, is_error=not result.ok)

    def _session(self, view: TenantView, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        sessions = self.service.sessions
        if tool == "session_start":
            skills, idle = args.get("skills"), args.get("idle_timeout", 600)
            if not isinstance(skills, list) or not all(isinstance(s, str) for s in skills):
                raise InvalidInput("session_start needs 'skills', a list of skill names")
            if not isinstance(idle, (int, float)) or isinstance(idle, bool):
                raise InvalidInput("idle_timeout is a number of seconds")
            session = self.service.open_session(view, skills, idle_timeout=float(idle), via="mcp")
            return ok_result(session.to_dict())
        session_id = args.get("session")
        if not isinstance(session_id, str):
            raise InvalidInput(f"{tool} needs 'session', an id from session_start")
        session = sessions.get(view.name, session_id)
        if tool == "session_close":
            sessions.close(view.name, session_id)
            return ok_result({"closed": session_id})
        if tool == "session_exec":
            argv, stdin, timeout = args.get("argv"), args.get("stdin", ""), args.get("timeout")
            if not isinstance(stdin, str) or (timeout is not None and not isinstance(timeout, (int, float))):
                raise InvalidInput("stdin is text and timeout a number of seconds")
            result = self.service.session_exec(
                view,
                session,
                argv if isinstance(argv, list) else [],
                stdin=stdin.encode(),
                timeout=timeout,
                via="mcp",
            )
            return ok_result(result.to_dict(), is_error=not result.ok)
        path = args.get("path")
        if not isinstance(path, str):
            raise InvalidInput(f"{tool} needs 'path', a file in /work")
        if tool == "session_write_file":
            text, b64 = args.get("content"), args.get("content_base64")
            if (text is None) == (b64 is None):
                raise InvalidInput("give either content (text) or content_base64")
            try:
                data = text.encode() if isinstance(text, str) else base64.b64decode(str(b64), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidInput(f"content_base64 is not base64: {exc}") from exc
            where = sessions.run(session, lambda: session.write_file(path, data))
            return ok_result({"path": where, "bytes": len(data)})
        if tool == "session_read_file":
            data = sessions.run(session, lambda: session.read_file(path))
            try:
                return ok_result({"path": path, "content": data.decode("utf-8"), "bytes": len(data)})
            except UnicodeDecodeError:
                return ok_result(
                    {"path": path, "content_base64": base64.b64encode(data).decode(), "bytes": len(data)}
                )
        return error_result(f"no tool {tool}: {FIND_HINT}")

    def _run(self, view: TenantView, name: str, args: dict[str, Any]) -> dict[str, Any]:
        # The run limit first (runtime.serving): a refusal reads no store and writes nothing.
        with self.service.run_slot(view.tenant, name, via="mcp"):
            # A tool name that is no skill name is no skill either; a merged-away name runs its survivor.
            target = view.resolve(name, follow_merges=True)
            pkg = target.yard.package(target.name, target.record.version)
            if not pkg.config.entrypoint and pkg.config.commands:
                return self._command(view, target.name, args)
            try:
                params = call_input(pkg.config.input_schema, args)
            except InvalidInput as exc:
                return error_result(f"invalid_input: {name}: {exc}")
            check_input(params)
            result = self.service.run(view, target, params, via="mcp")
        if result.ok:
            return ok_result(result.output)
        err = result.error
        text = f"{err.kind}: {err.message}" if err else "the call failed"
        return {
            "content": [{"type": "text", "text": text}],
            "is_error": True,
            "structured_content": {
                "ok": False,
                "error": {
                    "kind": err.kind if err else "error",
                    "message": err.message if err else "",
                    "type": err.type if err else None,
                },
            },
        }

    def close(self) -> None:
        """Stop the yards' warm containers (at shutdown)."""
        self.service.close()


# -- the MCP server ------------------------------------------------------------------------------------
def build_server(tools: SkillTools) -> Any:
    """The MCP server (SDK 2.x low-level Server) answering tools/list and tools/call with `tools`."""
    import mcp.types as types
    from mcp.server import Server
    from mcp.shared.exceptions import MCPError

    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        # Off the event loop: the key check may hash (once per key) and the registry reads block.
        listed = await anyio.to_thread.run_sync(lambda: tools.list_tools(tools.view_for(ctx)))
        return types.ListToolsResult(tools=[types.Tool(**tool) for tool in listed])

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        def call() -> dict[str, Any]:
            return tools.call(tools.view_for(ctx), params.name, dict(params.arguments or {}))

        try:
            result = await anyio.to_thread.run_sync(call)
        except SkillyardError as exc:  # the key check, before any tool ran
            result = tool_error(exc)
        except Exception:  # noqa: BLE001 - the client gets a plain error result, the log the traceback
            log.error("mcp_tool_crashed", tool=params.name, traceback=traceback.format_exc())
            result = error_result("internal error; the server log has the details")
        return types.CallToolResult(
            content=[types.TextContent(**c) for c in result["content"]],
            structured_content=result.get("structured_content"),
            is_error=result.get("is_error", False),
        )

    async def on_list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        listed = await anyio.to_thread.run_sync(lambda: tools.list_resources(tools.view_for(ctx)))
        return types.ListResourcesResult(resources=[types.Resource(**r) for r in listed])

    async def on_read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        try:
            text, mime = await anyio.to_thread.run_sync(lambda: tools.read_resource(tools.view_for(ctx), uri))
        except SkillyardError as exc:
            raise MCPError(RESOURCE_NOT_FOUND, tool_error(exc)["content"][0]["text"]) from exc
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type=mime, text=text)]
        )

    async def on_list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
        listed = await anyio.to_thread.run_sync(lambda: tools.list_prompts(tools.view_for(ctx)))
        return types.ListPromptsResult(prompts=[types.Prompt(**p) for p in listed])

    async def on_get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        try:
            prompt = await anyio.to_thread.run_sync(
                lambda: tools.get_prompt(tools.view_for(ctx), params.name)
            )
        except SkillyardError as exc:
            raise MCPError(types.INVALID_PARAMS, tool_error(exc)["content"][0]["text"]) from exc
        messages = [
            types.PromptMessage(role=m["role"], content=types.TextContent(**m["content"]))
            for m in prompt["messages"]
        ]
        return types.GetPromptResult(description=prompt["description"], messages=messages)

    return Server(
        "skillyard",
        version=version(),
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
        on_list_resources=on_list_resources,
        on_read_resource=on_read_resource,
        on_list_prompts=on_list_prompts,
        on_get_prompt=on_get_prompt,
        instructions="Verified skills are tools that run in a hardened sandbox and return JSON; "
        "instructions-only skills are read (resources, prompts, or the load_skill tool) and "
        "followed. Use search_skills to find either by what it does.",
    )


class _RequireKey:
    """ASGI guard for the HTTP transport: no valid key, no MCP session."""

    def __init__(self, app: Any, tools: SkillTools) -> None:
        self.app = app
        self.tools = tools

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            auth = next(
                (v.decode("latin-1") for k, v in scope.get("headers") or [] if k.lower() == b"authorization"),
                None,
            )
            tenant = await anyio.to_thread.run_sync(self.tools.service.authenticate, auth)
            if tenant is None:
                body = json.dumps(
                    {"error": "missing or invalid API key: send 'Authorization: Bearer <key>'"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b'Bearer realm="skillyard"'),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(tools: SkillTools, *, host: str = "127.0.0.1", path: str = "/mcp") -> Any:
    """The streamable-HTTP ASGI app (serve it with uvicorn)."""
    server = build_server(tools)
    app = server.streamable_http_app(streamable_http_path=path, host=host)
    return _RequireKey(app, tools)


async def serve_stdio(tools: SkillTools) -> None:
    """Serve `tools` over stdin/stdout until the client goes away."""
    from mcp.server.stdio import stdio_server

    server = build_server(tools)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
