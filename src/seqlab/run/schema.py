"""The composed config, checked before anything is built.

Every rule is declared where the value is used, and pydantic checks it: the annotations of the
task's classes (`hidden_size: PositiveInt`), of the classes a config node builds (Lightning's
Trainer, torch's optimizers: their own annotations, read at run time), of `respond`'s options,
and `RunSettings` below for the top-level keys. A value that does not fit gets one line made
from pydantic's structured error and the field's JSON schema:

    model.dropout must be a number in [0, 1), got 1.5; pass e.g. model.dropout=0.5

What the annotation of a class seqlab does not own cannot say (a learning rate below zero) its
owner refuses when the object is built (seqlab.train.build).
"""

import difflib
import functools
import importlib
import inspect
import typing
from typing import Annotated, Any, Literal

import pydantic
from pydantic import ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema

from seqlab.errors import SeqlabError
from seqlab.types import PositiveInt


class RunSettings(pydantic.BaseModel):
    """The top-level keys of seqlab-train's config (conf/train.yaml)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[
        str,
        Field(
            pattern=r"^[\w-][\w.-]{0,99}$",
            description="1 to 100 letters, digits, '_', '-' or '.', not starting with '.' (it names the run's folder)",
            examples=["my_run"],
        ),
    ]
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None  # what Lightning's seed_everything takes
    threads: PositiveInt | None
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
    after the sweep has begun."""

    model_config = ConfigDict(extra="ignore")
    n_trials: PositiveInt | None = None
    n_jobs: PositiveInt | None = None
    max_failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    direction: Literal["minimize", "maximize"] | list[Literal["minimize", "maximize"]] = "minimize"


class LauncherSettings(pydantic.BaseModel):
    """joblib's jobs at once (-1: one per core), which joblib checks only when the sweep launches."""

    model_config = ConfigDict(extra="ignore")
    n_jobs: PositiveInt | Annotated[int, Field(lt=0)] | None = None


def locate(key: str, node) -> type:
    """The class a config node builds (its `_target_`), imported; one line if it cannot be."""
    target = node.get("_target_") if isinstance(node, dict) else None
    if node is None or node == {}:
        raise SeqlabError(f"{key} has no value; pick an option of its config group ({key.replace('.', '/')}=…)", key)
    if not isinstance(node, dict):  # model.optimizer=adamw, meant as model/optimizer=adamw
        raise SeqlabError(f"{key}={node} replaces the {key} settings with a value; to pick an option of the config "
                          f"group write {key.replace('.', '/')}={node}", key)
    if not isinstance(target, str) or "." not in target:
        raise SeqlabError(f"{key} has no _target_ (the class it builds); pick an option of its config group", key)
    module_name, _, name = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not (module_name + ".").startswith(e.name + "."):
            raise  # the module exists but an import inside it failed: its traceback is the story
        raise SeqlabError(f"{key}._target_={target}: there is no module {e.name!r} on the Python path (the current "
                          f"folder, PYTHONPATH, installed packages); fix the name or add its folder to PYTHONPATH",
                          key) from None
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise SeqlabError(f"{key}._target_={target}: module {module_name} has no class {name}; fix the name", key)
    return cls


# ---- a node against the signature of what it builds --------------------------------------------
def parameters(target) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """The keyword parameters of `target` (a class or a function) with their annotations,
    following `**kwargs` up the base classes that may take them (a task module passes `**common`
    on to SeqlabModule; a base's parameters count as optional there, since the class may pass
    them itself); and whether it still takes any keyword after that."""
    params, hints, more = {}, {}, False
    for fn in [c.__init__ for c in target.__mro__ if "__init__" in vars(c)] if isinstance(target, type) else [target]:
        try:
            hints = typing.get_type_hints(fn, include_extras=True) | hints
        except Exception:  # an annotation that names what its module imports only for type checkers
            pass
        base, more = bool(params), False
        for name, p in inspect.signature(fn).parameters.items():
            if p.kind == p.VAR_KEYWORD:
                more = True
            elif p.kind != p.VAR_POSITIONAL and name not in ("self", "cls"):
                params.setdefault(name, p.replace(default=None) if base and p.default is p.empty else p)
        if not more:
            break
    return params, hints, more


@functools.cache
def arguments_model(target) -> type[pydantic.BaseModel]:
    params, hints, more = parameters(target)
    fields = {
        name: (hints.get(name, Any), ... if p.default is p.empty else p.default)
        for name, p in params.items()
        if not name.startswith("_")
    }
    config = ConfigDict(extra="allow" if more else "forbid", arbitrary_types_allowed=True, protected_namespaces=())
    return pydantic.create_model(f"{getattr(target, '__qualname__', target)}", __config__=config, **fields)


