"""Every config value is checked before anything trains, in one place and one way.

The types and ranges are declared where the values are used: the annotations of the task
modules' and data modules' `__init__` (e.g. `hidden_size: PositiveInt`, `dropout: Dropout`),
of `respond`'s options, and, for the classes seqlab does not own (torch's optimizers and
schedulers, Lightning's Trainer), the tables below. A value that does not fit gets one line
naming the key, what it must be and an example:

    model.dropout must be a number in [0, 1), got 1.5; pass e.g. model.dropout=0.1
"""

import difflib
import inspect
import math
import os
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from seqlab.errors import SeqlabError


def _num(x) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Range:
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, v) -> bool:
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return not (self.high is not None and (v >= self.high if self.high_open else v > self.high))

    def describe(self, integer: bool) -> str:
        low, high = _num(self.low), _num(self.high)
        if self.high is None:
            return f"> {low}" if self.low_open else f">= {low}"
        if integer:
            return f"from {low} to {high}"
        return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"

    def example(self, integer: bool):
        low = 0 if self.low is None else self.low
        if integer:
            return int(low) + (1 if self.low_open else 0)
        return low + 0.1 if self.high is not None else (low or 0) + 1.0


@dataclass(frozen=True)
class Duration:
    """Lightning's time format DD:HH:MM:SS, longer than zero."""

    def __contains__(self, v) -> bool:
        parts = v.split(":") if isinstance(v, str) else []
        return len(parts) == 4 and all(p.isdigit() for p in parts) and any(int(p) for p in parts)

    def describe(self, integer: bool) -> str:
        return "in the form DD:HH:MM:SS, longer than zero"

    def example(self, integer: bool):
        return "00:00:10:00"


PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0, low_open=True)]
NonNegativeFloat = Annotated[float, Range(0)]
Probability = Annotated[float, Range(0, 1)]
Rate = Annotated[float, Range(0, 1, high_open=True)]
Dropout = Rate
Fraction = Annotated[float, Range(0, 1, low_open=True, high_open=True)]
Temperature = Annotated[float, Range(0)]
SampleSeed = Annotated[int, Range(0, 2**63 - 1)]  # a torch.Generator's seed


# ---- checking one value against an annotation -------------------------------------------
def _split(annotation):
    """(base type, Range or None) of a possibly Annotated type."""
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        return base, next((e for e in extras if isinstance(e, (Range, Duration))), None)
    return annotation, None


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (Union, getattr(__import__("types"), "UnionType", Union))


def fits(value, annotation) -> bool:
    tp, rng = _split(annotation)
    if tp is Any or tp is inspect.Parameter.empty or annotation is None:
        return True
    if tp is type(None):
        return value is None
    if _is_union(tp):
        return any(fits(value, t) for t in typing.get_args(tp))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(fits(v, t) for v, t in zip(value, args))
        return not args or all(fits(v, args[0]) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(rng, Duration):
        ok = isinstance(value, str)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif tp is str:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, tp) if isinstance(tp, type) else True
    return ok and (rng is None or value in rng)


def describe(annotation) -> str:
    tp, rng = _split(annotation)
    if tp is type(None):
        return "null"
    if _is_union(tp):
        parts = [describe(t) for t in typing.get_args(tp)]
        return ", ".join(parts[:-1]) + " or " + parts[-1]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        shown = list(dict.fromkeys(str(a) for a in args))  # (32 and "32" read the same)
        return "one of " + ", ".join(shown) if len(shown) > 1 else shown[0]
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} " + describe(args[0]).replace("a number", "numbers").replace("an integer", "integers")
    if origin in (list, tuple):
        inner = describe(args[0]) if args else "values"
        return "a list of " + inner.replace("a number", "numbers").replace("an integer", "integers")
    if origin is dict or tp is dict:
        return "a config node"
    name = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))
    if isinstance(rng, Duration):
        return f"a time {rng.describe(False)}"
    return f"{name} {rng.describe(tp is int)}" if rng else name


