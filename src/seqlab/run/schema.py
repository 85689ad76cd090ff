"""The composed config, checked before anything is built. pydantic checks the annotations where
the values are used: the task's classes (`hidden_size: PositiveInt`), the classes a node builds
(Lightning's Trainer, torch's optimizers: their own annotations, read at run time), `respond`,
and the models below. Its structured error and the field's JSON schema make the one line:

    model.dropout must be a number in [0, 1), got 1.5; pass e.g. model.dropout=0.5

What an annotation cannot say (a learning rate below zero) the class refuses as it is built."""

import contextlib
import difflib
import functools
import importlib
import importlib.util
import inspect
import traceback
import typing
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema

from seqlab.errors import SeqlabError, warn
from seqlab.types import PositiveInt, Probability

# Trainer arguments seqlab passes itself, and what sets them.
MANAGED = {
    "trainer.default_root_dir": "hydra.run.dir=<folder> (the run folder)",
    "trainer.logger": "logger=none or logger=<option>",
    "trainer.callbacks": "callbacks=none or callbacks=<option>",
}
NAME = "1 to 100 letters, digits, '_', '-' or '.', not starting with '.' (it names the run's folder)"


class RunSettings(pydantic.BaseModel):
    """The top-level keys of seqlab-train's config (conf/train.yaml)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(pattern=r"^[\w-][\w.-]{0,99}$", examples=["my_run"], description=NAME)]
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None  # what Lightning's seed_everything takes
    threads: PositiveInt | Literal["auto"] | None
    ckpt_path: str | None
    resume: str | None
    train: bool
    test: bool
    searches: str | None  # the task an hparams_search config searches
    data: dict
    model: dict
    trainer: dict
    paths: dict
    callbacks: dict | None
    logger: dict | None


class SweeperSettings(pydantic.BaseModel):
    """Hydra's Optuna sweeper types these but checks no range: a wrong one fails inside Optuna,
    after the sweep began. joblib checks its jobs at once only when the sweep launches."""

    model_config = ConfigDict(extra="ignore")
    n_trials: PositiveInt = 20
    max_batch_size: PositiveInt | None = None  # (Hydra's basic sweeper asserts on 0, mid-sweep)
    study_name: Annotated[str, Field(min_length=1)] | None = None
    n_jobs: PositiveInt | Annotated[int, Field(lt=0)] = 1  # (the launcher's: -1 is a job per core)
    max_failure_rate: Probability = 0.0
    direction: Literal["minimize", "maximize"] | list[Literal["minimize", "maximize"]] = "minimize"


def locate(key: str, node) -> type:
    """The class a config node builds (its `_target_`), imported; one line if it cannot be."""
    if not node:
        raise SeqlabError(f"{key} has no value; pick an option of its config group ({key.replace('.', '/')}=…)", key)
    if not isinstance(node, dict):  # model.optimizer=adamw, meant as model/optimizer=adamw
        raise SeqlabError(
            f"{key}={node} replaces the {key} settings with a value; to pick an option of the config "
            f"group write {key.replace('.', '/')}={node}",
            key,
        )
    target = node.get("_target_")
    if not target and (near := difflib.get_close_matches("_target_", [str(k) for k in node], n=1, cutoff=0.7)):
        raise SeqlabError(
            f"{key} has a key {near[0]!r} where _target_ is meant (the class it builds); fix its name", key
        )
    if key.startswith(("callbacks.", "logger.")) and not target:  # +callbacks.early_stopping.monitor=…
        raise SeqlabError(
            f"{key} has no _target_ (the class it builds); add it whole, e.g. '+{key}={{_target_:"
            f"lightning.pytorch.callbacks.EarlyStopping,monitor:val/loss}}'",
            key,
        )
    if not isinstance(target, str) or "." not in target:  # e.g. a trainer config of the user's, starting afresh
        raise SeqlabError(
            f"{key} has no _target_ (the class it builds); pick an option of its config group, or start "
            f"your own {key} config from one of ours with 'defaults: [<option>]' as its first entry",
            key,
        )
    module_name, _, name = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        top = (e.name or "").partition(".")[0]
        if top and not (module_name + ".").startswith(e.name + ".") and importlib.util.find_spec(top) is None:
            at = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith("<")][-1]
            raise SeqlabError(  # (a package the module imports is not installed)
                f"{key}._target_={target}: {at.filename}, line {at.lineno}, imports {top!r}, which is not "
                f"installed; install it (pip install …) or drop that import",
                key,
            ) from None
        if e.name is None or not (module_name + ".").startswith(e.name + "."):
            raise  # the module is there, an import inside it failed: its traceback is the story
        raise SeqlabError(
            f"{key}._target_={target}: there is no module {e.name!r} on the Python path (the current "
            f"folder, PYTHONPATH, installed packages); fix the name or add its folder to PYTHONPATH",
            key,
        ) from None
    if not isinstance(getattr(module, name, None), type):
        raise SeqlabError(f"{key}._target_={target}: module {module_name} has no class {name}; fix the name", key)
    return getattr(module, name)


# ---- a node against the signature of what it builds ---------------------------------------------------
def parameters(target) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """The keyword parameters of `target` (a class or a function) with their annotations,
    following `**kwargs` up the base classes that may take them (a task module passes `**common`
    on to Task; a base's parameters count as optional there, since the class may pass
    them itself); and whether it still takes any keyword after that."""
    params, hints, more = {}, {}, False
    for fn in [c.__init__ for c in target.__mro__ if "__init__" in vars(c)] if isinstance(target, type) else [target]:
        hints = type_hints(fn) | hints
        base, more = bool(params), False
        for name, p in inspect.signature(fn).parameters.items():
            if p.kind == p.VAR_KEYWORD:
                more = True
            elif p.kind != p.VAR_POSITIONAL and name not in ("self", "cls"):
                params.setdefault(name, p.replace(default=None) if base and p.default is p.empty else p)
        if not more:
            break
    return params, hints, more


def type_hints(fn) -> dict[str, Any]:
    """`fn`'s annotations, each on its own: one that names what its module imports only for type
    checkers (torch's `Iterable[int]`) is read with the names of `typing`, or left out. An
    `Iterable` is read as a sequence: pydantic checks an iterable only as it is consumed, so a
    string would pass as one (milestones=abc)."""
    hints = {}
    for name, text in getattr(fn, "__annotations__", {}).items():
        with contextlib.suppress(Exception):
            hint = eval(text, {**vars(typing), **fn.__globals__}) if isinstance(text, str) else text
            hints[name] = typing.Sequence[typing.get_args(hint)] if typing.get_origin(hint) is Iterable else hint
    return hints


@functools.cache
def arguments_model(target) -> type[pydantic.BaseModel]:
    if isinstance(target, type) and issubclass(target, pydantic.BaseModel):
        return target
    params, hints, more = parameters(target)
    fields = {
        n: (hints.get(n, unannotated(p.default)), ... if p.default is p.empty else p.default) for n, p in params.items()
    }
    config = ConfigDict(extra="allow" if more else "forbid", arbitrary_types_allowed=True, protected_namespaces=())
    return pydantic.create_model(getattr(target, "__qualname__", "arguments"), __config__=config, **fields)


def unannotated(default):
    """What a parameter without an annotation takes: anything, but a word where its default is a
    number (respond(self, prompt, *, threshold=0.5) takes no threshold=abc)."""
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    return (
        Annotated[float | bool | list | dict | None, Field(description="a number, as its default")] if numeric else Any
    )


def builds(value) -> bool:
    """A config value that is itself built by Hydra (a `_target_` node, or a list of them)."""
    return any(isinstance(v, dict) and "_target_" in v for v in (value if isinstance(value, list) else [value]))


def check_arguments(key: str, target, values: dict, provided: typing.Iterable[str] | None = ()) -> None:
    """`values` (a config node less its `_target_`, or a tool's options) as the keyword arguments
    of `target`: each one of its parameters, each of its annotated type. `provided` names the
    arguments another part passes (the data's vocabulary, an optimizer's parameters); None: check
    only the values given, not what is missing. (A value Hydra builds is checked when it is built.)"""
    model = arguments_model(target)
    given = {k: v for k, v in values.items() if not builds(v)}
    unknown = [k for k in set(values) - set(given) if k not in model.model_fields]
    forbid = model.model_config.get("extra") == "forbid"
    try:
        model.model_validate(given)
        errors = [{"type": "extra_forbidden", "loc": (unknown[0],)}] if unknown and forbid else []
    except pydantic.ValidationError as e:
        skip = set(values) - set(given) | set(provided or ())
        errors = [
            x
            for x in e.errors()
            if x["type"] != "missing" or len(x["loc"]) > 1 or (provided is not None and x["loc"][0] not in skip)
        ]
    errors = errors or strict_flags(model, given)
    if errors:
        raise SeqlabError(error_line(key, target, model, errors[0], values), join(key, errors[0]["loc"][0]))


def strict_flags(model, given: dict) -> list[dict]:
    """pydantic's lax mode reads true as 1 (hidden_size=true would build a network of 1): a flag is
    held to the field's type strictly."""
    flags = {k: v for k, v in given.items() if isinstance(v, bool)}
    try:
        model.model_validate(flags, strict=True)
    except pydantic.ValidationError as e:
        return [x for x in e.errors() if x["type"] != "missing"]
    return []


def join(prefix: str, name) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def error_line(prefix: str, target, model, error: dict, values: dict) -> str:
    """One line from one of pydantic's errors: the key, what it must be, what it got, an example."""
    name = error["loc"][0]
    key = join(prefix, name)
    if error["type"] == "extra_forbidden" and not prefix and target is RunSettings:
        return f"{key} is a key that nothing reads; drop it (seqlab-train --cfg job lists the keys)"
    if error["type"] == "extra_forbidden":
        known = list(model.model_fields)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"did you mean {join(prefix, close[0])}=…?" if close else f"drop it, or remove it with ~{key} where a "
        hint += "" if close else f"config sets it (its arguments: {', '.join(known)})"
        if prefix == "hydra.sweeper.sampler" and not close:  # (a new _target_ keeps the old sampler's settings)
            hint = "pick a sampler with its own settings instead: hydra/sweeper/sampler=random (or tpe, cmaes, …)"
        return f"{key} is not an argument of {getattr(target, '__name__', target)}; {hint}"
    if error["type"] == "missing" and len(error["loc"]) == 1:
        return f"{key} has no value; set {key}=… in the config"
    schema = model.model_json_schema(schema_generator=Described)["properties"].get(name, {})
    if schema.get("object") and hasattr(target, "task"):  # (a task's own annotation no config value can meet)
        return (
            f"{key}: {target.__name__}.__init__ takes it as {schema['description']}, which no config value is; "
            f"take a plain value there (a number, a string, a list) and build the object in __init__"
        )
    default = model.model_fields[name].default if name in model.model_fields else None
    plain = isinstance(default, (bool, int, float, str, list, tuple))  # (a class's own default fits its rules)
    example = default if plain else example_of(schema)
    given = values.get(name, error.get("input"))
    whole = [x for x in schema.get("anyOf", [schema]) if x.get("type") == "integer"]
    if isinstance(given, float) and not given.is_integer() and whole:  # (1.5 where a count goes: not null)
        example = example_of(whole[0])
    options = [v for x in schema.get("anyOf", [schema]) for v in x.get("enum", [x["const"]] if "const" in x else [])]
    near = difflib.get_close_matches(given.lower(), [str(o) for o in options], n=1) if isinstance(given, str) else []
    example = next((o for o in options if near and str(o) == near[0]), example)  # (Max, maximum: max)
    got = f"{key} must be {describe(schema)}, got {show(values.get(name, error.get('input')))}"
    return f"{got}; pass e.g. {key}={show(example, quote=False)}" if example is not None else f"{got}; fix {key}"


# ---- words and examples from a JSON schema ------------------------------------------------------------
class Described(GenerateJsonSchema):
    """JSON schemas for messages: a type that has none (a torch Tensor) is named by its class."""

    def handle_invalid_for_json_schema(self, schema, error_info):
        return {"description": f"a {getattr(schema.get('cls'), '__name__', 'Python object')}", "object": True}


KINDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "null": "null",
}


def describe(s: dict) -> str:
    members = s.get("anyOf", [s])
    values = [v for x in members for v in x.get("enum", [x["const"]] if "const" in x else [])]
    options = list(dict.fromkeys(show(v, quote=False) for v in values))  # (Literal[32, "32"] reads once)
    parts = [f"one of {', '.join(options)}" if len(options) > 1 else options[0]] if options else []
    parts += [describe(x) for x in members if x is not s and "enum" not in x and "const" not in x]
    if s.get("description") or parts:
        parts = list(dict.fromkeys(parts))
        return s.get("description") or (", ".join(parts[:-1]) + " or " + parts[-1] if parts[1:] else parts[0])
    if s.get("type") == "array":
        items = s.get("prefixItems") or [s.get("items", {})]
        inner = describe(items[0]).replace("a number", "numbers").replace("an integer", "integers")
        inner = inner.replace("a string", "strings")
        return f"a list of {len(items)} {inner}" if "prefixItems" in s else f"a list of {inner}"
    low, high = s.get("minimum", s.get("exclusiveMinimum")), s.get("maximum", s.get("exclusiveMaximum"))
    opened, closed = "exclusiveMinimum" in s, "exclusiveMaximum" in s
    if low is not None and high is not None and s.get("type") == "integer":
        bounds = f" from {show(low)} to {show(high)}"
    elif low is not None and high is not None:
        bounds = f" in {'(['[not opened]}{show(low)}, {show(high)}{')]'[not closed]}"
    elif low is not None or high is not None:
        bounds = (
            f" {'>' if opened else '>='} {show(low)}" if low is not None else f" {'<' if closed else '<='} {show(high)}"
        )
    return KINDS.get(s.get("type"), "a value") + (bounds if low is not None or high is not None else "")


def example_of(s: dict):
    """A value that fits the schema: null for a setting that may be off, else one in range."""
    if s.get("examples") or any(m.get("type") == "null" for m in s.get("anyOf", [])):
        return s.get("examples", ["null"])[0]
    s = s.get("anyOf", [s])[0]
    if "enum" in s or "const" in s or s.get("type") == "boolean":
        return s.get("enum", [s.get("const", True)])[0]
    if s.get("type") == "array":
        items = [example_of(i) for i in s.get("prefixItems") or [s.get("items", {})]]
        return None if None in items else items
    low, high = s.get("minimum", s.get("exclusiveMinimum")), s.get("maximum", s.get("exclusiveMaximum"))
    step = 1 if s.get("type") == "integer" else 0.1
    if s.get("type") not in ("integer", "number"):
        return None
    if low is not None and high is not None:
        return (low + high) // 2 if step == 1 else (low + high) / 2
    if low is not None:
        return low + step * ("exclusiveMinimum" in s)
    return 1 if high is None else high - step * ("exclusiveMaximum" in s)


def show(value, quote: bool = True) -> str:
    """A value as a person types it on the command line."""
    if isinstance(value, bool) or value is None:
        return str(value).lower().replace("none", "null")
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v, quote=False) for v in value) + "]"
    return repr(value) if quote and isinstance(value, str) else str(value)


