"""Opening a checkpoint for eval/generate/chat: it names its task and carries everything else."""

import pickle
import zipfile
from pathlib import Path

import torch

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
