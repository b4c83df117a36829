"""Merging two registered code skills (`maintain --apply`): the model writes one version,
the union of both skills' tests is frozen and the real gate decides (Docker); the absorbed
skill is retired with a pointer to the survivor and calls by its name keep working. The
model is a scripted OpenAI-compatible server on loopback (real HTTP)."""

from __future__ import annotations

import json
import textwrap

import pytest

from runtime import accounting, exports
from runtime.config import Settings
from runtime.errors import SkillError
from runtime.llm import LLM
from runtime.maintain import maintain
from runtime.merging import Merger, union_tests
from runtime.package import package_from_files
from runtime.views import TenantView
from runtime.yard import Yard
from sandbox import Sandbox
from tests.conftest import WHEELHOUSE, write_skill
from tests.llm_server import ScriptedLLM

COUNT = textwrap.dedent("""
    def run(params):
        text = params["text"]
        if not isinstance(text, str):
            raise ValueError("text must be a string")
        return {"words": len(text.split())}
""")
COUNT_TESTS = textwrap.dedent("""
    import pytest
    from scripts.main import run

    def test_words():
        assert run({"text": "one two  three"})["words"] == 3
        assert run({"text": ""})["words"] == 0
        assert run({"text": "solo"})["words"] == 1

    def test_not_text():
        with pytest.raises(ValueError, match="must be a string"):
            run({"text": 5})
""")
STATS = textwrap.dedent("""
    def run(params):
        text = params["text"]
        return {"words": len(text.split()), "chars": len(text)}
""")
STATS_TESTS = textwrap.dedent("""
    from scripts.main import run

    def test_chars_and_words():
        out = run({"text": "ab cd"})
        assert out["chars"] == 5 and out["words"] == 2
        assert run({"text": ""})["chars"] == 0
        assert run({"text": "x y z"})["words"] == 3
""")
MERGED = textwrap.dedent("""
    def run(params):
        text = params["text"]
        if not isinstance(text, str):
            raise ValueError("text must be a string")
        return {"words": len(text.split()), "chars": len(text)}
""")
SIDECAR = "entrypoint: scripts/main.py:run\ninput_schema:\n  type: object\n  required: [text]\n"


def answer(script: str, explanation: str = "one run() for both") -> str:
    skill_md = (
        "---\nname: word-count\ndescription: Count the words and characters of a text.\n---\n"
        "Call it with `text`; it returns `words` and `chars`.\n"
    )
    files = [{"path": "scripts/main.py", "content": script}, {"path": "SKILL.md", "content": skill_md}]
    return json.dumps({"files": files, "explanation": explanation})


def test_union_of_tests_renames_clashing_modules_and_refuses_clashing_data():
    def pkg(name: str, files: dict[str, bytes]):
        md = f"---\nname: {name}\ndescription: d\n---\nx\n".encode()
        return package_from_files(name, {"SKILL.md": md, **files})

    keep = pkg("keep-me", {"tests/test_main.py": b"a", "tests/data.csv": b"1", "tests/conftest.py": b"c"})
    same = pkg(
        "absorbed-one", {"tests/test_main.py": b"b", "tests/test_extra.py": b"e", "tests/conftest.py": b"c"}
    )
    joined, renamed = union_tests(keep, same)
    assert renamed == {"tests/test_main.py": "tests/test_absorbed_one_main.py"}
    assert joined == {"tests/test_absorbed_one_main.py": b"b", "tests/test_extra.py": b"e"}  # one conftest
    clash = pkg("absorbed-two", {"tests/data.csv": b"2"})
    with pytest.raises(SkillError, match="both have tests/data.csv"):
        union_tests(keep, clash)


