"""`resume=<run folder>`: continue a run in place, as it was last trained.

Of the run only its checkpoints/last.ckpt is read, which records the overrides it was trained
with (so they always describe the state it holds); nothing is written before the run trains."""

import os
from pathlib import Path

from seqlab.checkpoint import find_code, in_start_folder, read_checkpoint
from seqlab.errors import SeqlabError

# What a resumed run may not change: it is the same run (its best checkpoint follows one metric).
FIXED = ("experiment", "name", "hydra.run.dir", "seed", "model.monitor", "model.monitor_mode")
NOT_KEPT = ("resume", "ckpt_path", "hydra.sweep.dir", "hydra.sweep.subdir")


def key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resume_overrides(new: list[str], multirun: bool) -> list[str]:
    """With resume=<run>: the run's own overrides, then the command line's (e.g. a larger
    trainer.max_epochs), which win; `resume=` stays, so that the run keeps its folder and restarts
    from its last.ckpt."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = next((a for a in reversed(new) if a.startswith("resume=")), None)
    if given is None:
        return new
    if multirun:
        raise SeqlabError(
            "resume= continues one run and cannot be swept; drop -m (resume each sweep job's folder on "
            "its own: resume=outputs/<name>/multirun/<time>/<job>)"
        )
    value = OverridesParser.create().parse_overrides([given])[0].value()
    if not str(value or "").strip():  # (Path("") is the current folder)
        raise SeqlabError("resume= is empty; pass the run's folder, e.g. resume=outputs/<name>/runs/<time>")
    run = Path(value).expanduser()
    last = run / "checkpoints" / "last.ckpt"
    if run.is_file():
        holder = next((d for d in run.parents if (d / "checkpoints").is_dir()), None)
        raise SeqlabError(
            f"resume= takes a run folder, not a file in it; pass resume={holder}"
            if holder
            else f"resume= takes a run folder, not a file; to start a new run from it pass ckpt_path={run}"
        )
    if any(key(a) == "ckpt_path" for a in new):
        raise SeqlabError(
            "resume= continues a run from its own last.ckpt; drop ckpt_path=… (or drop resume= to start "
            "a new run from that checkpoint)"
        )
    best = sorted(run.glob("checkpoints/best-*.ckpt"))
    instead = (
        f"start a new run from its best one: seqlab-train <its settings> ckpt_path={best[-1]}"
        if best
        else ("nothing to resume: start it again")
    )
    if not last.is_file() and not (run / ".hydra").is_dir() and not best:
        if holder := next((d for d in run.parents if (d / "checkpoints" / "last.ckpt").is_file()), None):
            raise SeqlabError(f"resume={run} is inside a run folder; pass resume={holder}")
        jobs = sorted(p.parent.parent for p in run.glob("*/checkpoints/last.ckpt"))  # (a sweep's folder)
        raise SeqlabError(
            f"resume={run} is not a seqlab run folder (no checkpoints/last.ckpt, no .hydra/); pass "
            + (f"one of its jobs, e.g. resume={jobs[0]}" if jobs else "resume=outputs/<name>/runs/<time>")
        )
    if last.is_symlink() and not last.exists():
        raise SeqlabError(
            f"resume={run}: its checkpoints/last.ckpt is a link to {os.readlink(last)}, which is not there; "
            f"restore that file, or {instead}"
        )
    if not (run / "checkpoints").is_dir():
        raise SeqlabError(
            f"resume={run} kept no checkpoints (no checkpoints/ folder: it ran without a checkpoint callback, "
            f"e.g. callbacks=none, or stopped before its first); nothing to resume: start it again"
        )
    if not last.is_file():
        raise SeqlabError(
            f"resume={run} has no checkpoints/last.ckpt (it stopped before its first, or it was removed); {instead}"
        )
    try:
        ckpt = read_checkpoint(last)
        try:
            other = read_checkpoint(best[-1])["seqlab"]["task"] if best else ckpt["seqlab"]["task"]
        except SeqlabError:
            if best[-1].exists():
                raise
            other = ckpt["seqlab"]["task"]  # (a run still going replaced its best meanwhile: its lock says so later)
        if other != ckpt["seqlab"]["task"]:
            raise SeqlabError(
                f"it is a {ckpt['seqlab']['task']!r} checkpoint beside a best one of another task, "
                f"copied in from another run"
            )
    except SeqlabError as e:
        raise SeqlabError(
            f"resume={run}: its checkpoints/last.ckpt cannot be used ({str(e).split(';')[0]}); {instead}"
        ) from None
    find_code(ckpt["seqlab"])  # (a task of the user's, imported from the folder the run started in)
    if (record := ckpt.get("seqlab_run")) is None:
        raise SeqlabError(
            f"{last} was written before seqlab kept a run's overrides in it; start a new run from it: "
            f"seqlab-train experiment=<its experiment> ckpt_path={last}"
        )
    for o in (o for o in record["overrides"] if o.startswith("hydra.searchpath=") and key(o) not in map(key, new)):
        gone = [f for f in o.partition("=[")[2].rstrip("]").split(",") if not Path(f.removeprefix("file://")).is_dir()]
        if gone:  # (the run's own configs: its experiment file is there)
            raise SeqlabError(
                f"resume={run}: the run's config folder {gone[0].removeprefix('file://')} is gone; "
                f"restore it, or pass --config-dir <a folder with the same configs>"
            )
    before = {key(o): o for o in record["overrides"]}
    for a in (a for a in new if key(a) in FIXED and before.get(key(a)) != a):
        was = before.get(key(a), f"{key(a)} as composed then")
        raise SeqlabError(f"resume= continues a run as it was started ({was}); drop {a}, or start a new run")
    changed = {key(a) for a in new} | set(NOT_KEPT)
    return [replayed(o, record.get("start")) for o in record["overrides"] if key(o) not in changed] + new


def replayed(override: str, start: str | None) -> str:
    """A recorded `data.path=corpus.txt`, replayed from another folder: the file where the run started."""
    from seqlab.run.explain import quote

    name, _, value = override.partition("=")
    if "." not in name or name.lstrip("+").startswith("hydra.") or name.startswith("~"):  # (groups, Hydra's keys)
        return override
    moved = in_start_folder(name, value, start)
    plain = all(c.isalnum() or c in "/._-+" for c in moved)  # (else quoted, as Hydra reads any symbol)
    return override if moved == value else f"{name}={moved if plain else quote(moved)}"
