"""Tiers in the registry (runtime/records.py): `registered` goes with tier instructions or
verified, only verified runs, an instructions version is never gated yet can be current,
searched and rolled back to; and a store made before tiers gets them by its named migration."""

from __future__ import annotations

import hashlib
import os

import pytest

from runtime.errors import RegistryError
from runtime.migrations import REGISTRY_MIGRATIONS
from runtime.records import BLOCKED, INSTRUCTIONS, VERIFIED, GateSummary
from runtime.registry import Registry
from tests.test_registry import FAIL, PASS, TrigramEmbedder

NOT_GATED = GateSummary(False, 0, 0, 0, 0, None, 0.0, [])


def add(reg: Registry, name: str, *, status: str, gate: GateSummary, tier: str | None = None, text: str = ""):
    package = os.urandom(64)
    return reg.add_version(
        name=name,
        content_hash=hashlib.sha256(package).hexdigest(),
        status=status,
        description=text or f"The {name} skill.",
        tags=[],
        instructions="",
        gate=gate,
        gate_report={"passed": gate.passed},
        package=package,
        tier=tier,
    )


@pytest.fixture
def reg(tmp_path):
    r = Registry(str(tmp_path / "store"), embedder=TrigramEmbedder())
    yield r
    r.close()


def test_tier_follows_the_verdict_unless_given(reg):
    assert add(reg, "coded", status="registered", gate=PASS).tier == VERIFIED
    assert add(reg, "broken", status="blocked", gate=FAIL).tier == BLOCKED
    guide = add(
        reg, "guide", status="registered", gate=NOT_GATED, tier=INSTRUCTIONS, text="Write release notes."
    )
    assert (guide.status, guide.tier, guide.current, guide.runnable) == (
        "registered",
        INSTRUCTIONS,
        True,
        False,
    )
    assert reg.get("coded").runnable and not reg.get("broken").runnable
    assert {r.name: r.tier for r in reg.list()} == {
        "coded": VERIFIED,
        "broken": BLOCKED,
        "guide": INSTRUCTIONS,
    }
    assert [r.name for r, _ in reg.search("release notes")][:1] == ["guide"]
    assert reg.events("guide")[-1]["detail"]["tier"] == INSTRUCTIONS


def test_status_and_tier_must_agree(reg):
    with pytest.raises(RegistryError, match="gate failed"):
        add(reg, "x", status="registered", gate=FAIL)
    with pytest.raises(RegistryError, match="tier instructions cannot be blocked"):
        add(reg, "x", status="blocked", gate=NOT_GATED, tier=INSTRUCTIONS)
    with pytest.raises(RegistryError, match="tier blocked cannot be registered"):
        add(reg, "x", status="registered", gate=PASS, tier=BLOCKED)
    with pytest.raises(ValueError, match="invalid tier"):
        add(reg, "x", status="registered", gate=PASS, tier="gold")
    assert reg.get("x") is None  # nothing half-written


def test_instructions_versions_retire_reinstate_and_roll_back(reg):
    add(reg, "guide", status="registered", gate=NOT_GATED, tier=INSTRUCTIONS)
    add(reg, "guide", status="registered", gate=NOT_GATED, tier=INSTRUCTIONS)
    assert reg.rollback("guide", 1).current
    assert reg.set_status("guide", "retired").status == "retired"
    assert reg.set_status("guide", "registered").status == "registered"  # never gated, yet not blocked
    add(reg, "coded", status="blocked", gate=FAIL)
    with pytest.raises(RegistryError, match="failed its gate"):
        reg.set_status("coded", "registered")


def test_a_store_from_before_tiers_gets_them_by_its_migration(tmp_path):
    uri = str(tmp_path / "store")
    old = Registry(uri, embedder=TrigramEmbedder())
    add(old, "coded", status="registered", gate=PASS)
    add(old, "broken", status="blocked", gate=FAIL)
    add(old, "retired-one", status="registered", gate=PASS)
    old.set_status("retired-one", "retired")
    before = {r.name: (r.status, r.current, r.version) for r in old.list()}
    # Make it the store older code left: no `tier`, no record of its migration.
    old.store.table("skills").drop_columns(["tier"])
    old.store.table("_migrations").delete("name = 'registry-0002-skills-tier'")
    old.close()

    reg = Registry(uri, embedder=TrigramEmbedder())
    got = {r.name: r for r in reg.list()}
    assert {n: (r.status, r.current, r.version) for n, r in got.items()} == before
    assert {n: r.tier for n, r in got.items()} == {
        "coded": VERIFIED,
        "broken": BLOCKED,
        "retired-one": VERIFIED,
    }
    table = reg.store.table("skills")
    assert table.count_rows("tier IS NULL") == 0
    # Every listing agrees with its columns (search reads the listing, not the columns).
    assert [r.tier for r, _ in reg.search("coded skill")][:1] == [VERIFIED]
    assert sorted(reg.store.applied_migrations()) == sorted(m.name for m in REGISTRY_MIGRATIONS)
    reg.close()
    again = Registry(uri, embedder=None)  # recorded: it does not run twice
    assert {r.name: r.tier for r in again.list()}["broken"] == BLOCKED
    again.close()
