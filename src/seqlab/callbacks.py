"""Callbacks every task can use."""

import time

import lightning as L


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