def example_for(annotation):
    tp, rng = _split(annotation)
    if _is_union(tp):
        return example_for(next(t for t in typing.get_args(tp) if t is not type(None)))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return args[0]
    if origin is tuple and args and args[-1] is not Ellipsis:
        return [example_for(a) for a in args]
    if origin is list and args:
        return [example_for(args[0])]
    if rng is not None:
        return rng.example(tp is int)
    return {bool: "true", int: 1, float: 1.0, str: "…"}.get(tp, "…")


def _show(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def check_value(key: str, value, annotation, example=None) -> None:
    """Raise a one-line SeqlabError if `value` does not fit `annotation`."""
    if annotation is None or fits(value, annotation):
        return
    if example is None and fits(None, annotation):
        example = "null"  # a setting that is off by default: off works
    elif example is None or example is inspect.Parameter.empty or not fits(example, annotation):
        example = example_for(annotation)
    shown = repr(value) if isinstance(value, str) else _show(value)
    raise SeqlabError(f"{key} must be {describe(annotation)}, got {shown}; pass e.g. {key}={_show(example)}")


# ---- checking a config node against the class it builds ---------------------------------
def signature_of(cls) -> tuple[dict[str, inspect.Parameter], dict[str, Any]]:
    """The keyword arguments of `cls(...)` and their annotations, following `**kwargs` up to
    the base classes that take them (a task module passes `**common` to SeqlabModule)."""
    params, hints = {}, {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        sig = inspect.signature(klass.__init__)
        hints = typing.get_type_hints(klass.__init__, include_extras=True) | hints
        takes_more = False
        for name, p in list(sig.parameters.items())[1:]:
            if p.kind == p.VAR_KEYWORD:
                takes_more = True
            elif p.kind != p.VAR_POSITIONAL:
                params.setdefault(name, p)
        if not takes_more:
            break
    return params, hints


def check_node(prefix: str, cls, args: dict, what: str, provided: typing.Iterable[str] | None = None,
               examples=None) -> None:
    """Each key of `args` is an argument of `cls` and fits its annotation; with `provided` (the
    arguments another part supplies), every required argument has a value."""
    params, hints = signature_of(cls)
    for key, value in args.items():
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f"did you mean {prefix}.{close[0]}=…?" if close else f"drop it (its options: {', '.join(params)})"
            raise SeqlabError(f"{prefix}.{key} is not an option of {what}; {hint}")
        check_value(f"{prefix}.{key}", value, hints.get(key), examples(f"{prefix}.{key}") if examples else None)
    if provided is not None:
        missing = [k for k, p in params.items() if p.default is p.empty and k not in args and k not in provided]
        if missing:
            raise SeqlabError(f"{prefix}.{missing[0]} has no value; set {prefix}.{missing[0]}=… in the config")


# Keys of a scheduler node that are Lightning's (how to step it), not the scheduler's arguments.
LIGHTNING_SCHEDULER_KEYS = ("monitor", "interval", "frequency")

# Arguments of torch's optimizers and schedulers (by name: the same meaning in every class).
TORCH_ARGS = {
    "lr": PositiveFloat, "weight_decay": NonNegativeFloat, "eps": PositiveFloat, "momentum": Annotated[float, Range(0, 1, high_open=True)],
    "dampening": Probability, "nesterov": bool, "amsgrad": bool, "betas": tuple[Probability, Probability],
    "alpha": Probability, "factor": Fraction, "patience": NonNegativeInt, "threshold": NonNegativeFloat,
    "cooldown": NonNegativeInt, "min_lr": NonNegativeFloat, "mode": Literal["min", "max"] | None,
    "milestones": list[PositiveInt], "gamma": PositiveFloat, "T_max": PositiveInt, "eta_min": NonNegativeFloat,
    "monitor": str | None, "interval": Literal["epoch", "step"], "frequency": PositiveInt,
}

# Arguments of Lightning's callbacks (EarlyStopping, ModelCheckpoint, the progress bar), by name.
CALLBACK_ARGS = {"patience": NonNegativeInt, "min_delta": NonNegativeFloat, "refresh_rate": NonNegativeInt,
                 "every_n_epochs": NonNegativeInt, "every_n_train_steps": NonNegativeInt}

# Lightning Trainer arguments that a config sets (others are checked by Lightning itself).
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "32", "16", "bf16", "64", 32, 16, 64)
LimitBatches = PositiveInt | Literal[0] | Annotated[float, Range(0, 1)] | None
TRAINER_ARGS = {
    "accelerator": Literal["auto", "cpu", "gpu", "cuda", "mps"],
    "devices": PositiveInt | Literal["auto", -1] | list[NonNegativeInt],
    "num_nodes": PositiveInt,
    "precision": Literal[PRECISIONS],  # type: ignore[valid-type]
    "max_epochs": PositiveInt | Literal[-1] | None,
    "min_epochs": NonNegativeInt | None,
    "max_steps": PositiveInt | Literal[-1],
    "max_time": Annotated[str, Duration()] | dict | None,
    "gradient_clip_val": NonNegativeFloat | None,
    "gradient_clip_algorithm": Literal["norm", "value"],
    "accumulate_grad_batches": PositiveInt,
    "check_val_every_n_epoch": PositiveInt | None,
    "val_check_interval": PositiveInt | Annotated[float, Range(0, 1, low_open=True)] | None,
    "limit_train_batches": LimitBatches, "limit_val_batches": LimitBatches, "limit_test_batches": LimitBatches,
    "num_sanity_val_steps": NonNegativeInt | Literal[-1],
    "fast_dev_run": bool | PositiveInt,
    "overfit_batches": NonNegativeInt | Annotated[float, Range(0, 1)],
    "log_every_n_steps": PositiveInt,
    "deterministic": bool | Literal["warn"] | None,
    "benchmark": bool | None,
    "enable_model_summary": bool, "enable_progress_bar": bool, "enable_checkpointing": bool,
    "use_distributed_sampler": bool,
}

Seed = Annotated[int, Range(0, 2**32 - 1)]  # what Lightning's seed_everything takes
TOP_LEVEL = {"seed": Seed | None, "threads": PositiveInt | None, "train": bool, "test": bool,
             "ckpt_path": str | None, "resume": str | None}


def check_devices(trainer: dict) -> None:
    """The accelerator exists on this machine and has the devices asked for."""
    import torch

    accelerator, devices = trainer.get("accelerator", "auto"), trainer.get("devices", "auto")
    gpu = accelerator in ("gpu", "cuda")
    if gpu and not torch.cuda.is_available():
        raise SeqlabError(f"trainer.accelerator={accelerator} but this machine has no usable CUDA GPU "
                          f"(torch {torch.__version__}); use trainer=cpu (or trainer.accelerator=cpu)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise SeqlabError("trainer.accelerator=mps but this machine has no Apple GPU; use trainer=cpu")
    if accelerator == "auto":
        gpu = torch.cuda.is_available()
    have, kind = (torch.cuda.device_count(), "CUDA GPU(s)") if gpu else (os.cpu_count() or 1, "CPU cores")
    if not gpu and isinstance(devices, list):
        raise SeqlabError(f"trainer.devices={_show(devices)} lists device numbers, which only GPUs have; on the CPU pass "
                          f"a count, e.g. trainer.devices=1")
    wanted = max(devices) + 1 if isinstance(devices, list) and devices else devices
    if isinstance(wanted, int) and wanted > have:
        raise SeqlabError(f"trainer.devices={_show(devices)} but this machine has {have} {kind}; "
                          f"pass trainer.devices={min(have, 1 if gpu else have)} or fewer")


def check_trainer(trainer: dict, examples=None) -> None:
    if trainer.get("max_epochs") == 0:
        raise SeqlabError("trainer.max_epochs=0 trains nothing; pass trainer.max_epochs=1 or more "
                          "(to test a checkpoint without training: seqlab-eval ckpt_path=…)")
    for key, annotation in TRAINER_ARGS.items():
        if key in trainer:
            check_value(f"trainer.{key}", trainer[key], annotation, examples(f"trainer.{key}") if examples else None)
    for stage in ("train", "test"):
        if trainer.get(f"limit_{stage}_batches") in (0, 0.0):
            raise SeqlabError(f"trainer.limit_{stage}_batches=0 {stage}s on nothing; pass a number of batches (e.g. "
                              f"trainer.limit_{stage}_batches=10), a fraction (0.5) or null for all"
                              + (" (to skip testing: test=false)" if stage == "test" else ""))
    strategy = trainer.get("strategy", "auto")
    if isinstance(strategy, str):
        from lightning.pytorch.strategies import StrategyRegistry

        known = ["auto", *StrategyRegistry.available_strategies()]
        if strategy not in known:
            close = difflib.get_close_matches(strategy, known, n=1)
            raise SeqlabError(f"trainer.strategy={strategy} is not a Lightning strategy; "
                              f"{f'did you mean trainer.strategy={close[0]}? ' if close else ''}"
                              f"pass trainer.strategy=auto, or trainer=ddp for several GPUs")
    low, high = trainer.get("min_epochs"), trainer.get("max_epochs")
    if isinstance(low, int) and isinstance(high, int) and high > 0 and low > high:
        raise SeqlabError(f"trainer.min_epochs={low} is more than trainer.max_epochs={high}; "
                          f"pass trainer.min_epochs={high} or less (or a larger trainer.max_epochs)")
    check_devices(trainer)


def locate(prefix: str, node) -> type:
    """The class a config node builds (its `_target_`), with a one-line error if there is none."""
    import hydra

    if isinstance(node, (str, int, float)) and not isinstance(node, bool):  # model.optimizer=adamw for model/optimizer=adamw
        group = prefix.replace(".", "/")
        raise SeqlabError(f"{prefix}={node} replaces the {prefix} settings with a value; to pick an option of the "
                          f"config group write {group}={node}")
    target = node.get("_target_") if isinstance(node, dict) else None
    if not target:
        raise SeqlabError(f"{prefix} has no _target_ (the class it builds); pick an option of its config group")
    try:
        return hydra.utils.get_class(target)
    except Exception:
        raise SeqlabError(f"{prefix}._target_={target} is not an importable class; fix the config") from None


def check_torch_node(prefix: str, node: dict, bases: tuple, kind: str, lightning_keys=(), examples=None) -> None:
    """An optimizer or scheduler node: a torch class of the right kind, and its arguments."""
    cls = locate(prefix, node)
    if not issubclass(cls, bases):
        raise SeqlabError(f"{prefix}._target_={node['_target_']} is not a {kind}; "
                          f"pick an option of the {prefix.replace('.', '/')} config group")
    params = (set(inspect.signature(cls.__init__).parameters) - {"self", "optimizer", "params"}) | set(lightning_keys)
    for key, value in node.items():
        if key == "_target_":
            continue
        if key not in params:
            raise SeqlabError(f"{prefix}.{key} is not an argument of {node['_target_']} "
                              f"(its arguments: {', '.join(sorted(params))}); remove it with ~{prefix}.{key}")
        check_value(f"{prefix}.{key}", value, TORCH_ARGS.get(key), examples(f"{prefix}.{key}") if examples else None)


def check_name(name) -> None:
    """A run's name is a folder name under outputs/."""
    if not isinstance(name, str) or not name or len(name) > 100 or not all(c.isalnum() or c in "_.-" for c in name) \
            or name.startswith("."):
        shown = name if not isinstance(name, str) or len(name) <= 40 else name[:40] + "…"
        raise SeqlabError(f"name={shown!r} must be 1 to 100 letters, digits, '_', '-' or '.', not starting with "
                          f"'.' (it names the run's folder); pass e.g. name=my_run")


def check_config(cfg: dict, examples=None) -> None:
    """Everything `seqlab.train` is about to build, before it builds anything. `cfg` is the
    resolved config as plain values; `examples(key)` gives a valid example value for a key."""
    import torch

    for key, annotation in TOP_LEVEL.items():
        if key in cfg:
            check_value(key, cfg[key], annotation, examples(key) if examples else None)
    check_name(cfg.get("name"))
    check_trainer(cfg["trainer"], examples)
    model, data = cfg["model"], cfg["data"]
    module_cls, data_cls = locate("model", model), locate("data", data)
    task = getattr(module_cls, "task", "") or module_cls.__name__
    model_task, data_task = (c.__module__.split(".")[2] if c.__module__.startswith("seqlab.tasks.") else None
                             for c in (module_cls, data_cls))
    if model_task and data_task and model_task != data_task:  # e.g. model=charlm under experiment=gru_toy
        raise SeqlabError(f"the model is the {model_task} task's but the data is the {data_task} task's (a model= or "
                          f"data= override picked another task's); pass experiment={model_task} or experiment={data_task} "
                          f"for one task's model and data, or drop that override")
    args = {k: v for k, v in model.items() if k not in ("_target_", "optimizer", "scheduler")}
    check_node("model", module_cls, args, f"the {task} model", examples=examples)
    check_node("data", data_cls, {k: v for k, v in data.items() if k != "_target_"}, f"the {task} data",
               provided=(), examples=examples)
    check_torch_node("model.optimizer", model.get("optimizer") or {}, (torch.optim.Optimizer,), "torch optimizer",
                     examples=examples)
    opt = model.get("optimizer") or {}
    if opt.get("nesterov") and (not opt.get("momentum") or opt.get("dampening", 0)):
        raise SeqlabError(f"model.optimizer.nesterov=true needs a momentum and no dampening (momentum="
                          f"{opt.get('momentum', 0)}, dampening={opt.get('dampening', 0)}); pass e.g. "
                          f"model.optimizer.momentum=0.9 model.optimizer.dampening=0")
    if model.get("scheduler"):  # model/scheduler=none leaves it empty
        sched = torch.optim.lr_scheduler
        check_torch_node("model.scheduler", model["scheduler"], (sched.LRScheduler, sched.ReduceLROnPlateau),
                         "torch LR scheduler", LIGHTNING_SCHEDULER_KEYS, examples)
    savers = [name for name, node in (cfg.get("callbacks") or {}).items()
              if isinstance(node, dict) and str(node.get("_target_", "")).endswith(("ModelCheckpoint", "StepCheckpoint"))]
    if cfg["trainer"].get("enable_checkpointing") is False and savers:
        raise SeqlabError(f"trainer.enable_checkpointing=false contradicts the checkpoint callbacks ({', '.join(savers)}) "
                          "that write last.ckpt for resume=; drop the override, or pass callbacks=none for a run "
                          "without checkpoints")
    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, dict) and str(node.get("_target_", "")).startswith("seqlab."):
            args = {k: v for k, v in node.items() if k != "_target_"}
            check_node(f"callbacks.{name}", locate(f"callbacks.{name}", node), args, f"callback {name}",
                       examples=examples)
        elif isinstance(node, dict):  # Lightning's callbacks accept some values that make no sense
            for key, annotation in CALLBACK_ARGS.items():
                if key in node:
                    check_value(f"callbacks.{name}.{key}", node[key], annotation,
                                examples(f"callbacks.{name}.{key}") if examples else None)


def check_monitors(cfg: dict, model) -> None:
    """Every metric a schedule, the best checkpoint or early stopping follows is one the task
    logs (else Lightning finds out at the end of the first epoch)."""
    known = ["train/loss", *model.metrics["val"].keys()]
    places = [("model.monitor", cfg["model"].get("monitor"))]
    places.append(("model.scheduler.monitor", (cfg["model"].get("scheduler") or {}).get("monitor")))
    places += [(f"callbacks.{name}.monitor", node.get("monitor")) for name, node in (cfg.get("callbacks") or {}).items()
               if isinstance(node, dict)]
    for key, value in places:
        if value is not None and value not in known:
            raise SeqlabError(f"{key}={value} is not a metric the {model.task} task logs; pick one of {', '.join(known)}")
