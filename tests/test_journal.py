"""The accounting journal and the batched merge (runtime/journal.py, accounting.Writer):
durable before a call returns, merged in batches, replayed after a kill, nothing counted
twice. No engine: calls are answered by the scripted backend, the store is real LanceDB.
The SIGKILL of a real server-style process mid-stream is in tests/test_faults.py."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runtime.accounting import Use, Writer, merge_uses
from runtime.errors import StoreError
from runtime.journal import Journal, orphans, read_entries
from runtime.ledger import USES
from runtime.records import USAGE
from runtime.testing import PrebuiltImages, register, skill_calls
from runtime.yard import Yard
from sandbox import Sandbox

SKILL_MD = "---\nname: double\ndescription: Doubles a number.\n---\n# double\nUse it.\n"
FILES = {
    "SKILL.md": SKILL_MD.encode(),
    "skillyard.yaml": b"entrypoint: scripts/main.py:run\n",
    "scripts/main.py": b"def run(params):\n    return {'value': params['x'] * 2}\n",
}


def double(params):
    if params["x"] < 0:
        raise ValueError("negative")
    return {"value": params["x"] * 2}


@pytest.fixture
def server_yard(settings, scripted_backend):
    """A long-lived yard, as the servers run it, over the scripted backend."""
    scripted_backend.handler = skill_calls({"double": double})
    y = Yard(
        settings, sandbox=Sandbox(scripted_backend), images=PrebuiltImages(), pool=False, long_lived=True
    )
    register(y, FILES)
    yield y
    y.close()


def uses(n: int, *, version: int = 1, failures: int = 0) -> list[Use]:
    return [
        Use.of(
            skill="double",
            version=version,
            ok=i >= failures,
            outcome="ok" if i >= failures else "exception",
            context_tokens=10,
            duration_ms=1.0,
        )
        for i in range(n)
    ]


# -- the file ------------------------------------------------------------------------------------------
def test_concurrent_appends_are_all_durable_with_their_own_numbers(tmp_path):
    journal = Journal(tmp_path)
    threads = [
        threading.Thread(target=lambda t=t: [journal.append({"t": t, "i": i}) for i in range(25)])
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = read_entries(journal.path)
    assert sorted(e.seq for e in entries) == list(range(1, 201))
    assert sorted((e.data["t"], e.data["i"]) for e in entries) == [
        (t, i) for t in range(8) for i in range(25)
    ]
    journal.retire()
    assert not journal.path.exists()


def test_a_line_cut_by_a_kill_was_never_acknowledged(tmp_path):
    journal = Journal(tmp_path)
    journal.append({"n": 1})
    with open(journal.path, "ab") as fh:
        fh.write(b'{"seq":2,"data":{"n"')  # the process died mid-write: append never returned
    assert [e.data for e in read_entries(journal.path)] == [{"n": 1}]
    journal.abandon()


def test_a_live_journal_is_never_an_orphan(tmp_path):
    live = Journal(tmp_path)
    live.append({"n": 1})
    assert list(orphans(tmp_path)) == []  # its owner holds the lock, even within one process
    dead = Journal(tmp_path)
    dead.append({"n": 2})
    dead.abandon()  # what a killed process leaves: the file, no lock
    found = list(orphans(tmp_path))
    assert [o.writer for o in found] == [dead.writer]
    assert list(orphans(tmp_path)) == []  # locked while we hold it
    found[0].done()
    assert not dead.path.exists() and live.path.exists()
    live.retire()


# -- the merge -----------------------------------------------------------------------------------------
def counters(yard: Yard) -> tuple[int, int]:
    rec = yard.registry.get("double")
    return rec.calls, rec.failures


def test_a_server_yard_journals_each_call_and_merges_them_in_batches(server_yard):
    ledger_before = server_yard.ledger.store.table(USES).version
    usage_before = server_yard.registry.store.table(USAGE).version
    results = [server_yard.run("double", {"x": i - 2}) for i in range(40)]  # two fail: negative input
    assert [r.ok for r in results].count(False) == 2
    journal = server_yard._accounting.journal
    assert journal is not None and len(read_entries(journal.path)) == 40  # on disk before merged
    server_yard.flush()
    assert counters(server_yard) == (40, 2)
    rows = server_yard.ledger.uses("double")
    assert len(rows) == 40 and len({r["id"] for r in rows}) == 40
    assert sorted(r["outcome"] for r in rows)[:2] == ["exception", "exception"]
    assert all(r["context_tokens"] > 0 for r in rows)
    # Batched: far fewer table versions (writes) than calls (one per call each before).
    assert server_yard.ledger.store.table(USES).version - ledger_before <= 20
    assert server_yard.registry.store.table(USAGE).version - usage_before <= 20
    server_yard.close()
    assert not journal.path.exists()  # everything merged: the journal is gone
    assert server_yard.registry.journal_marks(journal.writer) == {}  # and so are its marks


def test_a_replayed_journal_counts_nothing_twice(server_yard, settings):
    """A batch merged once, then replayed (a kill before the journal could say it was merged):
    the ledger rows are skipped by id, the counters by the journal's mark."""
    journal = Journal(settings.home / "journal")
    batch = [(journal.append(u.to_data()), u) for u in uses(6, failures=1)]
    registry, ledger = server_yard.registry, server_yard.ledger
    merge_uses(registry, ledger, journal.writer, batch[:4], replay=False)  # merged, then the kill
    journal.abandon()
    assert counters(server_yard) == (4, 1)
    assert server_yard.recover_accounting() == 6
    assert counters(server_yard) == (6, 1)
    assert sorted(r["id"] for r in ledger.uses("double")) == sorted(u.id for _, u in batch)
    assert not journal.path.exists() and registry.journal_marks(journal.writer) == {}
    assert server_yard.recover_accounting() == 0  # nothing left to replay