# ---- seqlab-train's whole config, and the tools' options ----------------------------------------------
def check_config(cfg: dict, choices: dict) -> None:
    """Every key of seqlab-train's composed config (resolved, as plain values) before anything is
    built. `choices`: the option picked in each config group (Hydra's hydra.runtime.choices)."""
    import lightning as L
    import torch

    from seqlab.datamodule import TaskData
    from seqlab.module import STEPPING_KEYS, Task

    extra = next((k for k in cfg if k not in RunSettings.model_fields), None)
    if extra in choices:  # a group file's settings that landed under its name
        raise SeqlabError(
            f"the {extra} file's keys landed under {extra}.*, where nothing reads them: give it "
            "'# @package _global_' as its first line"
        )
    check_arguments("", RunSettings, cfg)
    model, data = cfg["model"], cfg["data"]
    model_cls, data_cls = kind("model", model, Task), kind("data", data, TaskData)
    task, data_task = model_cls.task, data_cls.task
    if not {"optimizer", "monitor"} <= parameters(model_cls)[0].keys():
        raise SeqlabError(
            f"{model_cls.__name__}.__init__ does not take **common (optimizer, scheduler, monitor, monitor_mode) "
            f"and pass it on: def __init__(self, <its arguments>, **common): super().__init__(**common)",
            "model",
        )
    if task != data_task and choices.get("model") == choices.get("data"):  # (one task's configs, two names)
        raise SeqlabError(
            f"model/{choices.get('model')}.yaml builds a {task!r} task and data/{choices.get('data')}.yaml a "
            f'{data_task!r} one; give {model_cls.__name__} and {data_cls.__name__} the same task = "…"'
        )
    if task != data_task:  # e.g. model=charlm under experiment=gru_toy
        raise SeqlabError(
            f"the model is the {task} task's but the data is the {data_task} task's (a model= or data= "
            f"override picked another task's); pass experiment={task} or experiment={data_task}"
        )
    if choices.get("hparams_search") and cfg["searches"] is None:
        raise SeqlabError(
            f"hparams_search={choices['hparams_search']} does not say which task it searches; give it "
            f"searches: {task} (if that is the task whose keys it names)"
        )
    if cfg["searches"] not in (None, task):  # its keys may be this task's too, and mean other things
        raise SeqlabError(
            f"hparams_search={choices.get('hparams_search')} searches the {cfg['searches']} task, but "
            f"this run trains {task}; pass experiment={cfg['searches']}"
        )
    check_arguments("data", data_cls, args(data))
    check_arguments("model", model_cls, args(model, "optimizer", "scheduler"), provided=None)
    opt = kind("model.optimizer", model.get("optimizer"), torch.optim.Optimizer)
    check_arguments("model.optimizer", opt, args(model["optimizer"]), provided=["params"])
    if (sched := model.get("scheduler")) and not sched.get("_target_") and choices.get("model/scheduler") == "none":
        raise SeqlabError(  # (an experiment's settings for its own scheduler, left without a class)
            f"model/scheduler=none leaves this experiment's scheduler settings ({', '.join(sched)}) without a "
            f"scheduler; drop them too: {' '.join(f'~model.scheduler.{k}' for k in sched)}"
        )
    if sched:  # (model/scheduler=none leaves it empty)
        cls = kind(
            "model.scheduler", sched, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        )
        stepping = {k: v for k, v in args(sched).items() if k in STEPPING_KEYS}
        check_arguments("model.scheduler", L.pytorch.utilities.types.LRSchedulerConfig, stepping, ["scheduler"])
        check_arguments("model.scheduler", cls, args(sched, *STEPPING_KEYS), provided=["optimizer"])
    base = parameters(Task)[0]  # what every task module takes, through Task
    check_arguments("model", Task, {k: v for k, v in model.items() if k in base})
    if own := next((f"trainer.{k}" for k in ("logger", "callbacks") if k in cfg["trainer"]), None):  # (a file's)
        raise SeqlabError(f"{own} is seqlab's to set; drop it from the trainer config and pass {MANAGED[own]}")
    check_trainer(cfg["trainer"])
    if sched:  # (after the trainer's: a cosine schedule's T_max is trainer.max_epochs, which Lightning judges)
        tied = "T_max" in sched and sched["T_max"] == cfg["trainer"].get("max_epochs")
        if tied and sched["T_max"] == -1:
            raise SeqlabError(
                "model/scheduler=cosine runs over trainer.max_epochs, and -1 has no end; pass trainer.max_epochs="
                "<epochs>, or model.scheduler.T_max=<epochs>",
                "model.scheduler.T_max",
            )
        check_divisors("model.scheduler", {k: v for k, v in sched.items() if not (tied and k == "T_max")})
        if isinstance(low := sched.get("eta_min"), int | float) and low < 0:  # (torch would step to a negative lr)
            raise SeqlabError(
                f"model.scheduler.eta_min must be >= 0, got {show(low)}; pass e.g. model.scheduler.eta_min=0"
            )
        if sched.get("mode", model["monitor_mode"]) != model["monitor_mode"]:  # (it would cut the lr as it improves)
            raise SeqlabError(
                f"model.scheduler.mode={sched['mode']} but model.monitor_mode={model['monitor_mode']} "
                f"({model['monitor']}); drop model.scheduler.mode: the schedule follows model.monitor_mode",
                "model.scheduler.mode",
            )
    accelerator, gpu = cfg["trainer"].get("accelerator"), torch.cuda.is_available() or torch.backends.mps.is_available()
    if accelerator in ("gpu", "cuda") and not gpu:  # (Lightning's refusal suggests auto: a GPU recipe on the CPU)
        exp = str(choices.get("experiment"))
        fix = (
            f"it is a GPU recipe: use experiment={exp.removesuffix('_gpu')}"
            if exp.endswith("_gpu")
            else "pass trainer=cpu"
        )
        raise SeqlabError(
            f"trainer.accelerator={accelerator} needs a GPU, and this machine has none (experiment={exp}); {fix}",
            "trainer.accelerator",
        )
    for key, node in [(f"{g}.{k}", v) for g in ("callbacks", "logger") for k, v in (cfg[g] or {}).items() if v]:
        check_arguments(key, locate(key, node), args(node))
        check_divisors(key, node)


