"""Run folders: each run gets a folder of its own, and a run that fails before it has written a
checkpoint leaves nothing behind."""

import errno
import hashlib
import itertools
import os
import re
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from seqlab.errors import SeqlabError

made: list[Path] = []  # the folders this process made (a failed start removes those without a checkpoint)
given: list[Path] = []  # empty folders the user gave as hydra.run.dir: a failed run empties them, not removes


def unique_dir(path: str) -> str:
    """Make `path` now, exclusively; if it exists (another run started in the same second),
    make `path_1`, `path_2`, … instead. Returns the folder made."""
    base = Path(path)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        for n in itertools.count():
            candidate = base if n == 0 else base.with_name(f"{base.name}_{n}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            made.append(candidate)
            return str(candidate)
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise SeqlabError(f"the run folder's path is too long for the file system ({len(path)} characters); "
                              f"pass a shorter name= (or paths.root_dir=)") from None
        shown = path if len(path) <= 120 else path[:60] + "…" + path[-40:]
        where = "SEQLAB_ROOT=<a writable folder>" if os.environ.get("SEQLAB_ROOT") else "paths.root_dir=<a writable folder>"
        raise SeqlabError(f"cannot create the run folder {shown} ({e.strerror or e}); set {where}") from None
    raise AssertionError("unreachable")


def job_name(override_dirname: str, limit: int = 100) -> str:
    """A sweep job's folder name from its overrides: floats shortened to 4 significant digits
    (an Optuna draw like 0.23560757511413075 reads 0.2356), and a long list cut with a hash of
    the whole, so a folder name never passes the file system's 255-byte limit."""
    name = re.sub(r"(?<==)[-+]?\d*\.\d+(?:e[-+]?\d+)?(?=,|$)", lambda m: f"{float(m.group()):.4g}", override_dirname)
    name = name.replace("/", "-")  # a config group choice (model/optimizer=sgd) is not a subfolder
    if len(name) > limit:
        name = name[:limit].rstrip(",") + "~" + hashlib.sha1(override_dirname.encode()).hexdigest()[:8]
    return name


def sweep_direction(monitor_mode: str) -> str:
    return "maximize" if monitor_mode == "max" else "minimize"


OmegaConf.register_new_resolver("seqlab.unique_dir", unique_dir, use_cache=True, replace=True)
OmegaConf.register_new_resolver("seqlab.job_name", job_name, replace=True)
OmegaConf.register_new_resolver("seqlab.direction", sweep_direction, replace=True)


def clean_failed_run(output_dir: str | None, outputs_dir: str | None, launch_dir: str | None = None) -> None:
    """Remove a run folder of train's own making that holds no checkpoint, and the folders made
    for it alone (outputs/<name>/runs/), up to outputs/. `launch_dir`: the folder the command
    started in (Hydra's runtime.cwd; hydra.job.chdir=true moves into the run folder)."""
    if not output_dir:
        return
    out, cwd = Path(output_dir).resolve(), Path(launch_dir or Path.cwd()).resolve()
    # eval, generate and chat run in the current folder, which is the user's, never ours to delete
    if out == cwd or out in cwd.parents or not (out / ".hydra").is_dir() or any(out.rglob("*.ckpt")):
        return
    if out in [p.resolve() for p in given]:
        for p in out.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        return
    shutil.rmtree(out, ignore_errors=True)
    _remove_empty_parents(out, Path(outputs_dir).resolve() if outputs_dir else None)


def _remove_empty_parents(folder: Path, top: Path | None) -> None:
    """The folders made for `folder` alone, up to and including `top` (outputs/), if empty."""
    for parent in folder.parents:
        if top is None or (parent != top and top not in parent.parents) or any(parent.iterdir()):
            break
        parent.rmdir()
        if parent == top:
            break


def clean_made(study: Path | None = None, sweep_dir: Path | None = None) -> bool:
    """After a failed or interrupted start: remove the folders this process made (a run or sweep
    folder, or the parents made for a hand-given one) that hold no checkpoint, with the folders
    made for them alone; and the Optuna `study` file it created if `sweep_dir` is gone. Never
    a folder the user gave. True if nothing it made is kept."""
    kept = False
    for folder in map(Path.resolve, made):
        if folder.is_dir() and not any(folder.rglob("*.ckpt")):
            shutil.rmtree(folder, ignore_errors=True)
            _remove_empty_parents(folder, Path.cwd().resolve() / "outputs")
        kept |= folder.is_dir()
    if study is not None and not (sweep_dir is not None and Path(sweep_dir).exists()):
        study.unlink(missing_ok=True)
    return not kept


LOCK = Path(".hydra") / "seqlab.lock"  # held (flock) while a run trains; the kernel drops it when the process ends
_held: dict[Path, int] = {}


def hold(run_dir: Path) -> None:
    """Mark a run folder as in use by this process until `release` or the process ends (even by
    kill -9): a second run or a resume= of it meanwhile is refused instead of sharing it."""
    import fcntl

    path = (Path(run_dir) / LOCK).resolve()
    if path in _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SeqlabError(f"{run_dir} is in use by a seqlab-train that is still running; wait for it to end (or stop "
                          f"it), or pass a new folder") from None
    _held[path] = fd


def in_use(run_dir: Path) -> bool:
    """Another process holds the run folder."""
    import fcntl

    path = Path(run_dir) / LOCK
    if not path.is_file() or path.resolve() in _held:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def release(run_dir: Path) -> None:
    path = (Path(run_dir) / LOCK).resolve()
    fd = _held.pop(path, None)
    if fd is not None:
        path.unlink(missing_ok=True)
        os.close(fd)


def requeued() -> bool:
    """A SLURM job started again after a requeue: it comes back to its own run folder."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) >= 1


def check_given(path: str) -> None:
    """A run folder given by hand (hydra.run.dir) is new or empty: a run never writes into another
    run's folder, or into a folder of the user's files."""
    if "${" in path or requeued():
        return
    if not path:
        raise SeqlabError("hydra.run.dir is empty; pass a new folder (e.g. hydra.run.dir=outputs/my_run), or leave it "
                          "out for outputs/<name>/runs/<time>")
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise SeqlabError(f"hydra.run.dir={path} is a file, not a folder; pass a new folder (e.g. "
                          f"hydra.run.dir={folder.parent / 'run'})")
    if folder.is_dir() and any(folder.iterdir()):
        if in_use(folder):
            raise SeqlabError(f"hydra.run.dir={path} is in use by a run that is still going; pass a new folder")
        if (folder / ".hydra").is_dir():
            raise SeqlabError(f"hydra.run.dir={path} already holds a run; continue it with resume={path}, or pass "
                              f"a new folder")
        raise SeqlabError(f"hydra.run.dir={path} is a folder with files in it; a run needs a new or empty folder "
                          f"(e.g. hydra.run.dir={path.rstrip('/')}/run)")


def claim(path: str) -> None:
    """Take a checked hand-given run folder: two runs started at once both find it empty, and
    the one that makes its `.hydra/` first (an atomic mkdir) has it; its lock keeps it until the
    run ends."""
    if requeued():
        return
    folder = Path(path).expanduser().absolute()
    top_new = next((p for p in [*reversed(folder.parents), folder] if not p.exists()), None)  # mkdir's first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".hydra").mkdir()
    except FileExistsError:
        raise SeqlabError(f"hydra.run.dir={path} already holds a run (started just now); pass a new folder") from None
    except OSError as e:
        raise SeqlabError(f"cannot create the run folder {path} ({e.strerror or e}); pass a writable hydra.run.dir") from None
    made.append(top_new or folder / ".hydra")  # removed again if the run fails to start
    if top_new is None:
        given.append(folder)
    hold(folder)