def test_marks_are_per_journal(server_yard, settings):
    """Two processes counting the same version: replaying one journal must not read the
    other's mark as its own."""
    registry, ledger = server_yard.registry, server_yard.ledger
    first, second = Journal(settings.home / "journal"), Journal(settings.home / "journal")
    a = [(first.append(u.to_data()), u) for u in uses(3)]
    b = [(second.append(u.to_data()), u) for u in uses(5)]
    merge_uses(registry, ledger, second.writer, b, replay=False)
    merge_uses(registry, ledger, first.writer, a[:1], replay=False)
    assert registry.journal_marks(first.writer) == {("double", 1): 1}
    assert registry.journal_marks(second.writer) == {("double", 1): 5}
    first.abandon()
    second.abandon()
    assert server_yard.recover_accounting() == 8
    assert counters(server_yard) == (8, 0) and len(ledger.uses("double")) == 8


def test_a_batch_the_store_refuses_stays_queued_and_lands_once(server_yard, monkeypatch):
    """The rows commit, the counters do not: the uses stay journaled and queued, and the
    next attempt (a replay) adds the counts without a second row."""
    real = server_yard.registry.count_calls
    failures = {"left": 1}

    def flaky(*args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise StoreError("registry count calls failed: disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(server_yard.registry, "count_calls", flaky)
    monkeypatch.setattr(server_yard._accounting, "interval", 0.05)
    for i in range(5):
        assert server_yard.run("double", {"x": i}).ok
    server_yard.flush()  # the first attempt fails; flush returns, the uses wait in the journal
    server_yard.flush()
    assert counters(server_yard) == (5, 0)
    assert len(server_yard.ledger.uses("double")) == 5


def test_a_journal_that_cannot_be_written_falls_back_to_writing_inline(server_yard):
    writer = Writer(
        background=True,
        journal_dir=Path("/proc/no-journal-here"),
        registry=lambda: server_yard.registry,
        ledger=lambda: server_yard.ledger,
    )
    writer.record(uses(1)[0])  # durable when it returns, journal or not
    assert counters(server_yard) == (1, 0) and len(server_yard.ledger.uses("double")) == 1
    assert not writer.running  # nothing was journaled: nothing to merge later


def test_the_record_cache_follows_the_skills_table(server_yard):
    """A long-lived yard reads the record again when the skills table moves, not on a timer."""
    assert server_yard.run("double", {"x": 1}).version == 1
    version = server_yard.registry.skills_version()
    reads = []
    real = server_yard.record
    server_yard.record = lambda *a, **k: reads.append(a) or real(*a, **k)
    for _ in range(3):
        assert server_yard.run("double", {"x": 1}).version == 1
    assert reads == [] and server_yard.registry.skills_version() == version
    register(server_yard, {**FILES, "scripts/main.py": FILES["scripts/main.py"] + b"# v2\n"})
    assert server_yard.run("double", {"x": 1}).version == 2  # another writer's commit is seen at once
    assert len(reads) == 1


def test_a_yard_used_again_after_close_journals_anew(server_yard):
    """close() merges and removes the journal; calls after it start a new journal (numbered
    from 1 again) that is merged like the first."""
    assert server_yard.run("double", {"x": 1}).ok
    server_yard.close()
    assert server_yard.run("double", {"x": 2}).ok
    server_yard.flush()
    assert counters(server_yard) == (2, 0) and len(server_yard.ledger.uses("double")) == 2