def check_trainer(trainer: dict, tool: str = "train") -> None:
    """The Trainer's arguments against its signature, and what Lightning lets through that would
    hang, waste or quietly spoil a run (Lightning checks the rest when the Trainer is built)."""
    import os

    import lightning as L
    import torch
    from lightning.fabric.plugins import environments as envs

    check_arguments("trainer", kind("trainer", trainer, L.Trainer), args(trainer))
    for key in ("max_epochs", "max_steps", "limit_train_batches", "limit_test_batches"):
        if trainer.get(key) == 0:
            fix = "1 or more (-1: no limit)" if key.startswith("max") else "1 or more batches, or a fraction in (0, 1]"
            skip = "; to skip testing: test=false" if "test" in key and tool == "train" else ""
            raise SeqlabError(
                f"trainer.{key}=0 {'tests' if 'test' in key else 'trains'} on nothing; pass trainer.{key}={fix}{skip}"
            )
    if "max_epochs" in trainer and trainer["max_epochs"] is None and trainer.get("max_steps", -1) == -1:
        raise SeqlabError(  # (Lightning reads null as its default, 1000 epochs)
            "trainer.max_epochs=null means Lightning's default of 1000 epochs; pass a number, or -1 for no limit"
        )
    limit = trainer.get("max_time")
    parts = limit.split(":") if isinstance(limit, str) else list(limit.values()) if isinstance(limit, dict) else [1]
    no_time = parts and all(str(p).strip().strip("0") in ("", ".") for p in parts)  # (Lightning would stop at once)
    if no_time:
        raise SeqlabError(
            f"trainer.max_time={show(limit, quote=False)} trains on nothing; pass a time DD:HH:MM:SS (e.g. "
            f"trainer.max_time=00:01:00:00) or null"
        )
    check_divisors("trainer", trainer)
    if isinstance(every := trainer.get("val_check_interval"), (int, float)) and not every > 0:  # (divides by it)
        raise SeqlabError(
            f"trainer.val_check_interval must be > 0 (a fraction of an epoch, or a number of batches), got "
            f"{show(every)}; pass e.g. trainer.val_check_interval=1.0"
        )
    if isinstance(clip := trainer.get("gradient_clip_val"), (int, float)) and not clip >= 0:  # (flips the gradients)
        raise SeqlabError(f"trainer.gradient_clip_val must be >= 0 or null, got {show(clip)}; pass e.g. 1.0")
    devices, nodes, cpus = trainer.get("devices"), trainer.get("num_nodes"), os.cpu_count() or 1
    on_cpu = trainer.get("accelerator") == "cpu" or (
        trainer.get("accelerator") == "auto" and not torch.cuda.is_available()
    )
    if on_cpu and type(devices) is int and devices > cpus:  # (Lightning would start that many processes)
        raise SeqlabError(
            f"trainer.devices={devices} but this machine has {cpus} CPU cores; pass trainer.devices={cpus}"
        )
    strategy = str(trainer.get("strategy"))
    if on_cpu and ("fork" in strategy or "notebook" in strategy):  # (forked after torch started threads: it hangs)
        raise SeqlabError(
            f"trainer.strategy={strategy} forks processes after torch has started its threads, which hangs on "
            f"the CPU; use trainer=ddp_cpu (processes spawned afresh) or torchrun"
        )
    port = os.environ.get("MASTER_PORT")
    if port is not None and "ddp" in strategy and not (port.isdigit() and 0 < int(port) < 2**16):
        raise SeqlabError(  # (Lightning reads it as an int when it starts the processes)
            f"the environment's MASTER_PORT={port} is not a port number, and trainer.strategy={strategy} reads it; "
            f"set a free port (export MASTER_PORT=29500) or unset it"
        )
    launched = "NODE_RANK" in os.environ or any(
        e.detect() for e in (envs.TorchElasticEnvironment, envs.SLURMEnvironment)
    )
    if type(nodes) is int and nodes > 1 and not launched:  # Lightning would wait for the other nodes forever
        raise SeqlabError(
            f"trainer.num_nodes={nodes} needs a launcher that starts the command on every node "
            f"(torchrun --nnodes={nodes} …, or srun under SLURM); alone, pass trainer.num_nodes=1"
        )


