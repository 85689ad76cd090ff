"""Checkpoints: opening one for eval/generate/chat (it names its classes and carries
everything else), checking one against a run before training from it, and writing them
atomically."""

import importlib
import inspect
import os
import pickle
import re
import shlex
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from seqlab.errors import SeqlabError

# Hyperparameters that do not shape the network: a checkpoint may differ from the run in them.
NOT_ARCHITECTURE = ("optimizer", "scheduler", "monitor", "monitor_mode")


def local(path: str) -> None:
    """A checkpoint's path, not a URL (https://, s3://: a path would read it as folders)."""
    if re.match(r"[a-z][\w+.-]*://", str(path)):
        raise SeqlabError(f"ckpt_path={path} is a URL, and seqlab reads local files; download it, then pass its path")


def read_checkpoint(path: str | None) -> dict:
    if not path:
        raise SeqlabError(
            "no checkpoint given; pass ckpt_path=<a .ckpt file> (runs keep them in outputs/*/runs/*/checkpoints)"
        )
    local(path)
    p = Path(path).expanduser()
    if p.is_dir():
        found = sorted(p.rglob("*.ckpt"), key=lambda c: (c.name != "last.ckpt", len(c.parts)))
        example = (
            f"pass a .ckpt file in it, e.g. {shlex.quote(f'ckpt_path={found[0]}')}"
            if found
            else ("it holds no .ckpt file (a run keeps them in checkpoints/); pass a checkpoint's path")
        )
        raise SeqlabError(f"ckpt_path={p} is a folder; {example}")
    if p.exists() and not p.is_file():  # (a pipe or a device: reading one might never end)
        raise SeqlabError(f"ckpt_path={p} is not a regular file (a pipe or a device); pass a .ckpt file")
    if not p.is_file():
        gone = " (a link that leads nowhere)" if p.is_symlink() else ""
        gone = (
            f" (<{str(p).partition('<')[2].partition('>')[0]}> is a placeholder: put a run's folder name there)"
            if re.search(r"<\w+>", str(p))
            else gone
        )
        if glob := sorted(p.parent.glob(p.name)) if any(c in p.name for c in "*?[") else []:
            gone = f" (a pattern, which the shell did not expand: it matches {', '.join(f.name for f in glob)})"
        raise SeqlabError(f"checkpoint not found: {p}{gone}; pass ckpt_path=<path to a .ckpt file>")
    with p.open("rb") as f:
        head = f.read(2)
    if head[:1] == b"\x80":  # (seqlab-train writes torch's zip format, never a bare pickle)
        raise SeqlabError(f"{p} is a Python pickle, not a checkpoint of seqlab-train's; pass a .ckpt it wrote")
    if head[:2] != b"PK":
        raise SeqlabError(f"{p} is not a PyTorch checkpoint file; pass a .ckpt written by seqlab-train")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's refusal of objects a weights-only file never holds
        raise SeqlabError(
            f"{p} is a torch file but not a seqlab checkpoint (it holds Python objects a checkpoint "
            f"never has); pass a .ckpt written by seqlab-train"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        other = "a best-*.ckpt beside it" if p.name == "last.ckpt" else "e.g. last.ckpt"
        raise SeqlabError(
            f"cannot read checkpoint {p} (corrupt or truncated: {type(e).__name__}); use another .ckpt, {other}"
        ) from None
    if not isinstance(ckpt, dict) or "seqlab" not in ckpt:
        raise SeqlabError(f"{p} is not a seqlab checkpoint (it records no task); pass a .ckpt written by seqlab-train")
    return ckpt


def task_classes(ckpt: dict, path) -> tuple[type, type | None]:
    """The LightningModule and LightningDataModule classes a checkpoint was written by."""
    from seqlab.datamodule import TaskData
    from seqlab.module import Task

    names = ckpt["seqlab"]
    find_code(names)
    module_cls = import_class(names["module"], path)
    data_cls = import_class(names["datamodule"], path) if names.get("datamodule") else None
    if not issubclass(module_cls, Task) or (data_cls and not issubclass(data_cls, TaskData)):
        raise SeqlabError(
            f"{path} names classes that are not seqlab task classes; pass a .ckpt written by seqlab-train"
        )
    return module_cls, data_cls


def import_class(name: str, path) -> type:
    """A class a checkpoint names. An error raised inside its module is the module's bug and
    keeps its traceback; a module that is not there is one line."""
    module_name, _, cls = str(name).rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), cls, None)
    except ModuleNotFoundError as e:
        if e.name is None or not (module_name + ".").startswith(e.name + "."):
            raise
        top = sys.modules.get(module_name.partition(".")[0])
        if top is not None and not hasattr(top, "__path__"):  # (./sorted.py found before the task's sorted/)
            raise SeqlabError(
                f"{path} was written by {name}, but {getattr(top, '__file__', top.__name__)} has the name of its "
                f"package and is found first; run from another folder, or rename that file"
            ) from None
        raise SeqlabError(
            f"{path} was written by {name}, which cannot be imported here (no module {e.name!r} on the "
            f"Python path); run from the folder that holds it, or add that folder to PYTHONPATH"
        ) from None
    if not isinstance(found, type):
        raise SeqlabError(f"{path} was written by {name}, but module {module_name} has no class {cls} now")
    return found


