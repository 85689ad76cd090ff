"""Callbacks every task can use."""

import time

import lightning as L
import torch


class LogExamples(L.Callback):
    """At the end of each `every_n_epochs`-th validation, asks the module to draw what a person
    would rather look at than read (generated text, tables, pictures): the module's
    `log_examples(writer)` gets the TensorBoard SummaryWriter. Rank 0 only; skipped during the
    sanity check. The time it takes is logged as `time/log_examples_s`."""

    def __init__(self, every_n_epochs: int = 1):
        self.every_n_epochs = every_n_epochs

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not hasattr(pl_module, "log_examples"):
            return
        if self.every_n_epochs < 1 or trainer.current_epoch % self.every_n_epochs:
            return
        writer = pl_module.tensorboard()
        if writer is None:
            return
        start = time.perf_counter()
        pl_module.log_examples(writer)
        writer.add_scalar("time/log_examples_s", time.perf_counter() - start, trainer.global_step)


class StopOnNonFinite(L.Callback):
    """Stops the run with a one-line message when the training loss is NaN or infinite.

    The check reads the loss back from the device, so it runs every `every_n_steps` steps
    (1 on CPU costs nothing; raise it on a GPU). Checkpoints already written stay as they are:
    `last.ckpt` is the last good state.
    """

    def __init__(self, every_n_steps: int = 1):
        self.every_n_steps = max(1, int(every_n_steps))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            from seqlab.errors import SeqlabError

            ckpt = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none yet"
            raise SeqlabError(
                f"training loss is {loss.detach().float().item()} at step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}); last good checkpoint: {ckpt}; "
                f"lower model.lr or set trainer.gradient_clip_val"
            )


class StepCheckpoint(L.Callback):
    """Also writes `last.ckpt` every `every_n_train_steps` training steps (null: off), so a
    killed long epoch loses at most that many steps. Epoch-end checkpoints stay with
    ModelCheckpoint; this one uses the Trainer's (atomic) checkpoint writer."""

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None):
        self.dirpath = dirpath
        self.every_n_train_steps = every_n_train_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0 and not trainer.sanity_checking and not trainer.fast_dev_run:
            trainer.save_checkpoint(f"{self.dirpath}/last.ckpt")
