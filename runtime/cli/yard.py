"""The yard a CLI command works on."""

from __future__ import annotations

from collections.abc import Callable

from ..yard import Yard


def one_shot_yard(progress: Callable[[str], None] | None = None, collect_orphans: bool = True) -> Yard:
    """A yard for one short-lived command: cold containers (warm ones would only be started
    to be removed), accounting written before the command ends."""
    return Yard(progress=progress, pool=False, collect_orphans=collect_orphans)
