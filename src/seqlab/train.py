"""Train a task, then test its best checkpoint.

    seqlab-train experiment=<name> key=value ...          (or: python -m seqlab.train …)
    seqlab-train -m experiment=charlm model.optimizer.lr=1e-3,3e-3   # grid sweep

Returns the monitored metric (e.g. val/loss) so Hydra sweepers can optimise it. The flow:
check the config, build data -> model -> callbacks/loggers -> trainer, fit, test the best
checkpoint, record the result.
"""

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from seqlab.callbacks import GracefulStop, MovedRun
from seqlab.checkpoint import check_against_run, read_checkpoint
from seqlab.cli import command_name, entry_point
from seqlab.errors import Interrupted, SeqlabError
from seqlab.resume import resume_args
from seqlab.validation import check_config, check_monitors, check_node, locate


def instantiate_list(cfg: DictConfig | None) -> list:
    """Every entry of a config group that holds several objects (callbacks, loggers)."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c, _convert_="all") for c in cfg.values() if c and "_target_" in c]


def defaults_of(cfg: DictConfig):
    """`example(key)`: the value a key has in the experiment without the command line's values
    (for error messages: 'pass e.g. model.dropout=0.1'). Composed only when an error needs it."""
    cache = {}

    def example(key: str):
        if "cfg" not in cache:
            cache["cfg"] = OmegaConf.create({})
            try:
                from hydra import compose
                from hydra.core.hydra_config import HydraConfig

                from seqlab.cli import CONF_DIR
                from seqlab.config_errors import group_options

                groups = [o for o in HydraConfig.get().overrides.task
                          if "=" in o and group_options(o.split("=")[0].lstrip("+~").replace(".", "/"), [CONF_DIR])]
                cache["cfg"] = compose(config_name="train", overrides=groups)
            except Exception:  # outside a Hydra run (tests): the annotations give an example
                pass
        value = OmegaConf.select(cache["cfg"], key, default=None, throw_on_resolution_failure=False)
        return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value

    return example


def build(cfg: DictConfig, plain: dict | None = None):
    """Data module, model and trainer from the composed (and checked) config; a checkpoint to
    start from (ckpt_path) is checked against the model before the trainer exists."""
    plain = plain or OmegaConf.to_container(cfg, resolve=True)
    data_node, model_node = dict(plain["data"]), dict(plain["model"])
    datamodule = locate("data", data_node)(**{k: v for k, v in data_node.items() if k != "_target_"})
    # The model gets what it needs from the data (e.g. the vocabulary) as plain values, which
    # it saves in every checkpoint.
    extra = datamodule.model_kwargs()
    module_cls = locate("model", model_node)
    args = {k: v for k, v in model_node.items() if k != "_target_"}
    check_node("model", module_cls, args, f"the {module_cls.task} model", provided=extra)
    model = module_cls(**args, **extra)
    check_monitors(plain, model)
    if cfg.get("ckpt_path"):
        check_against_run(hydra.utils.to_absolute_path(cfg.ckpt_path), model, data_node)
    callbacks = instantiate_list(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):
        # trainer.enable_progress_bar=false alone switches the bar off (Lightning refuses both).
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ProgressBar)]
    loggers = instantiate_list(cfg.get("logger"))
    if not loggers:  # logger=none: the learning rate has nowhere to go (Lightning refuses the monitor)
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)]
    slurm = slurm_requeue()
    plugins = {"plugins": [*(plain["trainer"].get("plugins") or []), slurm]} if slurm else {}
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, _convert_="all", **plugins
    )
    return datamodule, model, trainer


def slurm_requeue():
    """On SLURM, Lightning's auto-requeue: the pre-emption signal saves an HPC checkpoint in the
    run folder and requeues the job, which then resumes (see `requeued_checkpoint`). Under the
    slurm launcher (submitit) that signal is submitit's USR2, whose own handler would requeue
    without a checkpoint: Lightning's takes its place. None when not on SLURM."""
    import os
    import signal

    from lightning.fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return None
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2") if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" else "USR1"
    requeue_signal = getattr(signal, f"SIG{name}")
    signal.signal(requeue_signal, signal.SIG_DFL)
    return SLURMEnvironment(auto_requeue=True, requeue_signal=requeue_signal)


