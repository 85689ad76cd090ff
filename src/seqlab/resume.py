"""`resume=<run dir>`: continue a run in place, as it was started."""

import os
import shutil
from pathlib import Path

import yaml

from seqlab.errors import SeqlabError

# What a resumed run may not change: it is the same run.
FIXED = ("experiment", "name", "hydra.run.dir")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


BACKUP = ".hydra.before-resume"
_pending: Path | None = None  # the run being resumed, until it ends one way or the other
_events: set[Path] = set()    # its TensorBoard event files before this attempt


def resume_args(args: list[str]) -> list[str]:
    """The run's own overrides (from .hydra/overrides.yaml), then the new command line's (e.g. a
    larger trainer.max_epochs), the same run folder (so TensorBoard keeps writing the same run)
    and its last.ckpt. The run's .hydra/ is kept aside until the resumed run has started: a
    refused resume (a bad value, a network that does not fit) leaves the run as it was."""
    global _pending
    given = [a for a in args if a.startswith("resume=")]
    if not given:
        return args
    run_dir = Path(given[-1].split("=", 1)[1]).expanduser()
    if run_dir.is_file():
        run = next((d for d in run_dir.parents if (d / ".hydra").is_dir()), None)
        if run is not None:
            raise SeqlabError(f"resume= takes a run folder, not a file in it; pass resume={run}")
        raise SeqlabError(f"resume= takes a run folder (outputs/<name>/runs/<time>), not a file; "
                          f"to start a new run from {run_dir.name} pass ckpt_path={run_dir}")
    if any(_key(a) == "ckpt_path" for a in args):
        raise SeqlabError("resume= continues a run from its own last.ckpt; drop ckpt_path=… "
                          "(or drop resume= to start a new run from that checkpoint)")
    overrides_file, last = run_dir / ".hydra" / "overrides.yaml", run_dir / "checkpoints" / "last.ckpt"
    if not overrides_file.is_file():
        if last.is_file():  # the checkpoint is there, the run's settings are not
            raise SeqlabError(f"resume={run_dir} has checkpoints/last.ckpt but not the run's settings (.hydra/); "
                              f"start a new run from it: seqlab-train experiment=<its experiment> ckpt_path={last}")
        raise SeqlabError(f"resume={run_dir} is not a seqlab run folder (no .hydra/overrides.yaml); "
                          f"pass resume=outputs/<name>/runs/<time>")
    if not last.is_file():
        raise SeqlabError(f"{run_dir} has no checkpoints/last.ckpt to resume from; start it again, "
                          f"or pass ckpt_path=<a .ckpt file>")
    from seqlab.rundir import in_use

    if in_use(run_dir):
        raise SeqlabError(f"resume={run_dir}: that run is still going (another seqlab-train is writing it); wait "
                          f"for it to end, or stop it first (its Ctrl-C line names this same resume=)")
    old = [o for o in yaml.safe_load(overrides_file.read_text()) or []
           if _key(o) not in ("ckpt_path", "resume", "hydra.run.dir")]
    new = [a for a in args if not a.startswith("resume=")]
    before = {_key(o): o for o in old}
    for a in new:
        if _key(a) in FIXED and before.get(_key(a)) != a:
            was = before.get(_key(a), f"{_key(a)} as composed then")
            raise SeqlabError(f"resume= continues a run as it was started ({was}); drop {a}, "
                              f"or start a new run without resume=")
    old = [o for o in old if _key(o) not in {_key(a) for a in new}]  # the new command line wins
    backup = run_dir / BACKUP
    if backup.is_dir():  # an earlier attempt ended without saying how: its backup is the good one
        restore(run_dir)
    shutil.copytree(run_dir / ".hydra", backup)
    _pending = run_dir.resolve()
    _events.clear()
    _events.update((_pending / "tensorboard").glob("events.out.tfevents.*"))
    return [*old, *new, f"ckpt_path={_quoted(str(last.resolve()))}", f"hydra.run.dir={_quoted(str(run_dir.resolve()))}"]


def _quoted(value: str) -> str:
    """A value as a Hydra override: a sweep job's folder name holds '=' and ',', which Hydra
    would otherwise read as syntax."""
    if not any(c in value for c in "=,[]{}()'\" :~*?<>|\\ "):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def restore(run_dir: Path | None = None) -> None:
    """Undo a refused resume: the run's own .hydra/ back, and no event file of this process."""
    global _pending
    run_dir = run_dir or _pending
    _pending = None
    if run_dir is None or not (run_dir / BACKUP).is_dir():
        return
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    os.replace(run_dir / BACKUP, run_dir / ".hydra")
    for events in set((run_dir / "tensorboard").glob("events.out.tfevents.*")) - _events:
        events.unlink()


def started() -> None:
    """The resumed run got going: its new .hydra/ stands."""
    global _pending
    if _pending is not None:
        shutil.rmtree(_pending / BACKUP, ignore_errors=True)
    _pending = None
