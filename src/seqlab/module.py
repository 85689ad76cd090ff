"""What every task module shares: the task interface, the optimizer and LR schedule built from
their config nodes, one metric collection per stage, the carried recurrent state, and what a
checkpoint records beyond Lightning's own (the task's classes, the random state, the state to
resume mid-epoch from).
"""

import abc
import dataclasses
from contextlib import contextmanager
from typing import Literal

import hydra
import lightning as L
import torch
from lightning.pytorch.utilities.types import LRSchedulerConfig
from torchmetrics import Metric, MetricCollection

from seqlab import recurrent
from seqlab.checkpoint import code_folder
from seqlab.errors import SeqlabError

# Keys of a scheduler node that say how Lightning steps the scheduler (monitor, interval,
# frequency, …), not arguments of the scheduler itself.
STEPPING_KEYS = tuple(f.name for f in dataclasses.fields(LRSchedulerConfig) if f.name != "scheduler")


@contextmanager
def evaluating(module: torch.nn.Module):
    """Eval mode and no gradients inside the block; the module's own mode again after it."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


def answer(module, prompt: str, options: dict) -> str:
    """A task's respond() in eval mode, checked: seqlab-generate and seqlab-chat print text."""
    with evaluating(module):
        reply = module.respond(prompt, **options)
    if not isinstance(reply, str):
        got = "None" if reply is None else f"a {type(reply).__name__}"
        raise SeqlabError(f"{type(module).__name__}.respond() returned {got}; return the answer as a str")
    return reply


def attached_trainer(module: L.LightningModule) -> L.Trainer | None:
    """The Trainer a module is attached to, or None (Lightning's `module.trainer` raises then)."""
    try:
        return module.trainer
    except RuntimeError:
        return None


def class_path(obj) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