def requeued_checkpoint(out_dir: Path) -> str | None:
    """A SLURM job started again after a requeue continues from its newest checkpoint (the HPC
    checkpoint of the pre-emption, or a later last.ckpt)."""
    from seqlab.rundir import requeued

    if not requeued():
        return None
    found = [*out_dir.glob("hpc_ckpt_*.ckpt"), *out_dir.glob("checkpoints/last.ckpt")]
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


@contextmanager
def torch_threads(n: int | None):
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)  # (for callers that train several configs in one process)


def train(cfg: DictConfig) -> tuple[dict, str | None]:
    """Fit, then test the best checkpoint; returns the metrics and the best checkpoint's path."""
    from seqlab import rundir

    plain = OmegaConf.to_container(cfg, resolve=True)
    check_config(plain, defaults_of(cfg))
    out_dir = Path(cfg.paths.output_dir)
    rundir.hold(out_dir)  # a resume= of this folder meanwhile is refused
    try:
        with torch_threads(cfg.get("threads")):
            return _train(cfg, plain)
    finally:
        rundir.release(out_dir)


def _train(cfg: DictConfig, plain: dict) -> tuple[dict, str | None]:
    if not cfg.get("train", True) and not cfg.get("test", True):
        raise SeqlabError("train=false and test=false leave nothing to do; drop one of them "
                          "(seqlab-eval ckpt_path=… tests a checkpoint)")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    ckpt_path = (hydra.utils.to_absolute_path(cfg.ckpt_path) if cfg.get("ckpt_path")
                 else requeued_checkpoint(Path(cfg.paths.output_dir)))
    done = read_checkpoint(ckpt_path).get("epoch", 0) if ckpt_path else 0  # a missing or corrupt file fails now
    datamodule, model, trainer = build(cfg, plain)  # (checks the checkpoint's task and network against the run)
    max_epochs = cfg.trainer.get("max_epochs")
    if ckpt_path and max_epochs not in (None, -1) and done >= max_epochs and cfg.get("train", True):
        raise SeqlabError(f"{ckpt_path} stopped at epoch {done}, past trainer.max_epochs={max_epochs}; pass "
                          f"trainer.max_epochs={done + 2} or more to train on from it (or train=false to test it)")
    out_dir = Path(cfg.paths.output_dir)
    for stale in (out_dir / "checkpoints").glob(".*.ckpt.*.tmp"):  # a save that a kill cut short
        stale.unlink(missing_ok=True)
    stop = GracefulStop(out_dir / "checkpoints", f"{command_name('train')} resume={out_dir}")
    trainer.callbacks.append(stop)
    if ckpt_path and Path(ckpt_path).resolve().is_relative_to(out_dir.resolve()):  # resume=: maybe a moved folder
        trainer.callbacks.append(MovedRun(out_dir / "checkpoints"))
    monitor = cfg.model.monitor
    hp_keys = hp_metric_keys(monitor)
    for lg in trainer.loggers:
        # Registers the run in TensorBoard's HPARAMS tab with the metrics it will get at the end
        # (NaN until then, never a made-up -1).
        if isinstance(lg, L.pytorch.loggers.TensorBoardLogger):
            lg.log_hyperparams(hparams_of(cfg), {k: float("nan") for k in hp_keys})
        else:  # e.g. CSVLogger takes no metrics here
            lg.log_hyperparams(hparams_of(cfg))

    metrics = {}
    stop.install()
    try:
        if cfg.get("train", True):
            start = time.perf_counter()
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            metrics["time/fit_s"] = time.perf_counter() - start
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.get("test", True):
            # fast_dev_run and runs without a checkpoint callback test the current weights.
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
        if stop.received is not None:  # a signal after the last step: the run is complete, say so anyway
            raise Interrupted("stopped by a signal after the run ended; its checkpoints are complete", 128 + stop.received, True)
    finally:
        stop.uninstall()
    score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    if score is not None and math.isfinite(float(score)):
        metrics[f"best/{monitor}"] = float(score)
    final = {k: metrics[src] for k, src in zip(hp_keys, (f"best/{monitor}", monitor, "test/" + monitor.split("/", 1)[-1]))
             if src in metrics}
    for lg in trainer.loggers:
        lg.log_metrics(final, step=trainer.global_step)
        lg.save()
    return metrics, best or None


