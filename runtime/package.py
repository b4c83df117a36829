"""The skill package: loading, validation, content hashing and archives.

Loading reads everything into memory and validates it before anything is written
anywhere: a rejected package leaves no trace. Errors name the file and the problem.
"""

from __future__ import annotations

import hashlib
import io
import keyword
import os
import re
import stat
import tarfile
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import Settings, get_settings
from .errors import ArchiveTooLarge, PackageError
from .names import NAME_RE as NAME_RE  # re-exported: runtime/fixer.py imports it from here
from .names import ascii_name, spec_name_problem, validate_name

MEMORY_FILE = ".memory.md"
SIDECAR = "skillyard.yaml"
SKILL_MD = "SKILL.md"
# The spec's reference validator also accepts a lower-case skill.md; a package keeps one
# spelling, so it is loaded (and hashed, stored, exported) as SKILL.md.
SKILL_MD_ALIASES = ("skill.md",)
# requirements.txt files honoured beside skillyard.yaml's `requirements`, in this order.
REQUIREMENTS_FILES = ("requirements.txt", "scripts/requirements.txt")
# What counts as executable code (said once): any .py outside tests/, and these script files
# anywhere outside tests/ (also any file there marked executable that starts with "#!").
SCRIPT_SUFFIXES = (
    ".py",
    ".js",
    ".mjs",
    ".cjs",
    ".ts",
    ".mts",
    ".cts",
    ".sh",
    ".bash",
    ".zsh",
    ".rb",
    ".pl",
    ".php",
    ".lua",
    ".r",
    ".ps1",
)
# Generated files that are never part of a package (not hashed, not shipped).
IGNORED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git", ".skillyard"}
IGNORED_FILES = {".coverage", ".DS_Store"}  # .memory.md is read, but kept out of the hashed files
MAX_YAML_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
INFLATE_STEP = 1024 * 1024  # the most one decompression step may make before the count is checked


DESCRIPTION_MAX = 1024
SPEC_FIELDS = frozenset({"name", "description", "license", "compatibility", "metadata", "allowed-tools"})


# -- models at the boundary ----------------------------------------------------------------
class Frontmatter(BaseModel):
    """SKILL.md frontmatter, exactly the Agent Skills specification's fields."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    description: str = Field(min_length=1, max_length=DESCRIPTION_MAX)
    license: str | None = None
    compatibility: str | None = Field(default=None, max_length=500)
    metadata: dict[str, str] = Field(default_factory=dict)
    allowed_tools: str | None = Field(default=None, alias="allowed-tools")

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, v: Any) -> Any:
        # An empty `metadata:` is an empty map (the frontmatter is read with every scalar as
        # its text, so it arrives as "").
        return {} if v is None or v == "" else v

    @field_validator("allowed_tools", mode="before")
    @classmethod
    def _allowed_tools(cls, v: Any) -> Any:
        # The spec's form is one space-separated string; a YAML list of names says the same.
        if isinstance(v, list) and all(isinstance(t, str) for t in v):
            return " ".join(v)
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return validate_name(v)

    @field_validator("description")
    @classmethod
    def _description(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("description must not be blank")
        return v


class LimitsOverride(BaseModel):
    """A skill's own call limits (skillyard.yaml `limits`), tightening or loosening the defaults."""

    model_config = ConfigDict(extra="forbid")
    memory: int | str | None = None
    cpus: float | None = Field(default=None, gt=0, le=8)
    pids: int | None = Field(default=None, ge=8, le=4096)
    timeout: float | None = Field(default=None, gt=0, le=3600)
    max_stdout: int | str | None = None
    tmpfs: int | str | None = None  # size of /tmp
    runtime: Literal["runc", "runsc"] | None = None  # "runsc": this skill always runs under gVisor


class GateSettings(BaseModel):
    """A skill's own gate settings (skillyard.yaml `gate`): they may only make the gate stricter."""

    model_config = ConfigDict(extra="forbid")
    # Line coverage is reported as information only; a package's floor is no longer enforced.
    coverage: float | None = Field(default=None, ge=0, le=100)
    mutation: float | None = Field(
        default=None, ge=0, le=100, description="a higher mutation-score floor (%)"
    )
    timeout: float | None = Field(default=None, gt=0, le=3600)


