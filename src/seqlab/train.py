"""Train a task, then test its best checkpoint.

    python -m seqlab.train experiment=<name> key=value ...
    python -m seqlab.train -m experiment=charlm model.lr=1e-3,3e-3     # grid sweep

Returns the monitored metric (e.g. val/loss) so Hydra sweepers can optimise it.
"""

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


def build(cfg: DictConfig):
    """Data module, model and trainer from the composed config."""
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
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        read_checkpoint(ckpt_path)  # a missing or corrupt file fails now, before anything is written
    datamodule, model, trainer = build(cfg)
    for lg in trainer.loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

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
    return metrics, best or None


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
    report(cfg, HydraConfig.get().runtime.output_dir, metrics, best)
    value = metrics.get(cfg.model.get("monitor"))
    if value is None or not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    main()