def hp_metric_keys(monitor: str) -> tuple[str, str, str]:
    """HPARAMS-tab metrics: best and last monitored value, and its test counterpart."""
    name = monitor.split("/", 1)[-1]
    return f"hp/best_{name}", f"hp/{name}", f"hp/test_{name}"


def hparams_of(cfg: DictConfig) -> dict:
    """The run's hyperparameters as plain values: data, model, optimisation, seed."""
    keep = {k: cfg.trainer.get(k) for k in ("max_epochs", "gradient_clip_val", "accumulate_grad_batches", "precision")}
    return {
        "experiment": cfg.get("name"),
        "seed": cfg.get("seed"),
        "data": {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "_target_"},
        "model": {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"},
        "trainer": keep,
    }


def report(cfg: DictConfig, out_dir: str, metrics: dict, best: str | None) -> None:
    lines = [f"{k:>16s}: {v:.4f}" for k, v in sorted(metrics.items()) if "/" in k and not k.endswith("_step")]
    print("\n".join(lines))
    if best:
        print(f"best checkpoint: {best}")
    print(f"run directory:   {out_dir}")
    print(f"TensorBoard:     tensorboard --logdir {Path(out_dir)}")
    if cfg.model.monitor in metrics:
        print(f"{cfg.model.monitor} = {metrics[cfg.model.monitor]:.4f}")


TASKS = sorted((p.name for p in Path(__file__).with_name("tasks").iterdir() if p.is_dir()), key=len, reverse=True)


def check_command_line(args: list[str]) -> list[str]:
    """Mistakes that would otherwise surface only after Hydra made folders (a run's name) or
    deep inside a sweeper or launcher; then `resume=`."""
    import os
    import shutil

    from seqlab import rundir
    from seqlab.cli import _config_dirs
    from seqlab.config_errors import resolve
    from seqlab.validation import check_name

    if any(a.startswith("resume=") for a in args) and any(a in ("-m", "--multirun") for a in args):
        raise SeqlabError("resume= continues one run and cannot be swept; drop -m (resume each sweep job's "
                          "folder on its own: resume=outputs/<name>/multirun/<time>/<job>)")
    if "SEQLAB_ROOT" in os.environ and not os.environ["SEQLAB_ROOT"].strip():  # else outputs/ lands in /
        raise SeqlabError("the SEQLAB_ROOT environment variable is empty; set it to the folder that holds outputs/ "
                          "(export SEQLAB_ROOT=$PWD) or unset it")
    sweep = any(a in ("-m", "--multirun") for a in args)
    claim = None  # a run folder given by hand, taken once every check has passed
    search = next((a.split("=", 1)[1] for a in args if a.startswith("hparams_search=")), "")
    search_task = next((t for t in TASKS if search.startswith(t + "_")), None)
    if search_task:  # its search space names the task's keys; some exist in every task and would train
        choices = [a for a in args if a.startswith("experiment=") and "," not in a]
        target = str(resolve("model._target_", "train", _config_dirs(args), choices) or "")
        task = target.split(".")[2] if target.startswith("seqlab.tasks.") else search_task
        if task != search_task:
            experiment = choices[0].split("=", 1)[1] if choices else "charlm"
            raise SeqlabError(f"hparams_search={search} searches the {search_task} task, but experiment={experiment} "
                              f"trains {task}; pass experiment={search_task} (or hparams_search={task}_optuna)")
    for a in args:
        key, _, value = a.lstrip("+").partition("=")
        if a.startswith("~") and key.lstrip("~") in ("model", "data", "trainer", "paths", "hydra", "name"):
            node = key.lstrip("~")
            raise SeqlabError(f"{a} removes the {node} settings every run needs; drop it"
                              + ("" if node == "name" else f" (another {node} config is picked with {node}=<option>)"))
        if key == "experiment" and sweep and "," in value:
            raise SeqlabError(f"experiment={value} sweeps over experiments, whose jobs would share one sweep folder; "
                              f"sweep one experiment at a time: -m experiment={value.split(',')[0]} …")
        if key == "name":
            check_name(value.strip("'\""))
        elif key in ("paths.root_dir", "hydra.sweep.dir") and not value.strip("'\""):
            raise SeqlabError(f"{key} is empty; pass a folder (e.g. {key}=.) or leave it out")
        elif key == "hydra.sweep.subdir" and "${" not in value:
            raise SeqlabError(f"hydra.sweep.subdir={value} would put every job of the sweep in one folder; keep "
                              f"${{hydra.job.num}} in it, e.g. 'hydra.sweep.subdir={value}_${{hydra.job.num}}'")
        elif key == "hydra.run.dir" and not any(x.startswith("resume=") for x in args):
            path = value.strip("'\"")
            if "${" in path and "${now:" not in path and "unique_dir" not in path:  # e.g. outputs/${name}
                path = resolve("hydra.run.dir", "train", _config_dirs(args), args)
            if path is not None:
                rundir.check_given(str(path))
                claim = None if "${" in str(path) else str(path)
        elif key.startswith("hydra.sweeper.params."):  # its keys hold dots (model.lr), which an override cannot name
            name = key.removeprefix("hydra.sweeper.params.")
            raise SeqlabError(f"{key} cannot be set on the command line; give the search range as the key itself: "
                              f"-m hparams_search=… '{name}={value.strip(chr(34) + chr(39)) or 'choice(1,2)'}'")
        elif key == "hydra/launcher" and value == "slurm" and sweep and not shutil.which("sbatch"):
            raise SeqlabError("hydra/launcher=slurm submits each job with SLURM's sbatch, which this machine does not "
                              "have; run the command on a SLURM login node, or use hydra/launcher=parallel to run the "
                              "jobs here")
        elif key == "hydra.launcher.backend" and value not in ("loky", "multiprocessing", "threading"):
            raise SeqlabError(f"{key} must be loky, multiprocessing or threading (joblib's backends), got {value}; "
                              f"leave it out for loky")
        elif key == "hydra.sweeper.max_failure_rate":
            try:
                ok = 0 <= float(value) <= 1
            except ValueError:
                ok = False
            if not ok:
                raise SeqlabError(f"{key} must be a number in [0, 1] (the share of trials that may fail), got {value}; "
                                  f"pass e.g. {key}=0.2")
        elif key in ("hydra.sweeper.n_trials", "hydra.sweeper.n_jobs") and (not value.isdigit() or int(value) < 1):
            raise SeqlabError(f"{key} must be an integer >= 1, got {value}; pass e.g. {key}={20 if 'trials' in key else 1}")
        elif key == "hydra.launcher.n_jobs" and not (value == "-1" or (value.isdigit() and int(value) >= 1)):
            raise SeqlabError(f"{key} must be an integer >= 1 (or -1: every core), got {value}; pass e.g. {key}=2")
        elif key == "hydra.sweeper.direction" and value not in ("minimize", "maximize"):
            raise SeqlabError(f"{key} must be minimize or maximize, got {value}; leave it out: it follows model.monitor_mode")
    args = resume_args(args)
    if claim is not None and not sweep:
        rundir.claim(claim)
    return args


@entry_point("train", rewrite=check_command_line)
def main(cfg: DictConfig) -> float | None:
    metrics, best = train(cfg)
    out_dir = cfg.paths.output_dir
    report(cfg, out_dir, metrics, best)
    monitor = cfg.model.monitor
    value = metrics.get(f"best/{monitor}", metrics.get(monitor))
    value = value if value is not None and math.isfinite(value) else None
    # What a sweep summary reads back (seqlab.sweep.SweepSummary).
    result = {"monitor": monitor, "value": value, "best_checkpoint": best, "metrics": metrics}
    Path(out_dir, "result.json").write_text(json.dumps(result, indent=2))
    return value


if __name__ == "__main__":
    main()