DIVISORS = (  # (Trainer, CSVLogger, EMAWeightAveraging, CosineAnnealingLR and CosineAnnealingWarmRestarts, StepLR)
    *("accumulate_grad_batches", "check_val_every_n_epoch", "log_every_n_steps", "flush_logs_every_n_steps"),
    *("update_every_n_steps", "T_max", "T_0", "step_size"),
)


def check_divisors(key: str, node: dict) -> None:
    """Counts Lightning divides by, mid-run (a ZeroDivisionError after the first steps)."""
    for name in (n for n in DIVISORS if isinstance(node.get(n), int) and node[n] < 1):
        raise SeqlabError(f"{key}.{name} must be an integer >= 1, got {node[name]}; pass e.g. {key}.{name}=1")


def check_options(tool: str, given: dict, fixed: list[str], respond=None, task: str = "") -> dict:
    """A tool's options: each one of its own (`fixed`; `name.<key>` for a group of keys) or an
    option of the checkpoint task's `respond`, of its annotated type. Returns respond's."""
    params, _, more = parameters(respond) if respond is not None else ({}, {}, False)
    if respond is not None:
        first = next((p for p in inspect.signature(respond).parameters if p not in ("self", "cls")), None)
        clash = [p for p in params if p in fixed and p != "prompt"]
        if first != "prompt" or clash:  # (seqlab calls respond(prompt, **options); its own options come first)
            fix = f"rename {first} to prompt" if first != "prompt" else f"rename its option {clash[0]}"
            raise SeqlabError(
                f"the {task} task's respond{inspect.signature(respond)} does not fit seqlab-{tool}, which calls "
                f"respond(prompt, <its options>) and takes {', '.join(fixed)} itself; {fix}"
            )
        defaults = {n: p.default for n, p in params.items() if n != "prompt" and p.default is not p.empty}
        defaults = {n: v for n, v in defaults.items() if v is not None}
        try:  # (its own default, outside its annotation, would answer silently)
            check_arguments("", respond, defaults, provided=None)
        except SeqlabError as e:
            raise SeqlabError(
                f"the {task} task's respond() has a default its own annotation refuses ({str(e).split(';')[0]}); "
                f"fix the default in its code"
            ) from None
    takes = [*fixed, *(p for p in params if p != "prompt")]
    for name in given:
        if name not in takes and f"{name}.<key>" not in takes:
            close = difflib.get_close_matches(name, takes, n=1, cutoff=0.8)  # a typo, not another idea
            why = " (a checkpoint knows its experiment)" if name in ("experiment", "model") else ""
            why += " (respond() takes **options, which seqlab cannot list: declare each)" * more
            raise SeqlabError(
                f"unknown option {name!r}{why}: {f'did you mean {close[0]}=…? ' if close else ''}"
                f"seqlab-{tool} takes {', '.join(takes)}{f' (for this {task} checkpoint)' if respond else ''}"
            )
    options = {k: v for k, v in given.items() if k not in fixed and v is not None}
    if respond is not None:
        if needed := [n for n, p in params.items() if n != "prompt" and p.default is p.empty and n not in options]:
            raise SeqlabError(f"the {task} task's respond() needs {needed[0]}=…; pass it (seqlab-{tool} {needed[0]}=…)")
        check_arguments("", respond, options, provided=None)
        options = as_numbers(respond, options)  # (length=3e2 reads 300.0: respond gets the int it means)
    return options