class Example(BaseModel):
    """An example input (skillyard.yaml `examples`)."""

    model_config = ConfigDict(extra="forbid")
    input: Any
    output: Any = None


REQUIREMENT_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?( *[<>=!~]=? *[A-Za-z0-9.*+!-]+ *,? *)*"
)


def requirement_problem(req: str) -> str | None:
    """Why `req` is not a plain requirement specifier (like 'pypdf>=4,<6'), or None if it is.
    URLs, paths and pip options are refused: requirements install offline from the wheelhouse,
    by name."""
    if REQUIREMENT_RE.fullmatch(req):
        return None
    if req.startswith("-"):
        return f"pip option {req.split()[0]!r} is not supported: list plain specifiers like 'pypdf>=4'"
    if "://" in req or req.startswith((".", "/", "~")) or " @ " in req:
        return f"{req!r} is a URL or a path: list plain specifiers like 'pypdf>=4'"
    if ";" in req:
        return f"{req!r} has an environment marker: skills run on one platform; list a plain specifier"
    return f"requirement {req!r} must be a plain specifier like 'jsonschema>=4.17'"


ENTRY_RE = re.compile(
    r"^scripts/([A-Za-z_][A-Za-z0-9_]*/)*[A-Za-z_][A-Za-z0-9_]*\.py:[A-Za-z_][A-Za-z0-9_]*\Z"
)


class SkillConfig(BaseModel):
    """skillyard.yaml: the runtime settings the Agent Skills spec has no field for."""

    model_config = ConfigDict(extra="forbid")

    entrypoint: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] = Field(default_factory=dict)
    requirements: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    limits: LimitsOverride = Field(default_factory=LimitsOverride)
    gate: GateSettings = Field(default_factory=GateSettings)
    examples: list[Example] = Field(default_factory=list)
    baseline_tokens: int | None = Field(default=None, ge=0)

    @field_validator("entrypoint")
    @classmethod
    def _entry(cls, v: str | None) -> str | None:
        if v is not None:
            if not ENTRY_RE.match(v):
                raise ValueError("entrypoint must look like 'scripts/module.py:function'")
            func = v.rsplit(":", 1)[1]
            if keyword.iskeyword(func):
                raise ValueError("entrypoint function name is a Python keyword")
        return v

    @field_validator("input_schema", "output_schema")
    @classmethod
    def _schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.Draft202012Validator.check_schema(v)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        return v

    @field_validator("requirements")
    @classmethod
    def _reqs(cls, v: list[str]) -> list[str]:
        for req in v:
            problem = requirement_problem(req)
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for tag in v:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", tag):
                raise ValueError(f"tag {tag!r} must be 1-32 chars of a-z, 0-9, '-' or '_'")
        return v


