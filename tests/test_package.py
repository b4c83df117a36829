"""Skill packages: loading, validation, content hashing and archives (no Docker needed).

Every malformed package must be rejected with a PackageError naming the file and the
problem, and the rejection must leave no trace: no state directory, no change to the
source folder, nothing in the working directory.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
from pathlib import Path

import pytest

from runtime.config import Settings
from runtime.package import (
    PackageError,
    load_package,
    pack_files,
    package_from_files,
    unpack_files,
    validate_name,
)
from tests.conftest import SKILLS

SKILL_MD = "---\nname: {name}\ndescription: A small demo skill. Use it in tests.\n---\n# {name}\nUse it.\n"
SCRIPT = "def run(params):\n    return {'ok': True}\n"
TEST = "from scripts.main import run\n\ndef test_run():\n    assert run({}) == {'ok': True}\n"
SIDECAR = "entrypoint: scripts/main.py:run\n"


def make_skill(
    root: Path,
    name: str = "demo",
    *,
    skill_md: str | None = None,
    sidecar: str | None = SIDECAR,
    folder: str | None = None,
) -> Path:
    """A valid package (unless the caller says otherwise) in root/folder."""
    d = root / (folder if folder is not None else name)
    (d / "scripts").mkdir(parents=True)
    (d / "tests").mkdir()
    (d / "SKILL.md").write_text(skill_md if skill_md is not None else SKILL_MD.format(name=name))
    (d / "scripts" / "main.py").write_text(SCRIPT)
    (d / "tests" / "test_main.py").write_text(TEST)
    if sidecar is not None:
        (d / "skillyard.yaml").write_text(sidecar)
    return d


def front(body: str) -> str:
    return f"---\n{body}---\n# demo\nUse it.\n"


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything observable about a tree, without opening FIFOs or devices."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                extra = p.read_bytes()
            else:
                extra = st.st_rdev
            out[p.relative_to(root).as_posix()] = (kind, stat.S_IMODE(st.st_mode), st.st_mtime_ns, extra)
    return out


@pytest.fixture
def src(tmp_path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    return d


@pytest.fixture
def rejected(tmp_path, monkeypatch):
    """Load a package that must be refused; check the error and that nothing was written."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def check(pkg_dir: Path, settings: Settings, file: str, *fragments: str) -> PackageError:
        before = snapshot(pkg_dir)
        started = time.monotonic()
        with pytest.raises(PackageError) as info:
            load_package(pkg_dir, settings)
        assert time.monotonic() - started < 5
        exc = info.value
        text = str(exc)
        assert exc.file == file, text
        if file:
            assert text.startswith(f"{file}: "), text
        for fragment in fragments:
            assert fragment.lower() in text.lower(), (fragment, text)
        assert not settings.home.exists(), "a rejected package must not create the state directory"
        assert snapshot(pkg_dir) == before, "loading must not change the source folder"
        assert list(cwd.iterdir()) == []
        return exc

    return check


# -- SKILL.md ----------------------------------------------------------------------------------------
BILLION_LAUGHS = (
    "name: demo\ndescription: bomb\nmetadata:\n"
    '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"  {c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
)


