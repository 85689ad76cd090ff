"""Lightning glue every task shares: the optimizer/scheduler recipe and checkpoint tagging."""

import inspect

import lightning as L
import torch

from seqlab.errors import SeqlabError

SCHEDULERS = ("plateau", "multistep", "none")


class SeqlabModule(L.LightningModule):
    """Base class of the task modules.

    Subclasses set `task` (the registry name written into checkpoints) and
    `monitor` (the metric the scheduler and the best checkpoint follow) and call
    `save_hyperparameters()` with plain Python values only, so checkpoints load
    with torch's default `weights_only=True`.

    Optimizer hyperparameters read from `self.hparams`: lr, weight_decay, betas, eps,
    scheduler ('plateau' | 'multistep' | 'none'), plateau_factor, plateau_patience,
    plateau_monitor and plateau_mode (optional; default: monitor and monitor_mode),
    lr_milestones, lr_gamma, monitor.
    """

    task: str = ""

    def save_hyperparameters(self, *args, logger: bool = False, **kwargs) -> None:
        # Not sent to the logger here: seqlab.train logs the run's clean config to the
        # HPARAMS tab itself, with the real final metrics (the vocabulary would be noise there).
        super().save_hyperparameters(*args, logger=logger, frame=__import__("inspect").currentframe().f_back, **kwargs)

    # ---- resuming mid-epoch ------------------------------------------------------------
    # Lightning restores weights, optimizer, loops and callbacks, but not the random state nor a
    # task's own running state (e.g. the char-LM's carried hidden state). Both are saved with
    # every checkpoint and put back at the first training step of the resumed run: after the
    # sanity check and the data loaders (which draw from the same generator) have started.

    def train_state(self) -> dict:
        """A task's running training state to resume from (plain values and tensors)."""
        return {}

    def load_train_state(self, state: dict) -> None:
        """Put back what `train_state` saved; called at the resumed run's first training step."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["seqlab_task"] = self.task
        resume = {"step": self.trainer.global_step if self._trainer else -1, "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            resume["cuda_rng"] = torch.cuda.get_rng_state_all()
        checkpoint["seqlab_resume"] = resume | (self.train_state() if self._trainer else {})

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._resume = checkpoint.get("seqlab_resume")

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        saved, self._resume = getattr(self, "_resume", None), None
        if saved is not None and saved["step"] == self.trainer.global_step:
            torch.set_rng_state(saved["torch_rng"])
            if "cuda_rng" in saved and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(saved["cuda_rng"])
            self.load_train_state(saved)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.Adam(
            self.parameters(),
            lr=hp.lr,
            betas=tuple(hp.get("betas", (0.9, 0.999))),
            eps=hp.get("eps", 1e-8),
            weight_decay=hp.get("weight_decay", 0.0),
        )
        scheduler = hp.get("scheduler", "none")
        if scheduler == "plateau":
            # By default the plateau follows `monitor`; `plateau_monitor` (e.g. train/loss, as a
            # tutorial does) lets the best checkpoint follow another metric than the LR schedule.
            monitor = hp.get("plateau_monitor") or hp.monitor
            mode = hp.get("plateau_mode") or (hp.get("monitor_mode", "min") if monitor == hp.monitor else "min")
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="min" if mode == "min" else "max",
                factor=hp.get("plateau_factor", 0.5), patience=hp.get("plateau_patience", 5),
            )
            # Lightning needs the dict form with `monitor` for ReduceLROnPlateau.
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": monitor, "interval": "epoch"}}
        if scheduler == "multistep":
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(hp.lr_milestones), gamma=hp.lr_gamma)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if scheduler == "none":
            return opt
        raise SeqlabError(f"model.scheduler={scheduler!r} is not one of {', '.join(SCHEDULERS)}")

    def respond_options(self) -> set[str]:
        """Keyword options `respond` takes (generate passes only those)."""
        return set(inspect.signature(self.respond).parameters) - {"prompt"}

    def tensorboard(self):
        """The TensorBoard SummaryWriter of this run, or None (no TensorBoard logger, or not rank 0)."""
        from lightning.pytorch.loggers import TensorBoardLogger

        if self._trainer is None or not self.trainer.is_global_zero:
            return None
        for logger in self.trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        return None
