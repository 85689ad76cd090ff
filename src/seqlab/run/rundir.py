"""Run folders: each run has one of its own, locked while the run is going. A command removes only
what it made itself, and only when it fails before its first checkpoint: each folder registers
that clean-up on the command's ExitStack as it is made."""

import fcntl
import os
import shutil
from contextlib import ExitStack
from pathlib import Path

from seqlab.errors import SeqlabError


def make_folder(stack: ExitStack, path: Path, setting: str, suffix: bool = True) -> Path:
    """Make the new folder `path` and the parents it lacks, and lock it. With `suffix`, a folder of
    that name made meanwhile (another run started in the same second) gives `path_1`, `path_2`, …
    instead. If the command then fails with no checkpoint written, the folders made here go again."""
    path = Path(path).absolute()
    made = [p for p in (*reversed(path.parents), path) if not p.exists()]  # outermost first
    below = made[0].parent if made else path
    if not below.is_dir():
        raise SeqlabError(f"cannot create the run folder {path}: {below} is a file (Not a directory); set {setting}="
                          f"<a writable folder>", setting)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for n in range(10_000 if suffix else 1):
            candidate = path if n == 0 else path.with_name(f"{path.name}_{n}")
            try:
                candidate.mkdir()
                break
            except FileExistsError:
                if not suffix:
                    raise SeqlabError(f"{setting}={path} was taken by another run just now; pass a new folder",
                                      setting) from None
    except OSError as e:
        raise SeqlabError(f"cannot create the run folder {path} ({e.strerror or e}); set {setting}=<a writable "
                          f"folder>", setting) from None
    made = [p for p in made if p != path] + [candidate]
    lock(stack, candidate, f"{setting}={candidate} is in use by another run; pass a new folder")
    stack.push(lambda kind, error, tb: remove_failed(made, kind is not None))  # (runs before the unlock)
    return candidate


def remove_failed(made: list[Path], failed: bool) -> None:
    """After a failed command: the folders it made, innermost first, if no checkpoint is in them."""
    if failed and not any(made[-1].rglob("*.ckpt")):
        shutil.rmtree(made[-1], ignore_errors=True)
        for parent in reversed(made[:-1]):
            try:
                parent.rmdir()  # (only if empty: another run may have started in it meanwhile)
            except OSError:
                break


def empty_on_failure(stack: ExitStack, folder: Path) -> None:
    """An empty folder the user gave: what the run wrote in it goes again if it fails before its
    first checkpoint; the folder itself stays."""

    def undo(kind, error, tb):
        if kind is not None and not any(folder.rglob("*.ckpt")):
            for p in folder.iterdir():
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    stack.push(undo)


def lock(stack: ExitStack, folder: Path, refusal: str) -> None:
    """Hold `folder` for this command until the stack closes or the process ends (the kernel drops
    the lock even on kill -9): another run or resume of it meanwhile gets `refusal`."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SeqlabError(refusal) from None
    stack.callback(os.close, fd)


def holds_run(folder: Path) -> bool:
    return (folder / ".hydra").is_dir() or (folder / "checkpoints").is_dir()


def requeued() -> bool:
    """A SLURM job started again after a requeue: it comes back to its own run folder."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) >= 1


def claim_given(stack: ExitStack, path: str, setting: str = "hydra.run.dir") -> Path:
    """A run folder given by hand: new (made now) or empty, never another run's or the user's files."""
    if not path.strip():
        raise SeqlabError(f"{setting} is empty; pass a new folder (e.g. {setting}=outputs/my_run), or leave it out",
                          setting)
    folder = Path(path).expanduser().absolute()
    if not folder.exists():
        return make_folder(stack, folder, setting, suffix=False)
    if not folder.is_dir():
        raise SeqlabError(f"{setting}={path} is a file, not a folder; pass a new folder (e.g. "
                          f"{setting}={folder.parent / 'run'})", setting)
    lock(stack, folder, f"{setting}={path} is in use by a run that is still going; pass a new folder")
    if holds_run(folder):
        raise SeqlabError(f"{setting}={path} already holds a run; continue it with resume={path}, or pass a new folder",
                          setting)
    if any(folder.iterdir()):
        raise SeqlabError(f"{setting}={path} is a folder with files in it; a run needs a new or empty folder (e.g. "
                          f"{setting}={path.rstrip('/')}/run)", setting)
    empty_on_failure(stack, folder)
    return folder
