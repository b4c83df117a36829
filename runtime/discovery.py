"""Finding skills in a folder tree: one skill folder, a folder of skills, or a repository
root whose skills sit deeper (``skills/NAME/SKILL.md``, ``skills/GROUP/NAME/SKILL.md``).

Invariants: a skill folder is one holding SKILL.md (or the lower-case skill.md the spec
accepts); the search stops at a skill folder (its sub-folders are part of it, never skills
of their own) and goes at most MAX_DEPTH levels below the root; it never follows symlinks
and never enters hidden or generated folders. Everything it passes over that could have
held skills is reported with the reason, so an import never drops a skill silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SkillError
from .package import IGNORED_DIRS, SKILL_MD, SKILL_MD_ALIASES

MAX_DEPTH = 3  # root/NAME, root/skills/NAME, root/skills/GROUP/NAME
# Folders of a repository that hold tooling, not skills: passed over without a report.
NOT_SKILL_DIRS = frozenset({"node_modules", ".venv", "venv", "site-packages", "dist", "build"})


@dataclass(frozen=True)
class Skipped:
    """A folder passed over, and why."""

    path: Path
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}


@dataclass
class Discovery:
    """The skill folders found under a root, in path order, and what was passed over."""

    root: Path
    skills: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def is_skill_folder(path: Path) -> bool:
    """Whether `path` is a folder holding SKILL.md (or skill.md)."""
    return path.is_dir() and any((path / name).is_file() for name in (SKILL_MD, *SKILL_MD_ALIASES))


def find_skills(path: str | Path) -> Discovery:
    """The skills at or under `path` (see the module docstring); SkillError if `path` is no
    folder. An empty result is not an error here: the caller says what that means."""
    root = Path(path)
    if not root.is_dir():
        raise SkillError(f"{root}: not a folder; pass a skill folder, a folder of skills or a repository")
    found = Discovery(root)
    if is_skill_folder(root):
        found.skills.append(root)
        return found
    _walk(root, 1, found)
    return found


def _walk(folder: Path, depth: int, found: Discovery) -> bool:
    """Search `folder`'s sub-folders at `depth`; whether any skill was found below it."""
    any_found = False
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        found.skipped.append(Skipped(folder, f"cannot be read: {exc.strerror or exc}"))
        return False
    for entry in entries:
        if not entry.is_dir() or entry.name in IGNORED_DIRS or entry.name in NOT_SKILL_DIRS:
            continue
        if entry.is_symlink():
            found.skipped.append(Skipped(entry, "a symlinked folder (links are not followed)"))
            continue
        if entry.name.startswith("."):
            if _holds_skill_md(entry):
                found.skipped.append(
                    Skipped(entry, f"a hidden folder holding skills: pass it itself (skillyard add {entry})")
                )
            continue
        if is_skill_folder(entry):
            found.skills.append(entry)
            any_found = True
            continue
        below = depth < MAX_DEPTH and _walk(entry, depth + 1, found)
        any_found = any_found or below
        if below:
            continue
        if depth >= MAX_DEPTH and _holds_skill_md(entry):
            found.skipped.append(
                Skipped(entry, f"skills more than {MAX_DEPTH} levels down: pass this folder itself")
            )
        elif depth == 1 and not below:
            found.skipped.append(Skipped(entry, "no SKILL.md in it or in its sub-folders"))
    return any_found


def _holds_skill_md(folder: Path, budget: int = 2_000) -> bool:
    """Whether a SKILL.md lies anywhere under `folder` (bounded: at most `budget` folders)."""
    for seen, (_dirpath, dirnames, filenames) in enumerate(os.walk(folder, followlinks=False)):
        if seen >= budget:
            return False
        dirnames[:] = [d for d in dirnames if d not in NOT_SKILL_DIRS]
        if any(name in filenames for name in (SKILL_MD, *SKILL_MD_ALIASES)):
            return True
    return False