@pytest.fixture
def llm_server():
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture
def merge_yard(tmp_path, backend, runner_image, llm_server):
    settings = Settings(
        home=tmp_path / "home",
        wheelhouse=WHEELHOUSE,
        mutants=6,
        openai_base_url=llm_server.url,
        openai_api_key="sk-test",
    )
    y = Yard(settings, sandbox=Sandbox(backend), pool=False)
    y.runner = runner_image
    for name, script, tests, description in (
        ("word-count", COUNT, COUNT_TESTS, "Count the words of a text."),
        ("text-stats", STATS, STATS_TESTS, "Count the words and characters of a text."),
    ):
        folder = write_skill(
            tmp_path / "src",
            name,
            script=script,
            tests={"test_main.py": tests},
            sidecar=SIDECAR,
            description=description,
        )
        assert y.add(folder).status == "registered"
    yield y
    y.close()


def test_a_merge_that_fails_either_suite_is_refused_and_one_that_passes_both_retires_the_other(
    merge_yard: Yard, llm_server
):
    merger = Merger(merge_yard, LLM(merge_yard.settings, max_retries=0))
    # words only: the survivor's tests pass, the absorbed skill's fail (no "chars")
    llm_server.reply(answer(COUNT), prompt_tokens=2000, completion_tokens=300)
    refused = merger.merge("word-count", "text-stats", max_attempts=1)
    assert refused.status == "refused" and refused.version == 2, refused.to_dict()
    assert any("failed" in r for r in refused.reasons)
    assert refused.renamed == {"tests/test_main.py": "tests/test_text_stats_main.py"}
    assert refused.tests == ["tests/test_main.py", "tests/test_text_stats_main.py"]
    # nothing else changed: v1 stays current, the other skill stays registered and runs itself
    assert merge_yard.registry.get("word-count").version == 1
    assert [v.status for v in merge_yard.versions("word-count")] == ["registered", "blocked"]
    assert merge_yard.registry.get("text-stats").status == "registered"
    assert merge_yard.registry.alias_of("text-stats") is None
    prompt = llm_server.requests[0]["body"]["messages"][1]["content"]
    assert (
        "tests/test_text_stats_main.py" in prompt
        and "File of text-stats (absorbed): scripts/main.py" in prompt
    )

    # the model's answer that passes both suites: registered, and the other skill retired into it
    llm_server.reply(answer(MERGED), prompt_tokens=2100, completion_tokens=320)
    merged = merger.merge("word-count", "text-stats", max_attempts=1)
    assert (merged.status, merged.version, merged.semver) == ("merged", 3, "0.1.1"), merged.to_dict()
    pkg = merge_yard.package("word-count", 3)
    assert pkg.files["tests/test_text_stats_main.py"] == STATS_TESTS.encode()  # the union, frozen
    assert pkg.files["tests/test_main.py"] == COUNT_TESTS.encode()
    assert merge_yard.registry.get("text-stats").status == "retired"
    assert merge_yard.registry.alias_of("text-stats") == "word-count"
    # calls by the retired name run the survivor (its merged code), in the sandbox
    result = merge_yard.run("text-stats", {"text": "ab cd"})
    assert (result.skill, result.version, result.output) == ("word-count", 3, {"words": 2, "chars": 5})
    assert (
        exports.openai_tools(merge_yard, ["text-stats"], style="chat")[0]["function"]["name"] == "word-count"
    )
    assert merge_yard.search("text-stats")[0][0].name == "word-count"  # its name finds the survivor
    local = TenantView(tenant=None, shared=merge_yard)
    assert local.resolve("text-stats", follow_merges=True).record.name == "word-count"
    assert local.resolve("text-stats").record.status == "retired"  # show, versions, fix: the skill itself
    # the merge's tokens are the survivor's
    rows = merge_yard.ledger.llm_calls(skill="word-count")
    assert sorted((r["purpose"], r["prompt_tokens"]) for r in rows) == [("merge", 2000), ("merge", 2100)]
    assert merge_yard.ledger.llm_calls(skill="text-stats") == []
    costs = {c.skill: c for c in accounting.report(merge_yard)}
    assert costs["word-count"].merge_tokens == 2000 + 300 + 2100 + 320
    assert costs["text-stats"].alias_of == "word-count"
    retired = [e for e in merge_yard.registry.events("text-stats") if e["kind"] == "retired"]
    assert retired[-1]["detail"]["alias_of"] == "word-count"
    # reinstated, the name stands for itself again
    merge_yard.registry.set_status("text-stats", "registered")
    assert merge_yard.run("text-stats", {"text": "ab"}).skill == "text-stats"


