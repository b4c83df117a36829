"""The skill lifecycle as one Python API: add (build + gate + register), test, run,
list, show, search, versions, rollback, export. The CLI, the HTTP server and the MCP
server are thin layers over this class.
"""

from __future__ import annotations

import atexit
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import structlog

from sandbox import ImageMissing, Limits, Sandbox, SandboxError
from sandbox.images import Images

from . import memory
from .accounting import best_effort
from .build import build_skill_image
from .calls import CallError, CallResult, call_limits, call_skill
from .config import Settings, get_settings
from .errors import InvalidName, NotFound, SkillError, UnknownSkill
from .gate import GateReport, gate_limits, run_gate
from .package import (
    MEMORY_FILE,
    PackageError,
    SkillPackage,
    load_package,
    package_from_files,
    unpack_files,
    validate_name,
    write_files,
)
from .records import GateSummary, SkillRecord
from .registry import Registry

log = structlog.get_logger(__name__)
Progress = Callable[[str], None]


@dataclass
class AddOutcome:
    name: str
    status: str  # registered, blocked, unchanged, rejected
    version: int | None = None
    reasons: list[str] = field(default_factory=list)
    report: GateReport | None = None
    built: bool = False
    duration_s: float = 0.0
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "status": self.status,
            "version": self.version,
            "reasons": self.reasons,
            "built": self.built,
            "duration_s": round(self.duration_s, 3),
            "source": self.source,
        }
        if self.report is not None:
            out["gate"] = self.report.summary
        return out


def discover(path: Path) -> list[Path]:
    """One skill folder, or a folder of skill folders (those holding SKILL.md)."""
    if (path / "SKILL.md").exists():
        return [path]
    if not path.is_dir():
        raise SkillError(f"{path}: not a folder; pass a skill folder or a folder of skills")
    found = sorted(p for p in path.iterdir() if p.is_dir() and (p / "SKILL.md").exists())
    if not found:
        raise SkillError(f"{path}: no SKILL.md here or in its sub-folders")
    return found


