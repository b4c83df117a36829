"""Section 3: gate time for the bundled skills (skills/*): cold (fresh store, images not
built), unchanged (same store: Yard.add answers "unchanged"), and re-gate (images cached,
fresh store: the tests run again, nothing is built). The re-gate runs twice per skill,
interleaved: with the mutation check (the default) and without it (mutants 0), so the
check's cost is a ratio from the same run."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import SKILLS, Ledger, quiet_logs, r1, ratio, remove_images, say, settings

IGNORE = shutil.ignore_patterns("__pycache__", ".coverage", ".memory.md", ".pytest_cache", "failures.jsonl")


def copy_skills(dest: Path, nonce: str = "") -> list[Path]:
    """Copy skills/* (folders with SKILL.md) to dest. With a nonce, each copy gets one small
    extra file (resources/bench-run.txt) so its content hash and image tag are this run's own."""
    folders = []
    for src in sorted(p for p in SKILLS.iterdir() if (p / "SKILL.md").exists()):
        d = dest / src.name
        shutil.copytree(src, d, ignore=IGNORE)
        if nonce:
            (d / "resources").mkdir(exist_ok=True)
            (d / "resources" / "bench-run.txt").write_text(nonce + "\n")
        folders.append(d)
    return folders


def _phase(yard, folders: list[Path], label: str) -> dict[str, Any]:
    per: dict[str, Any] = {}
    t0 = time.perf_counter()
    for i, folder in enumerate(folders, 1):
        o = yard.add(folder)
        per[o.name] = {
            "status": o.status,
            "built": o.built,
            "s": round(o.duration_s, 3),
            "reasons": o.reasons[:3] if o.status not in ("registered", "unchanged") else [],
        }
        say(
            f"  gate {label}: {i}/{len(folders)} {o.name} {o.status} {o.duration_s:.2f}s"
            + (" (built)" if o.built else "")
        )
    return {"total_s": round(time.perf_counter() - t0, 2), "skills": per}


def run(client, runner: str, ledger: Ledger, *, exact_copies: bool = False) -> dict[str, Any]:
    from runtime.build import skill_image_tag
    from runtime.package import load_package
    from runtime.yard import Yard

    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="skillyard-bench-gate-") as tmp:
        tmp_p = Path(tmp)
        folders = copy_skills(tmp_p / "src", nonce="" if exact_copies else f"gate-{ledger.run_id}")
        # Remove exactly the skill images about to be built (with a nonce: none exist).
        tags = set()
        for f in folders:
            try:
                s = settings(tmp_p / "probe")
                tags.add(skill_image_tag(client, load_package(f, s), runner))
            except Exception as exc:  # noqa: BLE001 - a rejected package shows up in the phases
                ledger.notes.append(f"gate: {f.name} did not load: {exc}")
        removed, failed = remove_images(client, tags)
        if failed:
            ledger.notes.append(
                f"gate: could not remove {len(failed)} image(s) first (in use?): {failed[:3]}"
            )
        ledger.add_folders(folders)

        say(
            f"gate: cold, {len(folders)} skills, fresh store, "
            f"{len(tags) - len(removed)} of {len(tags)} images absent before removal"
        )
        cold_yard = Yard(settings(tmp_p / "home1", runner_image=runner), pool=False)
        try:
            cold = _phase(cold_yard, folders, "cold")
            say("gate: unchanged (same store, images cached)")
            unchanged = _phase(cold_yard, folders, "unchanged")
        finally:
            cold_yard.close()
        say("gate: re-gate (fresh store, images cached), with and without the mutation check, interleaved")
        regate_yard = Yard(settings(tmp_p / "home2", runner_image=runner), pool=False)
        plain_yard = Yard(settings(tmp_p / "home3", runner_image=runner, mutants=0), pool=False)
        try:
            regate = {"total_s": 0.0, "skills": {}}
            plain = {"total_s": 0.0, "skills": {}}
            for i, folder in enumerate(folders):
                # Alternate which goes first, so neither always meets a warmer machine.
                pair = [(regate_yard, regate, "regate"), (plain_yard, plain, "regate, no mutation")]
                for yard, into, label in pair if i % 2 == 0 else pair[::-1]:
                    one = _phase(yard, [folder], label)
                    into["skills"].update(one["skills"])
                    into["total_s"] = round(into["total_s"] + one["total_s"], 2)
        finally:
            regate_yard.close()
            plain_yard.close()

    names = list(cold["skills"])
    per_skill = {}
    for n in names:
        c, u, g = cold["skills"][n], unchanged["skills"].get(n, {}), regate["skills"].get(n, {})
        per_skill[n] = {
            "status": c["status"],
            "cold_s": c["s"],
            "built": c["built"],
            "unchanged_s": u.get("s"),
            "unchanged_status": u.get("status"),
            "regate_s": g.get("s"),
            "regate_built": g.get("built"),
            "unchanged_x_cold": ratio(u.get("s"), c["s"], 3),
            "regate_x_cold": ratio(g.get("s"), c["s"], 3),
            "regate_no_mutation_s": plain["skills"].get(n, {}).get("s"),
            "mutation_x_plain": ratio(g.get("s"), plain["skills"].get(n, {}).get("s"), 3),
            "reasons": c["reasons"],
        }
    unchanged_ratios = [
        v["unchanged_x_cold"] for v in per_skill.values() if v["unchanged_x_cold"] is not None
    ]
    rebuilt = sorted(n for n, v in per_skill.items() if v["regate_built"])
    if rebuilt:
        # The images were there after the cold phase: something else removed them meanwhile (e.g. a
        # concurrent test session's teardown). Those skills' re-gate times include a build.
        ledger.notes.append(
            f"gate: {len(rebuilt)} image(s) vanished between the cold and re-gate phases and were "
            f"rebuilt ({', '.join(rebuilt)}): another process removed them; the clean re-gate ratio "
            "leaves those skills out"
        )
    clean = [n for n, v in per_skill.items() if not v["regate_built"] and v["regate_s"] is not None]
    clean_cold = sum(per_skill[n]["cold_s"] for n in clean)
    clean_regate = sum(per_skill[n]["regate_s"] for n in clean)
    return {
        "skills": len(names),
        "images_removed_first": removed,
        "cold_total_s": cold["total_s"],
        "unchanged_total_s": unchanged["total_s"],
        "regate_total_s": regate["total_s"],
        "unchanged_x_cold": ratio(unchanged["total_s"], cold["total_s"], 3),
        "regate_x_cold": ratio(regate["total_s"], cold["total_s"], 3),
        "regate_no_mutation_total_s": plain["total_s"],
        "mutation_x_plain": ratio(regate["total_s"], plain["total_s"], 3),
        "unchanged_x_cold_worst_skill": max(unchanged_ratios) if unchanged_ratios else None,
        "cold_statuses": _count(v["status"] for v in per_skill.values()),
        "unchanged_statuses": _count(v["unchanged_status"] for v in per_skill.values()),
        "regate_rebuilt": rebuilt,
        "regate_x_cold_clean": ratio(clean_regate, clean_cold, 3) if clean else None,
        "regate_clean_skills": len(clean),
        "cold_mean_per_skill_s": r1(cold["total_s"] / max(1, len(names)), 2),
        "per_skill": per_skill,
    }


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[str(i)] = out.get(str(i), 0) + 1
    return out