def test_maintain_apply_hands_each_overlap_to_the_merge(tmp_path):
    from runtime.records import GateSummary
    from runtime.registry import Registry

    reg = Registry(str(tmp_path / "store"), embedder=None)
    passed = GateSummary(True, 1, 0, 0, 0, 100.0, 0.1, [])
    for name in ("pdf-text", "pdf-texts", "http-fetch"):
        reg.add_version(
            name=name,
            content_hash=f"h-{name}",
            status="registered",
            description="Extract the text of a PDF document page by page."
            if name.startswith("pdf")
            else "Fetch a web page.",
            tags=[],
            instructions="",
            gate=passed,
            gate_report={},
            package=b"x",
        )
    asked = []
    report = maintain(
        reg, apply=True, embedder=None, merge=lambda o: asked.append(o) or {"status": "merged", **o.to_dict()}
    )
    assert [(o.keep, o.merge) for o in asked] == [("pdf-texts", "pdf-text")]
    assert report.merges[0]["status"] == "merged"
    dry = maintain(reg, apply=False, embedder=None, merge=lambda o: pytest.fail("a dry run merged"))
    assert dry.merges == [] and dry.overlaps
    reg.close()


def test_aliases_resolve_through_merges_and_refuse_cycles(tmp_path):
    from runtime.errors import RegistryError
    from runtime.ledger import Ledger
    from runtime.migrations import LEDGER_MIGRATIONS, REGISTRY_MIGRATIONS
    from runtime.records import GateSummary
    from runtime.registry import Registry

    reg = Registry(str(tmp_path / "store"), embedder=None)
    passed = GateSummary(True, 1, 0, 0, 0, 100.0, 0.1, [])
    for name in ("a-one", "b-two", "c-three"):
        reg.add_version(
            name=name,
            content_hash=f"h-{name}",
            status="registered",
            description=name,
            tags=[],
            instructions="",
            gate=passed,
            gate_report={},
            package=b"x",
        )
    assert reg.resolve("a-one") == "a-one" and reg.aliases() == {}
    reg.retire_into("a-one", "b-two", reason="merged")
    reg.retire_into("b-two", "c-three", reason="merged")
    assert reg.resolve("a-one") == "c-three" and reg.alias_of("a-one") == "b-two"
    assert [r.name for r, _ in reg.search("a-one")] == [
        "c-three"
    ]  # the name finds the skill that absorbed it
    with pytest.raises(RegistryError, match="b-two is retired"):
        reg.retire_into("c-three", "b-two", reason="x")  # only into a registered skill
    with pytest.raises(RegistryError, match="into itself"):
        reg.retire_into("c-three", "c-three", reason="x")
    reg.set_status("b-two", "registered")  # reinstated: b-two stands for itself, a-one for b-two
    assert reg.resolve("a-one") == "b-two" and reg.alias_of("b-two") is None
    reg.retire_into("c-three", "b-two", reason="merged back")  # no cycle: c-three is retired now ...
    with pytest.raises(RegistryError, match="c-three is retired"):
        reg.retire_into("b-two", "c-three", reason="x")  # ... so b-two cannot go into it
    assert reg.resolve("c-three") == "b-two" and reg.resolve("a-one") == "b-two"
    assert [m.name for m in REGISTRY_MIGRATIONS] == reg.store.applied_migrations()
    reg.close()
    led = Ledger(str(tmp_path / "store"))
    led.uses()  # opening a table runs the ledger's migrations
    assert {m.name for m in LEDGER_MIGRATIONS} <= set(led.store.applied_migrations())
    led.close()
