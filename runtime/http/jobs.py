"""Jobs: long work (imports, gates, fixes, creates, async runs) run in thread pools, each
owned by the tenant that started it. Another tenant's job is exactly as absent as one
that never existed.

Scheduling is fair across tenants: waiting jobs are kept per tenant, and a free worker
takes the next job of the tenant with the fewest jobs running (ties: the tenant served
longest ago), so one tenant's backlog never queues another tenant's job behind it.
Finished jobs are kept for `keep_s` (an hour).
"""

from __future__ import annotations

import contextvars
import re
import secrets
import threading
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import structlog

from ..errors import SkillyardError, TooManyJobs
from ..times import utc_now
from .schemas import JobOut

log = structlog.get_logger(__name__)

JobKind = Literal["import", "gate", "fix", "create", "run", "learn"]
JOB_ID_RE = re.compile(r"[0-9a-f]{32}")
Work = Callable[["Job"], dict[str, Any]]  # a job's body: returns its result
OnDone = Callable[["Job"], None] | None
Queued = tuple["Job", Work, OnDone]
_current_job: contextvars.ContextVar[Job | None] = contextvars.ContextVar("skillyard_job", default=None)


@dataclass
class Job:
    """One piece of long work a tenant started: its state, result or error, and events.
    Its methods are thread-safe (workers write, request handlers read)."""

    id: str
    tenant: str
    kind: JobKind
    skill: str | None
    scope: Literal["private", "shared"] | None
    state: str = "queued"
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        """Append an event (`type_`: status, progress) with its sequence number and time."""
        with self._lock:
            self.events.append({"seq": len(self.events), "type": type_, "ts": utc_now().isoformat(), **data})

    def events_since(self, index: int) -> tuple[list[dict[str, Any]], bool]:
        """The events from `index` on, and whether the job had finished when they were read."""
        with self._lock:
            return list(self.events[index:]), self.state in ("succeeded", "failed")

    @property
    def done(self) -> bool:
        """Whether the job has finished (succeeded or failed)."""
        return self.state in ("succeeded", "failed")

    def out(self) -> JobOut:
        """The job as the API shows it."""
        with self._lock:
            return JobOut(
                id=self.id,
                kind=self.kind,
                state=self.state,
                skill=self.skill,
                scope=self.scope,
                created_at=self.created_at,
                started_at=self.started_at,
                finished_at=self.finished_at,
                result=self.result,
                error=self.error,
                events=len(self.events),
                links={"self": f"/v1/jobs/{self.id}", "events": f"/v1/jobs/{self.id}/events"},
            )


def crash_message(job: Job, exc: BaseException) -> str:
    """What a client is told about an unexpected failure: what broke and what to do, never a traceback."""
    where = f"{job.kind} of {job.skill}" if job.skill else job.kind
    import docker.errors

    tail = f"quote job {job.id} when reporting it; the server log has the details"
    if isinstance(exc, docker.errors.APIError):
        why = str(getattr(exc, "explanation", None) or "").splitlines()[0:1]
        status = getattr(exc, "status_code", None)
        detail = f" ({status}: {why[0][:200]})" if why else (f" ({status})" if status else "")
        return (
            f"the container engine refused an operation during the {where}{detail}. If it names a file, "
            f"the package has a path the engine cannot write; otherwise retry later. {tail}"
        )
    if isinstance(exc, MemoryError):
        return (
            f"the server ran out of memory during the {where}; retry later or send a smaller package. {tail}"
        )
    if isinstance(exc, (OSError, TimeoutError)):
        return f"a system error ({type(exc).__name__}) stopped the {where}; retry later. {tail}"
    return f"internal error ({type(exc).__name__}) during the {where}; this is a bug in skillyard: {tail}"