def typed(field, value):
    """`value` as the field's type has it (pydantic's conversion: 300.0 for an int is 300)."""
    hint = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    return pydantic.TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True)).validate_python(value)


def as_numbers(target, values: dict) -> dict:
    """`values` with the number or flag pydantic read where `target` takes one: a whole float for an
    int (max_epochs=1e0), a quoted number (lr="1e-3"), yes or on for true. pydantic accepts them,
    the class would not."""
    fields = arguments_model(target).model_fields
    numbers = {}
    for k, v in values.items():
        if isinstance(v, int | float | str) and k in fields:  # (0 or no for a flag: false)
            with contextlib.suppress(pydantic.ValidationError):
                numbers |= (
                    {k: n} if type(n := typed(fields[k], v)) in (int, float, bool) and type(n) is not type(v) else {}
                )
    return values | numbers


def check_user_configs(folders: list, overrides: list[str]) -> None:
    """The config folders and files of the user's that the command line picks: each folder there,
    and an experiment (hparams_search, debug) file global, not empty, with a list of defaults."""

    from seqlab.run.cli import CONF_DIR

    ours = Path(CONF_DIR)
    for folder in folders:
        if not folder.is_dir():
            raise SeqlabError(
                f"--config-dir {folder}: {'a file, not a folder' if folder.exists() else 'no such folder'}"
            )
        for mine in (
            [] if folder.resolve() == ours.resolve() else (folder / p.relative_to(ours) for p in ours.rglob("*.yaml"))
        ):
            if mine.is_file():  # (Hydra looks in seqlab's configs first: the user's file would never be read)
                fix = (
                    "put your settings in an experiment file (experiment/<name>.yaml) instead"
                    if mine.parent == folder
                    else f"rename it (e.g. {mine.stem}_mine.yaml) and pick that name"
                )
                raise SeqlabError(f"{mine} has the name of one of seqlab's own configs, which is read instead; {fix}")
    picks = [a.split("=", 1) for a in overrides if "=" in a and a.split("=")[0] in ("experiment", "hparams_search")]
    for group, option in picks:
        for file in (f for d in folders for f in [d / group / f"{option.removesuffix('.yaml')}.yaml"] if f.is_file()):
            try:
                text = file.read_text()
            except UnicodeDecodeError as e:
                line = e.object[: e.start].count(b"\n") + 1
                raise SeqlabError(
                    f"{file} is not UTF-8 text (byte {e.object[e.start]:#x} on line {line}); save it as UTF-8"
                ) from None
            with file.open() as stream:  # (read from the file, a YAML error names it and the line)
                settings = yaml.safe_load(stream)
            if not settings:
                raise SeqlabError(f"{file} is empty; give it the settings of the {group}")
            if not isinstance(settings, dict):
                raise SeqlabError(
                    f"{file} holds a {type(settings).__name__} where a config's keys belong; write it as key: value "
                    f"lines (defaults:, model:, trainer:, …)"
                )
            header = [line for line in text.splitlines() if line.strip()][:3]  # (Hydra reads its leading comments)
            if not any(line.startswith("#") and "@package _global_" in line for line in header):
                raise SeqlabError(
                    f"{file} lacks a first line '# @package _global_'; without it its keys land under "
                    f"{group}.*, where nothing reads them; give it '# @package _global_' as its first line"
                )
            inherits = "experiment" in str(settings.get("defaults"))  # (another experiment, picked first, names it)
            if group == "experiment" and "name" not in settings and not inherits:  # (filed under the default's name)
                warn(
                    f"{file} sets no name, so its runs go under the default experiment's (outputs/<its name>/); add "
                    f"'name: {option}'"
                )
            if not isinstance(settings.get("defaults", []), list):
                raise SeqlabError(
                    f"{file}: its defaults must be a list, one entry a line: '  - override /data: gru_toy'"
                )
            picked = {next(iter(e)) for e in yaml.safe_load((ours / "train.yaml").read_text())["defaults"][1:]}
            for name, value in (next(iter(e.items())) for e in settings.get("defaults") or [] if isinstance(e, dict)):
                top = [d for d in folders if (d / name).is_dir() and not (d / group / name).is_dir()]
                if top and not name.startswith(("/", "override")):  # (- size: small reads experiment/size/)
                    raise SeqlabError(
                        f"{file}: '- {name}: {value}' picks from {group}/{name}/, and your group is {top[0] / name}; "
                        f"write '- /{name}: {value}'"
                    )
                if name.lstrip("/") in picked:  # (Hydra's own message asks to reorder the list)
                    raise SeqlabError(
                        f"{file}: '- {name}: {value}' picks a {name.lstrip('/')} that seqlab's train.yaml picks "
                        f"already; write '- override /{name.lstrip('/')}: {value}'"
                    )