# -- the package ------------------------------------------------------------------------------
@dataclass
class SkillPackage:
    """A loaded, validated skill package, all in memory."""

    name: str
    meta: Frontmatter
    config: SkillConfig
    instructions: str  # SKILL.md body after the frontmatter
    files: dict[str, bytes]  # posix relative path -> content (the hashed, shipped files)
    executable: set[str] = field(default_factory=set)
    memory: str = ""  # .memory.md, kept beside the package, not hashed
    source: Path | None = None

    @property
    def content_hash(self) -> str:
        """sha256 over the sorted paths and bytes: equal hashes mean equal packages."""
        h = hashlib.sha256()
        for rel in sorted(self.files):
            h.update(rel.encode() + b"\0" + (b"x" if rel in self.executable else b"-") + b"\0")
            h.update(hashlib.sha256(self.files[rel]).digest())
        return h.hexdigest()

    @property
    def skill_md(self) -> str:
        """The SKILL.md text."""
        return self.files["SKILL.md"].decode("utf-8")

    @property
    def description(self) -> str:
        """The frontmatter's description."""
        return self.meta.description

    @property
    def test_files(self) -> list[str]:
        """The test files the gate runs."""

        def is_test(rel: str) -> bool:
            base = rel.rsplit("/", 1)[-1]
            return base.endswith(".py") and (base.startswith("test_") or base.endswith("_test.py"))

        return sorted(p for p in self.files if p.startswith("tests/") and is_test(p))

    @property
    def script_files(self) -> list[str]:
        """The Python files under scripts/."""
        return sorted(p for p in self.files if p.startswith("scripts/") and p.endswith(".py"))

    @property
    def code_files(self) -> list[str]:
        """Every Python file of the package outside tests/: what runs in the callee, what coverage
        and the mutation check measure."""
        return sorted(p for p in self.files if p.endswith(".py") and not p.startswith("tests/"))

    @property
    def executable_code(self) -> list[str]:
        """The files that make this a skill with code (see `is_executable_code`): empty for an
        instructions-only skill, which is never built, gated or run."""
        return sorted(p for p in self.files if is_executable_code(p, self.files[p], p in self.executable))

    @property
    def has_code(self) -> bool:
        """Whether the package holds executable code (else it is instructions only)."""
        return bool(self.executable_code)

    @property
    def image_files(self) -> dict[str, bytes]:
        """What the skill's image holds: everything but tests/ (the code cannot read its tests)."""
        return {rel: data for rel, data in self.files.items() if not rel.startswith("tests/")}

    def to_archive(self) -> bytes:
        """The package as a deterministic tar.gz (what the store keeps)."""
        return pack_files(self.files, self.executable)


def is_executable_code(rel: str, data: bytes, executable: bool = False) -> bool:
    """Whether the package file `rel` is executable code: a file outside tests/ that is a
    script by its suffix (SCRIPT_SUFFIXES), or marked executable and starting with "#!".
    Everything else (Markdown, data, templates, images) is content an agent reads."""
    if rel.startswith("tests/"):
        return False
    base = rel.rsplit("/", 1)[-1]
    if base.lower().endswith(SCRIPT_SUFFIXES):
        return True
    return executable and data.startswith(b"#!")


MAX_YAML_DEPTH = 32
_OPEN_TOKENS = (
    yaml.FlowSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.BlockMappingStartToken,
)
_CLOSE_TOKENS = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)


def _reject_yaml_aliases(text: str, file: str) -> None:
    """Anchors and aliases are how YAML bombs multiply, and deep nesting exhausts the parser's
    stack: frontmatter needs neither. One pass over the tokens, before anything is built."""
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                raise PackageError(file, "YAML anchors/aliases are not allowed (they enable YAML bombs)")
            if isinstance(token, _OPEN_TOKENS):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise PackageError(file, f"YAML is nested deeper than {MAX_YAML_DEPTH} levels")
            elif isinstance(token, _CLOSE_TOKENS):
                depth -= 1
    except yaml.YAMLError as exc:
        raise PackageError(file, f"bad YAML: {exc}") from exc
    except RecursionError as exc:
        raise PackageError(file, "YAML is nested too deeply") from exc