class Task(L.LightningModule, abc.ABC):
    """A task's model: its network, its loss, its metrics and its answers (`seqlab.Task`).

    A subclass declares `task = "<name>"` (the same as its TaskData's: how seqlab tells tasks
    apart) and implements

    - `training_loss(batch)`: the loss of one training batch (logged as train/loss);
    - `evaluate(batch, batch_idx, stage)`: update `self.metrics[stage]` ("val" or "test"), the
      collections `init_metrics({...})` made (logged as val/<name>, test/<name> after each pass);

    and optionally

    - `respond(prompt, **options)`: what seqlab-generate and seqlab-chat print; its keyword
      options, annotated, are the options those commands take and check;
    - `log_examples(writer)`: TensorBoard text and pictures drawn after a validation pass.

    Its `__init__` takes the task's own arguments, annotated (seqlab checks a config against
    them before anything is built), and `**common` (optimizer, scheduler, monitor, monitor_mode:
    the model config's), passed on to this one. Everything is saved as plain values, so
    checkpoints load with torch's `weights_only=True`. Raise `seqlab.SeqlabError("…; pass …")`
    for a value the task cannot use: it is printed as one line.
    """

    task: str = ""  # the task's name, written into checkpoints

    def __init__(self, *, optimizer: dict, scheduler: dict, monitor: str, monitor_mode: Literal["min", "max"]):
        super().__init__()
        # Collects the subclass's arguments too. Not sent to the logger: seqlab.train logs the
        # run's config to the HPARAMS tab itself (the vocabulary would be noise there).
        self.save_hyperparameters(logger=False)
        self._carried: dict[str, tuple] = {}  # stage -> (state, batch size)
        self._resume: dict | None = None
        self._loss_sum, self._loss_steps = None, 0

    # ---- the task interface ------------------------------------------------------------
    @abc.abstractmethod
    def training_loss(self, batch) -> torch.Tensor:
        """The loss of one training batch."""

    @abc.abstractmethod
    def evaluate(self, batch, batch_idx: int, stage: str) -> None:
        """Update `self.metrics[stage]` with one validation or test batch."""

    def respond(self, prompt: str, **options) -> str:
        """The answer to a prompt (seqlab-generate, seqlab-chat); a task without one has none."""
        raise SeqlabError(f"the {self.task} task answers no prompts: its {type(self).__name__} has no respond()")

    @classmethod
    def responds(cls) -> bool:
        return cls.respond is not Task.respond

    def log_examples(self, writer) -> None:
        """Draw examples into TensorBoard (a SummaryWriter) after a validation pass; none by default."""

    # ---- metrics ----------------------------------------------------------------------
    def init_metrics(self, metrics: dict[str, Metric]) -> None:
        """The task's evaluation metrics, one collection per stage (val/<name>, test/<name>).
        torchmetrics syncs them across devices when they are computed."""
        if "_modules" not in vars(self):  # (torch's AttributeError would not name the cause)
            raise SeqlabError(
                f"{type(self).__name__}.__init__ calls self.init_metrics() before super().__init__(**common); "
                f"call super().__init__(**common) first"
            )
        if odd := next((k for k, m in dict(metrics).items() if not isinstance(m, Metric | MetricCollection)), None):
            raise SeqlabError(
                f"{type(self).__name__}.init_metrics() got {odd} as a {type(metrics[odd]).__name__}; give torchmetrics "
                f"metrics, e.g. init_metrics({{{odd!r}: torchmetrics.MeanMetric()}})"
            )
        collection = MetricCollection(metrics, compute_groups=False)
        self.metrics = torch.nn.ModuleDict({s: collection.clone(prefix=f"{s}/") for s in ("val", "test")})

    def training_step(self, batch, batch_idx: int):
        loss = self.training_loss(batch)
        if not isinstance(loss, torch.Tensor) or loss.ndim:  # (its shape is known on the host: no sync)
            got = f"a tensor of shape {list(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise SeqlabError(
                f"{type(self).__name__}.training_loss() returned {got}; return the batch's loss as one "
                f"number, a 0-dimensional tensor (e.g. loss.mean())"
            )
        if not loss.requires_grad and torch.is_grad_enabled():
            raise SeqlabError(
                f"{type(self).__name__}.training_loss() returned a loss without a gradient (detached, or computed "
                f"under torch.no_grad()); return it as computed from the model's output"
            )
        # The epoch's mean is summed on the device (no read-back). A step's value goes to the
        # logger only on the steps the logger writes: self.log costs ~0.5 ms of Python a call,
        # which a GPU step of a few milliseconds would feel.
        self._loss_sum = loss.detach() if self._loss_sum is None else self._loss_sum + loss.detach()
        self._loss_steps += 1
        every = self.trainer.log_every_n_steps
        if (every and (self.global_step + 1) % every == 0) or self.trainer.fast_dev_run:
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_train_epoch_end(self):
        if self._loss_steps:
            # The epoch's mean over every rank: a plateau schedule that follows it steps alike on each.
            self.log("train/loss", self._loss_sum / self._loss_steps, sync_dist=True)
        self._loss_sum, self._loss_steps = None, 0

    def validation_step(self, batch, batch_idx: int):
        self.evaluate(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx: int):
        self.evaluate(batch, batch_idx, "test")

    def _log_metrics(self, stage: str) -> None:
        # (a metric never updated computes its empty state, a 0 that a checkpoint or a sweep would follow)
        if idle := [name for name, metric in self.metrics[stage].items() if metric.update_count == 0]:
            raise SeqlabError(
                f"{type(self).__name__}.evaluate() never updated {idle[0]} in a {stage} pass; update "
                f"self.metrics[stage][{idle[0].split('/', 1)[1]!r}] there, or leave it out of init_metrics"
            )
        values = self.metrics[stage].compute()
        if wide := next((k for k, v in values.items() if not isinstance(v, torch.Tensor) or v.numel() != 1), None):
            shape = list(getattr(values[wide], "shape", [type(values[wide]).__name__]))  # (known on the host: no sync)
            raise SeqlabError(
                f"{wide} computes {shape} values, and a metric is logged as one number; give init_metrics one that "
                f"averages (e.g. average='macro') or leave it out"
            )
        self.log_dict(values, prog_bar=stage == "val")
        self.metrics[stage].reset()

    def on_validation_epoch_end(self):
        self._log_metrics("val")

    def on_test_epoch_end(self):
        self._log_metrics("test")

    # ---- optimizer and LR schedule ------------------------------------------------------
    def configure_optimizers(self):
        optimizer = self.make_optimizer()
        scheduler = self.make_scheduler(optimizer)
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}

    def make_optimizer(self) -> torch.optim.Optimizer:
        return hydra.utils.instantiate(self.hparams.optimizer, params=self.parameters())

    def make_scheduler(self, optimizer) -> dict | None:
        """Lightning's scheduler config: the scheduler built from the node's own arguments, and
        the node's stepping keys (model/scheduler=none: no schedule)."""
        hp = self.hparams
        args = dict(hp.scheduler or {})
        if not args:
            return None
        step = {"interval": "epoch"} | {k: args.pop(k) for k in STEPPING_KEYS if k in args}
        scheduler_cls = hydra.utils.get_class(args.pop("_target_"))
        if issubclass(scheduler_cls, torch.optim.lr_scheduler.ReduceLROnPlateau):
            # It follows the run's monitor unless told otherwise (a tutorial follows train/loss),
            # in the monitor's direction, or "min" for another metric (a loss).
            step["monitor"] = step.get("monitor") or hp.monitor
            args.setdefault("mode", hp.monitor_mode if step["monitor"] == hp.monitor else "min")
        return {"scheduler": scheduler_cls(optimizer, **args), **step}

    # ---- state carried from batch to batch (truncated backprop through time) -----------
    def carried_state(self, stage: str, batch_size: int):
        """The state the previous batch of this pass left, or None (the first batch, or a
        batch with another number of rows, starts from a zero state)."""
        state, size = self._carried.get(stage, (None, None))
        return state if size == batch_size else None

    def carry_state(self, stage: str, state, batch_size: int) -> None:
        """Keep `state` for the next batch, detached: gradients stop at the batch boundary."""
        self._carried[stage] = (recurrent.detach(state), batch_size)

    # Each epoch and each evaluation pass starts from a zero state.
    def on_train_epoch_start(self):
        self._carried.pop("train", None)

    def on_validation_epoch_start(self):
        self._carried.pop("val", None)

    def on_test_epoch_start(self):
        self._carried.pop("test", None)

    # ---- checkpoints and resuming mid-epoch ---------------------------------------------
    # Lightning restores weights, optimizer, loops and callbacks; the data modules restore the
    # data position. The random state and the carried state are saved here and put back at the
    # resumed run's first training step (after the sanity check and the data loaders, which
    # draw from the same generator, have started).
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        trainer = attached_trainer(self)
        datamodule = getattr(trainer, "datamodule", None) if trainer else None
        checkpoint["seqlab"] = {
            "task": self.task,
            "module": class_path(self),
            "datamodule": class_path(datamodule) if datamodule is not None else None,
            "code": code_folder(type(self)),
        }
        resume = {"step": trainer.global_step if trainer else -1, "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            resume["cuda_rng"] = torch.cuda.get_rng_state_all()
        if trainer is not None:
            done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
            finished = done >= trainer.num_training_batches
            resume["epochs_done"] = trainer.current_epoch + int(finished)
            if "train" in self._carried and done > 0 and not finished:
                resume["carried"] = self._carried["train"]
        checkpoint["seqlab_resume"] = resume

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._resume = checkpoint.get("seqlab_resume")

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        saved, self._resume = self._resume, None
        if saved is not None and saved["step"] == self.trainer.global_step:
            torch.set_rng_state(saved["torch_rng"])
            if "cuda_rng" in saved and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(saved["cuda_rng"])
            if "carried" in saved:
                state, size = saved["carried"]
                self._carried["train"] = (recurrent.to(state, self.device), size)

    def tensorboard(self):
        """The TensorBoard SummaryWriter of this run, or None (no TensorBoard logger, or not rank 0)."""
        from lightning.pytorch.loggers import TensorBoardLogger

        if attached_trainer(self) is None or not self.trainer.is_global_zero:
            return None
        for logger in self.trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        return None
