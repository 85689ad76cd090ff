"""Opening a checkpoint for eval/generate/chat: it names its task and carries everything else."""

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from seqlab.errors import SeqlabError
from seqlab.tasks import task_classes


def read_checkpoint(path: str | None) -> dict:
    if not path:
        raise SeqlabError("no checkpoint given; pass ckpt_path=<path to a .ckpt file> (runs keep them in outputs/*/runs/*/checkpoints)")
    p = Path(path).expanduser()
    if not p.is_file():
        raise SeqlabError(f"checkpoint not found: {p}; pass ckpt_path=<path to a .ckpt file>")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as e:
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise SeqlabError(f"cannot read checkpoint {p} (corrupt or truncated: {reason}); use another .ckpt, e.g. last.ckpt") from None
    if not isinstance(ckpt, dict) or "seqlab_task" not in ckpt:
        raise SeqlabError(f"{p} is not a seqlab checkpoint (no task recorded in it); pass a .ckpt written by seqlab.train")
    return ckpt


def load_module(path: str, expect_task: str | None = None, map_location="cpu"):
    """The LightningModule saved in `path` (vocabulary and hyperparameters included), in eval mode."""
    ckpt = read_checkpoint(path)
    task = ckpt["seqlab_task"]
    if expect_task is not None and task != expect_task:
        raise SeqlabError(f"{path} is a {task!r} checkpoint, but this command needs a {expect_task!r} one; pass a {expect_task} checkpoint")
    module_cls, _ = task_classes(task)
    module = module_cls.load_from_checkpoint(path, map_location=map_location, weights_only=True)
    module.eval()
    return module, ckpt


def load_datamodule(ckpt: dict, overrides: dict | None = None):
    """The task's data module with the hyperparameters it was trained with (plus `overrides`)."""
    _, data_cls = task_classes(ckpt["seqlab_task"])
    kwargs = dict(ckpt.get("datamodule_hyper_parameters", {}))
    kwargs.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return data_cls(**kwargs)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, flushes it to disk and
    renames it over the target: a kill mid-save leaves the previous checkpoint intact, never a
    half-written one. (Lightning's own transaction stages the file in the system temp folder,
    which is a non-atomic copy when that is another filesystem.)"""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