@pytest.mark.parametrize(
    "skill_md,fragments",
    [
        pytest.param("# demo\nno frontmatter here\n", ["must start with a '---'"], id="no-frontmatter"),
        pytest.param("name: demo\n---\n", ["must start with a '---'"], id="no-opening-line"),
        pytest.param("---\nname: demo\ndescription: x\n# demo\nUse it.\n", ["not closed"], id="unclosed"),
        pytest.param(front("name: [demo\ndescription: x\n"), ["bad YAML"], id="bad-yaml"),
        pytest.param(front("name: demo\n\tdescription: x\n"), ["bad YAML"], id="tab-yaml"),
        pytest.param(front(BILLION_LAUGHS), ["anchors/aliases"], id="yaml-bomb"),
        pytest.param(front("name: &n demo\ndescription: *n\n"), ["anchors/aliases"], id="single-alias"),
        pytest.param(
            front("name: demo\ndescription: '" + "x" * 70_000 + "'\n"), ["over 64 KB"], id="huge-yaml"
        ),
        pytest.param(front("name: demo\ndescription: !!binary eA==\n"), ["bad YAML", "tags"], id="yaml-tag"),
        pytest.param(front("- name\n- demo\n"), ["must be a YAML mapping"], id="list"),
        pytest.param(front("just a string\n"), ["must be a YAML mapping"], id="scalar"),
        pytest.param("---\n---\n# demo\n", ["must be a YAML mapping"], id="empty"),
        pytest.param(front("description: A skill.\n"), ["name", "Field required"], id="missing-name"),
        pytest.param(front("name: demo\n"), ["description", "Field required"], id="missing-description"),
        pytest.param(
            front("name: demo\ndescription: '   '\n"), ["description", "blank"], id="blank-description"
        ),
        pytest.param(
            front("name: demo\ndescription: " + "d" * 1025 + "\n"),
            ["description", "1024"],
            id="description-1025",
        ),
        pytest.param(
            front("name: demo\ndescription: x\ncompatibility: " + "c" * 501 + "\n"),
            ["compatibility", "500"],
            id="compatibility-501",
        ),
        pytest.param(
            front("name: demo\ndescription: x\nversion: '1.0'\n"),
            ["version", "outside the spec"],
            id="unknown-key",
        ),
        pytest.param(
            front("name: demo\ndescription: x\nmetadata:\n  tags: [a, b]\n"),
            ["metadata.tags", "string"],
            id="metadata-list",
        ),
        pytest.param(
            front("name: demo\ndescription: x\nmetadata: [a]\n"), ["metadata"], id="metadata-not-mapping"
        ),
        pytest.param(
            front("name: other\ndescription: x\n"), ["'other'", "folder name 'demo'"], id="name-not-folder"
        ),
    ],
)
def test_bad_skill_md_rejected(src, settings, rejected, skill_md, fragments):
    d = make_skill(src, skill_md=skill_md)
    rejected(d, settings, "SKILL.md", *fragments)


def test_description_at_limits_accepted(src, settings):
    d = make_skill(
        src,
        skill_md=front(
            "name: demo\ndescription: "
            + "d" * 1024
            + "\ncompatibility: "
            + "c" * 500
            + "\nlicense: MIT\nallowed-tools: Bash Read\n"
            + "metadata:\n  version: '1.0'\n  author: me\n"
        ),
    )
    pkg = load_package(d, settings)
    assert len(pkg.description) == 1024
    assert pkg.meta.metadata == {"version": "1.0", "author": "me"}
    assert pkg.meta.allowed_tools == "Bash Read"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Demo", id="uppercase"),
        pytest.param("-demo", id="leading-hyphen"),
        pytest.param("demo-", id="trailing-hyphen"),
        pytest.param("de--mo", id="double-hyphen"),
        pytest.param("a" * 65, id="65-chars"),
        pytest.param("de_mo", id="underscore"),
        pytest.param("de mo", id="space"),
    ],
)
def test_bad_names_rejected(src, settings, rejected, name):
    # The folder has the same name: the refusal is about the name's form, not a mismatch.
    d = make_skill(src, name=name, skill_md=front(f"name: '{name}'\ndescription: x\n"))
    rejected(d, settings, "SKILL.md", "invalid skill name")


@pytest.mark.parametrize(
    "name,suggestion",
    [
        pytest.param("dem\u043e", None, id="cyrillic-o"),
        pytest.param("\u0430bc", None, id="cyrillic-a"),
        pytest.param("d\u00e9mo", "'demo'", id="accent"),
        pytest.param("donn\u00e9es-csv", "'donnees-csv'", id="accents"),
        pytest.param("\u6570\u636e-\u5206\u6790", None, id="cjk"),
    ],
)
def test_spec_valid_unicode_names_are_refused_with_the_reason(src, settings, rejected, name, suggestion):
    # The spec allows them (skills-ref agrees, see test_spec_agreement.py); skillyard's names
    # become image tags and tool names, which are ASCII-only, and mixed scripts impersonate.
    d = make_skill(src, name=name, skill_md=front(f"name: '{name}'\ndescription: x\n"))
    err = rejected(d, settings, "SKILL.md", "valid by the Agent Skills spec", "a-z, 0-9", "Rename")
    if suggestion is None:
        assert "for example" not in str(err)
    else:
        assert f"for example {suggestion}" in str(err)