def builds(value) -> bool:
    """A config value that is itself built by Hydra (a `_target_` node, or a list of them)."""
    return (isinstance(value, dict) and "_target_" in value) or (
        isinstance(value, list) and any(isinstance(v, dict) and "_target_" in v for v in value)
    )


def check_arguments(key: str, target, values: dict, provided: typing.Iterable[str] | None = ()) -> None:
    """`values` (a config node less its `_target_`, or a tool's options) as the keyword arguments
    of `target`: each one of its parameters, each of its annotated type. `provided` names the
    arguments another part passes (the data's vocabulary, an optimizer's parameters); None: check
    only the values given, not what is missing."""
    model = target if isinstance(target, type) and issubclass(target, pydantic.BaseModel) else arguments_model(target)
    given = {k: v for k, v in values.items() if not builds(v)}
    try:
        model.model_validate(given)
    except pydantic.ValidationError as e:
        skip = set(values) - set(given) | set(provided or ())
        errors = [x for x in e.errors() if x["type"] != "missing" or len(x["loc"]) > 1
                  or (provided is not None and x["loc"][0] not in skip)]
        if errors:
            raise SeqlabError(error_line(key, target, model, errors[0], values), _join(key, errors[0]["loc"][0])) from None
    for name in set(values) - set(given):  # a built value is checked when it is built; its name now
        if name not in model.model_fields and model.model_config.get("extra") == "forbid":
            raise SeqlabError(error_line(key, target, model, {"type": "extra_forbidden", "loc": (name,)}, values))


def _join(prefix: str, name) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def error_line(prefix: str, target, model, error: dict, values: dict) -> str:
    """One line from one of pydantic's errors: the key, what it must be, what it got, an example."""
    name = error["loc"][0]
    key = _join(prefix, name)
    if error["type"] == "extra_forbidden":
        known = list(model.model_fields)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"did you mean {_join(prefix, close[0])}=…?" if close else (
            f"drop it, or remove it with ~{key} where a config sets it (its arguments: {', '.join(known)})")
        return f"{key} is not an argument of {getattr(target, '__name__', target)}; {hint}"
    if error["type"] == "missing" and len(error["loc"]) == 1:
        return f"{key} has no value; set {key}=… in the config"
    schema = model.model_json_schema(schema_generator=_Schema)["properties"].get(name, {})
    value = values.get(name, error.get("input"))
    line = f"{key} must be {describe(schema)}, got {show(value)}"
    default = model.model_fields[name].default if name in model.model_fields else None
    plain = isinstance(default, (bool, int, float, str, list, tuple)) and not isinstance(default, type(...))
    example = default if plain else example_of(schema)  # (a class's own default fits its own rules)
    return f"{line}; pass e.g. {key}={show(example, quote=False)}" if example is not None else f"{line}; fix {key}"


# ---- words and examples from a JSON schema --------------------------------------------------------
class _Schema(GenerateJsonSchema):
    """JSON schemas for messages: a type that has none (a torch Tensor) is named by its class."""

    def handle_invalid_for_json_schema(self, schema, error_info):
        cls = schema.get("cls") if isinstance(schema, dict) else None
        return {"description": f"a {getattr(cls, '__name__', 'Python object')}"}


def describe(s: dict) -> str:
    if s.get("description"):
        return s["description"]
    members = s.get("anyOf", [s])
    values = [v for x in members for v in x.get("enum", [x["const"]] if "const" in x else [])]
    options = list(dict.fromkeys(show(v, quote=False) for v in values))  # (Literal[32, "32"] reads once)
    parts = [f"one of {', '.join(options)}" if len(options) > 1 else options[0]] if options else []
    parts = list(dict.fromkeys(parts + [describe(x) for x in members if "enum" not in x and "const" not in x and x != s]))
    if parts:
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]
    kind = s.get("type")
    if kind == "array":
        items = s.get("prefixItems") or [s.get("items", {})]
        count = f"{len(items)} " if "prefixItems" in s else ""
        inner = describe(items[0]).replace("a number", "numbers").replace("an integer", "integers") if items[0] else "values"
        return f"a list of {count}{inner}"
    names = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
             "null": "null", "object": "a config node"}
    return " ".join(filter(None, (names.get(kind, "a value"), _bounds(s, kind == "integer"))))


def _bounds(s: dict, integer: bool) -> str:
    low, high = s.get("minimum", s.get("exclusiveMinimum")), s.get("maximum", s.get("exclusiveMaximum"))
    open_low, open_high = "exclusiveMinimum" in s, "exclusiveMaximum" in s
    if low is None and high is None:
        return ""
    if high is None:
        return f"{'>' if open_low else '>='} {show(low)}"
    if low is None:
        return f"{'<' if open_high else '<='} {show(high)}"
    if integer:
        return f"from {show(low)} to {show(high)}"
    return f"in {'(' if open_low else '['}{show(low)}, {show(high)}{')' if open_high else ']'}"


