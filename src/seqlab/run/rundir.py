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
    """Make the new folder `path` (and the parents it lacks) and lock it. With `suffix`, a folder of
    that name made meanwhile (a run started in the same second) gives `path_1`, `path_2`, … instead."""
    path = Path(path).absolute()
    made = [p for p in (*reversed(path.parents), path) if not p.exists()]  # outermost first
    if link := next((p for p in made if p.is_symlink()), None):
        raise SeqlabError(
            f"cannot create the run folder {path}: {link} is a link to {os.readlink(link)}, which is not there; "
            f"make that folder, or set {setting}=<a writable folder>"
        )
    if not (made[0].parent if made else path).is_dir():
        raise SeqlabError(
            f"cannot create the run folder {path}: {made[0].parent if made else path} is a file (Not a "
            f"directory); set {setting}=<a writable folder>"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for n in range(10_000 if suffix else 1):
            folder = path.with_name(f"{path.name}_{n}" if n else path.name)
            try:
                folder.mkdir()
                break
            except FileExistsError:
                if not suffix:
                    raise SeqlabError(
                        f"{setting}={path} was taken by another run just now; pass a new folder"
                    ) from None
    except OSError as e:
        raise SeqlabError(
            f"cannot create the run folder {path} ({e.strerror}); set {setting}=<a writable folder>"
        ) from None
    made = [p for p in made if p != path] + [folder]
    lock(stack, folder, f"{setting}={folder} is in use by another run; pass a new folder")

    def undo(kind, error, tb):  # (runs before the unlock)
        if kind is not None and not kept(folder):
            shutil.rmtree(folder, ignore_errors=True)
            for parent in reversed(made[:-1]):  # only if empty: another run may have started in it meanwhile
                if any(parent.iterdir()):
                    break
                parent.rmdir()

    stack.push(undo)
    return folder


def lock(stack: ExitStack, folder: Path, refusal: str) -> None:
    """Hold `folder` until the stack closes or the process ends (the kernel drops the lock even on
    kill -9): another run or resume of it meanwhile gets `refusal`."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SeqlabError(refusal) from None
    stack.callback(os.close, fd)


def kept(folder: Path) -> bool:
    """Whether a run or sweep folder holds a checkpoint: a failed command removes a folder it made
    only when it kept none."""
    return any(folder.rglob("*.ckpt"))


def holds_run(folder: Path) -> bool:
    return (folder / ".hydra").is_dir() or (folder / "checkpoints").is_dir()


def requeued() -> bool:
    """A SLURM job started again after a requeue: it comes back to its own run folder."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) >= 1


def claim_given(stack: ExitStack, path: str, setting: str = "hydra.run.dir") -> Path:
    """A run folder given by hand: new (made now) or empty, never another run's or the user's files.
    An empty one keeps the folder itself if the run fails, but not what the run wrote in it."""
    folder = Path(path).expanduser().absolute()
    if not path.strip():
        raise SeqlabError(f"{setting} is empty; pass a new folder (e.g. {setting}=outputs/my_run), or leave it out")
    if not folder.exists():
        return make_folder(stack, folder, setting, suffix=False)
    if not folder.is_dir():
        raise SeqlabError(f"{setting}={path} is a file, not a folder; pass a new folder (e.g. {folder.parent / 'run'})")
    kind = setting.split(".")[1]  # run or sweep (hydra.run.dir, hydra.sweep.dir)
    lock(stack, folder, f"{setting}={path} is in use by a {kind} that is still going; pass a new folder")
    if run := next((p for p in folder.parents if holds_run(p)), None):
        raise SeqlabError(f"{setting}={path} is inside the run {run}; pass a folder outside it")
    if holds_run(folder):
        again = f"continue it with resume={path}, or " if (folder / "checkpoints").is_dir() else ""  # (fast_dev_run)
        raise SeqlabError(f"{setting}={path} already holds a run; {again}pass a new folder")
    if any(folder.iterdir()):
        raise SeqlabError(
            f"{setting}={path} is a folder with files in it; a {kind} needs a new or empty "
            f"folder (e.g. {setting}={path.rstrip('/')}/{kind})"
        )

    def undo(kind, error, tb):
        if kind is not None and not kept(folder):
            for p in folder.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()

    stack.push(undo)
    return folder
