"""skillyard's spec verdict agrees with the Agent Skills reference validator (skills-ref,
PyPI `skills-ref`, CLI `agentskills validate`) on a corpus of edge cases, and skillyard
takes every spec-valid package but one kind: a name outside ASCII (refused with the reason,
see runtime/package.py `unregistrable_name`).

skills-ref is a dev dependency, not a runtime one: skillyard needs its own validation
anyway (the sidecar, the package limits, clear messages naming file and line), and the
reference parses with strictyaml, which refuses YAML the spec does not forbid (flow style
`metadata: {a: b}`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from skills_ref import validate as reference_validate

from runtime.config import Settings
from runtime.package import load_package
from runtime.validation import validate_folder

LONG = "d" * 1025


def md(front: str, body: str = "# Skill\nDo the thing.\n") -> str:
    return f"---\n{front}---\n{body}"


# (case id, folder name, {file: text}, spec-valid?)
CORPUS = [
    ("plain", "demo", {"SKILL.md": md("name: demo\ndescription: A demo skill.\n")}, True),
    (
        "numeric-metadata",
        "demo",
        {"SKILL.md": md("name: demo\ndescription: x\nmetadata:\n  version: 1.0\n  build: 42\n")},
        True,
    ),
    (
        "boolean-metadata",
        "demo",
        {"SKILL.md": md("name: demo\ndescription: x\nmetadata:\n  internal: true\n")},
        True,
    ),
    ("empty-metadata", "demo", {"SKILL.md": md("name: demo\ndescription: x\nmetadata:\n")}, True),
    ("unicode-name-accents", "données", {"SKILL.md": md("name: données\ndescription: x\n")}, True),
    ("unicode-name-cjk", "数据-分析", {"SKILL.md": md("name: 数据-分析\ndescription: x\n")}, True),
    ("unicode-name-cyrillic", "отчёт", {"SKILL.md": md("name: отчёт\ndescription: x\n")}, True),
    ("lower-case-skill-md", "demo", {"skill.md": md("name: demo\ndescription: x\n")}, True),
    ("numeric-description", "demo", {"SKILL.md": md("name: demo\ndescription: 42\n")}, True),
    ("folded-description", "demo", {"SKILL.md": md("name: demo\ndescription: >\n  Two\n  lines.\n")}, True),
    (
        "allowed-tools",
        "demo",
        {"SKILL.md": md("name: demo\ndescription: x\nallowed-tools: Bash(git:*) Read\n")},
        True,
    ),
    (
        "license-compat",
        "demo",
        {"SKILL.md": md("name: demo\ndescription: x\nlicense: MIT\ncompatibility: needs git\n")},
        True,
    ),
    ("description-1024", "demo", {"SKILL.md": md("name: demo\ndescription: " + "d" * 1024 + "\n")}, True),
    ("name-64", "a" * 64, {"SKILL.md": md(f"name: {'a' * 64}\ndescription: x\n")}, True),
    ("key-outside-spec", "demo", {"SKILL.md": md("name: demo\ndescription: x\nversion: 1.0\n")}, False),
    (
        "keys-outside-spec",
        "demo",
        {"SKILL.md": md("name: demo\ndescription: x\nauthor: me\ntags: a\n")},
        False,
    ),
    ("description-1025", "demo", {"SKILL.md": md("name: demo\ndescription: " + LONG + "\n")}, False),
    ("name-not-folder", "demo", {"SKILL.md": md("name: other\ndescription: x\n")}, False),
    ("name-upper-case", "Demo", {"SKILL.md": md("name: Demo\ndescription: x\n")}, False),
    ("name-double-hyphen", "de--mo", {"SKILL.md": md("name: de--mo\ndescription: x\n")}, False),
    ("name-leading-hyphen", "-demo", {"SKILL.md": md("name: -demo\ndescription: x\n")}, False),
    ("name-underscore", "de_mo", {"SKILL.md": md("name: de_mo\ndescription: x\n")}, False),
    ("name-65", "a" * 65, {"SKILL.md": md(f"name: {'a' * 65}\ndescription: x\n")}, False),
    ("missing-description", "demo", {"SKILL.md": md("name: demo\n")}, False),
    ("empty-description", "demo", {"SKILL.md": md("name: demo\ndescription: ''\n")}, False),
    ("missing-name", "demo", {"SKILL.md": md("description: x\n")}, False),
    (
        "compatibility-501",
        "demo",
        {"SKILL.md": md("name: demo\ndescription: x\ncompatibility: " + "c" * 501 + "\n")},
        False,
    ),
    ("no-frontmatter", "demo", {"SKILL.md": "# Demo\nNo frontmatter.\n"}, False),
    ("no-skill-md", "demo", {"README.md": "# Demo\n"}, False),
]


def write(root: Path, folder: str, files: dict[str, str]) -> Path:
    target = root / folder
    target.mkdir(parents=True)
    for rel, text in files.items():
        (target / rel).write_text(text, encoding="utf-8")
    return target


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.mark.parametrize("case,folder,files,valid", CORPUS, ids=[c[0] for c in CORPUS])
def test_spec_verdict_agrees_with_the_reference(tmp_path, settings, case, folder, files, valid):
    path = write(tmp_path, folder, files)
    reference = reference_validate(path)
    ours = validate_folder(path, settings)
    assert (reference == []) is valid, reference  # the corpus says what the reference says
    assert ours.spec_valid is valid, (ours.spec_problems, reference)
    if not valid:
        assert ours.spec_problems and not ours.ok  # and a reason for each refusal
    elif case.startswith("unicode-name"):
        assert not ours.loadable and "valid by the Agent Skills spec" in ours.problems[0]
    else:
        assert ours.loadable and ours.plan == "instructions", ours.problems
        load_package(path, settings)  # `add` takes what `validate` takes


def test_the_reference_cli_agrees_on_a_folder_of_cases(tmp_path, settings):
    """The same verdicts through `agentskills validate` (its exit code) and `skillyard validate`."""
    agentskills = shutil.which("agentskills") or str(Path(sys.executable).parent / "agentskills")
    picked = [c for c in CORPUS if c[0] in ("numeric-metadata", "empty-metadata", "key-outside-spec")]
    for case, folder, files, valid in picked:
        path = write(tmp_path / case, folder, files)
        done = subprocess.run(
            [agentskills, "validate", str(path)], capture_output=True, text=True, timeout=60
        )
        assert (done.returncode == 0) is valid, (case, done.stdout, done.stderr)
        skillyard = subprocess.run(
            [sys.executable, "-m", "runtime", "validate", "--json", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"SKILLYARD_HOME": str(settings.home), "PATH": "/usr/bin:/bin"},
        )
        assert (skillyard.returncode == 0) is valid, (case, skillyard.stdout, skillyard.stderr)


def test_known_difference_flow_style_yaml(tmp_path, settings):
    """The reference's strictyaml refuses flow-style YAML, which the spec does not forbid:
    skillyard accepts it. The one place the verdicts differ on purpose."""
    path = write(tmp_path, "demo", {"SKILL.md": md("name: demo\ndescription: x\nmetadata: {author: me}\n")})
    assert reference_validate(path)  # refused there
    assert validate_folder(path, settings).spec_valid
    assert load_package(path, settings).meta.metadata == {"author": "me"}