@pytest.mark.parametrize("name", ["a", "a" * 64, "demo", "csv-profile", "x1-2y-3z", "0abc"])
def test_good_names_accepted(name):
    assert validate_name(name) == name


def test_name_with_trailing_newline_rejected(src, settings, rejected):
    name = "demo\n"
    d = make_skill(src, name=name, skill_md=front('name: "demo\\n"\ndescription: x\n'))
    rejected(d, settings, "SKILL.md", "invalid skill name")


def test_skill_md_not_utf8_rejected(src, settings, rejected):
    d = make_skill(src)
    (d / "SKILL.md").write_bytes(b"---\nname: demo\ndescription: caf\xe9\n---\n")
    rejected(d, settings, "SKILL.md", "UTF-8")


def test_deeply_nested_yaml_rejected(src, settings, rejected):
    d = make_skill(
        src, skill_md=front("name: demo\ndescription: x\nmetadata: " + "[" * 1000 + "]" * 1000 + "\n")
    )
    rejected(d, settings, "SKILL.md")


# -- the file tree -----------------------------------------------------------------------------------
def test_missing_skill_md_rejected(src, settings, rejected):
    d = make_skill(src)
    (d / "SKILL.md").unlink()
    rejected(d, settings, "SKILL.md", "missing")


def test_symlink_outside_rejected(src, settings, rejected, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    d = make_skill(src)
    (d / "scripts" / "leak.py").symlink_to(secret)
    exc = rejected(d, settings, "scripts/leak.py", "outside the package")
    assert "host secret" not in str(exc)


def test_relative_symlink_escaping_rejected(src, settings, rejected):
    d = make_skill(src)
    (src / "neighbour.txt").write_text("next door")
    (d / "resources").mkdir()
    (d / "resources" / "up.txt").symlink_to("../../neighbour.txt")
    rejected(d, settings, "resources/up.txt", "outside the package")


def test_dangling_symlink_rejected(src, settings, rejected):
    d = make_skill(src)
    (d / "scripts" / "gone.py").symlink_to(d / "scripts" / "never.py")
    rejected(d, settings, "scripts/gone.py", "symlink")


def test_symlinked_directory_rejected(src, settings, rejected, tmp_path):
    outside = tmp_path / "outside_dir"
    outside.mkdir()
    (outside / "x.py").write_text("X = 1\n")
    d = make_skill(src)
    (d / "scripts" / "lib").symlink_to(outside, target_is_directory=True)
    rejected(d, settings, "scripts/lib", "symlinked directories")


def test_symlinked_directory_inside_rejected(src, settings, rejected):
    d = make_skill(src)
    (d / "alias").symlink_to(d / "scripts", target_is_directory=True)
    rejected(d, settings, "alias", "symlinked directories")


@pytest.mark.timeout(20)
def test_fifo_rejected(src, settings, rejected):
    d = make_skill(src)
    (d / "resources").mkdir()
    os.mkfifo(d / "resources" / "pipe")
    rejected(d, settings, "resources/pipe", "regular files")


@pytest.mark.timeout(20)
def test_symlink_to_fifo_inside_rejected(src, settings, rejected):
    d = make_skill(src)
    os.mkfifo(d / "pipe")
    (d / "scripts" / "p.py").symlink_to(d / "pipe")
    with pytest.raises(PackageError):
        load_package(d, settings)


def test_char_device_rejected(src, settings, rejected):
    d = make_skill(src)
    (d / "resources").mkdir()
    os.mknod(d / "resources" / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    rejected(d, settings, "resources/null", "device files")


def test_unix_socket_rejected(src, settings, rejected):
    import socket

    d = make_skill(src)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(d / "sock"))
        rejected(d, settings, "sock", "regular files")
    finally:
        sock.close()


@pytest.mark.parametrize(
    "fname,problem", [("a\\b.py", "backslashes"), ("bad\nname.py", "control characters")]
)
def test_odd_file_names_rejected(src, settings, rejected, fname, problem):
    d = make_skill(src)
    (d / "scripts" / fname).write_text("X = 1\n")
    rejected(d, settings, f"scripts/{fname}", problem)


def test_file_over_max_file_bytes_rejected(src, tmp_path, rejected):
    small = Settings(home=tmp_path / "home", max_file_bytes=1000)
    d = make_skill(src)
    (d / "resources").mkdir()
    (d / "resources" / "ok.bin").write_bytes(b"o" * 1000)  # exactly at the limit is fine
    (d / "resources" / "big.bin").write_bytes(b"b" * 1001)
    rejected(d, small, "resources/big.bin", "1001 bytes", "limit is 1000")
    (d / "resources" / "big.bin").unlink()
    assert load_package(d, small).files["resources/ok.bin"] == b"o" * 1000


def test_more_than_max_files_rejected(src, tmp_path, rejected):
    d = make_skill(src)  # SKILL.md, skillyard.yaml, scripts/main.py, tests/test_main.py
    (d / "resources").mkdir()
    (d / "resources" / "one.txt").write_text("1")
    small = Settings(home=tmp_path / "home", max_files=5)
    assert len(load_package(d, small).files) == 5  # exactly at the limit loads
    (d / "resources" / "two.txt").write_text("2")
    rejected(d, small, "", "more than 5 files")


def test_total_over_max_package_bytes_rejected(src, tmp_path, rejected):
    d = make_skill(src)
    (d / "resources").mkdir()
    for i in range(5):
        (d / "resources" / f"part{i}.bin").write_bytes(b"p" * 900)  # each file under max_file_bytes
    small = Settings(home=tmp_path / "home", max_file_bytes=1000, max_package_bytes=3000)
    rejected(d, small, "", "package is over 3000 bytes")


def test_memory_file_counts_toward_size_but_is_not_a_package_file(src, tmp_path, rejected):
    d = make_skill(src)
    (d / ".memory.md").write_text("m" * 1001)
    small = Settings(home=tmp_path / "home", max_file_bytes=1000)
    rejected(d, small, ".memory.md", "limit is 1000")


def test_not_a_folder_rejected(tmp_path, settings):
    f = tmp_path / "file.md"
    f.write_text("x")
    with pytest.raises(PackageError, match="folder"):
        load_package(f, settings)
    with pytest.raises(PackageError, match="no such folder"):
        load_package(tmp_path / "absent", settings)
    assert not settings.home.exists()


# -- skillyard.yaml ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sidecar,fragments",
    [
        pytest.param(SIDECAR + "bogus: 1\n", ["bogus", "extra"], id="unknown-key"),
        pytest.param(SIDECAR + "limits:\n  swap: 1g\n", ["limits.swap", "extra"], id="unknown-limits-key"),
        pytest.param(
            "entrypoint: main.py:run\n",
            ["entrypoint", "scripts/module.py:function"],
            id="entry-not-in-scripts",
        ),
        pytest.param("entrypoint: scripts/main.py\n", ["entrypoint"], id="entry-no-function"),
        pytest.param("entrypoint: scripts/main:run\n", ["entrypoint"], id="entry-no-py"),
        pytest.param("entrypoint: scripts/../main.py:run\n", ["entrypoint"], id="entry-dotdot"),
        pytest.param("entrypoint: scripts/main.py:run-it\n", ["entrypoint"], id="entry-bad-function"),
        pytest.param("entrypoint: scripts/main.py:class\n", ["keyword"], id="entry-keyword"),
        pytest.param(
            "entrypoint: scripts/nope.py:run\n", ["scripts/nope.py", "not in the package"], id="entry-missing"
        ),
        pytest.param(
            SIDECAR + "input_schema: {type: 12}\n",
            ["input_schema", "not a valid JSON Schema"],
            id="schema-type-12",
        ),
        pytest.param(
            SIDECAR + "output_schema: {type: object, required: notalist}\n",
            ["output_schema", "not a valid JSON Schema"],
            id="output-schema",
        ),
        pytest.param(
            SIDECAR + "requirements: ['--index-url http://x']\n",
            ["--index-url", "plain specifier"],
            id="req-index-url",
        ),
        pytest.param(
            SIDECAR + "requirements: ['git+https://github.com/x/y.git']\n",
            ["git+https", "plain specifier"],
            id="req-git",
        ),
        pytest.param(
            SIDECAR + "requirements: ['pkg @ https://x.test/pkg.whl']\n", ["plain specifier"], id="req-url"
        ),
        pytest.param(SIDECAR + "requirements: ['./local/pkg']\n", ["plain specifier"], id="req-path"),
        pytest.param(SIDECAR + "requirements: ['-e .']\n", ["plain specifier"], id="req-editable"),
        pytest.param(
            SIDECAR + "requirements: ['ok==1.0; os.system(\"x\")']\n", ["plain specifier"], id="req-marker"
        ),
        pytest.param(SIDECAR + "tags: [Bad Tag]\n", ["tag"], id="bad-tag"),
        pytest.param(SIDECAR + "limits:\n  cpus: 100\n", ["limits.cpus"], id="limits-cpus"),
        pytest.param("x: &x [1, 2]\ny: *x\n", ["anchors/aliases"], id="anchors"),
        pytest.param("entrypoint: [unclosed\n", ["bad YAML"], id="bad-yaml"),
        pytest.param("- entrypoint\n", ["must be a YAML mapping"], id="not-mapping"),
    ],
)
def test_bad_sidecar_rejected(src, settings, rejected, sidecar, fragments):
    d = make_skill(src, sidecar=sidecar)
    rejected(d, settings, "skillyard.yaml", *fragments)