def kind(key: str, node, base) -> type:
    """The class `key` builds, which must be a `base` (a torch optimizer, a task module, …)."""
    cls = locate(key, node)
    if not issubclass(cls, base):
        names = " or ".join(b.__name__ for b in (base if isinstance(base, tuple) else (base,)))
        raise SeqlabError(
            f"{key}._target_={node['_target_']} is not a subclass of {names}; point _target_ at one (the "
            f"options of the {key.replace('.', '/')} config group do)"
        )
    api = hasattr(base, "task")  # seqlab.Task, seqlab.TaskData
    if api and inspect.isabstract(cls):  # (a task class that lacks a method its base requires)
        missing = ", ".join(f"{m}()" for m in sorted(cls.__abstractmethods__))
        raise SeqlabError(
            f"{key}._target_={node['_target_']} does not implement {missing}, which every seqlab.{base.__name__} must",
            key,
        )
    for name, method in (m for m in (vars(base) if api else {}).items() if inspect.isfunction(m[1]) and m[0][0] != "_"):
        needed = [p for p in inspect.signature(method).parameters.values() if p.default is p.empty]
        try:  # (an override that cannot be called as seqlab calls it: evaluate(self, batch))
            inspect.signature(getattr(cls, name)).bind(
                *(p for p in needed if p.kind <= p.POSITIONAL_OR_KEYWORD),
                **{p.name: p for p in needed if p.kind == p.KEYWORD_ONLY},
            )
        except TypeError:
            raise SeqlabError(
                f"{cls.__name__}.{name}{inspect.signature(getattr(cls, name))} cannot be called as seqlab calls it; "
                f"def {name}{inspect.signature(method)}",
                key,
            ) from None
    from lightning import LightningModule

    module = api and issubclass(base, LightningModule)  # (a data class's loader methods are its own)
    hooks = [n for n in (vars(base) if module else ()) if hasattr(LightningModule, n) and n != "configure_optimizers"]
    for name in (n for n in hooks if n != "__init__" and getattr(cls, n) is not getattr(base, n)):
        code = getattr(getattr(cls, name), "__code__", None)
        if code is not None and "super" not in code.co_names:  # (Lightning's hint would blame a missing log())
            raise SeqlabError(
                f"{cls.__name__}.{name}() replaces seqlab's, which the run needs (the metrics, the carried state, "
                f"the checkpoint's record); call super().{name}(…) in it",
                key,
            )
    ours = Path(resources.files("seqlab.conf")) / key / f"{getattr(cls, 'task', '')}.yaml"
    if api and ours.is_file() and yaml.safe_load(ours.read_text()).get("_target_") != node["_target_"]:
        raise SeqlabError(  # (a checkpoint names its task: the two would be taken for one another)
            f"{key}._target_={node['_target_']} declares task = {cls.task!r}, the name of one of seqlab's own "
            f"tasks; give it a name of its own",
            key,
        )
    if api and "configure_optimizers" in vars(base) and cls.configure_optimizers is not base.configure_optimizers:
        raise SeqlabError(  # (model.optimizer would be ignored, and the run's record would say otherwise)
            f"{cls.__name__}.configure_optimizers() replaces the optimizer seqlab builds from model.optimizer and "
            f"model.scheduler; drop it and pick model/optimizer=… (a class of your own may be its _target_)",
            key,
        )
    if api and not (isinstance(cls.task, str) and cls.task.isidentifier()):  # (it names folders and configs)
        said = f"task = {cls.task!r}, which is not a name of letters, digits and _" if cls.task else "no task name"
        raise SeqlabError(
            f'{key}._target_={node["_target_"]} declares {said}; give the class task = "<name>" (e.g. "my_task"), '
            f"the same in its model and its data class",
            key,
        )
    return cls


def args(node: dict, *leave: str) -> dict:
    return {k: v for k, v in node.items() if k != "_target_" and k not in leave}