def code_folder(cls: type) -> str | None:
    """The folder on the Python path that `cls` was imported from (a task of the user's: the
    folder they ran in), so that its checkpoints and its run load from anywhere."""
    file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if file is None:
        return None
    depth = cls.__module__.count(".") + (Path(file).name == "__init__.py")
    return str(Path(file).resolve().parents[depth])


def find_code(record: dict) -> None:
    """Put the folder a checkpoint's classes were imported from on the Python path (last: an
    installed package of the same name wins)."""
    folder = record.get("code")
    if folder and folder not in sys.path and Path(folder).is_dir():
        sys.path.append(folder)


def pick_device(device: str) -> torch.device:
    """`auto`: a CUDA GPU if there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise SeqlabError(f"device={device!r} is not one of auto, cpu, cuda; pass e.g. device=cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SeqlabError(f"device={device} but this machine has no usable CUDA GPU; pass device=cpu (or device=auto)")
    return torch.device(device)


def load_module(path: str, device: str = "cpu"):
    """The module saved in `path` (vocabulary and hyperparameters included), in eval mode on
    `device`, wherever it was trained."""
    ckpt = read_checkpoint(path)
    task = ckpt["seqlab"]["task"]
    module_cls, _ = task_classes(ckpt, path)
    if getattr(module_cls, "task", None) != task:
        raise SeqlabError(
            f"{path} says it is a {task!r} checkpoint but names {module_cls.__name__} (the "
            f"{module_cls.task!r} task): it was edited or damaged; pass a .ckpt written by seqlab-train"
        )
    saved, takes = ckpt.get("hyper_parameters", {}), inspect.signature(module_cls).parameters.values()
    if new := next((p.name for p in takes if p.default is p.empty and p.kind in (1, 3) and p.name not in saved), None):
        raise SeqlabError(  # (the code changed since it was trained, not the file)
            f"{path} was saved before {module_cls.__name__}.__init__ took {new}, so it has no value for it; give {new} "
            f"a default in the code, or use the code it was trained with"
        )
    try:
        module = module_cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except (RuntimeError, TypeError, KeyError):  # weights that do not fit its own hyperparameters
        raise SeqlabError(
            f"{path} does not load: its weights do not fit the network its own hyperparameters describe in "
            f"{module_cls.__name__}'s code (code changed since it was trained, or an edited file); use the code it "
            f"was trained with, or another .ckpt"
        ) from None
    return module.to(pick_device(device)).eval(), ckpt


def load_responder(path: str, device: str = "cpu"):
    """The module of a checkpoint whose task answers prompts (seqlab-generate, seqlab-chat)."""
    module, _ = load_module(path, device=device)
    if not module.responds():
        raise SeqlabError(f"the {module.task} task answers no prompts: its {type(module).__name__} has no respond()")
    return module


def data_class(ckpt: dict, path) -> type:
    _, data_cls = task_classes(ckpt, path)
    if data_cls is None:
        raise SeqlabError(f"{path} records no data module; evaluate a checkpoint written by seqlab-train")
    return data_cls


def in_start_folder(key: str, value, start: str | None):
    """A run's relative paths (data.path=corpus.txt) mean what they meant in the folder it started
    in, so that resume= and seqlab-eval read the same files from any folder: the values of keys
    named as paths (path, dir, file, root, or ending in _path, _dir, _file) that name a file or
    folder there."""
    name = key.rpartition(".")[2]
    if not (name in ("path", "dir", "file", "root") or name.endswith(("_path", "_dir", "_file"))):
        return value
    if not isinstance(value, str) or not start or Path(value).name in ("", "..") or Path(value).is_absolute():
        return value
    there = Path(start) / value
    try:
        moved = Path(start).resolve() != Path.cwd().resolve() and there.exists()
    except OSError:  # (a folder this user cannot enter, a name too long: not a path of the run's)
        moved = False
    return str(there) if moved else value


def run_paths(values: dict, ckpt: dict) -> dict:
    """`values` (data settings) with the relative paths of the run that wrote `ckpt` in its start folder."""
    start = ckpt.get("seqlab_run", {}).get("start")
    return {k: in_start_folder(k, v, start) for k, v in values.items()}


def load_datamodule(ckpt: dict, path, overrides: dict | None = None):
    """The task's data module with the hyperparameters it was trained with, and `overrides`."""
    saved = run_paths(ckpt.get("datamodule_hyper_parameters", {}), ckpt)
    return data_class(ckpt, path)(**(saved | dict(overrides or {})))