class Yard:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        sandbox: Sandbox | None = None,
        registry: Registry | None = None,
        progress: Progress | None = None,
        pool: bool | None = None,
        tenant: str = "",
        collect_orphans: bool = True,
        long_lived: bool | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        # `skillyard gc` and `doctor` turn this off: they report what is left behind themselves.
        self._collect_on_start = collect_orphans
        self.tenant = tenant
        # Warm pools pay off in long-lived processes (server, MCP, scripts making many calls);
        # a one-shot CLI process uses cold containers.
        self.use_pool = self.settings.pool_size > 0 if pool is None else pool
        # A long-lived process (the servers, a script making many calls) records counters and
        # ledger rows on a writer thread and keeps records for RECORD_TTL_S; a one-shot one
        # writes inline. Pooled yards are long-lived; a strict-isolation server (cold calls
        # only) says so itself.
        self.long_lived = self.use_pool if long_lived is None else long_lived
        self._pool = None
        self._image_tags: dict[str, str] = {}  # content hash -> skill image tag
        self._context_tokens: dict[str, int] = {}  # content hash -> tokens of SKILL.md
        self._record_cache: dict[str, tuple[SkillRecord, float]] = {}  # name -> (record, when read)
        self._writes: queue.Queue[Callable[[], None]] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._sandbox = sandbox
        self._registry = registry
        self.progress: Progress = progress or (lambda msg: log.info("progress", msg=msg))
        self._packages: OrderedDict[tuple[str, int], SkillPackage] = OrderedDict()
        self._lock = threading.Lock()

    # -- components ------------------------------------------------------------------------
    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            from sandbox.docker_backend import DockerBackend

            self._sandbox = Sandbox(DockerBackend(runtime=self.settings.runtime))
            if self._collect_on_start:
                self._collect_orphans()
        return self._sandbox

    def _collect_orphans(self) -> None:
        """Containers of skillyard processes that died (SIGKILL, crash) are removed on start-up."""
        try:
            removed = self._sandbox.gc() if self._sandbox else []
        except SandboxError:
            return  # the engine is down: the first real use reports that clearly
        if removed:
            log.info("orphans_collected", count=len(removed))

    @property
    def call_sandbox(self) -> Sandbox:
        """Where calls run: the warm pool when enabled, else fresh one-shot containers."""
        if not self.use_pool:
            return self.sandbox
        with self._lock:
            if self._pool is None:
                from sandbox.pool import WarmPool

                self._pool = Sandbox(
                    WarmPool(
                        self.sandbox.backend,
                        size=self.settings.pool_size,  # type: ignore[arg-type]
                        max_calls=self.settings.pool_max_calls,
                        idle_expiry=self.settings.pool_idle_s,
                    )
                )
            return self._pool

    def close(self) -> None:
        self.flush()
        if self._pool is not None:
            self._pool.close()
        if self._sandbox is not None:
            self._sandbox.backend.close()  # waits for background container removals

    @property
    def client(self):  # docker.DockerClient
        return self.sandbox.backend.client  # type: ignore[attr-defined]

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.settings.store)
        return self._registry

    @cached_property
    def ledger(self):  # runtime.ledger.Ledger
        from .ledger import Ledger

        return Ledger(self.settings.store)

    @property
    def home(self) -> Path:
        return self.settings.home

    @cached_property
    def images(self) -> Images:
        return Images(
            self.client,
            self.settings.wheel_dir.resolve(),
            base_mode=self.settings.base,
            progress=self.progress,
        )

    @cached_property
    def runner(self) -> str:
        if self.settings.runner_image:
            return self.settings.runner_image
        return self.images.ensure().runner

    @property
    def base_limits(self) -> Limits:
        return Limits(runtime=self.settings.runtime)

    def workspace(self, name: str) -> Path:
        return self.home / "skills" / validate_name(name)

    # -- packages ----------------------------------------------------------------------------
    def package(self, name: str, version: int) -> SkillPackage:
        key = (name, version)
        with self._lock:
            if key in self._packages:
                self._packages.move_to_end(key)
                return self._packages[key]
        files, executable = unpack_files(self.registry.package(name, version), self.settings)
        pkg = package_from_files(name, files, executable)
        with self._lock:
            self._packages[key] = pkg
            while len(self._packages) > 64:
                self._packages.popitem(last=False)
        return pkg

    def record(self, name: str, version: int | None = None) -> SkillRecord:
        validate_name(name)
        rec = self.registry.get(name, version)
        if rec is None:
            what = f"{name} v{version}" if version else name
            raise UnknownSkill(f"no skill {what}")
        return rec

    def image_for(self, pkg: SkillPackage, *, fresh: bool = False) -> str:
        """The skill's image tag, built if missing. Cached per content hash: a call costs no image look-ups."""
        if fresh or pkg.content_hash not in self._image_tags:
            tag, _ = build_skill_image(
                self.client, pkg, self.runner, self.settings.wheel_dir.resolve(), self.progress
            )
            self._image_tags[pkg.content_hash] = tag
        return self._image_tags[pkg.content_hash]

    # -- add / gate --------------------------------------------------------------------------
    def gate(self, pkg: SkillPackage) -> tuple[GateReport, bool]:
        tag, built = build_skill_image(
            self.client, pkg, self.runner, self.settings.wheel_dir.resolve(), self.progress
        )
        limits = gate_limits(pkg, self.base_limits, self.settings.gate_timeout)
        report = run_gate(self.sandbox, pkg, tag, limits=limits, threshold=self.settings.coverage_threshold)
        return report, built

    def add(self, path: str | Path, *, force: bool = False) -> AddOutcome:
        """Load, build, gate and record one skill folder."""
        started = time.monotonic()
        try:
            pkg = load_package(path, self.settings)
        except PackageError as exc:
            return AddOutcome(
                name=Path(path).name,
                status="rejected",
                reasons=[str(exc)],
                source=str(path),
                duration_s=time.monotonic() - started,
            )
        return self.add_package(pkg, force=force, started=started)

    def add_package(
        self, pkg: SkillPackage, *, force: bool = False, started: float | None = None
    ) -> AddOutcome:
        started = started or time.monotonic()
        existing = self.registry.find(pkg.name, pkg.content_hash)
        if existing is not None and not force:
            # Unchanged package: its verdict stands; nothing is rebuilt or re-run.
            report = GateReport.from_dict(existing.gate_report) if existing.gate_report else None
            if existing.status == "registered" and not existing.current:
                pass  # an older version re-added: leave the current pointer alone (use rollback)
            self._sync_workspace(pkg)
            return AddOutcome(
                name=pkg.name,
                status="unchanged",
                version=existing.version,
                reasons=existing.gate.reasons,
                report=report,
                source=str(pkg.source or ""),
                duration_s=time.monotonic() - started,
            )
        self.progress(f"{pkg.name}: building image")
        try:
            report, built = self.gate(pkg)
        except SandboxError as exc:
            raise SandboxError(f"{pkg.name}: {exc}") from exc
        if report.infrastructure_error:
            # The engine failed mid-gate: that says nothing about the skill. Record nothing, so the
            # next add gates it again instead of finding a "blocked" verdict for this content.
            log.warning("gate_not_recorded", skill=pkg.name, reasons=report.reasons)
            return AddOutcome(
                name=pkg.name,
                status="error",
                reasons=report.reasons + ["nothing was recorded; retry"],
                report=report,
                built=built,
                source=str(pkg.source or ""),
                duration_s=time.monotonic() - started,
            )
        status = "registered" if report.passed else "blocked"
        record = self.registry.add_version(
            name=pkg.name,
            content_hash=pkg.content_hash,
            status=status,
            description=pkg.description,
            tags=pkg.config.tags,
            instructions=pkg.instructions,
            gate=GateSummary(
                passed=report.passed,
                tests=report.tests,
                failures=report.failures,
                errors=report.errors,
                skipped=report.skipped,
                coverage=report.coverage,
                duration_s=report.duration_s,
                reasons=report.reasons,
            ),
            gate_report=report.to_dict(),
            package=pkg.to_archive(),
        )
        self._sync_workspace(pkg, memory_text=pkg.memory)
        self._forget_record(pkg.name)
        if not report.passed:
            memory.add_entry(
                self.workspace(pkg.name) / MEMORY_FILE,
                "gate",
                f"v{record.version} blocked: {'; '.join(report.reasons)[:250]}",
            )
        log.info(
            "skill_gated",
            skill=pkg.name,
            version=record.version,
            status=status,
            tests=report.tests,
            coverage=report.coverage,
            duration_s=round(report.duration_s, 3),
        )
        return AddOutcome(
            name=pkg.name,
            status=status,
            version=record.version,
            reasons=report.reasons,
            report=report,
            built=built,
            source=str(pkg.source or ""),
            duration_s=time.monotonic() - started,
        )

    def add_many(
        self,
        path: str | Path | list[Path],
        *,
        force: bool = False,
        workers: int = 1,
        on_result: Callable[[AddOutcome], None] | None = None,
    ) -> list[AddOutcome]:
        """Add every skill under `path` (or in a list of folders); `workers` > 1 builds and gates
        that many at once (registry writes are serialised by its lock). Results keep input order."""
        folders = path if isinstance(path, list) else discover(Path(path))
        _ = self.runner  # build images once, before the workers start
        if workers <= 1:
            outcomes = []
            for folder in folders:
                outcome = self.add(folder, force=force)
                outcomes.append(outcome)
                if on_result:
                    on_result(outcome)
            return outcomes
        from concurrent.futures import ThreadPoolExecutor, as_completed

        results: dict[int, AddOutcome] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="skillyard-add") as pool:
            futures = {pool.submit(self.add, folder, force=force): i for i, folder in enumerate(folders)}
            for fut in as_completed(futures):
                outcome = fut.result()
                results[futures[fut]] = outcome
                if on_result:
                    on_result(outcome)
        return [results[i] for i in range(len(folders))]

    def test(self, name: str, version: int | None = None) -> GateReport:
        """Re-run the gate on a stored version (the current one by default). Records nothing."""
        rec = self.record(name, version)
        report, _ = self.gate(self.package(rec.name, rec.version))
        return report

    def _sync_workspace(self, pkg: SkillPackage, memory_text: str | None = None) -> None:
        ws = self.workspace(pkg.name)
        mem = ws / MEMORY_FILE
        if memory_text and not mem.exists():
            ws.mkdir(parents=True, exist_ok=True)
            mem.write_text(memory_text)

    # -- calls -------------------------------------------------------------------------------
    # -- accounting off the call path (long-lived processes) ----------------------------------
    RECORD_TTL_S = 1.0  # how stale a cached record may be in a long-lived process (rollback elsewhere)

    def _cached_record(self, name: str, version: int | None) -> SkillRecord:
        if not self.long_lived or version is not None:
            return self.record(name, version)
        hit = self._record_cache.get(name)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.RECORD_TTL_S:
            return hit[0]
        rec = self.record(name, version)
        self._record_cache[name] = (rec, now)
        return rec

    def _forget_record(self, name: str) -> None:
        self._record_cache.pop(name, None)

    def _account(self, what: str, fn: Callable[[], object], **context: Any) -> None:
        """Counters and ledger rows: inline in one-shot processes, on a writer thread in long-lived
        ones (they cost ~15 ms of LanceDB writes per call). `flush()`/`close()` wait for them.
        Either way a failed write is logged and counted (accounting.best_effort), never raised."""

        def write() -> None:
            best_effort(what, fn, **context)

        if not self.long_lived:
            write()
            return
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, daemon=True, name="skillyard-accounting"
                )
                self._writer.start()
                atexit.register(self.flush)
        self._writes.put(write)

    def _write_loop(self) -> None:
        while True:
            write = self._writes.get()
            try:
                write()  # best_effort: it logs what fails, and never raises
            finally:
                self._writes.task_done()

    def flush(self) -> None:
        """Wait until every queued counter/ledger write is stored."""
        self._writes.join()  # returns at once when nothing was queued

    def run(self, name: str, params: Any, *, version: int | None = None) -> CallResult:
        try:
            rec = self._cached_record(name, version)
        except (NotFound, InvalidName) as exc:
            return CallResult(skill=name, version=version, ok=False, error=CallError("not_found", str(exc)))
        if rec.status != "registered":
            return CallResult(
                skill=name,
                version=rec.version,
                ok=False,
                error=CallError(
                    "not_registered", f"{name} v{rec.version} is {rec.status}; only registered versions run"
                ),
            )
        pkg = self.package(rec.name, rec.version)
        limits = call_limits(pkg.config, self.base_limits)

        def call(image: str) -> CallResult:
            return call_skill(
                self.call_sandbox,
                name=name,
                version=rec.version,
                image=image,
                config=pkg.config,
                params=params,
                limits=limits,
                tenant=self.tenant,
            )

        try:
            try:
                result = call(self.image_for(pkg))
            except ImageMissing:  # removed since we cached its tag (docker image prune): rebuild once
                result = call(self.image_for(pkg, fresh=True))
        except SandboxError as exc:
            result = CallResult(
                skill=name, version=rec.version, ok=False, error=CallError("sandbox", str(exc))
            )
        if result.error is None or result.error.kind not in ("invalid_input", "sandbox"):
            ok = result.ok
            self._account(
                "count a call", lambda: self.registry.record_call(rec.name, rec.version, ok), skill=name
            )
        if result.error is None or result.error.kind not in ("invalid_input", "sandbox"):  # else not a use
            self._account("record a use", lambda: self._record_use(rec, pkg, result), skill=name)
        # Memory is about the skill's own failures: a caller's bad input or an engine outage is not one.
        if (
            not result.ok
            and result.error is not None
            and result.error.kind not in ("sandbox", "invalid_input")
        ):
            memory.add_entry(
                self.workspace(name) / MEMORY_FILE,
                result.error.kind,
                f"v{rec.version} {result.error.kind}: {result.error.type + ': ' if result.error.type else ''}"
                f"{result.error.message[:200]} (input: {memory.describe_value(params)})",
            )
        if (
            not result.ok
            and result.error is not None
            and result.error.kind in ("exception", "bad_output", "crashed")
        ):
            self._remember_failed_input(name, params, result.error)
        log.info(
            "skill_call",
            skill=name,
            version=rec.version,
            ok=result.ok,
            error=result.error.kind if result.error else None,
            duration_s=round(result.duration_s, 3),
        )
        return result

    def context_tokens(self, pkg: SkillPackage) -> int:
        """Tokens the skill costs in an agent's context: its SKILL.md as the agent loads it."""
        from .tokens import count_tokens

        if pkg.content_hash not in self._context_tokens:  # tokenising on every call would be wasted work
            self._context_tokens[pkg.content_hash] = count_tokens(pkg.skill_md)
        return self._context_tokens[pkg.content_hash]

    def _record_use(self, rec: SkillRecord, pkg: SkillPackage, result: CallResult) -> None:
        self.ledger.record_use(
            skill=rec.name,
            version=rec.version,
            context_tokens=self.context_tokens(pkg),
            outcome="ok" if result.ok else result.error.kind,
            duration_ms=round(result.duration_s * 1000, 1),
        )

    def _remember_failed_input(self, name: str, params: Any, error: CallError) -> None:
        """Keep the last few failing inputs (small ones) so a fix can be checked against them."""
        import json as _json

        text = _json.dumps(params, ensure_ascii=False)
        if len(text) > 16_384:
            return
        path = self.workspace(name) / "failures.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text().splitlines() if path.exists() else []
        lines.append(_json.dumps({"input": params, "kind": error.kind, "message": error.message[:300]}))
        path.write_text("\n".join(lines[-20:]) + "\n")

    def failed_inputs(self, name: str) -> list[Any]:
        import json as _json

        path = self.workspace(name) / "failures.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(_json.loads(line)["input"])
            except (ValueError, KeyError):
                continue
        return out

    # -- queries and history -------------------------------------------------------------------
    def list(self, status: str | None = None) -> list[SkillRecord]:
        return self.registry.list(status)

    def versions(self, name: str) -> list[SkillRecord]:
        validate_name(name)
        found = self.registry.versions(name)
        if not found:
            raise UnknownSkill(f"no skill {name}")
        return found

    def search(self, query: str, limit: int = 5) -> list[tuple[SkillRecord, float]]:
        return self.registry.search(query, limit=limit)

    def memory_text(self, name: str) -> str:
        mem = self.workspace(name) / MEMORY_FILE
        return mem.read_text(encoding="utf-8", errors="replace") if mem.exists() else ""

    def show(self, name: str, version: int | None = None) -> dict[str, Any]:
        rec = self.record(name, version)
        pkg = self.package(rec.name, rec.version)
        return {"record": rec, "package": pkg, "report": rec.gate_report, "memory": self.memory_text(name)}

    def rollback(self, name: str, version: int) -> SkillRecord:
        validate_name(name)
        rec = self.registry.rollback(name, version)
        self._forget_record(name)
        log.info("skill_rollback", skill=name, version=version)
        return rec

    def export(self, name: str, dest: str | Path, version: int | None = None) -> Path:
        rec = self.record(name, version)
        pkg = self.package(rec.name, rec.version)
        target = Path(dest)
        if target.name != name:
            target = target / name
        if target.exists() and any(target.iterdir()):
            raise SkillError(f"{target} exists and is not empty; choose another destination")
        write_files(pkg.files, target, pkg.executable, memory=self.memory_text(name) or None)
        return target

    def gc(self) -> list[str]:
        return self.sandbox.gc()
