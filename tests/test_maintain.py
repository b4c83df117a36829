"""Maintenance tests: overlap detection and the unused-skill policy on real LanceDB
registries in tmp_path, with the real MiniLM embedder (skipped if its model package is
missing) and the word-Jaccard fallback. Nothing of the project is mocked."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime import logs
from runtime.cli.maintain import maintain_command
from runtime.config import Settings, get_settings
from runtime.ledger import Ledger
from runtime.maintain import UnusedPolicy, find_overlaps, find_unused, maintain
from runtime.records import GateSummary
from runtime.registry import Registry

PASS = GateSummary(
    passed=True, tests=2, failures=0, errors=0, skipped=0, coverage=100.0, duration_s=0.5, reasons=[]
)

SKILLS = {
    "csv-profile": "Profile a CSV table: column names, inferred types, missing and distinct counts, "
    "min/max/mean of numeric columns. Use when handed CSV text.",
    "csv-profiler": "Profile CSV tables: column types, missing values, distinct counts and ranges of "
    "numeric columns. Use it on CSV text.",
    "image-resize": "Resize PNG and JPEG images to a given width and height, keeping the aspect ratio.",
    "cron-next": "Compute the next run times of a cron expression after a given date.",
}


def add(
    reg: Registry,
    name: str,
    description: str | None = None,
    *,
    status: str = "registered",
    tier: str | None = None,
):
    description = description or SKILLS.get(name, f"The {name} skill.")
    blob = f"{name}:{description}:{status}:{len(reg.versions(name))}".encode()
    gate = PASS if status == "registered" else GateSummary(False, 2, 1, 0, 0, 10.0, 0.5, ["1 test failed"])
    if tier == "instructions":
        gate = GateSummary(False, 0, 0, 0, 0, None, 0.0, [])
    return reg.add_version(
        tier=tier,
        name=name,
        content_hash=hashlib.sha256(blob).hexdigest(),
        status=status,
        description=description,
        tags=[],
        instructions="",
        gate=gate,
        gate_report={"passed": gate.passed},
        package=blob,
    )


@pytest.fixture(scope="module")
def embedder():
    from runtime.embeddings import load_embedder

    emb = load_embedder()
    if emb is None:
        pytest.skip("embedding model package not installed")
    return emb


@pytest.fixture
def reg(tmp_path: Path):
    r = Registry(str(tmp_path / "store"), embedder=None)
    yield r
    r.close()


def snapshot(reg: Registry) -> list:
    return [
        (r.name, r.version, r.status, r.current, r.calls)
        for n in sorted(x.name for x in reg.list())
        for r in reg.versions(n)
    ] + [len(reg.events())]


# --------------------------------------------------------------------------- overlaps


def test_near_duplicates_flagged_unrelated_not(tmp_path: Path, embedder):
    reg = Registry(str(tmp_path / "store"), embedder=embedder)
    for name in SKILLS:
        add(reg, name)
    add(reg, "csv-profile-old", SKILLS["csv-profile"], status="blocked")  # not registered: never compared

    found = find_overlaps(reg, "auto")  # the registry's embedder
    assert [(o.keep, o.merge) for o in found] == [
        ("csv-profiler", "csv-profile")
    ]  # no calls: the newer is kept
    o = found[0]
    assert o.method == "embedding" and o.score >= 0.85 and o.name_similarity > 0.9
    assert o.score == pytest.approx(
        max(o.text_similarity, (o.text_similarity + o.name_similarity) / 2), abs=1e-3
    )
    assert "newer" in o.reason

    reg.record_call("csv-profile", 1, ok=True)  # usage decides before age
    assert [(o.keep, o.merge) for o in find_overlaps(reg, embedder)] == [("csv-profile", "csv-profiler")]
    # a stricter threshold, or an unrelated pair at a lax one
    assert find_overlaps(reg, embedder, threshold=0.99) == []
    lax = {frozenset((o.keep, o.merge)) for o in find_overlaps(reg, embedder, threshold=0.5)}
    assert frozenset(("image-resize", "cron-next")) not in lax
    reg.close()


def test_jaccard_fallback_without_embedder(reg: Registry):
    add(reg, "pdf-text", "Extract the text of a PDF document page by page and return a list of pages.")
    add(reg, "pdf-texts", "Extract the text of a PDF document page by page and return the list of pages.")
    add(reg, "http-fetch", "Fetch a web page over HTTP and return its status and body.")
    found = find_overlaps(reg, None)
    assert [(o.merge, o.method) for o in found] == [("pdf-text", "jaccard")] and found[0].keep == "pdf-texts"
    assert found[0].text_similarity == pytest.approx(13 / 14, abs=1e-4)  # only "texts" is not shared
    with pytest.raises(ValueError):
        find_overlaps(reg, None, threshold=0)


# --------------------------------------------------------------------------- unused


def test_unused_policy_with_a_fixed_now(reg: Registry):
    never = add(reg, "cron-next")
    used = add(reg, "image-resize")
    reg.record_call("image-resize", 1, ok=True)
    add(reg, "csv-profile", status="blocked")  # blocked: not a registered skill, never retired
    add(reg, "style-guide", tier="instructions")  # read, never called: never proposed
    last_used = reg.get("image-resize").last_used
    t0 = max(never.created_at, used.created_at, last_used)

    assert find_unused(reg, t0 + timedelta(days=29)) == []
    at40 = find_unused(reg, t0 + timedelta(days=40))
    assert [(u.name, u.rule, u.version, u.calls) for u in at40] == [("cron-next", "unused", 1, 0)]
    assert "40 days" in at40[0].reason
    assert find_unused(reg, t0 + timedelta(days=40), UnusedPolicy(unused_days=50)) == []
    at100 = find_unused(reg, t0 + timedelta(days=100))
    assert {u.name: u.rule for u in at100} == {"cron-next": "unused", "image-resize": "idle"}
    assert find_unused(reg, t0 + timedelta(days=100), UnusedPolicy(idle_days=120))[0].name == "cron-next"

    # a fresh version of a never-called skill resets its age; calls of old versions still count
    add(reg, "cron-next", "Compute the next run times of a cron expression (v2).")
    assert find_unused(reg, reg.get("cron-next").created_at + timedelta(days=10)) == []
    reg.record_call("image-resize", 1, ok=True)
    add(reg, "image-resize", "Resize images, v2.")
    head = reg.get("image-resize")
    assert head.calls == 0  # v2 has no calls of its own, but v1 had: not "unused", and not idle yet
    assert [u.name for u in find_unused(reg, head.created_at + timedelta(days=40))] == ["cron-next"]


def test_dry_run_changes_nothing_and_apply_retires_keeping_history(tmp_path: Path, reg: Registry):
    add(reg, "cron-next")
    add(reg, "cron-next", "Compute the next run times of a cron expression, v2.")
    add(reg, "image-resize")
    reg.record_call("image-resize", 1, ok=True)
    led = Ledger(str(tmp_path / "store"))
    now = max(r.created_at for r in reg.list()) + timedelta(days=45)

    before = snapshot(reg)
    dry = maintain(reg, now=now, embedder=None, ledger=led)
    assert not dry.applied and [u.name for u in dry.unused] == ["cron-next"] and dry.retired == []
    assert snapshot(reg) == before  # nothing changed, not even the audit trail
    assert json.loads(json.dumps(dry.to_dict(), default=str))["unused"][0]["name"] == "cron-next"

    done = maintain(reg, now=now, apply=True, embedder=None, ledger=led)
    assert done.applied and done.retired == ["cron-next"] and done.skipped == {}
    assert set(done.compacted) == {"registry", "ledger"}
    versions = reg.versions("cron-next")
    assert [(v.version, v.status) for v in versions] == [(1, "registered"), (2, "retired")]  # history kept
    assert (
        reg.get("cron-next").status == "retired"
        and reg.package("cron-next", 1)
        and reg.package("cron-next", 2)
    )
    assert reg.get("image-resize").status == "registered"
    ev = [e for e in reg.events("cron-next") if e["kind"] == "retired"]
    assert (
        len(ev) == 1 and ev[0]["version"] == 2 and ev[0]["detail"]["reason"].startswith("maintain: no calls")
    )
    assert [r.name for r, _ in reg.search("cron expression")] == []  # retired skills are not searched

    again = maintain(reg, now=now, apply=True, embedder=None)  # idempotent
    assert again.unused == [] and again.retired == []
    assert reg.set_status("cron-next", "registered").status == "registered"  # and reversible
    led.close()


def test_apply_skips_a_skill_that_changed_since_it_was_judged(reg: Registry):
    add(reg, "cron-next")
    now = reg.get("cron-next").created_at + timedelta(days=45)
    judged = find_unused(reg, now)
    assert [u.name for u in judged] == ["cron-next"]
    reg.record_call("cron-next", 1, ok=True)  # called after the dry run ...
    report = maintain(
        reg,
        now=now + timedelta(seconds=1),
        apply=True,
        embedder=None,
        policy=UnusedPolicy(unused_days=30, idle_days=90),
    )
    assert report.retired == [] and reg.get("cron-next").status == "registered"  # ... so it stays


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def home(tmp_path: Path, monkeypatch):
    logs.configure("WARNING")  # as the `skillyard` group does: logs on stderr
    monkeypatch.setenv("SKILLYARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKILLYARD_STORE_URI", raising=False)
    get_settings.cache_clear()
    yield Settings()
    get_settings.cache_clear()


def test_maintain_command(home: Settings, embedder):
    reg = Registry(home.store, embedder=embedder)
    for name in SKILLS:
        add(reg, name)
    runner = CliRunner()
    dry = runner.invoke(maintain_command, ["--json", "--unused-days", "0"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    data = json.loads(dry.stdout)
    assert data["applied"] is False and data["method"] == "embedding"
    assert [(o["keep"], o["merge"]) for o in data["overlaps"]] == [("csv-profiler", "csv-profile")]
    assert sorted(u["name"] for u in data["unused"]) == sorted(SKILLS)  # nothing called, older than 0 days
    assert all(r.status == "registered" for r in reg.list())

    text = runner.invoke(maintain_command, ["--unused-days", "0"], catch_exceptions=False).stdout
    assert "csv-profiler" in text and "dry run" in text

    reg.record_call("cron-next", 1, ok=True)
    applied = runner.invoke(
        maintain_command, ["--apply", "--json", "--unused-days", "0"], catch_exceptions=False
    )
    assert sorted(json.loads(applied.stdout)["retired"]) == sorted(set(SKILLS) - {"cron-next"})
    statuses = {r.name: r.status for r in reg.list()}
    assert statuses == {n: "registered" if n == "cron-next" else "retired" for n in SKILLS}
    assert len(reg.versions("csv-profile")) == 1
    reg.close()