def test_entrypoint_with_trailing_newline_rejected(src, settings, rejected):
    d = make_skill(src, sidecar='entrypoint: "scripts/main.py:run\\n"\n')
    rejected(d, settings, "skillyard.yaml", "entrypoint")


def test_good_sidecar_accepted(src, settings):
    d = make_skill(
        src,
        sidecar=SIDECAR
        + (
            "input_schema: {type: object, properties: {x: {type: integer}}, required: [x]}\n"
            "requirements: ['jsonschema>=4.17', 'PyYAML==6.0.1', 'rich[jupyter]>=13,<14']\n"
            "tags: [data, csv_tools]\nlimits: {memory: 128m, timeout: 5}\ngate: {coverage: 90}\n"
        ),
    )
    pkg = load_package(d, settings)
    assert pkg.config.entrypoint == "scripts/main.py:run"
    assert pkg.config.requirements == ["jsonschema>=4.17", "PyYAML==6.0.1", "rich[jupyter]>=13,<14"]
    assert pkg.config.limits.memory == "128m" and pkg.config.gate.coverage == 90


def test_empty_sidecar_means_defaults(src, settings):
    d = make_skill(src, sidecar="")
    pkg = load_package(d, settings)
    assert pkg.config.entrypoint is None and pkg.config.input_schema == {"type": "object"}


