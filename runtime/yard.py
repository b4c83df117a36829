"""The skill lifecycle as one Python API: add (build + gate + register), test, run,
list, show, search, versions, rollback, export. The CLI, the HTTP API and the MCP server
are thin layers over this class.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from sandbox import Limits, RunSpec, Sandbox, SandboxError, WheelMissing

from . import calling, notes
from .accounting import Writer
from .calls import CallError, CallResult, call_limits, callee_env, callee_spec
from .commands import CommandRequest, CommandResult, OnOutput
from .config import Settings, get_settings
from .discovery import MAX_DEPTH, find_skills
from .errors import InvalidName, NotFound, SkillError, UnknownSkill
from .gate import GateReport, gate_limits, gate_policy, run_gate
from .names import validate_name
from .package import PackageError, SkillPackage, load_package, package_from_files, unpack_files, write_files
from .records import BLOCKED, INSTRUCTIONS, GateSummary, SkillRecord
from .registry import Registry
from .sessions import DEFAULT_IDLE_S, Session, SessionManager, resolve_skills
from .skill_images import DockerImages, SkillImages
from .validation import INSTRUCTIONS_NOTE, ValidationReport, cheap_block_reasons, validate_path
from .workspace import Workspace

if TYPE_CHECKING:
    from sandbox.docker_backend import DockerBackend
    from sandbox.pool import WarmPool

    from .ledger import Ledger

log = structlog.get_logger(__name__)
Progress = Callable[[str], None]


@dataclass
class AddOutcome:
    """What adding one package came to: registered, blocked, unchanged (this exact content
    was gated before: its verdict stands), rejected (not a valid package) or error (the
    engine failed mid-gate: nothing was recorded). `tier` is the version's tier
    (runtime/records.py): instructions, verified or blocked; None when nothing was recorded."""

    name: str
    status: str
    version: int | None = None
    tier: str | None = None
    reasons: list[str] = field(default_factory=list)
    report: GateReport | None = None
    built: bool = False
    duration_s: float = 0.0
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON-ready data (the CLI's and the API's shape)."""
        out = {
            "name": self.name,
            "status": self.status,
            "tier": self.tier,
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
    """The skill folders at or under `path` (runtime/discovery.py: nested repository layouts
    too); SkillError naming what was passed over if there is none."""
    found = find_skills(path)
    if not found.skills:
        skipped = "; ".join(f"{s.path.name}: {s.reason}" for s in found.skipped[:5])
        raise SkillError(
            f"{path}: no SKILL.md here or in its sub-folders (up to {MAX_DEPTH} levels down)"
            + (f"; passed over: {skipped}" if skipped else "")
        )
    return found.skills


class Yard:
    """Every skill of one store, and everything done to them.

    Invariants: only a version whose gate passed is ever registered, and only a registered
    version runs; a call's accounting (counters, ledger rows) never fails the call; a
    skill's own failures -- not a caller's bad input, not an engine outage -- go into its
    notes and, when worth replaying, its failing inputs.

    Its parts are made on first use: `sandbox` (Docker unless given), `images` (on the
    sandbox's Docker engine unless given), `registry` and `ledger` (the store at
    settings.store). `pool` (default: settings.pool_size > 0) runs calls in warm
    containers; `long_lived` (default: pooled) journals accounting and merges it in batches
    off the call's path, and keeps records while the registry's skills table stands still;
    `tenant` keeps warm containers apart per tenant;
    `collect_orphans` removes containers of dead processes at first use of the engine.
    """

    PACKAGE_CACHE = 64  # unpacked packages kept per yard

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        sandbox: Sandbox | None = None,
        images: SkillImages | None = None,
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
        # Pooled yards are long-lived; a strict-isolation server (cold calls only) says so itself.
        self.long_lived = self.use_pool if long_lived is None else long_lived
        self._pool: Sandbox | None = None  # Sandbox(self._warm)
        self._sessions: SessionManager | None = None
        self._cold: Sandbox | None = None  # fresh containers with spares (long-lived, no pool)
        self._warm: WarmPool | None = None
        self._sandbox = sandbox
        self._images = images
        self._registry = registry
        self._accounting = Writer(
            background=self.long_lived,
            journal_dir=self.home / "journal",
            registry=lambda: self.registry,
            ledger=lambda: self.ledger,
            context_tokens=lambda name, version: self.context_tokens(self.package(name, version)),
        )
        self._context_tokens: dict[str, int] = {}  # content hash -> tokens of SKILL.md
        self._callee_envs: dict[str, dict[str, str]] = {}  # content hash -> the calls' environment
        self._record_cache: dict[str, tuple[SkillRecord, int]] = {}  # name -> (record, skills table version)
        self._packages: OrderedDict[tuple[str, int], SkillPackage] = OrderedDict()
        self._lock = threading.Lock()  # servers call from many threads: the caches and the pool
        self.progress: Progress = progress or (lambda msg: log.info("progress", msg=msg))

    # -- parts -------------------------------------------------------------------------------
    @property
    def sandbox(self) -> Sandbox:
        """Where gates and cold calls run: fresh, hardened one-shot containers."""
        if self._sandbox is None:
            if self.settings.cluster:  # a Ray cluster's nodes (runtime/cluster.py, docs/SCALING.md)
                from .cluster import cluster_backend

                self._sandbox = Sandbox(cluster_backend(self.settings, pooled=self.use_pool))
                return self._sandbox
            from sandbox.docker_backend import DockerBackend

            self._sandbox = Sandbox(DockerBackend(runtime=self.settings.runtime))
            if self._collect_on_start:
                self._collect_orphans()
        return self._sandbox

    def _collect_orphans(self) -> None:
        """Containers of skillyard processes that died (SIGKILL, crash) are removed on start-up."""
        try:
            removed = self.sandbox.gc()
        except SandboxError:
            return  # the engine is down: the first real use reports that clearly
        if removed:
            log.info("orphans_collected", count=len(removed))

    @property
    def call_sandbox(self) -> Sandbox:
        """Where calls run: the warm pool when pooling (on a Docker engine); in a long-lived yard
        without a pool (a strict-isolation server), fresh containers of which one per kind of call
        is created ahead (DockerBackend spares: never started before its call); else the sandbox."""
        from sandbox.docker_backend import DockerBackend

        backend = self.sandbox.backend
        if not isinstance(backend, DockerBackend):
            return self.sandbox
        if not self.use_pool:
            if not self.long_lived:
                return self.sandbox
            with self._lock:
                if self._cold is None:
                    self._cold = Sandbox(backend.with_spares())
                return self._cold
        with self._lock:
            if self._pool is None:
                from sandbox.pool import WarmPool

                self._warm = WarmPool(
                    backend,
                    size=self.settings.pool_size,
                    max_calls=self.settings.pool_max_calls,
                    idle_expiry=self.settings.pool_idle_s,
                )
                self._pool = Sandbox(self._warm)
            return self._pool

    @property
    def warm_pool(self) -> WarmPool | None:
        """The warm pool, if calls have started one (see `call_sandbox`)."""
        return self._warm

    @property
    def images(self) -> SkillImages:
        """The base, runner and skill images (on the sandbox's Docker engine unless given)."""
        if self._images is None:
            from sandbox.docker_backend import DockerBackend

            backend = self.sandbox.backend
            if self.settings.cluster and backend.name == "ray":
                from .cluster import ClusterImages

                self._images = ClusterImages(backend, self.settings)  # type: ignore[arg-type]
                return self._images
            if not isinstance(backend, DockerBackend):
                raise SandboxError(f"the {backend.name} backend builds no images: give the Yard images=")
            self._images = DockerImages(backend, self.settings, lambda message: self.progress(message))
        return self._images

    @property
    def runner(self) -> str:
        """The runner image skills are layered on (built on first use if missing)."""
        return self.images.runner

    @runner.setter
    def runner(self, tag: str) -> None:
        """Use `tag`, a runner image already built (skips the look-up)."""
        self.images.runner = tag

    @property
    def registry(self) -> Registry:
        """Every version of every skill (the store at settings.store)."""
        if self._registry is None:
            self._registry = Registry(self.settings.store)
        return self._registry

    @cached_property
    def ledger(self) -> Ledger:
        """The token ledger, in the registry's store."""
        from .ledger import Ledger

        return Ledger(self.settings.store)

    @property
    def home(self) -> Path:
        """The state folder (store, workspaces, wheelhouse)."""
        return self.settings.home

    @property
    def base_limits(self) -> Limits:
        """The limits every run starts from (a skill's own config changes them)."""
        return Limits(runtime=self.settings.runtime)

    def workspace(self, name: str) -> Path:
        """The skill's workspace folder (its notes and failing inputs)."""
        return self.home / "skills" / validate_name(name)

    @property
    def sessions(self) -> SessionManager:
        """The sessions this yard started (runtime/sessions.py), closed with the yard."""
        with self._lock:
            if self._sessions is None:
                self._sessions = SessionManager(self.docker_backend)
            return self._sessions

    def docker_backend(self) -> DockerBackend:
        """The sandbox's Docker backend (SandboxError for another backend)."""
        from sandbox.docker_backend import DockerBackend

        backend = self.sandbox.backend
        if not isinstance(backend, DockerBackend):
            raise SandboxError(f"sessions need the Docker backend, not {backend.name}")
        return backend

    def session(self, skills: list[str], *, idle_timeout: float = DEFAULT_IDLE_S) -> Session:
        """A workspace container with these registered skills under /skills/NAME (read-only)
        and a writable /work: run commands one after another, put files in, take files out.
        Use it as a context manager (or call `close`); idle longer than `idle_timeout`
        seconds, it closes itself."""
        records = resolve_skills(self, list(skills))
        return self.sessions.start(
            [(self, rec) for rec in records], tenant=self.tenant or "local", idle_timeout=idle_timeout
        )

    def spare_containers(self) -> set[str]:
        """Containers this yard holds created ahead for its next cold calls (never started)."""
        from sandbox.docker_backend import DockerBackend

        backend = self._cold.backend if self._cold is not None else None
        return set(backend.spare_containers) if isinstance(backend, DockerBackend) else set()

    def close(self) -> None:
        """Close every session, merge pending accounting (and remove this yard's journal), stop
        warm containers and background removals."""
        if self._sessions is not None:
            self._sessions.close_all()
        self._accounting.close()
        if self._pool is not None:
            self._pool.close()
        if self._cold is not None:
            self._cold.close()  # removes its spares
        if self._sandbox is not None:
            self._sandbox.close()  # waits for background container removals

    # -- records and packages ----------------------------------------------------------------
    def record(self, name: str, version: int | None = None) -> SkillRecord:
        """The record of `version`, or of the current version (else the latest); UnknownSkill
        if there is none."""
        validate_name(name)
        rec = self.registry.get(name, version)
        if rec is None:
            raise UnknownSkill(f"no skill {name} v{version}" if version else f"no skill {name}")
        return rec

    def resolve(self, name: str) -> SkillRecord:
        """The record a call of `name` runs: its current (else latest) version, or -- when a
        merge retired `name` -- the current version of the skill that absorbed it
        (Registry.resolve). UnknownSkill if there is none."""
        rec = self.record(name)
        if rec.status == "retired":
            survivor = self.registry.resolve(name)
            if survivor != name:
                return self.record(survivor)
        return rec

    def package(self, name: str, version: int) -> SkillPackage:
        """One version's package, unpacked (the last PACKAGE_CACHE are kept)."""
        key = (name, version)
        with self._lock:
            if key in self._packages:
                self._packages.move_to_end(key)
                return self._packages[key]
        files, executable = unpack_files(self.registry.package(name, version), self.settings)
        pkg = package_from_files(name, files, executable)
        with self._lock:
            self._packages[key] = pkg
            while len(self._packages) > self.PACKAGE_CACHE:
                self._packages.popitem(last=False)
        return pkg

    def image_for(self, pkg: SkillPackage, *, fresh: bool = False) -> str:
        """The skill's image tag, built if missing; cached per content hash (`fresh`: look again)."""
        return self.images.image_for(pkg, fresh=fresh)

    def context_tokens(self, pkg: SkillPackage) -> int:
        """Tokens the skill costs in an agent's context: its SKILL.md as the agent loads it."""
        if pkg.content_hash not in self._context_tokens:  # tokenising on every call would be wasted work
            from .tokens import count_tokens

            self._context_tokens[pkg.content_hash] = count_tokens(pkg.skill_md)
        return self._context_tokens[pkg.content_hash]

    def known_context_tokens(self, name: str, version: int) -> int | None:
        """`context_tokens` of a version if it is at hand now (package and count cached), else None."""
        with self._lock:
            pkg = self._packages.get((name, version))
        return None if pkg is None else self._context_tokens.get(pkg.content_hash)

    def callee_env(self, pkg: SkillPackage) -> dict[str, str]:
        """The environment every call of `pkg`'s code gets (runtime.calls.callee_env), cached per
        content hash: a call pays no import scan."""
        env = self._callee_envs.get(pkg.content_hash)
        if env is None:
            env = self._callee_envs[pkg.content_hash] = callee_env(pkg)
        return env

    # -- add and gate ------------------------------------------------------------------------
    def gate(
        self, pkg: SkillPackage, *, frozen_tests: frozenset[str] | None = None
    ) -> tuple[GateReport, bool]:
        """Build the package's images (if missing) and run its gate (runtime/gate.py): (report, built).

        The callee is a warm pool of the production image private to this gate: every call a
        test makes is a fresh process there, as a production call is. Records nothing. On a
        cluster the whole gate runs on one node (runtime/cluster.py)."""
        if self.settings.cluster:
            from .cluster import gate_on_node

            return gate_on_node(self, pkg, frozen_tests)
        tag, built = self.images.build(pkg)
        judge_image = self.images.judge_image(pkg)
        limits = call_limits(pkg.config, self.base_limits)
        policy = gate_policy(
            pkg,
            mutants=self.settings.mutants,
            threshold=self.settings.mutation_threshold,
            timeout=self.settings.gate_timeout,
        )
        callee, warming = self._gate_callee(callee_spec(tag, limits, self.callee_env(pkg)))
        try:
            self.progress(f"{pkg.name}: running the tests")
            report = run_gate(
                self.sandbox,
                callee,
                pkg,
                judge_image=judge_image,
                image=tag,
                judge_limits=gate_limits(pkg, self.base_limits, self.settings.gate_timeout),
                call_limits=limits,
                policy=policy,
                frozen=frozen_tests,
            )
        finally:
            if warming is not None:
                warming.join(timeout=30)
            callee.close()
        return report, built

    def _gate_callee(self, spec: RunSpec) -> tuple[Sandbox, threading.Thread | None]:
        """A warm pool of one for a gate's calls (pre-warmed in the background), or, on a backend
        without pools, the sandbox itself."""
        from sandbox.docker_backend import DockerBackend

        backend = self.sandbox.backend
        if not isinstance(backend, DockerBackend):
            return Sandbox(backend), None
        from sandbox.pool import WarmPool

        pool = WarmPool(backend, size=1, max_calls=100_000)

        def prewarm() -> None:
            try:
                pool.prewarm(spec, 1)
            except Exception as exc:  # noqa: BLE001 - an optimisation: the first call starts a container
                log.info("gate_prewarm_failed", error=str(exc)[:200])

        warming = threading.Thread(target=prewarm, daemon=True, name="skillyard-gate-prewarm")
        warming.start()
        return Sandbox(pool), warming

    def add(self, path: str | Path, *, force: bool = False) -> AddOutcome:
        """Load, build, gate and record one skill folder (an invalid package is "rejected").
        Nothing is built for a package the cheap checks settle (runtime/validation.py)."""
        started = time.monotonic()
        loaded = self._load(path)
        if isinstance(loaded, AddOutcome):
            return loaded
        return self.add_package(loaded, force=force, started=started)

    def _load(self, path: str | Path) -> SkillPackage | AddOutcome:
        """The package at `path`, or its "rejected" outcome."""
        started = time.monotonic()
        try:
            return load_package(path, self.settings)
        except PackageError as exc:
            duration = time.monotonic() - started
            return AddOutcome(
                Path(path).name, "rejected", reasons=[str(exc)], source=str(path), duration_s=duration
            )

    def _needs_gate(self, pkg: SkillPackage, force: bool) -> bool:
        """Whether adding `pkg` would run its gate (so images must exist)."""
        if not pkg.has_code or cheap_block_reasons(pkg):
            return False
        return force or self.registry.find(pkg.name, pkg.content_hash) is None

    def add_package(
        self,
        pkg: SkillPackage,
        *,
        force: bool = False,
        started: float | None = None,
        frozen_tests: frozenset[str] | None = None,
    ) -> AddOutcome:
        """Gate and record a loaded package as a new version; content gated before is
        "unchanged" (its verdict stands; `force` gates it again). An older version
        re-added leaves the current version alone: rollback moves it. `frozen_tests`: the
        tests/ files that decide (a fix's; see runtime/gate.run_gate)."""
        started = started or time.monotonic()

        def outcome(status: str, **fields: Any) -> AddOutcome:
            duration = time.monotonic() - started
            return AddOutcome(pkg.name, status, source=str(pkg.source or ""), duration_s=duration, **fields)

        existing = self.registry.find(pkg.name, pkg.content_hash)
        # A verdict older code gave instructions-only content (it gated everything) is not reused.
        stale = existing is not None and not pkg.has_code and existing.tier != INSTRUCTIONS
        if existing is not None and not force and not stale:
            report = (
                GateReport.from_dict(existing.gate_report)
                if existing.gate_report and existing.tier != INSTRUCTIONS
                else None
            )
            return outcome(
                "unchanged",
                version=existing.version,
                tier=existing.tier,
                reasons=existing.gate.reasons,
                report=report,
            )
        if not pkg.has_code:
            record = self._record_version(pkg, None, tier=INSTRUCTIONS)
            return outcome("registered", version=record.version, tier=INSTRUCTIONS)
        try:
            self.images.check_family(pkg.config.family)  # cheap: before anything is built
        except SandboxError as exc:
            return outcome("rejected", reasons=[f"skillyard.yaml: {exc}"])
        cheap = cheap_block_reasons(pkg)
        if cheap:  # blocked before any image is built
            report = GateReport(passed=False, reasons=cheap, content_hash=pkg.content_hash)
            report.policy = [r.removeprefix("test policy: ") for r in cheap if r.startswith("test policy: ")]
            record = self._record_version(pkg, report)
            return outcome("blocked", version=record.version, tier=BLOCKED, reasons=cheap, report=report)
        self.progress(f"{pkg.name}: building image")
        try:
            report, built = self.gate(pkg, frozen_tests=frozen_tests)
        except WheelMissing as exc:
            # The wheelhouse lacks a wheel (and the index could not supply it): nothing was built
            # or recorded; the operator adds the wheel, or the skill changes its requirements.
            return outcome("error", reasons=[str(exc), "nothing was recorded; retry once the wheel is there"])
        except SandboxError as exc:
            raise SandboxError(f"{pkg.name}: {exc}") from exc
        if report.infrastructure_error:
            # The engine failed mid-gate: that says nothing about the skill. Record nothing, so the
            # next add gates it again instead of finding a "blocked" verdict for this content.
            log.warning("gate_not_recorded", skill=pkg.name, reasons=report.reasons)
            reasons = [*report.reasons, "nothing was recorded; retry"]
            return outcome("error", reasons=reasons, report=report, built=built)
        record = self._record_version(pkg, report)
        log.info(
            "skill_gated",
            skill=pkg.name,
            version=record.version,
            status=record.status,
            tests=report.tests,
            coverage=report.coverage,
            duration_s=round(report.duration_s, 3),
        )
        return outcome(
            record.status,
            version=record.version,
            tier=record.tier,
            reasons=report.reasons,
            report=report,
            built=built,
        )

    def _record_version(
        self, pkg: SkillPackage, report: GateReport | None, *, tier: str | None = None
    ) -> SkillRecord:
        """Store `pkg` as a new version with the gate's `report` (None: never gated, for tier
        instructions), seed its notes, and note a blocked verdict there."""
        if report is None:
            gate = GateSummary(False, 0, 0, 0, 0, None, 0.0, [])
            gate_report: dict[str, Any] = {
                "tier": INSTRUCTIONS,
                "gated": False,
                "passed": False,
                "reasons": [],
                "note": INSTRUCTIONS_NOTE,
            }
            status = "registered"
        else:
            gate, gate_report = GateSummary.of(report), report.to_dict()
            status = "registered" if report.passed else "blocked"
        record = self.registry.add_version(
            name=pkg.name,
            content_hash=pkg.content_hash,
            status=status,
            description=pkg.description,
            tags=pkg.config.tags,
            instructions=pkg.instructions,
            gate=gate,
            gate_report=gate_report,
            package=pkg.to_archive(),
            tier=tier,
        )
        workspace = Workspace(self.workspace(pkg.name))
        workspace.seed_notes(pkg.memory)
        self._record_cache.pop(pkg.name, None)
        if report is not None and not report.passed:
            workspace.add_note(
                "gate", f"v{record.version} blocked: {notes.shorten('; '.join(report.reasons), 300)}"
            )
        return record

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
        if isinstance(path, list):
            folders = path
        else:
            folders = discover(Path(path))
            for skipped in find_skills(path).skipped:
                log.info("skill_folder_skipped", path=str(skipped.path), reason=skipped.reason)
        # Every package is loaded and checked first (in memory, no engine); the images are
        # built once, before the workers start, and only if some package will be gated.
        loaded: list[SkillPackage | AddOutcome] = [self._load(folder) for folder in folders]
        if any(isinstance(p, SkillPackage) and self._needs_gate(p, force) for p in loaded):
            _ = self.runner

        def add_one(item: SkillPackage | AddOutcome) -> AddOutcome:
            return item if isinstance(item, AddOutcome) else self.add_package(item, force=force)

        if workers <= 1:
            outcomes = []
            for item in loaded:
                outcomes.append(add_one(item))
                if on_result:
                    on_result(outcomes[-1])
            return outcomes
        from concurrent.futures import ThreadPoolExecutor, as_completed

        results: dict[int, AddOutcome] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="skillyard-add") as pool:
            futures = {pool.submit(add_one, item): i for i, item in enumerate(loaded)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if on_result:
                    on_result(results[futures[fut]])
        return [results[i] for i in range(len(folders))]

    def test(self, name: str, version: int | None = None) -> GateReport:
        """Re-run the gate on a stored version (the current one by default). Records nothing.
        SkillError for an instructions-only version: it has nothing to gate."""
        rec = self.record(name, version)
        if rec.tier == INSTRUCTIONS:
            raise SkillError(
                f"{name} v{rec.version} is instructions only: it has no code, so nothing to gate"
            )
        report, _ = self.gate(self.package(rec.name, rec.version))
        return report

    # -- calls -------------------------------------------------------------------------------
    def run(self, name: str, params: Any, *, version: int | None = None) -> CallResult:
        """Run a registered skill (`version`, else the current one) on `params`, accounted for.
        Every failure is in the result (`error.kind`: not_found, not_registered,
        invalid_input, exception, timeout, oom, bad_output, crashed, sandbox), never raised.
        A skill a merge retired runs as the skill that absorbed it (see `resolve`)."""
        try:
            if version is not None:
                rec = self.record(name, version)
            else:
                rec = self._cached_record(name) if self.long_lived else self.resolve(name)
        except (NotFound, InvalidName) as exc:
            return CallResult(skill=name, version=version, ok=False, error=CallError("not_found", str(exc)))
        return self.call(rec, params)

    def call(
        self,
        record: SkillRecord,
        params: Any,
        *,
        on_output: OnOutput | None = None,
        call_id: str | None = None,
        ledger_use: bool = True,
    ) -> CallResult:
        """Run the version `record` names (as its caller resolved it: nothing is looked up
        again) on `params`, then account for it: the counters and a ledger use (unless
        `ledger_use` is False: the call is part of a use its caller records), and for the
        skill's own failures a note and the failing input. See `run`. `call_id` (32 hex
        digits; default: a new one) names the call in the ledger: accounting the same id
        again adds nothing."""
        result = calling.sandboxed_call(self, record, params, on_output)
        calling.account(
            self,
            self._accounting,
            record,
            params,
            result,
            call_id or uuid.uuid4().hex,
            ledger_use=ledger_use,
        )
        return result

    def run_command(
        self,
        name: str,
        argv: list[str],
        *,
        stdin: bytes = b"",
        files: dict[str, bytes] | None = None,
        outputs: list[str] | tuple[str, ...] = (),
        version: int | None = None,
        on_output: OnOutput | None = None,
    ) -> CommandResult:
        """Run a command of a registered skill (`version`, else the current one): `argv`
        begins with one of its declared commands; `files` (relative paths) are written into
        the working dir first; `outputs` (relative paths) are brought back, capped;
        `on_output` receives live output. Accounted like a call; every failure is in the
        result (`error.kind`: not_found, not_registered, invalid_input, exit, timeout, oom,
        sandbox), never raised."""
        request = CommandRequest(list(argv), stdin, dict(files or {}), list(outputs))
        try:
            rec = (
                self._cached_record(name)
                if self.long_lived and version is None
                else self.record(name, version)
            )
        except (NotFound, InvalidName) as exc:
            return CommandResult(
                skill=name, version=version, ok=False, argv=list(argv), error=CallError("not_found", str(exc))
            )
        return self.call_command(rec, request, on_output=on_output)

    def call_command(
        self,
        record: SkillRecord,
        request: CommandRequest,
        *,
        on_output: OnOutput | None = None,
        call_id: str | None = None,
    ) -> CommandResult:
        """Run a command of the version `record` names (as its caller resolved it) and account
        for it as a use (once per `call_id`, as `call`). See `run_command`."""
        result = calling.sandboxed_command(self, record, request, on_output)
        calling.account(
            self, self._accounting, record, request.describe(), result, call_id or uuid.uuid4().hex
        )
        return result

    def trial_call(self, record: SkillRecord, params: Any) -> CallResult:
        """Run the version `record` names on `params` and account for nothing: what the
        fixer's replays of failing inputs use."""
        return calling.sandboxed_call(self, record, params)

    def _cached_record(self, name: str) -> SkillRecord:
        """The current record, read again only when the registry's skills table has moved
        (long-lived processes). Any commit to that table -- a version added, a rollback or a
        status change by any process, a compaction -- moves its version, so a cached record is
        never staler than the table; checking costs ~0.2 ms, a read 10-25 ms. The version is
        read before the record: a commit in between only makes the next call read again."""
        version = self.registry.skills_version()
        hit = self._record_cache.get(name)
        if hit is not None and hit[1] == version:
            return hit[0]
        rec = self.resolve(name)
        self._record_cache[name] = (rec, version)
        return rec

    def flush(self) -> None:
        """Merge every use accounted so far into the store now, and wait for it (a use stays
        in the journal if the store refuses it: merged again later, never lost)."""
        self._accounting.flush()

    def recover_accounting(self) -> int:
        """Merge the accounting journals that killed processes of this home left behind
        (a long-lived yard does it when its writer starts); the uses merged."""
        return self._accounting.recover()

    @property
    def accounting_thread_running(self) -> bool:
        """Whether accounting runs on its own thread (long-lived yards, after a first call)."""
        return self._accounting.running

    def failed_inputs(self, name: str) -> list[Any]:
        """The skill's recorded failing inputs, oldest first (for the fixer's replays)."""
        return Workspace(self.workspace(name)).failed_inputs()

    # -- queries and history -----------------------------------------------------------------
    def list(self, status: str | None = None, tier: str | None = None) -> list[SkillRecord]:
        """One record per skill (its current version, else its latest), by name; `status`
        and `tier` (instructions, verified, blocked) filter."""
        return [r for r in self.registry.list(status) if tier is None or r.tier == tier]

    def validate(self, path: str | Path) -> ValidationReport:
        """Validate the skill at `path` or every skill under it (runtime/validation.py):
        the spec, the sidecar and what adding would do. Builds and writes nothing."""
        return validate_path(path, self.settings)

    def versions(self, name: str) -> list[SkillRecord]:
        """Every version of the skill, oldest first; UnknownSkill if there is none."""
        validate_name(name)
        found = self.registry.versions(name)
        if not found:
            raise UnknownSkill(f"no skill {name}")
        return found

    def search(
        self, query: str, limit: int = 5, *, query_vector: Any = None
    ) -> list[tuple[SkillRecord, float]]:
        """Registered skills matching `query` (words and meaning), best first, with scores:
        instructions-only skills too (their `tier` says they are read, not run).
        `query_vector`: the query already embedded, see Registry.search."""
        return self.registry.search(query, limit=limit, query_vector=query_vector)

    def memory_text(self, name: str) -> str:
        """The skill's .memory.md notes ("" if none)."""
        return Workspace(self.workspace(name)).notes()

    def show(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Everything about one version: record, package, gate report and notes."""
        rec = self.record(name, version)
        pkg = self.package(rec.name, rec.version)
        return {"record": rec, "package": pkg, "report": rec.gate_report, "memory": self.memory_text(name)}

    def rollback(self, name: str, version: int) -> SkillRecord:
        """Make an earlier registered version current again."""
        validate_name(name)
        rec = self.registry.rollback(name, version)
        self._record_cache.pop(name, None)
        log.info("skill_rollback", skill=name, version=version)
        return rec

    def delete(self, name: str, version: int | None = None) -> list[SkillRecord]:
        """Delete the skill (every version) or one version that is not current (the current
        one only with the whole skill, or when it is the last); the records deleted.

        What stays: the ledger's rows (the cost report still shows the skill's account), the
        registry's events (history), and the images, which image retention removes in time
        (runtime.image_retention). What goes with the last version: the skill's notes and
        failing inputs."""
        validate_name(name)
        removed = self.registry.delete(name, version)
        with self._lock:
            self._record_cache.pop(name, None)
            for rec in removed:
                self._packages.pop((name, rec.version), None)
        if version is None or not self.registry.versions(name):
            shutil.rmtree(self.workspace(name), ignore_errors=True)
        log.info("skill_deleted", skill=name, versions=[r.version for r in removed])
        return removed

    def export(self, name: str, dest: str | Path, version: int | None = None) -> Path:
        """Write the skill (and its notes) as a folder DEST/NAME; refuses a non-empty one."""
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
        """Remove containers that dead skillyard processes left behind; their ids."""
        return self.sandbox.gc()