def example_of(s: dict):
    """A value that fits the schema: null for a setting that may be off, else one in range."""
    if s.get("examples"):
        return s["examples"][0]
    if "anyOf" in s:
        options = s["anyOf"]
        if any(o.get("type") == "null" for o in options):
            return "null"
        return next((x for x in map(example_of, options) if x is not None), None)
    if "enum" in s or "const" in s:
        return s.get("enum", [s.get("const")])[0]
    kind = s.get("type")
    if kind == "array":
        items = s.get("prefixItems") or [s.get("items", {})] * max(1, s.get("minItems", 1))
        values = [example_of(i) for i in items]
        return None if None in values else values
    if kind == "boolean":
        return True
    if kind not in ("integer", "number"):
        return None
    low, high = s.get("minimum", s.get("exclusiveMinimum")), s.get("maximum", s.get("exclusiveMaximum"))
    step = 1 if kind == "integer" else 0.1
    if low is not None and high is not None:
        middle = (low + high) / 2
        return int(middle) if kind == "integer" else middle
    if low is not None:
        return low + step if "exclusiveMinimum" in s else low
    if high is not None:
        return high - step if "exclusiveMaximum" in s else high
    return 1


def show(value, quote: bool = True) -> str:
    """A value as a person types it on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v, quote=False) for v in value) + "]"
    return repr(value) if quote and isinstance(value, str) else str(value)


# ---- seqlab-train's whole config --------------------------------------------------------------------
def check_config(cfg: dict, choices: dict) -> None:
    """Every key of seqlab-train's composed config (resolved, as plain values) before anything is
    built. `choices`: the option picked in each config group (Hydra's hydra.runtime.choices)."""
    import lightning as L
    import torch

    from seqlab.datamodule import SeqlabDataModule
    from seqlab.module import STEPPING_KEYS, SeqlabModule

    try:
        RunSettings.model_validate(cfg)
    except pydantic.ValidationError as e:
        error = e.errors()[0]
        name = error["loc"][0]
        if error["type"] == "extra_forbidden" and name in choices:
            raise SeqlabError(f"the {name} file's settings landed under {name}.*, where nothing reads them: give it "
                              f"'# @package _global_' as its first line") from None
        if error["type"] == "extra_forbidden":
            raise SeqlabError(f"{name} is a key that nothing reads; drop it (seqlab-train --cfg job lists the keys)",
                              str(name)) from None
        raise SeqlabError(error_line("", RunSettings, RunSettings, error, cfg), str(name)) from None
    model, data = cfg["model"], cfg["data"]
    model_cls, data_cls = _class("model", model, SeqlabModule, "task module"), _class("data", data, SeqlabDataModule,
                                                                                      "task data module")
    if model_cls.task != data_cls.task:  # e.g. model=charlm under experiment=gru_toy
        raise SeqlabError(f"the model is the {model_cls.task} task's but the data is the {data_cls.task} task's (a "
                          f"model= or data= override picked another task's); pass experiment={model_cls.task} or "
                          f"experiment={data_cls.task} for one task's model and data, or drop that override")
    if cfg["searches"] not in (None, model_cls.task):  # its keys may exist in this task too, and mean other things
        raise SeqlabError(f"hparams_search={choices.get('hparams_search')} searches the {cfg['searches']} task, but "
                          f"this run trains {model_cls.task}; pass experiment={cfg['searches']} (or an "
                          f"hparams_search of the {model_cls.task} task)", "hparams_search")
    check_arguments("data", data_cls, _args(data))
    check_arguments("model", model_cls, _args(model, "optimizer", "scheduler"), provided=None)
    opt = model.get("optimizer")
    check_arguments("model.optimizer", _class("model.optimizer", opt, torch.optim.Optimizer, "torch optimizer"),
                    _args(opt), provided=["params"])
    if model.get("scheduler"):  # (model/scheduler=none leaves it empty)
        sched = model["scheduler"]
        lr = torch.optim.lr_scheduler
        cls = _class("model.scheduler", sched, (lr.LRScheduler, lr.ReduceLROnPlateau), "torch LR scheduler")
        stepping = {k: v for k, v in _args(sched).items() if k in STEPPING_KEYS}
        check_arguments("model.scheduler", L.pytorch.utilities.types.LRSchedulerConfig, stepping, ["scheduler"])
        check_arguments("model.scheduler", cls, _args(sched, *STEPPING_KEYS), provided=["optimizer"])
    base = parameters(SeqlabModule)[0]  # what every task module takes, through SeqlabModule
    check_arguments("model", SeqlabModule, {k: v for k, v in model.items() if k in base})
    check_trainer(cfg["trainer"])
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if node:
                check_arguments(f"{group}.{name}", locate(f"{group}.{name}", node), _args(node))


def check_trainer(trainer: dict) -> None:
    """The Trainer's arguments against its signature, and what Lightning lets through that would
    hang, waste or quietly spoil a run (Lightning checks the rest when the Trainer is built)."""
    import lightning as L

    check_arguments("trainer", _class("trainer", trainer, L.Trainer, "Lightning Trainer"), _args(trainer))
    nothing = [k for k in ("max_epochs", "max_steps", "limit_train_batches", "limit_test_batches") if trainer.get(k) == 0]
    if nothing:
        key = nothing[0]
        raise SeqlabError(f"trainer.{key}=0 {'tests' if 'test' in key else 'trains'} on nothing; pass a number of "
                          f"{'epochs' if 'epoch' in key else 'steps' if 'step' in key else 'batches'} (or null/-1: "
                          f"all){'; to skip testing: test=false' if 'test' in key else ''}", f"trainer.{key}")
    for key in ("accumulate_grad_batches", "check_val_every_n_epoch", "log_every_n_steps"):
        if isinstance(trainer.get(key), int) and trainer[key] < 1:  # Lightning divides by them, mid-run
            raise SeqlabError(f"trainer.{key} must be an integer >= 1, got {trainer[key]}; pass e.g. trainer.{key}=1",
                              f"trainer.{key}")
    check_machine(trainer)
    clip = trainer.get("gradient_clip_val")
    if isinstance(clip, (int, float)) and not clip >= 0:  # torch would scale the gradients by a negative number
        raise SeqlabError(f"trainer.gradient_clip_val must be a number >= 0 or null, got {show(clip)}; pass e.g. "
                          f"trainer.gradient_clip_val=1.0", "trainer.gradient_clip_val")


def check_machine(trainer: dict) -> None:
    """Devices this machine has, and several nodes only under a launcher that starts them all."""
    import os

    import torch
    from lightning.fabric.plugins import environments as envs

    accelerator, devices, nodes = trainer.get("accelerator"), trainer.get("devices"), trainer.get("num_nodes")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise SeqlabError(f"trainer.accelerator={accelerator} but this machine has no usable CUDA GPU (torch "
                          f"{torch.__version__}); use trainer=cpu (or trainer.accelerator=cpu)", "trainer.accelerator")
    cpus = os.cpu_count() or 1
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and isinstance(devices, int) and not isinstance(devices, bool) and devices > cpus:
        raise SeqlabError(f"trainer.devices={devices} but this machine has {cpus} CPU cores; pass trainer.devices="
                          f"{cpus} or fewer", "trainer.devices")
    launchers = (envs.TorchElasticEnvironment, envs.SLURMEnvironment, envs.LSFEnvironment, envs.MPIEnvironment)
    if isinstance(nodes, int) and nodes > 1 and "NODE_RANK" not in os.environ and not any(e.detect() for e in launchers):
        raise SeqlabError(f"trainer.num_nodes={nodes} needs a launcher that starts the command on every node (torchrun "
                          f"--nnodes={nodes} …, or srun under SLURM); started alone it would wait for the other nodes "
                          f"forever; pass trainer.num_nodes=1 here", "trainer.num_nodes")


def _class(key: str, node, base, kind: str) -> type:
    cls = locate(key, node)
    if not issubclass(cls, base):
        raise SeqlabError(f"{key}._target_={node['_target_']} is not a {kind}; pick an option of the "
                          f"{key.replace('.', '/')} config group", f"{key}._target_")
    return cls


def _args(node: dict, *leave: str) -> dict:
    return {k: v for k, v in node.items() if k != "_target_" and k not in leave}


# ---- the options of eval, generate and chat -----------------------------------------------------------
def check_options(tool: str, given: dict, fixed: list[str], respond=None, task: str = "") -> dict:
    """A tool's options: each one of its own (`fixed`; `name.<key>` for a group of keys) or an
    option of the checkpoint task's `respond`, of its annotated type. Returns respond's."""
    takes = list(fixed) + [p for p in parameters(respond)[0] if p != "prompt"] if respond else list(fixed)
    for name in given:
        if name not in takes and f"{name}.<key>" not in takes:
            close = difflib.get_close_matches(name, takes, n=1, cutoff=0.8)  # a typo, not another idea
            hint = f"did you mean {close[0]}=…? " if close else ""
            why = " (a checkpoint knows its experiment)" if name in ("experiment", "model") else ""
            of = f" (for this {task} checkpoint)" if respond else ""
            raise SeqlabError(f"unknown option {name!r}{why}: {hint}seqlab-{tool} takes {', '.join(takes)}{of}", name)
    options = {k: v for k, v in given.items() if k not in fixed and v is not None}
    if respond is not None:
        check_arguments("", respond, options, provided=None)
    return options