# -- archives ----------------------------------------------------------------------------------------
def tar_of(*members: tuple[tarfile.TarInfo, bytes | None], gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(
    name: str, data: bytes = b"x", *, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    info.linkname = link
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, None


GOOD = member("SKILL.md", SKILL_MD.format(name="demo").encode())


@pytest.mark.parametrize(
    "bad,file",
    [
        pytest.param(member("../evil", b"e"), "../evil", id="dotdot"),
        pytest.param(member("scripts/../../evil", b"e"), "scripts/../../evil", id="nested-dotdot"),
        pytest.param(member("/etc/evil", b"e"), "/etc/evil", id="absolute"),
        pytest.param(
            member("scripts/link.py", kind=tarfile.SYMTYPE, link="/etc/passwd"),
            "scripts/link.py",
            id="symlink",
        ),
        pytest.param(
            member("scripts/inner.py", kind=tarfile.SYMTYPE, link="main.py"),
            "scripts/inner.py",
            id="symlink-inside",
        ),
        pytest.param(
            member("scripts/hard.py", kind=tarfile.LNKTYPE, link="SKILL.md"), "scripts/hard.py", id="hardlink"
        ),
        pytest.param(member("dev/null", kind=tarfile.CHRTYPE), "dev/null", id="char-device"),
        pytest.param(member("dev/sda", kind=tarfile.BLKTYPE), "dev/sda", id="block-device"),
        pytest.param(member("pipe", kind=tarfile.FIFOTYPE), "pipe", id="fifo"),
        pytest.param(member("bad\\name.py", b"x"), "bad\\name.py", id="backslash"),
    ],
)
def test_unpack_refuses_bad_members(settings, bad, file):
    blob = tar_of(GOOD, bad)
    with pytest.raises(PackageError) as info:
        unpack_files(blob, settings)
    assert info.value.file == file
    assert str(info.value).startswith(f"{file}: ")


def test_unpack_refuses_oversize(tmp_path):
    small = Settings(home=tmp_path / "home", max_file_bytes=1000, max_files=3, max_package_bytes=2500)
    with pytest.raises(PackageError, match="limit is 1000"):
        unpack_files(tar_of(GOOD, member("big", b"b" * 1001)), small)
    with pytest.raises(PackageError, match="file-count limit"):
        unpack_files(tar_of(*(member(f"f{i}", b"x") for i in range(4))), small)
    with pytest.raises(PackageError, match="size"):
        unpack_files(tar_of(*(member(f"f{i}", b"x" * 900) for i in range(3))), small)
    assert not small.home.exists()


@pytest.mark.parametrize(
    "blob", [b"", b"not an archive at all", os.urandom(2048)], ids=["empty", "text", "random"]
)
def test_unpack_refuses_garbage(settings, blob):
    with pytest.raises(PackageError, match="not a valid package archive"):
        unpack_files(blob, settings)


def test_unpack_refuses_truncated_archive(settings):
    blob = pack_files({"SKILL.md": b"x" * 100_000, "data.bin": os.urandom(50_000)})
    with pytest.raises(PackageError):
        unpack_files(blob[: len(blob) // 2], settings)


def test_unpack_dot_slash_prefix_only_strips_the_prefix(settings):
    files, _ = unpack_files(
        tar_of(GOOD, member("./.memory.md", b"m"), member("./scripts/.helper.py", b"h")), settings
    )
    assert set(files) == {"SKILL.md", ".memory.md", "scripts/.helper.py"}
    with pytest.raises(PackageError):
        unpack_files(tar_of(GOOD, member("./../evil", b"e")), settings)


def test_unpack_accepts_dot_slash_prefix_and_dirs(settings):
    files, executable = unpack_files(
        tar_of(member("./SKILL.md", b"s"), member("./scripts/main.py", b"m")), settings
    )
    assert files == {"SKILL.md": b"s", "scripts/main.py": b"m"}


def test_pack_unpack_round_trip_exact(settings):
    files = {
        "SKILL.md": SKILL_MD.format(name="demo").encode(),
        "scripts/main.py": SCRIPT.encode(),
        "scripts/run.sh": b"#!/bin/sh\necho hi\n",
        "resources/blob.bin": bytes(range(256)) * 40,
        "resources/empty.txt": b"",
        "resources/deep/er/ü.txt": "unicode name ✓".encode(),
    }
    executable = {"scripts/run.sh"}
    blob = pack_files(files, executable)
    assert pack_files(dict(reversed(list(files.items()))), executable) == blob  # deterministic, order-free
    assert blob[:2] == b"\x1f\x8b" and blob[4:8] == b"\0\0\0\0"  # gzip header: no timestamp
    got, got_exec = unpack_files(blob, settings)
    assert got == files
    assert got_exec == executable
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for info in tar:
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")


# -- good packages and the content hash --------------------------------------------------------------
BUNDLED = sorted(p.name for p in SKILLS.iterdir() if (p / "SKILL.md").is_file())


def test_there_are_bundled_skills():
    assert len(BUNDLED) >= 10


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_skill_loads(name, settings, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    before = snapshot(SKILLS / name)
    pkg = load_package(SKILLS / name, settings)
    assert pkg.name == name
    assert pkg.description.strip()
    assert "SKILL.md" in pkg.files
    assert pkg.test_files or not pkg.has_code  # code comes with tests; instructions need none
    if pkg.config.entrypoint:
        assert pkg.config.entrypoint.split(":")[0] in pkg.files
    assert not any("__pycache__" in rel or rel.endswith(".pyc") for rel in pkg.files)
    # The archive form validates to the same package.
    files, executable = unpack_files(pkg.to_archive(), settings)
    assert package_from_files(name, files, executable).content_hash == pkg.content_hash
    assert snapshot(SKILLS / name) == before
    assert not settings.home.exists()


def test_content_hash_stable_and_sensitive(src, settings):
    d = make_skill(src)
    h1 = load_package(d, settings).content_hash
    assert load_package(d, settings).content_hash == h1
    assert len(h1) == 64

    # Memory notes and generated files are not part of the package.
    (d / ".memory.md").write_text("2026-01-01: fixed a bug\n")
    (d / "scripts" / "__pycache__").mkdir()
    (d / "scripts" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0pyc")
    (d / ".coverage").write_bytes(b"cov")
    pkg = load_package(d, settings)
    assert pkg.content_hash == h1
    assert pkg.memory == "2026-01-01: fixed a bug\n"
    assert ".memory.md" not in pkg.files

    # One byte of a script changes the hash; putting it back restores it.
    original = (d / "scripts" / "main.py").read_bytes()
    (d / "scripts" / "main.py").write_bytes(original.replace(b"True", b"Frue"))
    h2 = load_package(d, settings).content_hash
    assert h2 != h1
    (d / "scripts" / "main.py").write_bytes(original)
    assert load_package(d, settings).content_hash == h1

    # So do a new file, a rename and the executable bit.
    (d / "scripts" / "extra.py").write_text("")
    assert load_package(d, settings).content_hash != h1
    (d / "scripts" / "extra.py").unlink()
    (d / "scripts" / "main.py").chmod(0o755)
    pkg = load_package(d, settings)
    assert pkg.content_hash != h1 and "scripts/main.py" in pkg.executable


def test_symlink_inside_package_accepted(src, settings):
    d = make_skill(src)
    (d / "scripts" / "alias.py").symlink_to("main.py")
    (d / "resources").mkdir()
    (d / "resources" / "copy.py").symlink_to(d / "scripts" / "main.py")
    pkg = load_package(d, settings)
    assert pkg.files["scripts/alias.py"] == SCRIPT.encode()
    assert pkg.files["resources/copy.py"] == SCRIPT.encode()
    assert (d / "scripts" / "alias.py").is_symlink()  # untouched


def test_load_writes_nothing_for_a_good_package(src, settings, monkeypatch, tmp_path):
    d = make_skill(src)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = snapshot(d)
    pkg = load_package(d, settings)
    assert pkg.source == d and pkg.instructions.startswith("# demo")
    assert snapshot(d) == before
    assert not settings.home.exists() and list(cwd.iterdir()) == []


def test_package_from_files_validates_paths():
    base = {"SKILL.md": SKILL_MD.format(name="demo").encode()}
    assert package_from_files("demo", base).name == "demo"
    for bad in ("../x", "/abs", "a/../../x"):
        with pytest.raises(PackageError, match="escapes"):
            package_from_files("demo", {**base, bad: b""})


# -- paths that cannot exist on disk or in an image -------------------------------------------------
@pytest.mark.parametrize(
    "paths,file,fragment",
    [
        pytest.param(
            {"resources/stopwords.txt": b"a", "resources/stopwords.txt/x": b"b"},
            "resources/stopwords.txt",
            "file and also a folder",
            id="file-and-folder",
        ),
        pytest.param(
            {"scripts": b"a", "scripts/deep/x.py": b"b"},
            "scripts",
            "file and also a folder",
            id="file-and-deep-folder",
        ),
        pytest.param(
            {"resources/" + "a" * 300: b"a"},
            "resources/" + "a" * 70,
            "limit is 255",
            id="part-over-255-bytes",
        ),
        pytest.param(
            {"resources/" + "é" * 128: b"a"}, "resources/", "256 bytes", id="part-over-255-utf8-bytes"
        ),
        pytest.param({"/".join(["d" * 200] * 6): b"a"}, "d" * 80, "limit is 1024", id="path-over-1024-bytes"),
        pytest.param({"a//b": b"a"}, "a//b", "plain form", id="double-slash"),
        pytest.param({"a/./b": b"a"}, "a/./b", "plain form", id="dot-part"),
    ],
)
def test_paths_that_cannot_be_built_are_rejected(paths, file, fragment):
    base = {"SKILL.md": SKILL_MD.format(name="demo").encode()}
    with pytest.raises(PackageError) as info:
        package_from_files("demo", {**base, **paths})
    assert info.value.file.startswith(file) and fragment in str(info.value), str(info.value)


def test_a_255_byte_name_is_fine():
    base = {"SKILL.md": SKILL_MD.format(name="demo").encode()}
    assert package_from_files("demo", {**base, "resources/" + "a" * 255: b"a"}).name == "demo"


@pytest.mark.parametrize(
    "members,file",
    [
        pytest.param(
            [GOOD, member("SKILL.md", b"---\nname: demo\ndescription: other\n---\n")],
            "SKILL.md",
            id="skill-md-twice",
        ),
        pytest.param([GOOD, member("x", b"1"), member("./x", b"2")], "x", id="x-and-dot-slash-x"),
        pytest.param([GOOD, member("./././x", b"1"), member("x", b"2")], "x", id="dot-slashes"),
    ],
)
def test_unpack_refuses_duplicate_entries(settings, members, file):
    with pytest.raises(PackageError) as info:
        unpack_files(tar_of(*members), settings)
    assert info.value.file == file and "twice" in str(info.value)


def test_unpack_refuses_file_and_folder_at_one_path(settings):
    blob = tar_of(GOOD, member("resources/stopwords.txt", b"a"), member("resources/stopwords.txt/x", b"b"))
    with pytest.raises(PackageError, match="file and also a folder"):
        unpack_files(blob, settings)


def test_inflate_counts_every_gzip_member_and_stops_at_the_cap():
    import gzip

    from runtime.errors import ArchiveTooLarge
    from runtime.package import inflate

    tar = pack_files({"SKILL.md": b"x" * 3000})
    plain = gzip.decompress(tar)
    members = b"".join(gzip.compress(plain[i : i + 1000]) for i in range(0, len(plain), 1000))
    assert inflate(members, len(plain)) == plain  # every member, in order
    assert inflate(members + b"\0" * 64, len(plain)) == plain  # zero padding after a member, as gzip allows
    with pytest.raises(ArchiveTooLarge, match=f"more than {len(plain) - 1} bytes"):
        inflate(members, len(plain) - 1)  # the last member passes the cap
    bomb = gzip.compress(b"") * 1 + b"".join(gzip.compress(b"\0" * 1_000_000) for _ in range(50))
    with pytest.raises(ArchiveTooLarge):
        inflate(bomb, 10_000_000)
    with pytest.raises(PackageError, match="truncated"):
        inflate(tar[:-20], 10_000_000)
    with pytest.raises(PackageError, match="after the gzip stream"):
        inflate(tar + b"trailing", 10_000_000)
    assert inflate(plain, 10) == plain  # not gzip: tarfile reads it as it is
