"""Train a task, then test its best checkpoint.

    python -m seqlab.train experiment=<name> key=value ...
    python -m seqlab.train -m experiment=charlm model.lr=1e-3,3e-3     # grid sweep

Returns the monitored metric (e.g. val/loss) so Hydra sweepers can optimise it.
"""

import json
import math
import time
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from seqlab.cli import entry_point
from seqlab.checkpoint import read_checkpoint


def instantiate_list(cfg: DictConfig | None) -> list:
    """Instantiate every entry of a config group that holds several objects (callbacks, loggers)."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c, _convert_="all") for c in cfg.values() if c and "_target_" in c]


def check_devices(trainer_cfg: DictConfig) -> None:
    """More CPU processes than cores is legal for Lightning but never what anyone wants (and
    with gloo it can hang); GPUs that do not exist Lightning reports itself."""
    import os

    from seqlab.errors import SeqlabError

    devices = trainer_cfg.get("devices")
    if trainer_cfg.get("accelerator") == "cpu" and isinstance(devices, int) and devices > (os.cpu_count() or 1):
        raise SeqlabError(f"trainer.devices={devices} but this machine has {os.cpu_count()} CPU cores; "
                          f"pass trainer.devices={os.cpu_count()} or fewer")


def build(cfg: DictConfig):
    """Data module, model and trainer from the composed config."""
    check_devices(cfg.trainer)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    # The model gets what it needs from the data (e.g. the vocabulary) as plain values,
    # which save_hyperparameters() stores in every checkpoint.
    model = hydra.utils.instantiate(cfg.model, **datamodule.model_kwargs(), _convert_="all")
    callbacks = instantiate_list(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):
        # trainer.enable_progress_bar=false alone switches the bar off (Lightning refuses both).
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ProgressBar)]
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=instantiate_list(cfg.get("logger")) or False, _convert_="all"
    )
    return datamodule, model, trainer


def train(cfg: DictConfig) -> tuple[dict, str | None]:
    """Fit, then test the best checkpoint; returns the metrics and the best checkpoint's path."""
    import torch

    threads = torch.get_num_threads()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    try:
        return _train(cfg)
    finally:
        torch.set_num_threads(threads)  # (for callers that train several configs in one process)


def _train(cfg: DictConfig) -> tuple[dict, str | None]:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        read_checkpoint(ckpt_path)  # a missing or corrupt file fails now, before anything is written
    datamodule, model, trainer = build(cfg)
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
    if cfg.get("train", True):
        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics["time/fit_s"] = time.perf_counter() - start
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test", True):
        # fast_dev_run and runs without a checkpoint callback test the current weights.
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
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


def report(cfg: DictConfig, trainer_dir: str, metrics: dict, best: str | None) -> None:
    monitor = cfg.model.get("monitor")
    lines = [f"{k:>16s}: {v:.4f}" for k, v in sorted(metrics.items()) if "/" in k and not k.endswith("_step")]
    print("\n".join(lines))
    if best:
        print(f"best checkpoint: {best}")
    print(f"run directory:   {trainer_dir}")
    print(f"TensorBoard:     tensorboard --logdir {Path(trainer_dir)}")
    if monitor in metrics:
        print(f"{monitor} = {metrics[monitor]:.4f}")


@entry_point("train")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    metrics, best = train(cfg)
    out_dir = HydraConfig.get().runtime.output_dir
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
