"""Train a task, then test its best checkpoint.

    seqlab-train experiment=<name> key=value ...          (or: python -m seqlab.train …)
    seqlab-train -m experiment=charlm model.optimizer.lr=1e-3,3e-3   # grid sweep
    seqlab-train resume=outputs/charlm/runs/<time>                   # continue a run in place

Returns the monitored metric (e.g. val/loss) so Hydra sweepers can optimise it. The flow: check
the config, claim the run folder, build data -> model -> callbacks/loggers -> trainer (each class
checks its own arguments), fit, test the best checkpoint, record the result.
"""

import inspect
import json
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack, chdir, contextmanager, nullcontext, redirect_stdout
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf, read_write

from seqlab.callbacks import AveragedInRun, GracefulStop, MovedRun, RunRecord
from seqlab.checkpoint import check_against_run, local, read_checkpoint, run_paths
from seqlab.errors import Interrupted, SeqlabError, warn
from seqlab.module import STEPPING_KEYS
from seqlab.run import launch, rundir
from seqlab.run.cli import Context, given, quiet_libraries, resume_command, tool_main
from seqlab.run.explain import one_line
from seqlab.run.schema import as_numbers, builds, check_arguments, check_config, locate, parameters, show


# ---- one run, from the command line --------------------------------------------------------------------
def run(cfg: DictConfig, ctx: Context) -> float | None:
    hc = HydraConfig.get()
    folder = Path(
        os.path.abspath(Path(hc.runtime.output_dir if ctx.sweep_job else cfg.resume or hc.run.dir).expanduser())
    )
    set_output_dir(folder)  # (the paths derived from it resolve)
    check(cfg)
    together = launch.launcher()  # (torchrun, srun: every rank runs this command; rank 0 claims the folder)
    if rank() > 0 and not together and "SEQLAB_RUN_DIR" not in os.environ:  # (else it would record nothing)
        name = next(v for v in ("RANK", "SLURM_PROCID", "LOCAL_RANK") if v in os.environ)
        by = "srun" if name.startswith("SLURM") else "torchrun"
        raise SeqlabError(
            f"the environment's {name}={os.environ[name]} makes this process rank {rank()} of a launch, but {by} "
            f"did not start it (Lightning finds no {by} launch in the environment); unset {name}, or start the "
            f"run with {by}"
        )
    if together:
        launch.check_store(together)
    if together and together.rank > 0:
        ctx.run_dir = launch.receive(together, folder.parent)
        ctx.stack.enter_context(redirect_stdout(ctx.stack.enter_context(open(os.devnull, "w"))))  # noqa: SIM115 (rank 0 reports)
    else:
        ctx.run_dir = claim(cfg, ctx, folder)
    if together and together.rank == 0:
        launch.publish(together, ctx.run_dir, folder.parent, ctx.stack)
    set_output_dir(ctx.run_dir)
    ctx.hold_run_dir()
    os.environ["SEQLAB_RUN_DIR"] = str(ctx.run_dir)  # (the processes Lightning starts for other devices run here)
    ctx.stack.callback(os.environ.pop, "SEQLAB_RUN_DIR", None)
    if "spawn" in str(cfg.trainer.get("strategy")):  # (its processes hand back weights in /tmp folders they leave)
        ctx.stack.callback(os.environ.update, {k: v for k, v in os.environ.items() if k == "TMPDIR"})
        os.environ["TMPDIR"] = ctx.stack.enter_context(tempfile.TemporaryDirectory())
        ctx.stack.callback(os.environ.pop, "TMPDIR")
    with (
        torch_threads(cfg.threads if cfg.threads != "auto" else shared_cores(hc, ctx) or idle_cores()),
        chdir(ctx.run_dir) if hc.job.chdir else nullcontext(),
    ):
        metrics, best = train(cfg, ctx.overrides, ctx.command)
    monitor = cfg.model.monitor
    value = metrics.get(f"best/{monitor}", metrics.get(monitor))
    value = value if value is not None and math.isfinite(value) else None
    if rank() > 0:  # rank 0 records and reports the run
        return value
    # What a sweep summary reads back (seqlab.run.sweep); a resumed run adds to the metrics it has.
    result = ctx.run_dir / "result.json"
    before = json.loads(result.read_text()) if cfg.resume and result.is_file() else {}  # (a resume adds to it)
    now = {"monitor": monitor, "value": value, "best_checkpoint": best, "metrics": before.get("metrics", {}) | metrics}
    report(cfg, ctx.run_dir, metrics, best)
    tmp = result.with_name(f".result.json.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(before | {k: v for k, v in now.items() if v is not None}, indent=2))
        os.replace(tmp, result)
    except OSError as e:  # (an immutable result.json: the run itself is complete)
        tmp.unlink(missing_ok=True)
        raise SeqlabError(
            f"the run is complete, but {result} cannot be written ({e.strerror}); check its permissions and "
            f"attributes (lsattr): its metrics are printed above"
        ) from None
    return value


def check(cfg: DictConfig) -> dict:
    """The config, resolved and checked (also a sweep's first job, before the sweep starts)."""
    if "SEQLAB_ROOT" in os.environ and not os.environ["SEQLAB_ROOT"].strip():  # else outputs/ lands in /
        raise SeqlabError(
            "the SEQLAB_ROOT environment variable is empty; set it to the folder that holds outputs/ "
            "(export SEQLAB_ROOT=$PWD) or unset it"
        )
    for key in ("monitor", "monitor_mode"):  # (what the checkpoint callbacks read: else an interpolation error there)
        if OmegaConf.is_dict(cfg.get("model")) and key not in cfg.model:
            choice = HydraConfig.get().runtime.choices.get("model")
            raise SeqlabError(
                f"model.{key} is not set; give the model config (model/{choice}.yaml) the metric runs follow, "
                f"e.g. monitor: val/loss and monitor_mode: min",
                f"model.{key}",
            )
    plain = OmegaConf.to_container(cfg, resolve=True)
    for name, key in ((n, n.removeprefix("PL_TRAINER_").lower()) for n in os.environ if n.startswith("PL_TRAINER_")):
        if key in plain["trainer"]:  # (Lightning's defaults from the environment: the config's value wins)
            warn(f"the environment's {name} is not read: the config sets trainer.{key}; pass trainer.{key}=… instead")
    if not str(plain["paths"].get("root_dir", ".")).strip():
        raise SeqlabError("paths.root_dir is empty; pass a folder (e.g. paths.root_dir=.) or leave it out")
    check_config(plain, HydraConfig.get().runtime.choices)
    local(plain["ckpt_path"] or "")
    if not plain["train"] and not plain["test"]:
        raise SeqlabError(
            "train=false and test=false leave nothing to do; drop one of them (seqlab-eval ckpt_path=… "
            "tests a checkpoint)"
        )
    if not plain["train"] and not plain["ckpt_path"] and not plain["resume"]:
        warn(
            "train=false without ckpt_path= tests the untrained model (a baseline); pass ckpt_path=<a .ckpt> "
            "to test a trained one"
        )
    checkpoints = {  # the checkpoint callbacks, by key
        k: v
        for k, v in (plain["callbacks"] or {}).items()
        if v and issubclass(locate(f"callbacks.{k}", v), L.pytorch.callbacks.ModelCheckpoint)
    }
    if plain["trainer"].get("enable_checkpointing") is False and checkpoints:  # (Lightning refuses the two)
        raise SeqlabError(
            f"trainer.enable_checkpointing=false, but callbacks.{next(iter(checkpoints))} keeps checkpoints; for none "
            f"pass callbacks=none instead (such a run cannot be resumed)",
            "trainer.enable_checkpointing",
        )
    names = {}  # (two checkpoint callbacks writing one file would overwrite each other's)
    for k, v in checkpoints.items():
        if (other := names.setdefault((v.get("dirpath"), v.get("filename")), k)) != k:
            raise SeqlabError(
                f"callbacks.{other} and callbacks.{k} both write the checkpoint {v.get('filename')}; give one "
                f"another filename, e.g. callbacks.{other}.filename='{other}-epoch{{epoch:02d}}'",
                f"callbacks.{other}.filename",
            )
    for k, v in checkpoints.items():
        off = next((a for a in ("save_top_k", "every_n_epochs") if v.get(a) == 0), None)
        if off and v.get("monitor") and plain["test"]:
            warn(f"callbacks.{k}.{off}=0 keeps no best checkpoint: the test reads the last weights; pass 1 to keep one")
        if off and v.get("filename") == "last":
            warn(f"callbacks.{k}.{off}=0 keeps no last.ckpt, which resume= continues from; pass 1 to keep it")
        if v.get("monitor") and v.get("every_n_train_steps"):  # (Lightning's own warning is among those filtered)
            warn(
                f"callbacks.{k}.every_n_train_steps={v['every_n_train_steps']} judges {v['monitor']} at training "
                f"steps, where it holds the last validation's value (none before the first): the best checkpoint can "
                f"be stale or missing; for last.ckpt every N steps: callbacks.step_checkpoint.every_n_train_steps=N"
            )
    monitor, mode = str(plain["model"].get("monitor")), plain["model"].get("monitor_mode")
    for word, wrong, right, what in (("loss", "max", "min", "loss"), ("acc", "min", "max", "accuracy")):
        if word in monitor.rpartition("/")[2] and mode == wrong:
            warn(  # (the best checkpoint and a sweep would follow the worst model)
                f"model.monitor={monitor} with model.monitor_mode={wrong} keeps the {wrong}imum as the best, the "
                f"worst {what}; model.monitor_mode={right}"
            )
    chosen = HydraConfig.get().runtime.choices.get("callbacks")
    if not checkpoints and plain["train"] and not plain["resume"] and chosen not in ("none", None):
        warn(  # (a callbacks option of the user's that replaced seqlab's)
            f"callbacks={chosen} keeps no checkpoint (it has no ModelCheckpoint): the run cannot be resumed and the "
            f"test reads the last weights; give it 'defaults: [default]' as its first entry to keep seqlab's"
        )
    if plain["resume"] and not checkpoints:
        raise SeqlabError(
            "resume= goes on writing the run's checkpoints, and these callbacks keep none (callbacks=none); drop "
            "the callbacks override"
        )
    overfit, limit = plain["trainer"].get("overfit_batches"), plain["trainer"].get("limit_train_batches")
    if overfit and limit not in (None, 1.0):  # (Lightning trains on the overfit batches, whatever the limit)
        warn(f"trainer.overfit_batches={overfit} sets the batches: trainer.limit_train_batches={limit} is not read")
    if plain["resume"] and plain["trainer"].get("fast_dev_run"):
        raise SeqlabError(
            "trainer.fast_dev_run (debug=fast_dev_run) saves nothing, so it cannot continue a run; drop resume= "
            "to try the settings on a new run, or drop the fast_dev_run"
        )
    return plain


def rank() -> int:
    """This process's rank among those of one launch (torchrun, srun, Lightning's own), from their environment."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", os.environ.get("LOCAL_RANK", "0"))))


def set_output_dir(folder: Path) -> None:
    """The run's folder, where ${hydra:runtime.output_dir} (and so paths.output_dir) points."""
    with read_write(HydraConfig.instance().cfg.hydra.runtime):
        HydraConfig.instance().cfg.hydra.runtime.output_dir = str(folder)


def claim(cfg: DictConfig, ctx: Context, folder: Path) -> Path:
    """This run's folder, held until the command ends: a sweep job's (Hydra made it), the resumed
    run's, a new or empty one named by hand, or a new outputs/<name>/runs/<time>."""
    hc, stack = HydraConfig.get(), ctx.stack
    if rank() > 0 and os.environ.get("SEQLAB_RUN_DIR"):  # a process Lightning started for another device
        return Path(os.environ["SEQLAB_RUN_DIR"])
    if os.path.expandvars(folder) != str(folder):  # (Lightning's loggers expand $NAME in their folder)
        raise SeqlabError(
            f"the run folder {folder} holds a $ that the loggers would read as an environment variable (their "
            f"files would go to {os.path.expandvars(folder)}); run from a folder without $ in its path, or pass "
            f"hydra.run.dir=<such a folder>"
        )
    if ctx.sweep_job:
        rundir.lock(stack, folder, f"{folder} is in use by another run")
        return folder
    # A folder named by hand is new or empty; one named by a pattern with the time in it (the
    # default) gets a _1, _2, … if another run started in the same second.
    named = any(o.startswith("hydra.run.dir=") and "${now:" not in o for o in given(hc, "hydra"))
    if cfg.resume or (named and rundir.requeued() and rundir.holds_run(folder)):
        rundir.lock(
            stack,
            folder,
            f"resume={folder}: that run is still going (another seqlab-train is writing it); "
            f"wait for it to end, or stop it first (its Ctrl-C line names this same resume=)",
        )
        if not os.access(folder / "checkpoints", os.W_OK):
            raise SeqlabError(
                f"{folder / 'checkpoints'} cannot be written (a read-only disk, or its permissions); make "
                f"it writable, then: {resume_command(ctx.command, folder)}"
            )
        last = folder / "checkpoints" / "last.ckpt"
        need, free = last.stat().st_size if last.exists() else 0, shutil.disk_usage(folder).free
        if free < 2 * need:  # (a checkpoint is written beside the last before it replaces it)
            raise SeqlabError(
                f"{folder} has {free // 1024} KiB free, less than the {2 * need // 1024} KiB a checkpoint "
                f"needs; free some space, then: {resume_command(ctx.command, folder)}"
            )
        return folder
    if named:
        folder = rundir.claim_given(stack, str(hc.run.dir))
    else:
        folder = rundir.make_folder(stack, folder, "SEQLAB_ROOT" if os.environ.get("SEQLAB_ROOT") else "paths.root_dir")
    if hc.output_subdir is not None:  # the run's record, as Hydra keeps it for a sweep's job
        (folder / hc.output_subdir).mkdir()
        for name, content in (("config", cfg), ("hydra", {"hydra": hc}), ("overrides", given(hc))):
            OmegaConf.save(content, folder / hc.output_subdir / f"{name}.yaml")
    return folder


def shared_cores(hc, ctx) -> int | None:
    """Torch threads for a job of a sweep whose jobs run at once (hydra/launcher=parallel: joblib's
    n_jobs, -1 for one per core): the cores shared among them, so that they do not oversubscribe."""
    n_jobs = OmegaConf.select(hc, "launcher.n_jobs") if ctx.sweep_job else None
    if not isinstance(n_jobs, int) or n_jobs in (0, 1):
        return None
    cores = os.cpu_count() or 1
    return max(1, cores // (cores + 1 + n_jobs if n_jobs < 0 else n_jobs))


def idle_cores() -> int | None:
    """`threads=auto`: the cores no other process is using as the run starts (the 1-minute load
    average, spread over the machine's cores), at least 1: a thread on a busy core holds up every
    step of the others (README, "Threads on a busy machine"). OMP_NUM_THREADS, where set, stays."""
    if "OMP_NUM_THREADS" in os.environ:
        return None
    cores = len(os.sched_getaffinity(0))
    busy = os.getloadavg()[0] * cores / (os.cpu_count() or cores)
    return max(1, cores - round(busy))


def torch_threads(n: int | None):
    """torch's CPU threads for this run, given back after it (for callers that train several configs)."""
    stack = ExitStack()
    if n and n > (os.cpu_count() or n):  # (more threads than cores wait on one another)
        warn(f"threads={n} but this machine has {os.cpu_count()} CPU cores; threads=auto picks the idle ones")
    if n:
        stack.callback(torch.set_num_threads, torch.get_num_threads())
        torch.set_num_threads(n)
    return stack


# ---- build, fit, test ----------------------------------------------------------------------------------
def make(key: str, node: dict, **extra):
    """The object a config node builds, built by its own class: a value the class refuses is the
    user's setting, named by its key (found by putting back the class's default, one at a time)."""
    cls = locate(key, node)
    args = {
        k: hydra.utils.instantiate(v, _convert_="all") if builds(v) else v for k, v in node.items() if k != "_target_"
    }
    args = as_numbers(cls, args)
    try:
        return cls(**args, **extra)
    except (ValueError, TypeError, ImportError, MisconfigurationException) as e:
        error = e
    defaults = {n: p.default for n, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}
    for name in (n for n, v in args.items() if n in defaults and v != defaults[n]):
        try:
            cls(**(args | {name: defaults[name]}), **extra)
        except Exception:
            continue
        default = defaults[name]
        hint = (
            f" (its default: {key}.{name}={show(default, False)})"
            if default is None or isinstance(default, (bool, int, float, str, list, tuple))
            else ""
        )
        raise SeqlabError(
            f"{key}.{name}={show(args[name], False)} is refused by {cls.__name__} ({one_line(error)}); "
            f"pass another value{hint}",
            f"{key}.{name}",
        ) from error
    raise SeqlabError(
        f"{key}: {cls.__name__} refuses these settings ({one_line(error)}); fix the one it names", key
    ) from error


def build(cfg: DictConfig, record: list[str] | None = None, slurm=None, start: str | None = None):
    """Data module, model and trainer from the (checked) config, each class checking what it owns;
    the checkpoint to start from (`start`, else ckpt_path) is checked against the model before
    the trainer exists."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    datamodule = make("data", plain["data"])
    if len(datamodule.hparams) < len(parameters(type(datamodule))[0]):  # (its arguments were not saved)
        raise SeqlabError(
            f"{type(datamodule).__name__}.__init__ does not call super().__init__() first, which saves its "
            f"arguments (checkpoints rebuild the data from them); add it as its first line"
        )
    # The model gets what it needs from the data (e.g. the vocabulary) as plain values, which it
    # saves in every checkpoint.
    module_cls = locate("model", plain["model"])
    given = datamodule.model_kwargs()
    if not isinstance(given, dict):
        raise SeqlabError(
            f"{type(datamodule).__name__}.model_kwargs() returned {type(given).__name__}; return a dict of plain "
            f"values (an empty one if the model needs nothing from the data)"
        )
    if odd := next((k for k, v in given.items() if not plain_value(v)), None):  # (checkpoints keep them)
        raise SeqlabError(
            f"{type(datamodule).__name__}.model_kwargs() returns {odd} as a {type(given[odd]).__name__}; return plain "
            f"values (numbers, strings, lists, dicts of them with string keys): every checkpoint keeps them (e.g. "
            f"tensor.tolist())"
        )
    takes, _, more = parameters(module_cls)
    if unknown := [k for k in given if k not in takes and not more]:
        raise SeqlabError(
            f"{type(datamodule).__name__}.model_kwargs() returns {unknown[0]}, which {module_cls.__name__} does not "
            f"take; rename it to one of its arguments ({', '.join(takes)}) or add it to them"
        )
    if both := next((k for k in given if k in plain["model"]), None):  # (the data's would win unseen)
        raise SeqlabError(
            f"{type(datamodule).__name__}.model_kwargs() returns {both}, which the model config also sets "
            f"(model.{both}={show(plain['model'][both], False)}); drop one of them"
        )
    args = as_numbers(module_cls, {k: v for k, v in plain["model"].items() if k != "_target_"} | given)
    for part in (p for p in ("optimizer", "scheduler") if args.get(p)):  # (what the module builds them from)
        args[part] = {"_target_": args[part]["_target_"]} | as_numbers(locate(f"model.{part}", args[part]), args[part])
    check_arguments("model", module_cls, args)
    try:
        model = module_cls(**args)
    except RuntimeError as e:  # e.g. no memory for its weights
        check_memory(module_cls, args, e)
        raise
    optimizer = make("model.optimizer", dict(model.hparams.optimizer), params=list(model.parameters()))
    if model.hparams.scheduler:  # (built once now so that its class checks its values)
        make(
            "model.scheduler",
            {k: v for k, v in model.hparams.scheduler.items() if k not in STEPPING_KEYS},
            optimizer=optimizer,
        )
    check_monitors(plain, model)
    graph = next((k for k, v in (plain.get("logger") or {}).items() if v and v.get("log_graph")), None)
    if graph and model.example_input_array is None:  # (Lightning would warn twice and draw nothing)
        raise SeqlabError(
            f"logger.{graph}.log_graph=true draws the network from the task's example_input_array, which the "
            f"{model.task} task does not set; drop it (or set self.example_input_array in the task's __init__)",
            f"logger.{graph}.log_graph",
        )
    start = start or (hydra.utils.to_absolute_path(cfg.ckpt_path) if cfg.get("ckpt_path") else None)
    if start:
        check_against_run(start, model, plain["data"], resumed=bool(cfg.get("resume")))
    named = {k: make(f"callbacks.{k}", v) for k, v in (plain.get("callbacks") or {}).items() if v}
    keys = {}  # (Lightning refuses, at fit, two of a kind it cannot tell apart in a checkpoint)
    for k, c in named.items():
        if (other := keys.setdefault((type(c), c.state_key), k)) != k:
            raise SeqlabError(
                f"callbacks.{other} and callbacks.{k} have the same settings (monitor, mode, intervals), and a "
                f"checkpoint cannot keep two such apart; change one (e.g. give callbacks.{other}.monitor a metric)",
                f"callbacks.{other}",
            )
    callbacks = list(named.values())
    loggers = [make(f"logger.{k}", v) for k, v in (plain.get("logger") or {}).items() if v]
    drop = (L.pytorch.callbacks.ProgressBar,) * (not plain["trainer"].get("enable_progress_bar", True))
    drop += (L.pytorch.callbacks.LearningRateMonitor,) * (not loggers)  # (Lightning refuses both, else)
    callbacks = [c for c in callbacks if not isinstance(c, drop)] + [RunRecord(record or []), AveragedInRun(), Quiet()]
    plugins = [*(plain["trainer"].get("plugins") or []), *([slurm] if slurm else [])]
    settings = plain["trainer"] | {"plugins": plugins}
    if not any(isinstance(c, L.pytorch.callbacks.Checkpoint) for c in callbacks):
        settings["enable_checkpointing"] = False  # (callbacks=none: else Lightning's own would write in the logger's)
    trainer = make("trainer", settings, callbacks=callbacks, logger=loggers or False)
    return datamodule, model, trainer


class Quiet(L.Callback):
    """What the command silences of the libraries, silenced too in each process Lightning spawns for
    a device (trainer=ddp_cpu): a fresh interpreter, without the command's warning filters."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        quiet_libraries()


def plain_value(v) -> bool:
    if isinstance(v, (list, tuple)):
        return all(plain_value(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and plain_value(x) for k, x in v.items())
    return v is None or isinstance(v, (bool, int, float, str))


def check_memory(module_cls, args: dict, error: Exception) -> None:
    """One line if the module's weights need more memory than this machine has (weighed on
    torch's meta device, which allocates nothing)."""
    try:
        with torch.device("meta"):
            needed = sum(p.numel() * p.element_size() for p in module_cls(**args).parameters())
    except Exception:  # it fails there too: not a matter of memory
        return
    have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if needed > have:
        raise SeqlabError(
            f"not enough memory for this model: its weights need {needed / 2**30:.1f} GiB, this machine "
            f"has {have / 2**30:.1f} GiB; make it smaller (e.g. model.hidden_size)",
            "model",
        ) from error


def check_monitors(cfg: dict, model) -> None:
    """Every metric a schedule, the best checkpoint or early stopping follows is one the task logs
    (else Lightning finds out at the end of the first epoch)."""
    if not isinstance(getattr(model, "metrics", None), torch.nn.ModuleDict):
        raise SeqlabError(
            f"{type(model).__name__}.__init__ does not call self.init_metrics({{...}}), which makes the metrics "
            f"that evaluate() updates; add it, e.g. self.init_metrics({{'loss': MeanMetric()}})"
        )
    known = ["train/loss", *model.metrics["val"].keys()]
    places = {
        "model.monitor": cfg["model"].get("monitor"),
        "model.scheduler.monitor": (cfg["model"].get("scheduler") or {}).get("monitor"),
    }
    places |= {f"callbacks.{k}.monitor": v.get("monitor") for k, v in (cfg.get("callbacks") or {}).items() if v}
    for k, v in (cfg.get("callbacks") or {}).items():  # ({val_loss:.3f}: a name the task never logs reads 0)
        for name in re.findall(r"\{([^:}]*)", str((v or {}).get("filename", ""))):
            if name not in ("epoch", "step", *known):
                warn(
                    f"callbacks.{k}.filename names {{{name}}}, which the {model.task} task does not log: it is written "
                    f"as 0; use epoch, step or one of {', '.join(known)}"
                )
    for key, value in places.items():
        if value is not None and value not in known:
            raise SeqlabError(
                f"{key}={value} is not a metric the {model.task} task logs; pick one of {', '.join(known)} (a "
                f"task's metrics are those its init_metrics({{...}}) makes: a value self.log writes is not known "
                f"before the run)",
                key,
            )
    sched, every = cfg["model"].get("scheduler") or {}, cfg["trainer"].get("check_val_every_n_epoch") or 1
    if "monitor" in sched and sched.get("interval", "epoch") == "epoch" and every > sched.get("frequency", 1):
        raise SeqlabError(  # (Lightning would find no value to step on, at the end of the first epoch)
            f"model.scheduler follows {sched['monitor'] or cfg['model']['monitor']} each epoch, and the run validates "
            f"every {every} epochs (trainer.check_val_every_n_epoch={every}); pass model.scheduler.frequency={every}",
            "model.scheduler.frequency",
        )


def slurm_requeue():
    """On SLURM, Lightning's auto-requeue: the pre-emption signal saves an HPC checkpoint in the run
    folder and requeues the job, which then resumes (see `start_from`). Under the slurm launcher
    (submitit) that signal is submitit's USR2, whose own handler would requeue without a
    checkpoint: Lightning's takes its place. None when not on SLURM."""
    import signal

    from lightning.fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return None
    name = (
        os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2") if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" else "USR1"
    )
    signal.signal(getattr(signal, f"SIG{name}"), signal.SIG_DFL)
    try:
        return SLURMEnvironment(auto_requeue=True, requeue_signal=getattr(signal, f"SIG{name}"))
    except RuntimeError as e:  # (its check of the job's srun settings, e.g. --ntasks without srun)
        raise SeqlabError(
            f"Lightning refuses this SLURM job's settings: {str(e).rstrip('.')}; nothing was kept"
        ) from None


def start_from(cfg: DictConfig, out_dir: Path) -> str | None:
    """The checkpoint this run starts from: ckpt_path, a resumed run's last.ckpt, or, for a SLURM job
    started again after a requeue, its newest (the pre-emption's HPC checkpoint or a later last.ckpt)."""
    if cfg.get("ckpt_path") or cfg.get("resume"):
        return (
            hydra.utils.to_absolute_path(cfg.ckpt_path)
            if cfg.get("ckpt_path")
            else str(out_dir / "checkpoints" / "last.ckpt")
        )
    found = [*out_dir.glob("hpc_ckpt_*.ckpt"), *out_dir.glob("checkpoints/last.ckpt")] if rundir.requeued() else []
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


def train(cfg: DictConfig, record: list[str] | None = None, command: str = "seqlab-train") -> tuple[dict, str | None]:
    """Fit, then test the best checkpoint, in the folder cfg.paths.output_dir; returns the metrics and
    the best checkpoint's path. `record`: the overrides each checkpoint keeps (resume= replays them)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    out_dir = Path(cfg.paths.output_dir)
    ckpt_path = start_from(cfg, out_dir)
    start = read_checkpoint(ckpt_path) if ckpt_path else {}  # a missing or corrupt file fails now
    done = start.get("seqlab_resume", {}).get("epochs_done", start.get("epoch", 0))  # whole epochs it trained
    # (an epoch that trainer.max_steps cut short, Lightning counts as done: it would train nothing more)
    loop = start.get("loops", {}).get("fit_loop", {})
    counted = loop.get("epoch_progress", {}).get("current", {}).get("processed", 0)
    cut, done = counted > done, max(done, counted)
    batches = loop.get("epoch_loop.batch_progress", {})
    mid_epoch = batches.get("current", {}).get("processed") and not batches.get("is_last_batch") and not cut
    if mid_epoch and cfg.get("train", True) and not loop.get("state_dict", {}).get("combined_loader") and not rank():
        warn(  # (a loader with state_dict()/load_state_dict() keeps it; Lightning would skip nothing)
            f"{ckpt_path} stopped in the middle of an epoch, and its training loader kept no position (it has no "
            f"state_dict()): the epoch goes on from a fresh start, so some batches are read twice and others not "
            f"at all; return self.batches(…) from train_dataloader() to resume in place"
        )
    if cfg.get("resume") and mid_epoch:
        saved, data = start.get("datamodule_hyper_parameters", {}), OmegaConf.to_container(cfg.data, resolve=True)
        saved, data = run_paths(saved, start), run_paths(data, start)  # (relative: the start folder's file)
        if changed := next((k for k in saved if k in data and data[k] != saved[k]), None):  # (mid-epoch)
            raise SeqlabError(
                f"resume= goes on from the middle of an epoch, at a place counted in the batches of "
                f"data.{changed}={show(saved[changed], False)}; drop data.{changed}=…, or resume from an epoch's end",
                f"data.{changed}",
            )
    slurm = slurm_requeue()
    datamodule, model, trainer = build(cfg, record, slurm, start=ckpt_path)
    max_epochs = cfg.trainer.get("max_epochs")
    if ckpt_path and max_epochs not in (None, -1) and done >= max_epochs and cfg.get("train", True):
        whose = "the run" if cfg.get("resume") else f"ckpt_path={ckpt_path}"
        raise SeqlabError(
            f"{whose} has trained {done} epoch{'s' * (done != 1)}{' (the last cut short by trainer.max_steps)' * cut}, "
            f"all that trainer.max_epochs="
            f"{max_epochs} asks for; pass trainer.max_epochs={done + 1} or more to train on (or "
            f"train=false to test it)",
            "trainer.max_epochs",
        )
    averaged = any(isinstance(c, L.pytorch.callbacks.WeightAveraging) for c in trainer.callbacks)
    if "current_model_state" in start and not averaged and cfg.get("train", True) and not rank():
        warn(  # (Lightning's note names the callback class, not the setting)
            f"ckpt_path={ckpt_path} was trained with a weight average (callbacks=ema): without one this run starts "
            f"from the averaged weights; pass callbacks=ema to go on from the trained weights and their average"
        )
    timer = next((c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.Timer)), None)
    used = next((v for k, v in start.get("callbacks", {}).items() if k.startswith("Timer")), {})
    used = used.get("time_elapsed", {}).get("train", 0)  # (a checkpoint's timer keeps the time trained so far)
    if ckpt_path and timer and used >= timer.time_remaining() and cfg.get("train", True):
        whose = "the run" if cfg.get("resume") else f"ckpt_path={ckpt_path}"
        raise SeqlabError(
            f"{whose} has trained {used:.0f} s, all that trainer.max_time={cfg.trainer.max_time} allows; pass a "
            f"larger trainer.max_time to train on (or train=false to test it)",
            "trainer.max_time",
        )
    if ckpt_path:
        rank() or print(
            f"starting from {ckpt_path} (step {start.get('global_step', 0)}, {done} epochs done)", file=sys.stderr
        )
    stop = GracefulStop(
        out_dir / "checkpoints", resume_command(command, out_dir), keep=(slurm.requeue_signal,) if slurm else ()
    )
    trainer.callbacks.append(stop)
    if ckpt_path and Path(ckpt_path).resolve().is_relative_to(out_dir.resolve()):  # resume=: maybe a moved folder
        trainer.callbacks.append(MovedRun(out_dir / "checkpoints"))
    monitor = cfg.model.monitor
    hp_keys = hp_metric_keys(monitor)
    for lg in trainer.loggers:
        # The run in TensorBoard's HPARAMS tab, with the metrics it gets at the end (NaN until then,
        # never a made-up -1); other loggers take no metrics here.
        tb = isinstance(lg, L.pytorch.loggers.TensorBoardLogger)
        lg.log_hyperparams(hparams_of(cfg), *([{k: float("nan") for k in hp_keys}] if tb else []))
    metrics = {}
    with ExitStack() as signals:
        signals.callback(stop.uninstall)
        signals.enter_context(stopped_together(stop))
        if cfg.trainer.get("overfit_batches"):  # (seqlab's batches repeat by themselves: no sampler to stop shuffling)
            signals.enter_context(warnings.catch_warnings())
            warnings.filterwarnings("ignore", category=UserWarning, module=r"lightning\.pytorch\.trainer\.connectors")
        stop.install()
        if cfg.get("train", True):
            begun = time.perf_counter()
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            metrics["time/fit_s"] = time.perf_counter() - begun
            if timer and timer.time_remaining() <= 0 and not trainer.interrupted and not rank():
                epochs = f"{trainer.current_epoch} epoch{'s' * (trainer.current_epoch != 1)}"
                warn(
                    f"trainer.max_time={cfg.trainer.max_time} ended the training after {epochs}; to train on: "
                    f"{resume_command(command, out_dir)} trainer.max_time=<a longer time>"
                )
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best and not Path(best).is_file():  # (removed by hand, or another run's name in a copied last.ckpt)
            warn(f"the best checkpoint {best} is not there; the test uses the last weights")
            best = ""
        if cfg.get("test", True):  # the best checkpoint; else what the run starts from, or the current weights
            test_from = best or (ckpt_path if not cfg.get("train", True) else None)
            # (a weight average's callback would load the trained weights a checkpoint keeps beside the
            # average, which is what validation chose the best checkpoint by and what seqlab-eval reads)
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, L.pytorch.callbacks.WeightAveraging)]
            # (the report lists the test metrics: Lightning's table too would say them twice)
            trainer.test(model, datamodule=datamodule, ckpt_path=test_from, weights_only=True, verbose=False)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
        if stop.received is not None:  # a signal after the last step: the run is complete, say so anyway
            raise Interrupted(
                stop.received, "stopped by a signal after the run ended; its checkpoints are complete", saved=True
            )
    score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    if score is not None and math.isfinite(float(score)):
        metrics[f"best/{monitor}"] = float(score)
    if cfg.get("train", True) and monitor not in metrics and rank() == 0:
        empty = trainer.num_val_batches and not any(trainer.num_val_batches)
        limit = cfg.trainer.get("limit_val_batches")
        warn(
            f"{monitor} was never measured, so no best checkpoint was kept; "
            + (
                f"trainer.limit_val_batches={limit} validates on nothing: drop it, or pass 1.0"
                if limit == 0
                else f"{type(datamodule).__name__}.val_dataloader() gave no batches: give it the validation data"
                if empty  # (else e.g. fewer epochs than trainer.check_val_every_n_epoch)
                else f"it validates once every {every} epochs (trainer.check_val_every_n_epoch={every}), and the run "
                f"ended first; pass trainer.check_val_every_n_epoch=1"
                if (every := cfg.trainer.get("check_val_every_n_epoch")) and every > 1
                else "check trainer.val_check_interval against the run's length"
            )
        )
    if cfg.get("train", True) and not math.isfinite(metrics.get(monitor, 0.0)) and rank() == 0:
        warn(  # (Lightning keeps a checkpoint anyway, and the value a sweep reads is none)
            f"{monitor} is {metrics[monitor]}: {type(model).__name__}.evaluate() gave its metric no finite number, so "
            f"no checkpoint was chosen by it; check what evaluate() updates"
        )
    sources = (f"best/{monitor}", monitor, "test/" + monitor.split("/", 1)[-1])
    final = {k: metrics[src] for k, src in zip(hp_keys, sources, strict=True) if src in metrics}
    for lg in trainer.loggers:
        lg.log_metrics(final, step=trainer.global_step)
        lg.save()
    return metrics, best or None


@contextmanager
def stopped_together(stop: GracefulStop):
    """trainer=ddp_cpu: the processes Lightning spawned stop on the same signal as this one, and
    say so (GracefulStop); this one then exits with the signal's status, saying nothing more."""
    try:
        yield
    except torch.multiprocessing.ProcessExitedException:
        if stop.received is None:
            raise
        raise Interrupted(stop.received, "") from None


def hp_metric_keys(monitor: str) -> tuple[str, str, str]:
    """HPARAMS-tab metrics: best and last monitored value, and its test counterpart."""
    name = monitor.split("/", 1)[-1]
    return f"hp/best_{name}", f"hp/{name}", f"hp/test_{name}"


def hparams_of(cfg: DictConfig) -> dict:
    """The run's hyperparameters as plain values: data, model, optimisation, seed."""
    keep = {k: cfg.trainer.get(k) for k in ("max_epochs", "gradient_clip_val", "accumulate_grad_batches", "precision")}
    nodes = {
        part: {k: v for k, v in OmegaConf.to_container(cfg[part], resolve=True).items() if k != "_target_"}
        for part in ("data", "model")
    }
    return {"experiment": cfg.get("name"), "seed": cfg.get("seed"), **nodes, "trainer": keep}


def report(cfg: DictConfig, out_dir: Path, metrics: dict, best: str | None) -> None:
    lines = [f"{k:>16s}: {v:.4f}" for k, v in sorted(metrics.items()) if "/" in k and not k.endswith("_step")]
    lines += [f"best checkpoint: {best}"] if best else []
    boards = [  # (where each TensorBoard logger writes: the run folder, unless its save_dir is set elsewhere)
        v.save_dir
        for k, v in (cfg.logger or {}).items()
        if v
        and issubclass(locate(f"logger.{k}", OmegaConf.to_container(v)), L.pytorch.loggers.TensorBoardLogger)
        and not OmegaConf.select(cfg, "trainer.fast_dev_run")  # (Lightning's fast_dev_run logs nothing)
    ]
    lines += [f"run directory:   {out_dir}"] + [
        f"TensorBoard:     tensorboard --logdir {shlex.quote(os.path.abspath(d))}" for d in boards[:1]
    ]
    monitor = cfg.model.monitor
    print("\n".join(lines + ([f"{monitor} = {metrics[monitor]:.4f}"] if monitor in metrics else [])))


main = tool_main("train", run)

if __name__ == "__main__":
    main()
