"""`resume=<run folder>`: continue a run in place, as it was last trained.

Of the run only its checkpoints/last.ckpt is read, which records the overrides it was trained
with (so they always describe the state it holds); nothing is written before the run trains."""

from pathlib import Path

from seqlab.checkpoint import read_checkpoint
from seqlab.errors import SeqlabError

FIXED = ("experiment", "name", "hydra.run.dir")  # what a resumed run may not change: it is the same run
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
    run = Path(OverridesParser.create().parse_overrides([given])[0].value()).expanduser()
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
    if not last.is_file():
        raise SeqlabError(
            f"resume={run} is not a seqlab run folder with a checkpoint (no checkpoints/last.ckpt: a run "
            f"stopped before its first one starts again); pass resume=outputs/<name>/runs/<time>"
        )
    record = read_checkpoint(last).get("seqlab_run")  # (a damaged file is named here)
    if record is None:
        raise SeqlabError(
            f"{last} was written before seqlab kept a run's overrides in it; start a new run from it: "
            f"seqlab-train experiment=<its experiment> ckpt_path={last}"
        )
    before = {key(o): o for o in record["overrides"]}
    for a in (a for a in new if key(a) in FIXED and before.get(key(a)) != a):
        was = before.get(key(a), f"{key(a)} as composed then")
        raise SeqlabError(f"resume= continues a run as it was started ({was}); drop {a}, or start a new run")
    changed = {key(a) for a in new} | set(NOT_KEPT)
    return [o for o in record["overrides"] if key(o) not in changed] + new