def _load_yaml(text: str, file: str, *, scalars_as_text: bool = False) -> Any:
    """Parse YAML after the bomb checks. `scalars_as_text`: every scalar stays the text it was
    written as (YAML's base schema, as the spec's reference parser reads frontmatter), so
    `version: 1.10` is "1.10", not the float 1.1."""
    if len(text.encode()) > MAX_YAML_BYTES:
        raise PackageError(file, f"YAML is over {MAX_YAML_BYTES // 1024} KB")
    _reject_yaml_aliases(text, file)
    if scalars_as_text:
        # The base schema would drop a tag silently (`!!python/object/apply:...` read as a plain
        # list): the frontmatter's values are text, so a tag is refused instead of ignored.
        try:
            tagged = any(isinstance(t, yaml.TagToken) for t in yaml.scan(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise PackageError(file, f"bad YAML: {exc}") from exc
        if tagged:
            raise PackageError(file, "bad YAML: tags (!!type, !name) are not allowed in the frontmatter")
    try:
        if scalars_as_text:
            return yaml.load(text, Loader=yaml.BaseLoader)  # builds only str, list and dict
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PackageError(file, f"bad YAML: {exc}") from exc


def parse_skill_md(text: str) -> tuple[dict[str, Any], str]:
    """Split SKILL.md into (frontmatter mapping, body)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise PackageError("SKILL.md", "must start with a '---' line opening the YAML frontmatter")
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            front = "\n".join(lines[1:i])
            body = "\n".join(lines[i + 1 :])
            break
    else:
        raise PackageError("SKILL.md", "frontmatter is not closed by a '---' line")
    data = _load_yaml(front, "SKILL.md", scalars_as_text=True)
    if not isinstance(data, dict):
        raise PackageError("SKILL.md", "frontmatter must be a YAML mapping")
    return data, body


def _pydantic_problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def read_tree(root: Path, settings: Settings) -> tuple[dict[str, bytes], set[str], str]:
    """Read every file under root, enforcing the package limits. Nothing is written."""
    files: dict[str, bytes] = {}
    executable: set[str] = set()
    memory = ""
    total = 0
    root_real = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS)
        here = Path(dirpath)
        for d in list(dirnames):
            p = here / d
            if p.is_symlink():
                rel = p.relative_to(root).as_posix()
                raise PackageError(rel, "symlinked directories are not allowed")
        for fname in sorted(filenames):
            path = here / fname
            rel = path.relative_to(root).as_posix()
            if fname in IGNORED_FILES or fname.endswith((".pyc", ".pyo")):
                continue
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = Path(os.path.realpath(path))
                if target != root_real and root_real not in target.parents:
                    raise PackageError(rel, f"symlink points outside the package (to {os.readlink(path)})")
                if not target.is_file():
                    raise PackageError(rel, "symlink does not point to a regular file in the package")
                st = target.stat()
                path = target
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                raise PackageError(rel, "device files are not allowed")
            if not stat.S_ISREG(st.st_mode):
                raise PackageError(rel, "only regular files are allowed (no FIFOs, sockets or devices)")
            if st.st_size > settings.max_file_bytes:
                raise PackageError(rel, f"file is {st.st_size} bytes; the limit is {settings.max_file_bytes}")
            total += st.st_size
            if total > settings.max_package_bytes:
                raise PackageError("", f"package is over {settings.max_package_bytes} bytes")
            if fname == MEMORY_FILE and here == root:
                memory = path.read_bytes().decode("utf-8", "replace")
                continue
            if len(files) >= settings.max_files:
                raise PackageError("", f"package has more than {settings.max_files} files")
            _check_rel_path(rel)
            files[rel] = path.read_bytes()
            if st.st_mode & 0o111:
                executable.add(rel)
    return files, executable, memory


MAX_PART_BYTES = 255  # NAME_MAX: a longer file or folder name cannot exist on Linux (the image build fails)
MAX_PATH_BYTES = 1024


def _check_rel_path(rel: str) -> None:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or rel.startswith("/"):
        raise PackageError(rel, "path escapes the package")
    if not rel or p.as_posix() != rel or "." in rel.split("/"):
        # "a//b", "a/./b", "./a" and "a/" name the same file as "a/b" / "a": one spelling per file.
        raise PackageError(rel, f"path is not in plain form (write it as {p.as_posix()!r})")
    for part in p.parts:
        if not part or any(ord(c) < 32 for c in part) or "\\" in part:
            raise PackageError(rel, "path has control characters or backslashes")
        # Format characters (RTL override, zero-width, bidi isolates) make a path read as another.
        if any(unicodedata.category(c) in ("Cf", "Cc", "Cs", "Co", "Zl", "Zp") for c in part):
            raise PackageError(rel, "path has invisible or direction-changing Unicode characters")
    try:
        encoded = rel.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PackageError(rel, "path is not valid UTF-8") from exc
    if len(encoded) > MAX_PATH_BYTES:
        raise PackageError(rel[:80] + "...", f"path is {len(encoded)} bytes; the limit is {MAX_PATH_BYTES}")
    for part in p.parts:
        size = len(part.encode("utf-8"))
        if size > MAX_PART_BYTES:
            raise PackageError(
                rel if len(rel) <= 120 else rel[:80] + "...",
                f"a file or folder name is {size} bytes; the limit is {MAX_PART_BYTES}",
            )


def _check_tree(paths: Any) -> None:
    """No path may be both a file and a folder (``a`` and ``a/b``): such a package cannot be written
    to disk or into an image."""
    files = set(paths)
    for rel in sorted(files):
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in files:
                raise PackageError(parent, f"is a file and also a folder holding {rel}: keep one of them")


def load_package(path: str | Path, settings: Settings | None = None) -> SkillPackage:
    """Load and validate a skill folder. Raises PackageError; writes nothing."""
    settings = settings or get_settings()
    root = Path(path)
    if not root.exists():
        raise PackageError(str(path), "no such folder")
    if root.is_symlink():
        root = Path(os.path.realpath(root))
    if not root.is_dir():
        raise PackageError(str(path), "a skill is a folder holding SKILL.md")
    files, executable, memory = read_tree(root, settings)
    return package_from_files(root.name, files, executable, memory=memory, source=root)


def package_from_files(
    folder: str,
    files: dict[str, bytes],
    executable: set[str] | None = None,
    *,
    memory: str = "",
    source: Path | None = None,
) -> SkillPackage:
    """Validate an in-memory package (from a folder, an archive or an LLM's answer)."""
    for rel in files:
        _check_rel_path(rel)
    _check_tree(files)
    files = with_canonical_skill_md(files)
    if SKILL_MD not in files:
        raise PackageError("SKILL.md", "missing: every skill needs a SKILL.md at its root")
    try:
        text = files["SKILL.md"].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PackageError("SKILL.md", "is not valid UTF-8") from exc
    data, body = parse_skill_md(text)
    extra = sorted(set(data) - SPEC_FIELDS)
    if extra:
        raise PackageError("SKILL.md", outside_spec(extra))
    name = data.get("name")
    if isinstance(name, str) and not name.isascii() and spec_name_problem(name) is None:
        raise PackageError("SKILL.md", unregistrable_name(name))
    try:
        meta = Frontmatter.model_validate(data)
    except ValidationError as exc:
        raise PackageError("SKILL.md", f"frontmatter: {_pydantic_problem(exc)}") from exc
    if meta.name != folder:
        raise PackageError("SKILL.md", f"name {meta.name!r} must equal the folder name {folder!r}")
    config = SkillConfig()
    if SIDECAR in files:
        try:
            raw = _load_yaml(files[SIDECAR].decode("utf-8"), SIDECAR)
        except UnicodeDecodeError as exc:
            raise PackageError(SIDECAR, "is not valid UTF-8") from exc
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise PackageError(SIDECAR, "must be a YAML mapping")
        try:
            config = SkillConfig.model_validate(raw)
        except ValidationError as exc:
            raise PackageError(SIDECAR, _pydantic_problem(exc)) from exc
    extra = requirements_from_files(files)
    if extra:
        merged = list(dict.fromkeys([*config.requirements, *extra]))
        config = config.model_copy(update={"requirements": merged})
    if config.entrypoint:
        entry_file = config.entrypoint.split(":")[0]
        if entry_file not in files:
            raise PackageError(SIDECAR, f"entrypoint file {entry_file} is not in the package")
    return SkillPackage(
        name=meta.name,
        meta=meta,
        config=config,
        instructions=body,
        files=dict(files),
        executable=set(executable or ()),
        memory=memory,
        source=source,
    )


def with_canonical_skill_md(files: dict[str, bytes]) -> dict[str, bytes]:
    """`files` with a lower-case skill.md (which the spec's reference validator accepts) named
    SKILL.md, the one spelling a package keeps; unchanged when SKILL.md is there."""
    if SKILL_MD in files:
        return files
    for alias in SKILL_MD_ALIASES:
        if alias in files:
            renamed = {SKILL_MD if rel == alias else rel: data for rel, data in files.items()}
            return renamed
    return files


def requirements_from_files(files: dict[str, bytes]) -> list[str]:
    """The requirements the package's requirements.txt files list (REQUIREMENTS_FILES, in
    order): one plain specifier a line; blank lines and comments are fine; pip options, URLs
    and paths are a PackageError naming the file and line."""
    found: list[str] = []
    for rel in REQUIREMENTS_FILES:
        if rel not in files:
            continue
        try:
            text = files[rel].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PackageError(rel, "is not valid UTF-8") from exc
        for number, line in enumerate(text.splitlines(), start=1):
            req = re.sub(r"(^|\s)#.*$", "", line).strip()
            if not req:
                continue
            problem = requirement_problem(req)
            if problem:
                raise PackageError(f"{rel}:{number}", problem)
            found.append(req)
    return found


def outside_spec(keys: list[str]) -> str:
    """Why frontmatter keys the spec does not define are refused, and where they can go."""
    return (
        f"frontmatter keys outside the spec: {', '.join(keys)} (the spec allows "
        f"{', '.join(sorted(SPEC_FIELDS))}; put your own under metadata, as strings)"
    )


def unregistrable_name(name: str) -> str:
    """Why a name the spec allows cannot be registered here, and what to do."""
    suggestion = ascii_name(name)
    hint = f" (for example {suggestion!r})" if suggestion else ""
    return (
        f"invalid skill name {name!r} here: it is valid by the Agent Skills spec, but skillyard "
        "registers only names of a-z, 0-9 and single hyphens: names become image tags and tool "
        "names, which OpenAI, Anthropic and MCP clients accept only in ASCII, and letters from "
        f"other scripts can pass for Latin ones. Rename the folder and the frontmatter name{hint}"
    )


def spec_problems(folder: str, files: dict[str, bytes]) -> list[str]:
    """Every way the package breaks the Agent Skills specification (SKILL.md and its
    frontmatter only), as the reference validator (skills-ref) judges it: [] when spec-valid.

    Apart from `package_from_files` because the spec is wider than what skillyard registers
    (a Unicode name) and validation reports both verdicts."""
    files = with_canonical_skill_md(files)
    if SKILL_MD not in files:
        return ["missing SKILL.md: every skill needs one at its root"]
    try:
        data, _ = parse_skill_md(files[SKILL_MD].decode("utf-8"))
    except UnicodeDecodeError:
        return ["SKILL.md is not valid UTF-8"]
    except PackageError as exc:
        return [str(exc)]
    problems = []
    extra = sorted(set(data) - SPEC_FIELDS)
    if extra:
        problems.append(outside_spec(extra))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("frontmatter needs a non-empty 'name'")
    else:
        problem = spec_name_problem(name)
        if problem:
            problems.append(problem)
        elif unicodedata.normalize("NFKC", folder) != unicodedata.normalize("NFKC", name.strip()):
            problems.append(f"name {name!r} must equal the folder name {folder!r}")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append("frontmatter needs a non-empty 'description'")
    elif len(description) > DESCRIPTION_MAX:
        problems.append(f"description is {len(description)} characters; the limit is {DESCRIPTION_MAX}")
    compatibility = data.get("compatibility")
    if compatibility is not None and (not isinstance(compatibility, str) or len(compatibility) > 500):
        problems.append("compatibility must be a string of at most 500 characters")
    return problems


# -- archives ---------------------------------------------------------------------------------
def pack_files(files: dict[str, bytes], executable: set[str] | None = None) -> bytes:
    """A deterministic tar.gz of the files (sorted, zeroed times and owners)."""
    executable = executable or set()
    buf = io.BytesIO()
    import gzip

    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for rel in sorted(files):
            info = tarfile.TarInfo(rel)
            info.size = len(files[rel])
            info.mode = 0o755 if rel in executable else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[rel]))
    return buf.getvalue()


def archive_cap(settings: Settings) -> int:
    """How many bytes a package's tar stream may hold: the package limit plus tar's own
    overhead (headers, padding, pax records) for as many files as a package may have."""
    return settings.max_package_bytes + settings.max_files * 3 * 1024 + 1024 * 1024


def inflate(blob: bytes, cap: int) -> bytes:
    """The tar bytes of an archive: a gzip stream decompressed whole -- every member, as
    tarfile would read them all -- counting every byte and stopping with ArchiveTooLarge as
    soon as they pass `cap`, before more is made. Anything else is returned as it is.

    Why here and not in tarfile: tarfile decompresses as it goes and buffers a pax or GNU
    long-name record whole before we see a member, so a bomb hidden in a header record or
    in a later gzip member would grow the process by its full size. Once inflated, tarfile
    only ever reads from these (at most `cap`) bytes."""
    if blob[:2] != GZIP_MAGIC:
        return blob
    out = bytearray()
    rest: bytes = bytes(blob)
    try:
        while rest:
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member
            pending = rest
            while not stream.eof:
                piece = stream.decompress(pending, min(INFLATE_STEP, cap - len(out) + 1))
                out += piece
                if len(out) > cap:
                    raise ArchiveTooLarge(
                        "",
                        f"the archive expands to more than {cap} bytes, more than any package within "
                        "the limits needs (SKILLYARD_MAX_PACKAGE_BYTES, SKILLYARD_MAX_FILES)",
                    )
                if not piece and pending == stream.unconsumed_tail:
                    raise PackageError("", "not a valid package archive: the gzip stream is truncated")
                pending = stream.unconsumed_tail
            rest = stream.unused_data.lstrip(b"\0")  # gzip allows zero padding between members
            if rest and rest[:2] != GZIP_MAGIC:
                raise PackageError("", "not a valid package archive: bytes after the gzip stream")
    except zlib.error as exc:
        raise PackageError("", f"not a valid gzip stream ({exc})") from exc
    return bytes(out)


def unpack_files(blob: bytes, settings: Settings | None = None) -> tuple[dict[str, bytes], set[str]]:
    """Read a package archive (.tar.gz or .tar) into memory, refusing bombs, links, devices,
    traversal and oversize."""
    settings = settings or get_settings()
    files: dict[str, bytes] = {}
    executable: set[str] = set()
    total = 0
    tar_bytes = inflate(blob, archive_cap(settings))  # tarfile never decompresses: see inflate
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar:
                name = member.name
                while name.startswith("./"):
                    name = name.removeprefix("./")
                if member.isdir():
                    continue
                if not member.isreg():
                    raise PackageError(
                        member.name, "archives may hold only regular files (no links or devices)"
                    )
                _check_rel_path(name)
                if name in files:
                    # tar would silently keep the last one: which file is the package?
                    raise PackageError(name, "is in the archive twice: keep one entry per file")
                if member.size > settings.max_file_bytes:
                    raise PackageError(
                        name, f"file is {member.size} bytes; the limit is {settings.max_file_bytes}"
                    )
                total += member.size
                if total > settings.max_package_bytes or len(files) >= settings.max_files:
                    raise PackageError("", "archive is over the package size or file-count limit")
                fh = tar.extractfile(member)
                files[name] = fh.read() if fh else b""
                if member.mode & 0o111:
                    executable.add(name)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:  # truncated or corrupt gzip/tar
        raise PackageError("", f"not a valid package archive: {exc}") from exc
    _check_tree(files)
    return files, executable


def write_files(
    files: dict[str, bytes], dest: Path, executable: set[str] | None = None, memory: str | None = None
) -> None:
    """Write a package to a folder (export, rollback). Paths were validated on the way in."""
    dest.mkdir(parents=True, exist_ok=True)
    dest_real = dest.resolve()
    for rel, data in files.items():
        _check_rel_path(rel)
        target = (dest / rel).resolve()
        if dest_real not in target.parents:
            raise PackageError(rel, "path escapes the destination")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if executable and rel in executable else 0o644)
    if memory:
        (dest / MEMORY_FILE).write_text(memory)