class JobStore:
    """Jobs run on `workers` threads. Waiting jobs are kept in one queue per tenant, and a free worker
    takes the next job of the tenant with the fewest jobs running (ties: the one served longest ago),
    so one tenant's backlog never holds another tenant's job behind it. Async runs have a pool of
    their own."""

    def __init__(
        self, *, workers: int, max_per_tenant: int, keep_s: float = 3600.0, max_kept: int = 2000
    ) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sy-job")
        self.run_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sy-run")
        self.max_per_tenant = max_per_tenant
        self.keep_s = keep_s
        self.max_kept = max_kept
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Queued]] = {}
        self._running: dict[str, int] = {}
        self._served: dict[str, int] = {}  # tenant -> dispatch tick of its last started job
        self._tick = 0

    def _prune(self) -> None:
        now = utc_now()
        for j in list(self._jobs.values()):
            finished = j.finished_at
            if j.done and finished is not None and (now - finished).total_seconds() > self.keep_s:
                self._jobs.pop(j.id, None)
        if len(self._jobs) > self.max_kept:
            for j in sorted((j for j in self._jobs.values() if j.done), key=lambda j: j.created_at):
                if len(self._jobs) <= self.max_kept:
                    break
                self._jobs.pop(j.id, None)

    def submit(
        self,
        tenant: str,
        kind: JobKind,
        skill: str | None,
        scope: Literal["private", "shared"] | None,
        fn: Work,
        *,
        on_done: OnDone = None,
        counted: bool = True,
    ) -> Job:
        """Queue `fn(job)` as a job of `tenant` (a run goes to the run pool at once);
        `on_done(job)` runs when it has finished, either way. A counted job over the
        tenant's limit raises TooManyJobs instead."""
        with self._lock:
            self._prune()
            if counted:
                self._check_room(tenant)
            job = Job(id=secrets.token_hex(16), tenant=tenant, kind=kind, skill=skill, scope=scope)
            self._jobs[job.id] = job
            job.emit("status", {"state": "queued"})
            if kind != "run":
                self._queues.setdefault(tenant, deque()).append((job, fn, on_done))
        if kind == "run":
            self.run_pool.submit(self._execute, job, fn, on_done)
        else:
            # One ticket per job: whichever worker takes it runs the fairest waiting job at that moment.
            self.pool.submit(self._next)
        return job

    def _check_room(self, tenant: str) -> None:
        """TooManyJobs if `tenant` has as many counted jobs queued or running as it may (lock held)."""
        active = sum(1 for j in self._jobs.values() if j.tenant == tenant and not j.done and j.kind != "run")
        if active >= self.max_per_tenant:
            raise TooManyJobs(
                f"{active} jobs of yours are queued or running (the limit is {self.max_per_tenant}); "
                "wait for one to finish (GET /v1/jobs/{id})"
            )

    def check_room(self, tenant: str) -> None:
        """TooManyJobs now if a job of `tenant`'s would be refused: a route asks before it does
        the work a job needs (reading an upload, looking a skill up), so a refusal costs none
        of it. `submit` checks again (the room may be gone meanwhile)."""
        with self._lock:
            self._check_room(tenant)

    def _pick(self) -> Queued | None:
        with self._lock:
            waiting = [t for t, q in self._queues.items() if q]
            if not waiting:
                return None
            tenant = min(
                waiting,
                key=lambda t: (
                    self._running.get(t, 0),
                    self._served.get(t, -1),
                    self._queues[t][0][0].created_at,
                ),
            )
            item = self._queues[tenant].popleft()
            if not self._queues[tenant]:
                del self._queues[tenant]
            self._tick += 1
            self._served[tenant] = self._tick
            self._running[tenant] = self._running.get(tenant, 0) + 1
            return item

    def _next(self) -> None:
        item = self._pick()
        if item is None:
            return
        job = item[0]
        try:
            self._execute(*item)
        finally:
            with self._lock:
                n = self._running.get(job.tenant, 0) - 1
                if n <= 0:
                    self._running.pop(job.tenant, None)
                else:
                    self._running[job.tenant] = n

    def _execute(self, job: Job, fn: Work, on_done: OnDone) -> None:
        token = _current_job.set(job)
        with job._lock:
            job.state, job.started_at = "running", utc_now()
        job.emit("status", {"state": "running"})
        try:
            result = fn(job)
            with job._lock:
                job.result, job.state = result, "succeeded"
        except SkillyardError as exc:
            with job._lock:
                job.error, job.state = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - the client gets a job id to quote, the log gets the traceback
            log.error(
                "job_crashed",
                job=job.id,
                kind=job.kind,
                skill=job.skill,
                tenant=job.tenant,
                traceback=traceback.format_exc(),
            )
            with job._lock:
                job.error, job.state = crash_message(job, exc), "failed"
        finally:
            with job._lock:
                job.finished_at = utc_now()
            _current_job.reset(token)
            job.emit("status", {"state": job.state})
            if on_done is not None:
                try:
                    on_done(job)
                except Exception:  # noqa: BLE001 - a failing callback must not leave the job unfinished
                    log.error("job_on_done_failed", job=job.id, traceback=traceback.format_exc())

    def get(self, tenant: str, job_id: str) -> Job | None:
        """`tenant`'s job `job_id`, or None (also for another tenant's)."""
        if not JOB_ID_RE.fullmatch(job_id):
            return None
        with self._lock:
            job = self._jobs.get(job_id)
        # Another tenant's job is exactly as absent as a job that never existed.
        return job if job is not None and job.tenant == tenant else None

    def list(self, tenant: str) -> list[Job]:
        """`tenant`'s jobs still kept, oldest first."""
        with self._lock:
            return sorted((j for j in self._jobs.values() if j.tenant == tenant), key=lambda j: j.created_at)

    def shutdown(self) -> None:
        """Stop taking work; queued jobs are cancelled (running ones finish)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.run_pool.shutdown(wait=False, cancel_futures=True)


def progress(message: str) -> None:
    """A yard's progress message: an event of the job running on this thread, else a log line."""
    job = _current_job.get()
    if job is not None:
        job.emit("progress", {"message": message})
    else:
        log.info("progress", msg=message)
