"""`resume=<run folder>`: continue a run in place, as it was last trained.

Nothing of the run is read but its files, and nothing is written until the resumed run trains:
the overrides it continues with are those recorded in its `checkpoints/last.ckpt` (so they always
describe that state), else, for a run written before that record, its `.hydra/overrides.yaml`.
"""

from pathlib import Path

import torch
import yaml

from seqlab.errors import SeqlabError

FIXED = ("experiment", "name", "hydra.run.dir")  # what a resumed run may not change: it is the same run
NOT_KEPT = ("resume", "ckpt_path", "hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")


def key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resume_overrides(given: str, new: list[str]) -> list[str]:
    """The run's own overrides, then the new command line's (e.g. a larger trainer.max_epochs),
    which win; `resume=` stays, so that the run keeps its folder and restarts from its last.ckpt."""
    run = Path(given).expanduser()
    if run.is_file():
        holder = next((d for d in run.parents if (d / "checkpoints").is_dir()), None)
        if holder is not None:
            raise SeqlabError(f"resume= takes a run folder, not a file in it; pass resume={holder}", "resume")
        raise SeqlabError(f"resume= takes a run folder (outputs/<name>/runs/<time>), not a file; to start a new run "
                          f"from {run.name} pass ckpt_path={run}", "resume")
    if any(key(a) == "ckpt_path" for a in new):
        raise SeqlabError("resume= continues a run from its own last.ckpt; drop ckpt_path=… (or drop resume= to start "
                          "a new run from that checkpoint)", "ckpt_path")
    last = run / "checkpoints" / "last.ckpt"
    if not last.is_file():
        if (run / ".hydra").is_dir():
            raise SeqlabError(f"{run} has no checkpoints/last.ckpt to resume from (it stopped before its first "
                              f"checkpoint); start it again", "resume")
        raise SeqlabError(f"resume={run} is not a seqlab run folder (no checkpoints/last.ckpt); pass "
                          f"resume=outputs/<name>/runs/<time>", "resume")
    old = recorded_overrides(run, last)
    before = {key(o): o for o in old}
    for a in new:
        if key(a) in FIXED and before.get(key(a)) != a:
            was = before.get(key(a), f"{key(a)} as composed then")
            raise SeqlabError(f"resume= continues a run as it was started ({was}); drop {a}, or start a new run "
                              f"without resume=", key(a))
    changed = {key(a) for a in new}
    return [o for o in old if key(o) not in changed | set(NOT_KEPT)] + new


def recorded_overrides(run: Path, last: Path) -> list[str]:
    try:
        record = torch.load(last, map_location="cpu", weights_only=True, mmap=True).get("seqlab_run")
    except Exception:  # damaged: the line that names it comes when the run reads it
        record = None
    if record is not None:
        return list(record["overrides"])
    overrides, hydra = run / ".hydra" / "overrides.yaml", run / ".hydra" / "hydra.yaml"
    if not overrides.is_file():
        raise SeqlabError(f"resume={run} has checkpoints/last.ckpt but not the run's settings (.hydra/); start a new "
                          f"run from it: seqlab-train experiment=<its experiment> ckpt_path={last}", "resume")
    try:
        old = yaml.safe_load(overrides.read_text()) or []
        settings = (yaml.safe_load(hydra.read_text()) or {}).get("hydra", {}) if hydra.is_file() else {}
    except yaml.YAMLError as e:
        raise SeqlabError(f"{overrides.parent} is damaged ({e.problem or 'not YAML'}); start a new run from the "
                          f"checkpoint: seqlab-train experiment=<its experiment> ckpt_path={last}", "resume") from None
    if not isinstance(old, list) or not all(isinstance(o, str) for o in old):
        raise SeqlabError(f"{overrides} is not a list of overrides (edited?); restore it, or start a new run from "
                          f"the checkpoint: seqlab-train experiment=<its experiment> ckpt_path={last}", "resume")
    return old + [o for o in (settings.get("overrides") or {}).get("hydra", []) if key(o) == "hydra.searchpath"]
