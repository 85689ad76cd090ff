"""`resume=<run dir>`: continue a run in place, as it was started."""

from pathlib import Path

import yaml

from seqlab.errors import SeqlabError

# What a resumed run may not change: it is the same run.
FIXED = ("experiment", "name", "hydra.run.dir")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resume_args(args: list[str]) -> list[str]:
    """The run's own overrides (from .hydra/overrides.yaml), then the new command line's (e.g. a
    larger trainer.max_epochs), the same run folder (so TensorBoard keeps writing the same run)
    and its last.ckpt."""
    given = [a for a in args if a.startswith("resume=")]
    if not given:
        return args
    run_dir = Path(given[-1].split("=", 1)[1]).expanduser()
    overrides_file, last = run_dir / ".hydra" / "overrides.yaml", run_dir / "checkpoints" / "last.ckpt"
    if not overrides_file.is_file():
        raise SeqlabError(f"resume={run_dir} is not a seqlab run folder (no .hydra/overrides.yaml); "
                          f"pass resume=outputs/<name>/runs/<time>")
    if not last.is_file():
        raise SeqlabError(f"{run_dir} has no checkpoints/last.ckpt to resume from; start it again, "
                          f"or pass ckpt_path=<a .ckpt file>")
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
    return [*old, *new, f"ckpt_path={last}", f"hydra.run.dir={run_dir.resolve()}"]