def check_against_run(path: str, model, data: dict | None = None, resumed: bool = False) -> None:
    """Training from a checkpoint: it must be the same task with the same network shapes, or
    one line says what differs (before a run folder fills up)."""
    ckpt = read_checkpoint(path)
    given, fix = (
        (f"resume={Path(path).parents[1]}", "resume= keeps the run's network: drop the override that changes it")
        if resumed
        else (f"ckpt_path={path}", "use the checkpoint's settings or another one")
    )
    if ckpt["seqlab"]["task"] != model.task:
        raise SeqlabError(
            f"ckpt_path={path} is a {ckpt['seqlab']['task']!r} checkpoint, but this run trains "
            f"{model.task!r}; pass a {model.task} checkpoint, or experiment={ckpt['seqlab']['task']}"
        )
    saved, ours = ckpt.get("state_dict", {}), model.state_dict()
    clash = [
        k for k in saved.keys() | ours.keys() if k not in saved or k not in ours or saved[k].shape != ours[k].shape
    ]
    if clash:
        hp = ckpt.get("hyper_parameters", {})
        differ = [  # (key, there, here)
            (f"model.{k}", hp[k], v)
            for k, v in model.hparams.items()
            if k in hp and k not in NOT_ARCHITECTURE and hp[k] != v and not isinstance(v, list)
        ]
        if not differ:  # the shapes come from the data (an alphabet, a vocabulary): name the data setting
            saved_data = ckpt.get("datamodule_hyper_parameters", {})
            differ = [
                (f"data.{k}", saved_data[k], v)
                for k, v in (data or {}).items()
                if k in saved_data and saved_data[k] != v and not isinstance(v, (list, dict))
            ]
        what = ", ".join(f"{k} ({a!r} there, {b!r} here)" for k, a, b in differ)
        if not differ:  # no setting differs: the task's code builds another network now
            k = sorted(clash)[0]
            there, here = (list(sd[k].shape) if k in sd else "absent" for sd in (saved, ours))
            what = f"{k} is {there} there, {here} here"
            fix = (
                f"no setting differs, so {type(model).__name__}'s code has changed since; use the code the checkpoint "
                f"was trained with, or start a new run"
            )
        if resumed and differ:  # (a config file or an environment variable may have changed it, not an override)
            key, there, _ = differ[0]
            fix = (
                f"resume= keeps the run's network: pass {key}={there}, or undo what changed it (an override, a "
                f"config file, an environment variable)"
            )
        raise SeqlabError(f"{given} has another network than this run: {what}; {fix}")
    for part in ("optimizer", "scheduler"):  # their state is restored with the weights: it must fit the class
        was = (ckpt.get("hyper_parameters", {}).get(part) or {}).get("_target_")
        now = (model.hparams.get(part) or {}).get("_target_")
        if was != now:
            raise SeqlabError(
                f"{path} was trained with model.{part} {was or 'none'}, this run asks for {now or 'none'}, "
                f"whose state cannot be restored from it; keep that model/{part} (or train afresh)",
                f"model.{part}",
            )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to an unnamed file in the same folder, flushes it to disk and only
    then gives it the target's name: a kill (even -9) or a full disk leaves the previous
    checkpoint intact and no half-written file. (Lightning's own transaction stages the file in
    the system temp folder, which is a non-atomic copy when that is another filesystem.)"""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(exist_ok=True)  # (not the run folder: one removed by hand stays so)
        try:  # O_TMPFILE: the file has no name until linked, so a kill leaves nothing behind
            fd, tmp = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, 0o644), None
        except (AttributeError, OSError):  # a file system without it: a hidden temporary name
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                writes = _Writes(f)
                try:
                    torch.save(checkpoint, writes)
                except RuntimeError:
                    if writes.error is None:
                        raise
                    raise writes.error from None  # torch reports a full disk as its own RuntimeError
                f.flush()
                os.fsync(f.fileno())
                if tmp is None:  # (a folder's descriptor makes it linkat, which follows /proc's link)
                    tmp = tempfile.mktemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                    folder = os.open(path.parent, os.O_RDONLY)
                    try:
                        os.link(f"/proc/self/fd/{f.fileno()}", Path(tmp).name, dst_dir_fd=folder)
                    finally:
                        os.close(folder)
            os.replace(tmp, path)
        except OSError as e:  # named by the file it was for (the boundary shows it)
            raise OSError(e.errno, e.strerror, str(path)) from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


class _Writes:
    """A file's `write`, keeping the OSError (e.g. a full disk) that torch's writer hides."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()
