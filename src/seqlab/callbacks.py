"""Callbacks every task uses. None of them reads a value back from the device during a
training step: on a GPU that would stall the queue of kernels once per step."""

import os
import signal
import sys
import time
from pathlib import Path

import lightning as L
import torch

from seqlab.errors import STOP_SIGNALS, Interrupted, SeqlabError, signal_name
from seqlab.module import evaluating
from seqlab.types import NonNegativeInt, PositiveInt


class LogExamples(L.Callback):
    """After each `every_n_epochs`-th validation, the module's `log_examples(writer)` draws what
    a person would rather look at than read (generated text, tables, pictures) into TensorBoard.
    Rank 0 only; skipped during the sanity check. Its cost is logged as `time/log_examples_s`."""

    def __init__(self, every_n_epochs: NonNegativeInt):
        self.every_n_epochs = every_n_epochs

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or self.every_n_epochs < 1 or trainer.current_epoch % self.every_n_epochs:
            return
        writer = pl_module.tensorboard()
        if writer is None:
            return
        start = time.perf_counter()
        with evaluating(pl_module):
            pl_module.log_examples(writer)
        writer.add_scalar("time/log_examples_s", time.perf_counter() - start, trainer.global_step)


class StopOnNonFinite(L.Callback):
    """Stops the run with a one-line message naming the step when the training loss is NaN or
    infinite. Each step only adds to a flag on the device; the flag is read every
    `every_n_steps` steps and at each epoch end, before any checkpoint is written, so
    `last.ckpt` is always a good state."""

    def __init__(self, every_n_steps: PositiveInt):
        self.every_n_steps = every_n_steps
        self.first_bad = None  # on the device: the first step with a non-finite loss, or -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        if self.first_bad is None:
            self.first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        step = trainer.global_step
        bad = ~torch.isfinite(loss.detach()).all() & (self.first_bad < 0)
        self.first_bad = torch.where(bad, step, self.first_bad)  # no sync: stays on the device
        if step % self.every_n_steps == 0:
            self.check(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        self.check(trainer)  # (checkpoints are written after validation)

    def check(self, trainer) -> None:
        if self.first_bad is None or int(self.first_bad) < 0:
            return
        step, self.first_bad = int(self.first_bad), None
        ckpt = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none yet"
        fix = "lower model.optimizer.lr or set trainer.gradient_clip_val"
        if str(p := trainer.precision).startswith("16"):  # (float16 ends at 65504, and rounds Adam's eps to 0)
            fix = f"trainer.precision={p} computes in float16, too coarse here: pass 32-true or bf16-mixed"
        raise SeqlabError(
            f"training loss is not finite (NaN or inf) at step {step} (epoch {trainer.current_epoch}); "
            f"last good checkpoint: {ckpt}; {fix}"
        )


class StepCheckpoint(L.Callback):
    """Also writes `last.ckpt` every `every_n_train_steps` training steps (null: off), so a
    killed long epoch loses at most that many steps. Epoch-end checkpoints stay with
    ModelCheckpoint; this one uses the Trainer's (atomic) checkpoint writer."""

    def __init__(self, dirpath: str, every_n_train_steps: PositiveInt | None):
        self.dirpath = dirpath
        self.every_n_train_steps = every_n_train_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0 and not trainer.sanity_checking and not trainer.fast_dev_run:
            for cb in trainer.callbacks:  # never save a diverged state
                if isinstance(cb, StopOnNonFinite):
                    cb.check(trainer)
            trainer.save_checkpoint(f"{self.dirpath}/last.ckpt", weights_only=False)


class GracefulStop(L.Callback):
    """A stop signal (Ctrl-C, a scheduler's SIGTERM, a closed terminal's SIGHUP, …) ends training at
    the next step boundary with `last.ckpt` written; the command then exits 128 + the signal
    with one line naming the command that continues it. A signal during validation lets the
    validation finish first (it ends the epoch whose checkpoint is then written); a second
    signal stops at once. `keep`: signals left to their handlers (SLURM's requeue signal)."""

    def __init__(self, dirpath: str, resume_hint: str, keep: tuple = ()):
        self.dirpath, self.resume_hint = Path(dirpath), resume_hint
        self.signals = [s for s in STOP_SIGNALS if s not in keep]
        self.received: int | None = None
        self.previous = {}
        self.trainer = None
        self.pid = os.getpid()  # (a process Lightning spawns for a device gets a copy: another pid)

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.trainer = trainer

    def _handle(self, signum, frame) -> None:
        second = self.received is not None
        self.received = signum
        if second:  # stop now (finished checkpoints are intact), by an exception Lightning passes on
            self._stop(self.trainer, save=False, now=True)

    def install(self) -> None:
        for s in self.signals:
            self.previous.setdefault(s, signal.getsignal(s))
            signal.signal(s, self._handle)

    def uninstall(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    # Lightning puts its own SIGTERM handler in place when fit starts; this one replaces it.
    def on_train_start(self, trainer, pl_module) -> None:
        self.install()

    def _stop(self, trainer, save: bool, now: bool = False) -> None:
        signum, self.received = self.received, None
        last = self.dirpath / "last.ckpt"
        if save:
            trainer.save_checkpoint(last, weights_only=False)
        saved = last.is_file()
        where = (
            (f"last.ckpt holds step {trainer.global_step}" if save else "last.ckpt holds the last saved step")
            if saved
            else "no checkpoint was written yet"
        )
        hint = f"continue with: {self.resume_hint}" if saved else "nothing to resume; start it again"
        at = f" at step {trainer.global_step} (epoch {trainer.current_epoch})" if trainer is not None else ""
        name = f"a second {signal.Signals(signum).name}" if now else signal.Signals(signum).name
        self._raise(
            trainer, Interrupted(signum, f"stopped{' at once' if now else ''} by {name}{at}; {where}; {hint}", saved)
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # After an epoch's last batch its validation comes next: stop after it (at the epoch end),
        # or a resume from this step would skip that validation and its best checkpoint.
        every = trainer.log_every_n_steps or 1 if trainer.world_size > 1 else 1
        last = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if trainer.global_step % every == 0 and self._agreed(trainer) and not last:  # (every rank asks)
            self._stop(trainer, save=not trainer.fast_dev_run)

    def _agreed(self, trainer) -> bool:
        """Whether to stop: under DDP every rank stops at the same step, since they write the
        checkpoint together (each asks the others, every log_every_n_steps steps: one sync then)."""
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            self.received = self.received or self.signals[0]
        return self.received is not None

    # A signal during an epoch's last batch or its validation: the epoch ends first, with its
    # checkpoints (best and last: Lightning calls checkpoint callbacks after this one's
    # on_train_epoch_end), and the run stops as the next epoch starts.
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._agreed(trainer):
            self._stop(trainer, save=not (self.dirpath / "last.ckpt").is_file() and not trainer.fast_dev_run)

    def on_train_end(self, trainer, pl_module) -> None:
        self._tested(trainer, "after the last epoch, before the test")  # nothing left to resume

    def on_test_batch_end(self, trainer, *args) -> None:
        self._tested(trainer, "during the test")

    def _tested(self, trainer, when: str) -> None:
        """A signal once training is over: its checkpoints are written; the test is what is left."""
        if self.received is not None:
            signum, self.received = self.received, None
            best = getattr(trainer.checkpoint_callback, "best_model_path", "") or str(self.dirpath / "last.ckpt")
            message = f"stopped by {signal_name(signum)} {when}; test it with: seqlab-eval ckpt_path={best}"
            self._raise(trainer, Interrupted(signum, message, saved=True))

    def _raise(self, trainer, stopped: Interrupted) -> None:
        """In a process Lightning spawned for one device (trainer=ddp_cpu) the stop is no error to
        report with a traceback: rank 0 says the line, each process exits with the signal's status,
        and the main process, stopped by the same signal, exits quietly (seqlab.train)."""
        if os.getpid() == self.pid:
            raise stopped
        if trainer is None or trainer.global_rank == 0:
            print(stopped.message, file=sys.stderr, flush=True)
        raise SystemExit(stopped.code)


class RunRecord(L.Callback):
    """Keeps in each checkpoint the overrides the run was trained with: `resume=` replays them,
    so they always describe the state that checkpoint holds; and the folder it started in, where
    its relative paths point (see checkpoint.in_start_folder)."""

    def __init__(self, overrides: list[str]):
        from hydra.core.hydra_config import HydraConfig
        from hydra.utils import get_original_cwd

        self.overrides = list(overrides)
        self.start = get_original_cwd() if HydraConfig.initialized() else os.getcwd()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["seqlab_run"] = {"overrides": self.overrides, "start": self.start}


class AveragedInRun(L.Callback):
    """A weight average (callbacks=ema) that would not update once in this run: at its end Lightning
    would put the average, the untrained weights, in place of the trained ones. Refused as
    training starts, when the run's steps are known."""

    def on_train_start(self, trainer, pl_module) -> None:
        for cb in (c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.WeightAveraging)):
            steps = range(int(min(trainer.estimated_stepping_batches, 10**6)))
            epochs = range(trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1)
            if not any(cb.should_update(step_idx=s) for s in steps) and not any(
                cb.should_update(epoch_idx=e) for e in epochs
            ):
                raise SeqlabError(
                    f"{type(cb).__name__} would not update its average once in this run ({len(steps)} steps; "
                    f"update_starting_at_step={getattr(cb, 'update_starting_at_step', None)}), and the untrained "
                    f"weights would replace the trained ones; start it earlier, or train longer"
                )


class MovedRun(L.Callback):
    """Resuming a run folder that was moved or copied: the checkpoint callbacks' saved state
    names files in the old folder (the best checkpoint among them, which the test would then
    read). Renamed to the same files in this run's `checkpoints/` before the callbacks load it."""

    def __init__(self, dirpath: str):
        self.dirpath = str(Path(dirpath).resolve())

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        for state in checkpoint.get("callbacks", {}).values():
            old = state.get("dirpath") if isinstance(state, dict) else None
            if not old or old == self.dirpath or Path(old).name != Path(self.dirpath).name:
                continue

            def moved(path, old=old):
                return self.dirpath + path[len(old) :] if isinstance(path, str) and path.startswith(old) else path

            for key in ("dirpath", "best_model_path", "kth_best_model_path", "last_model_path"):
                if key in state:
                    state[key] = moved(state[key])
            if isinstance(state.get("best_k_models"), dict):
                state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
