"""Bad inputs, as a user types them: each ends with one `error:` line (exit 2, no traceback) that
names the problem and the fix, and leaves nothing on disk.

The commands run in this process (the entry points' own `main`, with sys.argv set), which makes
dozens of cases cheap; test_framework.py and test_runs.py run others as real subprocesses.
"""

import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_CHARLM, make_cfg, run_cli

from seqlab.train import train as train_run


def cli(tool: str, *args: str, cwd, stdin: str = "") -> tuple[int, str, str]:
    """Run `seqlab-<tool> args…` in this process: (exit code, stdout, stderr)."""
    proc = run_cli(f"seqlab.{tool}", *args, cwd=cwd, stdin=stdin, in_process=True, argv0=f"seqlab-{tool}")
    return proc.returncode, proc.stdout, proc.stderr


def one_error(code: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert code == 2 and "Traceback" not in err, f"exit {code}\n{err[-3000:]}"
    assert len(errors) == 1 and lines[-1] == errors[0], err[-3000:]
    return errors[0]


def left_behind(root) -> list:
    outputs = root / "outputs"
    return [p for p in outputs.rglob("*") if p.is_file()] if outputs.exists() else []


# ---- configuration values: key, allowed values and an example in one line ---------------------
CONFIG_CASES = [
    (["experiment", "gru_toy"], "'experiment' is not key=value; write experiment=gru_toy"),  # (argparse's habit)
    (["experiment=gru_toy", "trainer.max_epochs", "3"], "'trainer.max_epochs' is not key=value; write trainer.max_epo"),
    (["data", "corpus.txt"], "'data' is not key=value; write data.path=corpus.txt"),  # (--data meant data.path)
    (["/tmp"], "'/tmp' is not key=value: a stray word"),  # (a folder is no config group)
    (["hparams_search"], "'hparams_search' picks no option; write hparams_search=<one of arithmetic_optuna, "),
    (["model.hiden_size=10"], "did you mean model.hidden_size"),
    (["experiment=charml"], "did you mean experiment=charlm"),
    (["experiment=subseq", "model/optimizer=adamw2"], "no config 'adamw2' in group 'model/optimizer'"),
    (["model/scheduler=banana"], "options: cosine, multistep, none, plateau"),
    (["data.batch_size=abc"], "data.batch_size must be an integer >= 1, got 'abc'; pass e.g. data.batch_size=1"),
    (["data.batch_size=0"], "data.batch_size must be an integer >= 1"),
    (["data.bptt=-3"], "data.bptt must be an integer >= 1"),
    (["data.train_frac=1.0"], "data.train_frac must be a number in (0, 1)"),
    (["model.hidden_size=0"], "model.hidden_size must be an integer >= 1"),
    (["model.n_layers=0"], "model.n_layers must be an integer >= 1"),
    (["model.dropout=1.5"], "model.dropout must be a number in [0, 1)"),
    (["model.dropout=-0.1"], "model.dropout must be a number in [0, 1)"),
    (["model.cell=foo"], "model.cell must be one of rnn, gru, lstm, rnncell, grucell"),
    # torch's own checks, named by the key: the value refused, torch's reason, the class's default
    (
        ["model.optimizer.lr=-1"],
        "model.optimizer.lr=-1 is refused by Adam (Invalid learning rate: -1.0); pass another "
        "value (its default: model.optimizer.lr=0.001)",
    ),
    (["model.optimizer.lr=nan"], "model.optimizer.lr=nan is refused by Adam"),
    (
        ["model.optimizer.betas=[0.9]"],
        "model.optimizer.betas must be a list of 2 numbers or a Tensor, got [0.9]; pass "
        "e.g. model.optimizer.betas=[0.9,0.999]",
    ),
    (
        ["model.optimizer.weight_decay=-0.1"],
        "model.optimizer.weight_decay=-0.1 is refused by Adam (Invalid weight_decay",
    ),
    (
        ["model/scheduler=plateau", "model.scheduler.factor=2"],
        "model.scheduler.factor=2 is refused by ReduceLROnPlateau (Factor should be < 1.0.)",
    ),
    (
        ["model.optimizer._target_=torch.nn.Linear"],
        "model.optimizer._target_=torch.nn.Linear is not a subclass of Optimizer",
    ),
    (
        ["experiment=dialogue", "model/optimizer=sgd"],
        "model.optimizer.betas is not an argument of SGD; drop it, or remove it with ~model.optimizer.betas where a "
        "config sets it (its arguments: params, lr",
    ),
    (["experiment=dialogue", "model.n_heads=3"], "model.emb_dim=64 must be a multiple of model.n_heads=3"),
    (["experiment=subseq", "data.max_start=7"], "data.max_start + data.min_len <= data.seq_len - 2"),
    (["experiment=arithmetic", "data.ops=+/"], "data.ops must be distinct characters from '+-*'"),
    (["experiment=arithmetic", "data.digits=12"], "data.digits must be an integer from 1 to 9"),
    (["experiment=gru_toy", "data.layout=rows"], "data.layout must be one of tutorial, streams"),
    (
        ["experiment=gru_toy", "model.check_expect=Mx"],
        "model.check_expect='Mx' must start with model.check_prompt='Ma'",
    ),
    # Lightning's types (read from the Trainer's signature) and its own checks
    (["trainer.precision=banana"], "trainer.precision must be one of 64, 32, 16, transformer-engine"),
    (["trainer.accelerator=tpu"], "trainer.accelerator=tpu is refused by Trainer (Requirement 'torch_xla"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 trains on nothing"),
    (
        ["trainer.max_epochs=-5"],
        "trainer.max_epochs=-5 is refused by Trainer (`max_epochs` must be a non-negative integer or -1",
    ),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val must be >= 0 or null, got -1"),
    # a flag where a number goes (lax pydantic would read true as 1), a string where a list goes
    (["experiment=gru_toy", "model.hidden_size=true"], "model.hidden_size must be an integer >= 1, got true"),
    (["experiment=gru_toy", "trainer.max_epochs=true"], "trainer.max_epochs must be an integer or null, got true"),
    (["experiment=gru_toy", "trainer.max_epochs=1.5"], "or null, got 1.5; pass e.g. trainer.max_epochs=1"),
    (
        ["model/scheduler=multistep", "model.scheduler.milestones=abc"],
        "model.scheduler.milestones must be a list of integers, got 'abc'",
    ),
    (["trainer.val_check_interval=0"], "trainer.val_check_interval must be > 0"),
    (["-m", "experiment=gru_toy", "model.hidden_size=range(1,10,0)"], "range() arg 3 must not be zero"),
    (["-m", "experiment=gru_toy", "model.hidden_size=4,abc"], "model.hidden_size must be an integer >= 1, got 'abc'"),
    (
        ["-m", "experiment=gru_toy", "hparams_search=gru_toy_optuna", "model.hidden_size=int(interval(8,4))"],
        "model.hidden_size=int(interval(8,4)) runs from 8 down to 4; write the low end first",
    ),
    (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches=1.5 is refused by Trainer"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches must be an integer >= 1"),
    (["trainer.devices=64"], "trainer.devices=64 but this machine has"),
    (["trainer=ddp_cpu", "trainer.devices=64"], "trainer.devices=64 but this machine has"),
    (["threads=0"], "threads must be auto, an integer >= 1 or null"),
    (["seed=abc"], "seed must be an integer from 0 to 4294967295 or null"),
    (["seed=99999999999"], "seed must be an integer from 0 to 4294967295 or null"),
    (
        ["name=a/b"],
        "name must be 1 to 100 letters, digits, '_', '-' or '.', not starting with '.' (it names the "
        "run's folder), got 'a/b'; pass e.g. name=my_run",
    ),
    (["name=" + "x" * 5000], "must be 1 to 100 letters, digits"),
    (["callbacks.log_examples.every_n_epochs=-1"], "callbacks.log_examples.every_n_epochs must be an integer >= 0"),
    (["callbacks.step_checkpoint.every_n_train_steps=0"], "every_n_train_steps must be an integer >= 1 or null"),
    (["data.path=missing.txt"], "missing.txt; set data.path="),
    (["data.path="], "data.path is empty; pass a file, or data.path=null"),
    (
        ["experiment=subseq", "model.cell=gru"],
        "unknown config key 'model.cell'; the subseq model has: optimizer, scheduler",
    ),
    (["experiment=subseq", "data.path=x.txt"], "the subseq data has: seq_len, max_start"),
    (["model.optimizer.lr=1e-3,3e-3"], "a value with commas is a sweep; add -m to sweep it (a key that takes a list"),
    (["experiment=arithmetic_tutorial", "data.fixed=[]"], "data.fixed is an empty list"),
    (
        ["trainer.max_time=10m"],
        "trainer.max_time=10m is refused by Trainer (`Timer(duration='10m')` is not a valid "
        "duration. Expected a string in the format DD:HH:MM:SS.)",
    ),
    (
        ["trainer.devices=[0,1]"],
        "trainer.devices=[0,1] is refused by Trainer (`devices` selected with `CPUAccelerator` should be an int > 0.)",
    ),
    (["experiment=gru_toy", "model.monitor=val/acc"], "model.monitor=val/acc is not a metric the gru_toy task logs"),
    (
        ["experiment=gru_toy", "model/scheduler=plateau", "model.scheduler.monitor=val/accuracy"],
        "model.scheduler.monitor=val/accuracy is not a metric",
    ),
    (
        ["experiment=dialogue", "callbacks.early_stopping.monitor=val/exact_accuracy"],
        "pick one of train/loss, val/bleu",
    ),
    (
        ["model/optimizer=sgd", "model.optimizer.nesterov=true"],
        "model.optimizer.nesterov=true is refused by SGD (Nesterov momentum requires a momentum and zero dampening)",
    ),
    (["model.hidden_size=10000000"], "not enough memory for this model"),
    (["callbacks.model_checkpoint.save_top_k=-2"], "Invalid value for save_top_k=-2. Must be >= -1"),
    (
        ["experiment=dialogue", "model.label_smoothing=1.0"],
        "model.label_smoothing must be a number in [0, 1), got 1; pass e.g. model.label_smoothing=0",
    ),
    (["a=[1,2"], "'a=[1,2' has an unclosed '['; close it: a=[1,2]"),
    (["a=b c=d"], "'a=b c=d' holds several overrides; write each as a word of its own: a=b c=d"),
    (
        ["-m", "hparams_search=charlm_optuna", "hydra.sweeper.n_trials=0"],
        "hydra.sweeper.n_trials must be an integer >= 1",
    ),
    (
        ["-m", "hparams_search=charlm_optuna", "hydra.sweeper.direction=up"],
        "hydra.sweeper.direction must be one of minimize, maximize",
    ),
    (["-m", "hparams_search=charlm_optuna", "hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs must be an integer >= 1"),
    (
        ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=0", "model.hidden_size=4,8"],
        "hydra.launcher.n_jobs must be",
    ),
    (["-m", "experiment=gru_toy", "model.hidden_size=range(4,2)"], "the sweep has no jobs"),
    (["-m", "experiment=gru_toy", "name=a,b"], "name=a,b sweeps over names, whose jobs would share one sweep folder"),
    (
        ["-m", "experiment=gru_toy", "hparams_search=gru_toy_optuna", "hydra.sweeper.study_name="],
        "hydra.sweeper.study_name must be",
    ),
    (
        [
            "-m",
            "experiment=gru_toy",
            "hparams_search=gru_toy_optuna",
            "hydra.sweeper.sampler._target_=optuna.samplers.GridSampler",
        ],
        "hydra.sweeper.sampler.search_space has no value",
    ),
    (
        ["experiment=gru_toy", "+trainer.logger=false"],
        "trainer.logger is seqlab's to set; pass logger=none or logger=<option> instead",
    ),
    (
        ["experiment=gru_toy", "model.scheduler._target_=torch.optim.lr_scheduler.OneCycleLR"],
        "model.scheduler is empty (none); pick an option first: model/scheduler=<option>",
    ),
    (["experiment=gru_toy", "model.hidden_size=８"], "'８' is a digit of another script; type it as an ASCII digit"),
    (["experiment=gru_toy", "mödel.hidden_size=4"], "the key holds 'ö', which no config key does"),
    (
        ["experiment=gru_toy", "model.optimizer.betas=(0.9,0.99)"],
        "a list is written in brackets, e.g. model.optimizer.betas=[0.9,0.99]",
    ),
    (["experiment=gru_toy", "resume="], "resume= is empty; pass the run's folder"),
    (["experiment=gru_toy", "trainer.max_epochs=null"], "trainer.max_epochs=null means Lightning's default of 1000"),
    (["experiment=charlm", "model.cell=LSTM"], "got 'LSTM'; pass e.g. model.cell=lstm"),
    (["experiment=gru_toy", "+trainer.default_root_dir=x"], "trainer.default_root_dir is seqlab's to set; pass hydra"),
    (["-m", "experiment=gru_toy", "model.hidden_size=4,8", "model.hidden_size=16"], "model.hidden_size is given twice"),
    (
        ["experiment=gru_toy", "callbacks.model_checkpoint.monitor=null"],
        "callbacks.model_checkpoint and callbacks.last_checkpoint have the same settings (monitor, mode, intervals)",
    ),
    (
        ["experiment=gru_toy", "trainer.limit_train_batches=2", "trainer.val_check_interval=5"],
        "trainer.val_check_interval=5 batches, but an epoch has 2; pass at most 2",
    ),
    (
        ["-m", "experiment=gru_toy", "hparams_search=gru_toy_optuna", "model.optimizer.lr=tag(log,interval(0,1))"],
        "model.optimizer.lr=tag(log,interval(0,1)): a log scale needs a low end above 0; e.g. "
        "tag(log, interval(1e-4, 1e-1))",
    ),
    (
        ["-m", "experiment=gru_toy", "model.hidden_size=4,8", "hydra.sweeper.max_batch_size=0"],
        "hydra.sweeper.max_batch_size must be an integer >= 1 or null, got 0",
    ),
    (["-m", "experiment=gru_toy", "model.cell=gru,lstm"], "unknown config key 'model.cell'"),
    (
        ["-m", "experiment=gru_toy", "hydra/launcher=parallel", "hydra.launcher.n_jobs=1000", "seed=1,2"],
        "hydra.launcher.n_jobs=1000 but this machine has",
    ),
    (["-m", "experiment=gru_toy", "--cfg", "job"], "--cfg, --info and --help print and run nothing; drop -m"),
    (["-m", "--run", "experiment=gru_toy"], "--run asks for one job and -m for a sweep; keep one"),
    (["-p", "model", "experiment=gru_toy"], "-p model picks the part of the config that --cfg prints; add --cfg job"),
    (
        ["-m", "hydra/sweeper=optuna", "experiment=gru_toy"],  # (Optuna's plugin picked by hand: its enum default)
        "hydra/sweeper=optuna has nothing to search (no hydra.sweeper.params, no range on the command line); pass",
    ),
    (["-m", "experiment=glob(gru_t*)"], "sweep one experiment at a time: -m experiment=gru_toy"),
    (
        ["-m", "experiment=gru_toy", "model.hidden_size=interval(4,8)"],
        "model.hidden_size=interval(4,8) is a search range, and a grid sweep takes values; list some",
    ),
    (
        ["-m", "experiment=gru_toy", "hparams_search=gru_toy_optuna", "hydra.sweeper.max_failure_rate=-1"],
        "hydra.sweeper.max_failure_rate must be a number in [0, 1]",
    ),
    (
        ["-m", "experiment=gru_toy", "hparams_search=gru_toy_optuna", "hydra.sweeper.storage=sqlite:////proc/no/x.db"],
        "hydra.sweeper.storage=sqlite:////proc/no/x.db: the folder /proc/no is not there or cannot be written",
    ),
    (
        ["-m", "experiment=gru_toy", "seed=1,2", "resume=outputs/gru_toy/runs/x"],
        "resume= continues one run and cannot be swept",
    ),
    (["experiment=gru_toy", "train=false", "test=false"], "train=false and test=false leave nothing to do"),
    (["experiment=dialogue", "model.max_len=100000"], "model.max_len must be an integer from 1 to 1000"),
    (["experiment=dialogue", "model.beam_width=500"], "model.beam_width must be an integer from 1 to 100"),
    (["hydra.run.dir="], "hydra.run.dir is empty"),
    (["paths.root_dir="], "paths.root_dir is empty"),
    (["experiment=dialogue", "data.language=klingon"], "data.language=klingon picks a chatterbot corpus"),
    (["data.path=nope.txt", "hydra.job.chdir=true"], "nope.txt; set data.path="),
    (["name=.hidden"], "not starting with '.'"),
    (["model.monitor_mode=maximum"], "got 'maximum'; pass e.g. model.monitor_mode=max"),
    (["experiment=gru_toy", "name=???"], "name=??? leaves it unset: ??? is the config's mark for a value still to"),
    # slips of typing and of the shell, each with its fix
    (["seqlab-train", "experiment=gru_toy"], "'seqlab-train' is not key=value: a stray word"),
    (["model.hidden_size", "=", "16"], "write no spaces around =, e.g. model.hidden_size=16"),
    (["model.hidden_size:16"], "write model.hidden_size=16 (overrides use =, not :)"),
    (["model.cell=“gru”"], "has typographic quotes; use straight quotes"),
    (["model.dropout=0.1,"], "ends with a comma; drop it (model.dropout=0.1)"),
    (["-m", "model.hidden_size=4,,8"], "has an empty value between commas; drop it: model.hidden_size=4,8"),
    (["name=gru", "toy"], "part of a value the shell split at a space (quote it whole: 'name=gru toy')"),
    (["--model.hidden_size=16"], "overrides are written key=value without dashes, e.g. model.hidden_size=16"),
    (["experiment=gru_toy", "trainer.limit_train_batches=0"], "trainer.limit_train_batches=0 trains on nothing"),
    (
        ["-m", "experiment=gru_toy", "seed=1,2", "hydra.sweep.subdir=same"],
        "can put several jobs of the sweep in one folder",
    ),
    (["-m", "experiment=gru_toy,subseq"], "sweep one experiment at a time"),
    (["data.min_freq=100000"], "has 0 character(s) seen data.min_freq=100000 times; pass a larger data.train_frac"),
    (["experiment=gru_toy", "model.hidden_size=${nope}"], "model.hidden_size: Interpolation key 'nope' not found"),
    (  # the key that fails reads the interpolation the user passed: both are named
        ["experiment=gru_toy", "name=${oc.env:SEQLAB_NO_SUCH_VARIABLE}"],
        "; fix that value, or an interpolation you passed: name=${oc.env:SEQLAB_NO_SUCH_VARIABLE}",
    ),
    (
        ["experiment=gru_toy", "trainer.enable_checkpointing=false"],
        "trainer.enable_checkpointing=false, but callbacks.model_checkpoint keeps checkpoints; for none pass "
        "callbacks=none instead (such a run cannot be resumed)",
    ),
    (
        ["-m", "experiment=subseq", "hparams_search=arithmetic_optuna"],
        "hparams_search=arithmetic_optuna searches the arithmetic task, but this run trains subseq; pass "
        "experiment=arithmetic",
    ),
    (
        [
            "-m",
            "experiment=arithmetic",
            "hparams_search=arithmetic_optuna",
            "hydra.sweeper.params.model.n_layers=choice(1)",
        ],
        "cannot be set on the command line; give the search range as the key itself: -m hparams_search=… "
        "'model.n_layers=choice(1)'",
    ),
    (["trainer.strategy=dpp"], "trainer.strategy=dpp is refused by Trainer (You selected an invalid strategy name"),
    (
        ["experiment=gru_toy", "callbacks.early_stopping.patience=3"],
        "this run has no callback early_stopping (its callbacks: model_checkpoint",
    ),
    (["logger.wandb.project=x"], "this run has no logger wandb (its loggers: tensorboard); pick loggers with logger="),
    (
        ["trainer.detect_anomaly=true"],
        "trainer.detect_anomaly is an argument of Trainer that this config leaves at its "
        "default; add it with +trainer.detect_anomaly=true",
    ),
    (["model.optimizer.lrr=1"], "model.optimizer.lrr is not an argument of Adam; did you mean model.optimizer.lr=…?"),
    (
        ["model.optimizer.nesterov=true"],
        "model.optimizer.nesterov is not an argument of Adam; its arguments: lr, betas",
    ),
    (["experimnet=gru_toy"], "unknown config key 'experimnet'; did you mean experiment=gru_toy?"),
    (["experiment=dialogue", "data.max_tokens=0"], "pass e.g. data.max_tokens=null"),  # (off by default: off works)
    (
        ["experiment=gru_toy", "++model.hiden=4"],
        "model.hiden is not an argument of GRUToyModule; did you mean model.hidden_size=…?",
    ),
    (["--cfg", "jobs"], "argument --cfg/-c: invalid choice: 'jobs' (choose from 'job', 'hydra', 'all')"),
    # a sweep's first job is checked before the sweep starts; trials that all fail later are summed up
    (
        [
            "-m",
            "experiment=gru_toy",
            "hparams_search=gru_toy_optuna",
            "hydra.sweeper.n_trials=2",
            "model.hidden_size=choice(0,-1)",
        ],
        "model.hidden_size must be an integer >= 1, got 0",
    ),
    (
        ["-m", "hparams_search=charlm_optuna", "hydra.sweeper.n_trials=2", "data.path=choice(/nope/a.txt,/nope/b.txt)"],
        "no job of the sweep finished: the first failed with 'data file not found: /nope/",
    ),
    (
        ["experiment=gru_toy", "+model.hidden_size=4"],
        "Could not append to config. An item is already at 'model.hidden_size'. Either remove + prefix: "
        "'model.hidden_size=4'",
    ),
    (
        ["experiment=gru_toy", "~model.hidden_size"],
        "~model.hidden_size deleted a setting this run needs (model.hidden_size has no value); drop ~model.hidden_size",
    ),
    (["experiment=gru_toy", "~data.batch_size"], "~data.batch_size deleted a setting this run needs"),
    (["~trainer"], "~trainer removes the trainer settings every run needs; drop it"),
    (["model.optimizer.betas=[0.9,0.99"], "has an unclosed '['; close it: model.optimizer.betas=[0.9,0.99]"),
    (
        ["--epochs", "3"],
        "--epochs is not an option; overrides are written key=value without dashes, e.g. trainer.max_epochs=3",
    ),
    (["experiment=gru_toy", "model=charlm"], "the model is the charlm task's but the data is the gru_toy task's"),
    (["model.optimizer=adamw"], "to pick an option of the config group write model/optimizer=adamw"),
    (["-m", "experiment=gru_toy", "seed=1,2", "hydra/launcher=slurm"], "SLURM's sbatch, which this machine has not"),
    (
        ["-m", "experiment=gru_toy", "seed=1,2", "hydra/launcher=parallel", "hydra.launcher.backend=banana"],
        "hydra.launcher.backend=banana is refused by Parallel (Invalid backend: banana",
    ),
    # probe D
    (["experiment=gru_toy", "model/optimizer=null"], "model/optimizer=null picks no option of the model/optimizer"),
    (["+experiment=gru_toy"], "experiment has a default option already; write experiment=gru_toy (without +)"),
    (["experiment=gru_toy", "experiment=subseq"], "experiment is given twice (experiment=gru_toy experiment=subseq)"),
    (["experiment=gru_toy", "model.optimizer.lr=0,01"], "a decimal is written with a point (model.optimizer.lr=0.01)"),
    (["-m", "experiment=gru_toy", "model.optimizer.lr=0,01"], "a decimal is written with a point"),
    (["experiment=gru_toy", "trainer.max_steps=0"], "pass trainer.max_steps=1 or more (-1: no limit)"),
    (["experiment=gru_toy", "trainer.max_time=00:00:00:00"], "trainer.max_time=00:00:00:00 trains on nothing"),
    (["experiment=gru_toy", "data.vocab=hatM"], "data.vocab must be a list of strings, got 'hatM'; pass e.g."),
    (
        ["-m", "experiment=gru_toy", "model.hidden_size=4,8", "hydra.sweeper.n_trials=1"],
        "add hparams_search=<task>_optuna",
    ),
    # probe E
    (
        ["-m", "experiment=gru_toy", "hparams_search=gru_toy_optuna", "hydra.sweeper.direction=[minimize,maximize]"],
        "asks for several objectives, but a run returns one metric (model.monitor)",
    ),
    (
        ["-m", "experiment=gru_toy", "trainer=ddp_cpu", "hydra/launcher=parallel", "model.hidden_size=4,8"],
        "trainer.strategy=ddp_spawn starts processes of its own, which a parallel launcher's workers cannot",
    ),
    (["experiment=gru_toy", "model/optimizer=AdamW"], "did you mean model/optimizer=adamw?"),
    (
        ["experiment=subseq", "model/scheduler=none"],
        "drop them too: ~model.scheduler.milestones ~model.scheduler.gamma",
    ),
    (
        ["data.train_frac=0.0001", "data.batch_size=2"],
        "character(s) seen data.min_freq=3 times; pass a larger data.train_frac (e.g. 0.8)",
    ),
    (
        ["experiment=gru_toy", "callbacks=none", "callbacks.step_checkpoint.every_n_train_steps=5"],
        "callbacks=none turned",
    ),
    (["experiment=gru_toy", "+callbacks.early_stopping.monitor=val/loss"], "'+callbacks.early_stopping={_target_:"),
    (
        ["-m", "experiment=gru_toy", "hparams_search=gru_toy_optuna", "model.hidden_size=choice()"],
        "choice() needs values",
    ),
    (["experiment=gru_toy", "callbacks.model_checkpoint.filename=last"], "both write the checkpoint last"),
    (["--config-name", "eval"], "seqlab-train composes its own config (train.yaml); pick settings with experiment="),
    (
        ["-m", "experiment=gru_toy", "hparams_search=gru_toy_optuna", "hydra.sweeper.params.model.hidden_size=[8,16]"],
        "cannot be set on the command line",
    ),
    (
        ["-m", "experiment=gru_toy", "hparams_search=gru_toy_optuna", "hydra.sweeper.direction=maximize"],
        "hydra.sweeper.direction=maximize but model.monitor_mode=min (val/loss); drop hydra.sweeper.direction",
    ),
    (  # (Lightning's CSV logger divides by it at the first logged step)
        ["experiment=gru_toy", "logger=csv", "+logger.csv.flush_logs_every_n_steps=0"],
        "logger.csv.flush_logs_every_n_steps must be an integer >= 1, got 0; pass e.g. "
        "logger.csv.flush_logs_every_n_steps=1",
    ),
    (
        [
            "-m",
            "experiment=gru_toy",
            "hparams_search=gru_toy_optuna",
            "hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler",
        ],
        "not an argument of RandomSampler; pick a sampler with its own settings instead: hydra/sweeper/sampler=random",
    ),
    (["ckpt_path=https://example.com/runs/last.ckpt"], "ckpt_path=https://example.com/runs/last.ckpt is a URL"),
    (["model/scheduler=cosine", "model.scheduler.T_max=0"], "model.scheduler.T_max must be an integer >= 1, got 0"),
    (
        ["model/scheduler=cosine", "trainer.max_epochs=-1"],
        "model/scheduler=cosine runs over trainer.max_epochs, and -1",
    ),
    (["model/scheduler=cosine", "model.scheduler.eta_min=-1"], "model.scheduler.eta_min must be >= 0, got -1"),
    (
        ["callbacks=ema", "+callbacks.ema.update_every_n_steps=0"],
        "callbacks.ema.update_every_n_steps must be an integer >= 1, got 0",
    ),
    (
        ["model/scheduler=plateau", "+model.scheduler.mode=max"],
        "model.scheduler.mode=max but model.monitor_mode=min (val/loss); drop model.scheduler.mode",
    ),
    (
        ["experiment=gru_toy", "model/scheduler=plateau"],
        "model.scheduler follows val/loss each epoch, and the run validates every 5 epochs "
        "(trainer.check_val_every_n_epoch=5); pass model.scheduler.frequency=5",
    ),
    (
        ["experiment=dialogue", "data.min_freq=100000"],
        "no word of the training pairs occurs data.min_freq=100000 times, so every word would read as <unk>",
    ),
    (
        ["experiment=gru_toy", "+logger.tensorboard.log_graph=true"],
        "logger.tensorboard.log_graph=true draws the network from the task's example_input_array, which the gru_toy "
        "task does not set; drop it",
    ),
]


@pytest.mark.parametrize("args,expected", CONFIG_CASES, ids=[" ".join(a)[:60] for a, _ in CONFIG_CASES])
def test_bad_config_value(args, expected, tmp_path):
    code, _, err = cli("train", "trainer.enable_progress_bar=false", *args, cwd=tmp_path)
    assert expected in one_error(code, err)
    assert not left_behind(tmp_path)


def test_gpu_preset_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    msg = one_error(*cli("train", "trainer=gpu", cwd=tmp_path)[::2])
    assert msg.endswith(
        "trainer.accelerator=gpu needs a GPU, and this machine has none (experiment=charlm); pass trainer=cpu"
    )
    msg = one_error(*cli("train", "experiment=arithmetic_gpu", cwd=tmp_path)[::2])
    assert msg.endswith("(experiment=arithmetic_gpu); it is a GPU recipe: use experiment=arithmetic")
    assert not left_behind(tmp_path)


def test_run_folder_below_a_regular_file(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    msg = one_error(*cli("train", f"hydra.run.dir={tmp_path / 'file' / 'run'}", cwd=tmp_path)[::2])
    assert "file" in msg and ("Not a directory" in msg or "pick another folder" in msg)
    msg = one_error(*cli("train", f"hydra.run.dir={tmp_path / 'file'}", cwd=tmp_path)[::2])
    assert f"hydra.run.dir={tmp_path / 'file'} is a file, not a folder; pass a new folder" in msg
    (tmp_path / "f2").write_text("x")
    msg = one_error(*cli("train", f"paths.root_dir={tmp_path / 'f2'}", cwd=tmp_path)[::2])
    assert "cannot create the run folder" in msg


def one_epoch_run(tmp_path):
    """A finished one-epoch GRU-toy run in tmp_path/run."""
    run = tmp_path / "run"
    code, _, err = cli(
        "train", "experiment=gru_toy", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, err[-3000:]
    return run


def test_run_states_probe_d(tmp_path):
    """A resume with fast_dev_run (it would rewrite result.json from one batch), a sweep given a
    run's folder, a last.ckpt that is a broken link, a run that kept no checkpoints: each refused,
    and the run's files stay as they were."""
    run = one_epoch_run(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    msg = one_error(*cli("train", f"resume={run}", "debug=fast_dev_run", "trainer.max_epochs=2", cwd=tmp_path)[::2])
    assert "saves nothing, so it cannot continue a run" in msg
    msg = one_error(*cli("train", "-m", "experiment=gru_toy", "seed=1,2", f"hydra.sweep.dir={run}", cwd=tmp_path)[::2])
    assert f"hydra.sweep.dir={run} holds a run; pass a new folder" in msg
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    linked, bare = tmp_path / "linked", tmp_path / "bare"
    shutil.copytree(run, linked)
    (linked / "checkpoints" / "last.ckpt").unlink()
    (linked / "checkpoints" / "last.ckpt").symlink_to(tmp_path / "gone.ckpt")
    msg = one_error(*cli("train", f"resume={linked}", cwd=tmp_path)[::2])
    assert f"last.ckpt is a link to {tmp_path / 'gone.ckpt'}, which is not there" in msg
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("checkpoints"))
    msg = one_error(*cli("train", f"resume={bare}", cwd=tmp_path)[::2])
    assert "kept no checkpoints (no checkpoints/ folder" in msg
    msg = one_error(*cli("train", f"resume={run}", "callbacks=none", "trainer.max_epochs=2", cwd=tmp_path)[::2])
    assert "these callbacks keep none (callbacks=none); drop the callbacks override" in msg
    msg = one_error(*cli("train", f"resume={run / 'checkpoints'}", cwd=tmp_path)[::2])
    assert f"is inside a run folder; pass resume={run}" in msg
    no_best = "callbacks.model_checkpoint.save_top_k=0"
    code, _, err = cli(
        "train", "experiment=gru_toy", "train=false", "trainer.limit_test_batches=1", no_best, cwd=tmp_path
    )
    assert code == 0 and "warning: train=false without ckpt_path= tests the untrained model" in err, err[-2000:]
    assert f"warning: {no_best} keeps no best checkpoint: the test reads the last weights; pass 1 to keep one" in err
    code, _, err = cli(
        "train",
        "experiment=gru_toy",
        "train=false",
        "trainer.limit_test_batches=1",
        "+callbacks.model_checkpoint.every_n_epochs=0",
        "model.monitor_mode=max",
        "threads=64",
        cwd=tmp_path,
    )
    assert code == 0 and "warning: callbacks.model_checkpoint.every_n_epochs=0 keeps no best checkpoint" in err
    code2, _, err2 = cli(
        "train", "experiment=gru_toy", "train=false", "trainer.limit_test_batches=1",
        "callbacks.last_checkpoint.save_top_k=0", "+callbacks.model_checkpoint.every_n_train_steps=1", cwd=tmp_path,
    )  # fmt: skip
    assert code2 == 0, err2[-2000:]  # (probe L: each was silent, and a later resume= blamed the run)
    assert "warning: callbacks.last_checkpoint.save_top_k=0 keeps no last.ckpt, which resume= continues from" in err2
    assert "warning: callbacks.model_checkpoint.every_n_train_steps=1 judges val/loss at training steps" in err2
    assert f"warning: threads=64 but this machine has {os.cpu_count()} CPU cores" in err
    assert (
        "warning: model.monitor=val/loss with model.monitor_mode=max keeps the maximum as the best, the worst loss; "
        "model.monitor_mode=min"
    ) in err
    code, _, err = cli(
        "train",
        "experiment=gru_toy",
        "train=false",
        "model.monitor=val/char_acc",
        "model.monitor_mode=min",
        cwd=tmp_path,
    )
    assert (
        code == 0
        and "model.monitor_mode=min keeps the minimum as the best, the worst accuracy; model.monitor_mode=max" in err
    )
    msg = one_error(*cli("train", f"resume={run}", "model.monitor=train/loss", cwd=tmp_path)[::2])
    assert "resume= continues a run as it was started (model.monitor as composed then); drop model.monitor" in msg
    msg = one_error(*cli("train", f"resume={run}", "seed=7", "trainer.max_epochs=2", cwd=tmp_path)[::2])
    assert (
        msg
        == "error: resume= continues a run as it was started (seed as composed then); drop seed=7, or start a new run"
    )
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before


def test_a_run_folder_given_by_hand_is_never_shared(tmp_path):
    """hydra.run.dir= pointing at another run (or at a folder of the user's files) is refused
    before Hydra writes into it: the other run's files stay as they were."""
    run = one_epoch_run(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    msg = one_error(*cli("train", f"hydra.run.dir={run}", cwd=tmp_path)[::2])
    assert f"hydra.run.dir={run} already holds a run; continue it with resume={run}" in msg
    assert before == {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    msg = one_error(*cli("train", f"resume={run / '.hydra' / 'config.yaml'}", cwd=tmp_path)[::2])
    assert msg == f"error: resume= takes a run folder, not a file in it; pass resume={run}"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    msg = one_error(*cli("train", f"hydra.run.dir={tmp_path / 'mine'}", cwd=tmp_path)[::2])
    assert "is a folder with files in it" in msg and sorted(p.name for p in (tmp_path / "mine").iterdir()) == [
        "notes.txt"
    ]


def test_a_run_folder_built_from_settings_is_checked_too(tmp_path):
    """hydra.run.dir=outputs/${name}/fixed names the same folder every time: the second run is
    refused as one given literally would be."""
    args = [
        "experiment=gru_toy",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "hydra.run.dir=outputs/${name}/fixed",
    ]
    code, _, err = cli("train", *args, cwd=tmp_path)
    assert code == 0, err
    msg = one_error(*cli("train", *args, cwd=tmp_path)[::2])
    assert "hydra.run.dir=outputs/gru_toy/fixed already holds a run; continue it with resume=" in msg
    quick = ["experiment=gru_toy", "debug=fast_dev_run", "hydra.run.dir=quick"]  # (it keeps no checkpoint)
    code, out, _ = cli("train", *quick, cwd=tmp_path)
    assert code == 0 and "run directory:" in out and "TensorBoard:" not in out
    msg = one_error(*cli("train", *quick, cwd=tmp_path)[::2])
    assert msg == "error: hydra.run.dir=quick already holds a run; pass a new folder"


def test_a_failed_sweep_never_removes_a_folder_it_did_not_make(tmp_path):
    """Every job refused and no checkpoint anywhere: the sweep folder goes only if this sweep
    made it; a hand-given one (here the current folder, with the user's file) stays."""
    (tmp_path / "notes.txt").write_text("the user's")
    msg = one_error(
        *cli("train", "-m", "experiment=gru_toy", "model.hidden_size=0,-1", "hydra.sweep.dir=.", cwd=tmp_path)[::2]
    )
    assert "model.hidden_size must be an integer >= 1" in msg
    assert (tmp_path / "notes.txt").read_text() == "the user's"
    (tmp_path / "x").mkdir()
    msg = one_error(*cli("train", "-m", "experiment=gru_toy", "model.hidden_size=0,-1", cwd=tmp_path / "x")[::2])
    assert "model.hidden_size must be" in msg and not (tmp_path / "x" / "outputs").exists()
    refused = ["-m", "experiment=gru_toy", "model.hidden_size=4,8", "trainer.limit_train_batches=-5"]  # (by each job)
    code, out, err = cli("train", *refused, cwd=tmp_path / "x")
    assert code == 2 and "sweep summary (2 jobs): nothing was kept, so its folder is removed\n" in out, err[-2000:]
    assert not (tmp_path / "x" / "outputs").exists()
    (tmp_path / "mine").mkdir()  # (an empty folder of the user's: it stays, what the sweep wrote in it goes)
    code, out, err = cli("train", *refused, "hydra.sweep.dir=mine", cwd=tmp_path)
    assert code == 2 and f"nothing was kept, so what it wrote in {tmp_path / 'mine'} is removed\n" in out, err[-2000:]
    assert list((tmp_path / "mine").iterdir()) == [] and (tmp_path / "notes.txt").exists()


def test_a_sweep_folder_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    msg = one_error(
        *cli("train", "-m", "experiment=gru_toy", f"hydra.sweep.dir={tmp_path / 'file' / 'x'}", cwd=tmp_path)[::2]
    )
    assert f"{tmp_path / 'file'} is a file (Not a directory); set hydra.sweep.dir=<a writable folder>" in msg


def test_data_files_in_other_encodings(tmp_path):
    """Each names the conversion that works (checked here with iconv where it exists)."""
    (tmp_path / "latin1.txt").write_bytes("café naïve".encode("latin-1") * 100)
    (tmp_path / "utf16.txt").write_text("hello world " * 100, encoding="utf-16")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 10)
    msg = one_error(*cli("train", f"data.path={tmp_path / 'latin1.txt'}", cwd=tmp_path)[::2])
    assert "not UTF-8 text" in msg and f"iconv -f LATIN1 -t UTF-8 {tmp_path / 'latin1.txt'} > latin1.utf8.txt" in msg
    msg = one_error(*cli("train", f"data.path={tmp_path / 'utf16.txt'}", cwd=tmp_path)[::2])
    assert "is UTF-16 text" in msg and "iconv -f UTF-16 -t UTF-8" in msg
    msg = one_error(*cli("train", f"data.path={tmp_path / 'binary.txt'}", cwd=tmp_path)[::2])
    assert "is binary, not text" in msg and not left_behind(tmp_path)


def test_a_json_list_with_a_syntax_error_names_the_place(tmp_path):
    (tmp_path / "pairs.json").write_text('[{"listen": "hi", "reply": "hello"},\n {"listen": "a" "reply": "b"}]')
    msg = one_error(*cli("train", "experiment=dialogue", f"data.path={tmp_path / 'pairs.json'}", cwd=tmp_path)[::2])
    assert "is not valid JSON: Expecting ',' delimiter at line 2, column 17; fix it there" in msg


def test_resume_of_a_run_whose_settings_are_gone(tmp_path):
    """.hydra/ deleted or edited: last.ckpt records the overrides it was trained with, so the run
    resumes as it was; a run finished by its epochs says how to train on."""
    run = one_epoch_run(tmp_path)
    import shutil

    shutil.rmtree(run / ".hydra")
    msg = one_error(*cli("train", f"resume={run}", cwd=tmp_path)[::2])
    assert msg == (
        "error: the run has trained 1 epoch, all that trainer.max_epochs=1 asks for; pass "
        "trainer.max_epochs=2 or more to train on (or train=false to test it)"
    )
    code, out, err = cli("train", f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path)
    assert code == 0 and "test/loss" in out, err[-3000:]
    assert not (run / ".hydra").exists()  # (resume= writes nothing there)


def test_a_run_without_loggers(tmp_path):
    """logger=none: nothing to log the learning rate to, so its monitor is left out."""
    code, _, err = cli(
        "train",
        "experiment=gru_toy",
        "logger=none",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    assert list(tmp_path.glob("outputs/gru_toy/runs/*/checkpoints/last.ckpt"))


def test_settings_that_would_quietly_miss(tmp_path):
    """A checkpoint name with a metric the task does not log, validation on no batches, TensorBoard
    events kept outside the run folder; float16 weights that overflow; a sweep's job folders named
    by its swept key."""
    tiny = ["experiment=gru_toy", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]
    code, out, err = cli(
        "train",
        *tiny,
        "callbacks.model_checkpoint.filename='best-{epoch:02d}-{val_loss:.3f}'",
        "trainer.limit_val_batches=0.0",
        f"logger.tensorboard.save_dir={tmp_path / 'tbs'}",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    assert "warning: callbacks.model_checkpoint.filename names {val_loss}, which the gru_toy task does not log" in err
    assert "so no best checkpoint was kept; trainer.limit_val_batches=0.0 validates on nothing" in err
    assert f"TensorBoard:     tensorboard --logdir {tmp_path / 'tbs'}\n" in out
    assert list((tmp_path / "tbs").rglob("events.out.tfevents.*"))
    code, out, err = cli("train", *tiny, "trainer.max_steps=3", "hydra/launcher=parallel", cwd=tmp_path)  # (every 5th)
    never = (
        "warning: val/loss was never measured, so no best checkpoint was kept; it validates once every 5 epochs "
        "(trainer.check_val_every_n_epoch=5), and the run ended first; pass trainer.check_val_every_n_epoch=1"
    )
    assert code == 0 and never in err, err[-3000:]
    assert "warning: hydra/launcher=parallel acts on a sweep, and this is one run; add -m to sweep" in err
    (tmp_path / "b").mkdir()
    msg = one_error(*cli("train", *tiny, "trainer.precision=16-true", "seed=1", cwd=tmp_path / "b")[::2])
    assert "training loss is not finite" in msg and msg.endswith(
        "trainer.precision=16-true computes in float16, too coarse here: pass 32-true or bf16-mixed"
    )
    few = ["trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
    late = ["callbacks=ema", "callbacks.ema.update_starting_at_step=1000"]  # (the average would hold the start)
    msg = one_error(*cli("train", *tiny, *few, *late, cwd=tmp_path / "b")[::2])
    assert msg.startswith("error: EMAWeightAveraging would not update its average once in this run (1 steps; ")
    code, _, err = cli("train", *tiny, "debug=overfit", "trainer.limit_train_batches=2", cwd=tmp_path / "b")
    assert code == 0 and "warning: trainer.overfit_batches=3 sets the batches: trainer.limit_train_batches=2" in err
    assert all(line.startswith("warning: ") for line in err.splitlines()), err  # (nothing of Lightning's)
    sweep = ["-m", *tiny, *few, "seed=1,2", "hydra.sweep.subdir=s${seed}", f"hydra.sweep.dir={tmp_path / 'sw'}"]
    assert "trainer.max_epochs=1 ends each job before its first validation (trainer.check_val_every_n_epoch=5)" in (
        one_error(*cli("train", *sweep, cwd=tmp_path)[::2])
    )  # (a sweep of jobs that measure nothing has nothing to compare)
    sweep.append("trainer.check_val_every_n_epoch=1")
    code, _, err = cli("train", *sweep, cwd=tmp_path)
    assert code == 0 and {p.name for p in (tmp_path / "sw").glob("s?")} == {"s1", "s2"}, err[-3000:]


def test_a_users_configs_with_mistakes(tmp_path):
    """A file named like one of seqlab's (never read: seqlab's comes first), an experiment file
    that picks an option that is not there, a search over a key the config has not."""
    mine = tmp_path / "mine"
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment" / "gru_toy.yaml").write_text("# @package _global_\nmodel:\n  hidden_size: 3\n")
    msg = one_error(*cli("train", "--config-dir", str(mine), "experiment=gru_toy", cwd=tmp_path)[::2])
    assert "gru_toy.yaml has the name of one of seqlab's own configs, which is read instead; rename it" in msg
    (mine / "experiment" / "gru_toy.yaml").unlink()
    (mine / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: gru_toy\n  - override /model: gru_tyo\n"
    )
    msg = one_error(*cli("train", "--config-dir", str(mine), "experiment=mine", cwd=tmp_path)[::2])
    assert "mine.yaml picks 'gru_tyo' of the model group, which has no such option; did you mean gru_toy?" in msg
    (mine / "hparams_search").mkdir()
    (mine / "hparams_search" / "typo.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/sweeper: optuna_study\nsearches: gru_toy\n"
        "hydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n      model.hiden_size: choice(2, 4)\n"
    )
    args = ["-m", "--config-dir", str(mine), "experiment=gru_toy", "hparams_search=typo"]
    msg = one_error(*cli("train", *args, cwd=tmp_path)[::2])
    assert "hparams_search=typo searches model.hiden_size, which is not a key of this config; did you mean" in msg
    assert not left_behind(tmp_path)


def test_optuna_storage_that_cannot_be_used(tmp_path):
    """A storage file that is not a database; a study that began in the other direction."""
    import optuna

    db = tmp_path / "study.db"
    db.write_bytes(bytes(range(256)) * 8)
    args = ["-m", "experiment=gru_toy", "hparams_search=gru_toy_optuna", f"hydra.sweeper.storage=sqlite:///{db}"]
    msg = one_error(*cli("train", *args, cwd=tmp_path)[::2])
    assert f"{db} is not an Optuna study database" in msg
    db.unlink()
    optuna.create_study(study_name="gru_toy", storage=f"sqlite:///{db}", direction="maximize")
    msg = one_error(*cli("train", *args, cwd=tmp_path)[::2])
    assert "study 'gru_toy' in" in msg and "began to maximize and this search would minimize" in msg
    assert "hydra.sweeper.study_name=gru_toy_2" in msg and not left_behind(tmp_path)


def test_variables_left_in_the_environment(tmp_path, monkeypatch):
    """A rank variable from a torchrun session, a port that is no number, Lightning's Trainer
    defaults (which the config's values replace), and an OpenMP thread count of 0."""
    with monkeypatch.context() as m:
        m.setenv("LOCAL_RANK", "1")
        msg = one_error(*cli("train", "experiment=gru_toy", cwd=tmp_path)[::2])
        assert "the environment's LOCAL_RANK=1 makes this process rank 1 of a launch, but torchrun did not" in msg
        assert "unset LOCAL_RANK, or start the run with torchrun" in msg and not left_behind(tmp_path)
    with monkeypatch.context() as m:  # (a torchrun session's, with no torchrun: its store would be waited for)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        left = {"TORCHELASTIC_RUN_ID": "x", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "GROUP_RANK": "0"}
        for k, v in (left | {"LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}).items():
            m.setenv(k, v)
        msg = one_error(*cli("train", "experiment=gru_toy", cwd=tmp_path)[::2])
        assert f"but nothing answers at MASTER_ADDR:MASTER_PORT=127.0.0.1:{port}; unset the variables" in msg
        assert not left_behind(tmp_path)
    with monkeypatch.context() as m:  # (a job's variables, without srun)
        for k, v in {"SLURM_JOB_ID": "9", "SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_JOB_NAME": "bash"}.items():
            m.setenv(k, v)
        msg = one_error(*cli("train", "experiment=gru_toy", cwd=tmp_path)[::2])
        assert "SLURM_PROCID=1 makes this process rank 1 of a launch, but srun did not start it" in msg
        m.setenv("SLURM_PROCID", "0")
        m.setenv("SLURM_JOB_NAME", "train")  # (sbatch --ntasks=2, and seqlab-train without srun)
        msg = one_error(*cli("train", "experiment=gru_toy", cwd=tmp_path)[::2])
        assert msg.startswith("error: Lightning refuses this SLURM job's settings: ") and not left_behind(tmp_path)
    with monkeypatch.context() as m:
        m.setenv("MASTER_PORT", "abc")
        msg = one_error(*cli("train", "experiment=gru_toy", "trainer=ddp_cpu", cwd=tmp_path)[::2])
        assert "the environment's MASTER_PORT=abc is not a port number" in msg and not left_behind(tmp_path)
    with monkeypatch.context() as m:
        m.setenv("PL_TRAINER_MAX_EPOCHS", "1")
        code, _, err = cli("train", "experiment=gru_toy", "trainer.max_epochs=0", cwd=tmp_path)
        assert "warning: the environment's PL_TRAINER_MAX_EPOCHS is not read: the config sets trainer.max_epochs" in err
        assert "trainer.max_epochs=0 trains on nothing" in one_error(code, err)
    proc = subprocess.run(
        [sys.executable, "-c", "from seqlab.commands import train; train()", "experiment=gru_toy"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "0"},
    )
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: the environment's OMP_NUM_THREADS=0 is not a number of threads; set it to 1 or more, or unset it"
    ), proc.stderr[-3000:]


def test_an_empty_root_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_ROOT", "")
    msg = one_error(*cli("train", "experiment=gru_toy", cwd=tmp_path)[::2])
    assert "the SEQLAB_ROOT environment variable is empty" in msg and not left_behind(tmp_path)


def test_a_search_that_fails_at_once_leaves_no_study(tmp_path):
    """The first trial's overrides do not fit the experiment: no sweep folder and no Optuna
    study file stay behind (a study that ran trials is kept: the same command continues it)."""
    msg = one_error(
        *cli(
            "train",
            "-m",
            "experiment=gru_toy",
            "hparams_search=gru_toy_optuna",
            "model.nosuch=choice(1,2)",
            cwd=tmp_path,
        )[::2]
    )
    assert "unknown config key 'model.nosuch'" in msg
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*"))


def test_ctrl_c_while_starting(tmp_path):
    """Ctrl-C in the seconds the console script spends importing torch and Lightning."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from seqlab.commands import train; train()", "experiment=gru_toy"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert (
        proc.returncode == 130
        and "Traceback" not in err
        and err.strip().splitlines()[-1].startswith("stopped by Ctrl-C")
    )


def test_a_config_file_that_is_not_yaml(tmp_path):
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "broken.yaml").write_text("# @package _global_\nmodel:\n  hidden_size: [4\n")
    msg = one_error(*cli("train", "--config-dir", str(tmp_path / "mine"), "experiment=broken", cwd=tmp_path)[::2])
    assert "is not valid YAML" in msg and "broken.yaml" in msg and not left_behind(tmp_path)
    mine = tmp_path / "mine" / "experiment"
    for header in ("", "# @package _global_\n"):  # (a list has no keys to land anywhere: named first)
        (mine / "listed.yaml").write_text(f"{header}- override /data: gru_toy\n")
        msg = one_error(*cli("train", "--config-dir", str(tmp_path / "mine"), "experiment=listed", cwd=tmp_path)[::2])
        assert (
            msg
            == f"error: {mine}/listed.yaml holds a list where a config's keys belong; write it as key: value "
            + ("lines (defaults:, model:, trainer:, …)")
        )
    (mine / "latin.yaml").write_bytes(b"# @package _global_\nname: caf\xe9\n")
    msg = one_error(*cli("train", "--config-dir", str(tmp_path / "mine"), "experiment=latin", cwd=tmp_path)[::2])
    assert msg == f"error: {mine}/latin.yaml is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"
    assert not left_behind(tmp_path)


# ---- checkpoints that do not fit the run ---------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, small_text):
    """A tiny char-LM and a tiny subseq checkpoint."""
    root = tmp_path_factory.mktemp("ckpts")
    few = [
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.enable_progress_bar=false",
    ]
    train_run(make_cfg([f"data.path={small_text}", *TINY_CHARLM, *few], root / "charlm"))
    train_run(
        make_cfg(
            [
                "experiment=subseq",
                "model.hidden_size=16",
                "model.emb_dim=8",
                "model.n_layers=1",
                "trainer.accelerator=cpu",
                *few,
            ],
            root / "subseq",
        )
    )
    train_run(
        make_cfg(
            ["experiment=arithmetic", "model.hidden_size=16", "trainer.accelerator=cpu", *few], root / "arithmetic"
        )
    )
    return {task: root / task / "checkpoints" / "last.ckpt" for task in ("charlm", "subseq", "arithmetic")}


def test_training_from_another_tasks_checkpoint(checkpoints, small_text, tmp_path):
    msg = one_error(
        *cli("train", f"ckpt_path={checkpoints['subseq']}", f"data.path={small_text}", *TINY_CHARLM, cwd=tmp_path)[::2]
    )
    assert "'subseq' checkpoint" in msg and "experiment=subseq" in msg and not left_behind(tmp_path)


def test_training_from_a_checkpoint_of_another_size(checkpoints, small_text, tmp_path):
    msg = one_error(
        *cli(
            "train",
            f"ckpt_path={checkpoints['charlm']}",
            f"data.path={small_text}",
            *TINY_CHARLM,
            "model.hidden_size=48",
            cwd=tmp_path,
        )[::2]
    )
    assert "model.hidden_size (32 there, 48 here)" in msg and not left_behind(tmp_path)


def test_a_checkpoint_at_a_url(checkpoints, tmp_path):
    msg = one_error(*cli("generate", "ckpt_path=s3://bucket/runs/last.ckpt", "prompt=the", cwd=tmp_path)[::2])
    assert (
        msg
        == "error: ckpt_path=s3://bucket/runs/last.ckpt is a URL, and seqlab reads local files; download it, "
        + ("then pass its path")
    )


def test_eval_with_an_option_the_task_does_not_take(checkpoints, tmp_path):
    msg = one_error(*cli("eval", f"ckpt_path={checkpoints['subseq']}", "data.path=x.txt", cwd=tmp_path)[::2])
    assert "data.path is not an argument of SubseqDataModule; drop it" in msg and "seq_len" in msg


def test_checkpoint_paths_that_are_not_checkpoints(checkpoints, tmp_path):
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    folder, notes = checkpoints["charlm"].parent, tmp_path / "notes.txt"
    assert "is a folder; pass a .ckpt file in it" in one_error(
        *cli("generate", f"ckpt_path={folder}", "prompt=the", cwd=tmp_path)[::2]
    )
    spaced = tmp_path / "my runs"  # (the example is pasted into a shell: quoted where it must be)
    shutil.copytree(folder, spaced)
    msg = one_error(*cli("generate", f"ckpt_path={spaced}", "prompt=the", cwd=tmp_path)[::2])
    assert msg.endswith(f"e.g. 'ckpt_path={spaced / checkpoints['charlm'].name}'"), msg
    assert "is not a PyTorch checkpoint file" in one_error(
        *cli("generate", f"ckpt_path={notes}", "prompt=the", cwd=tmp_path)[::2]
    )
    (tmp_path / "dict.ckpt").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    msg = one_error(*cli("eval", f"ckpt_path={tmp_path / 'dict.ckpt'}", cwd=tmp_path)[::2])
    assert msg == f"error: {tmp_path / 'dict.ckpt'} is a Python pickle, not a checkpoint of seqlab-train's; pass a " + (
        ".ckpt it wrote"
    )
    os.mkfifo(tmp_path / "pipe.ckpt")
    msg = one_error(*cli("generate", f"ckpt_path={tmp_path / 'pipe.ckpt'}", "prompt=the", cwd=tmp_path)[::2])
    assert msg == f"error: ckpt_path={tmp_path / 'pipe.ckpt'} is not a regular file (a pipe or a device); pass a " + (
        ".ckpt file"
    )
    assert "resume= takes a run folder" in one_error(
        *cli("train", f"resume={checkpoints['charlm']}", cwd=tmp_path)[::2]
    )
    assert "drop ckpt_path" in one_error(
        *cli("train", f"resume={folder.parent}", f"ckpt_path={notes}", cwd=tmp_path)[::2]
    )


def test_a_quoted_pattern_for_a_checkpoint(checkpoints, tmp_path):
    folder = checkpoints["charlm"].parent
    msg = one_error(*cli("generate", f"ckpt_path={folder}/*.ckpt", "prompt=the", cwd=tmp_path)[::2])
    assert f"checkpoint not found: {folder}/*.ckpt (a pattern, which the shell did not expand: it matches " in msg


def test_a_tool_needs_no_config_folder(checkpoints, tmp_path):
    msg = one_error(*cli("eval", "--config-dir", "conf", f"ckpt_path={checkpoints['charlm']}", cwd=tmp_path)[::2])
    assert msg == "error: seqlab-eval reads the checkpoint's own task and settings; drop --config-dir"


def test_callbacks_of_the_users_that_keep_no_checkpoint(tmp_path):
    (tmp_path / "mine" / "callbacks").mkdir(parents=True)
    (tmp_path / "mine" / "callbacks" / "mine.yaml").write_text(
        "lr_monitor:\n  _target_: lightning.pytorch.callbacks.LearningRateMonitor\n"
    )
    args = ["--config-dir", "mine", "experiment=gru_toy", "callbacks=mine", "trainer.max_epochs=1"]
    code, _, err = cli("train", *args, "trainer.enable_progress_bar=false", cwd=tmp_path)
    assert code == 0 and "warning: callbacks=mine keeps no checkpoint (it has no ModelCheckpoint)" in err, err


def test_a_trainer_config_of_the_users_that_sets_the_logger(tmp_path):
    (tmp_path / "mine" / "trainer").mkdir(parents=True)
    (tmp_path / "mine" / "trainer" / "quiet.yaml").write_text("defaults:\n  - default\n\nlogger: false\n")
    msg = one_error(*cli("train", "--config-dir", "mine", "experiment=gru_toy", "trainer=quiet", cwd=tmp_path)[::2])
    assert msg == (
        "error: trainer.logger is seqlab's to set; drop it from the trainer config and pass logger=none or "
        "logger=<option>"
    )


def test_a_target_with_a_typo():
    from seqlab.errors import SeqlabError
    from seqlab.run.schema import locate

    with pytest.raises(SeqlabError, match="^data has a key '_target' where _target_ is meant"):
        locate("data", {"_target": "mine.MyData", "size": 3})


def test_a_glob_of_options_is_a_grid():
    from seqlab.run.sweep import grid_jobs

    jobs, size = grid_jobs(["experiment=gru_toy", "model/optimizer=glob(adam*)"])
    assert size == 2 and [j[-1] for j in jobs] == ["model/optimizer=adam", "model/optimizer=adamw"]


def test_a_group_swept_without_minus_m_is_told_no_list(tmp_path):
    msg = one_error(*cli("train", "model/optimizer=adam,adamw", cwd=tmp_path)[::2])
    assert msg == "error: model/optimizer=adam,adamw: a value with commas is a sweep; add -m to sweep it"


def test_a_lone_double_dash_ends_the_options(tmp_path):
    code, out, err = cli("train", "--cfg", "job", "--", "experiment=gru_toy", "model.hidden_size=7", cwd=tmp_path)
    assert code == 0 and "hidden_size: 7" in out, err


def test_options_a_tool_does_not_take(checkpoints, tmp_path):
    msg = one_error(*cli("generate", f"ckpt_path={checkpoints['charlm']}", "prompt=???", cwd=tmp_path)[::2])
    assert msg == (
        "error: prompt=???: the config reads ??? as a value still to give, never as text; add a character "
        "(prompt='??? '), or type it to seqlab-chat"
    )
    code, out, _ = cli("generate", f"ckpt_path={checkpoints['charlm']}", "prompt=??? ", "length=3", cwd=tmp_path)
    assert code == 0 and len(out) == 3 + 1  # (the fix it names works)
    msg = one_error(*cli("eval", f"ckpt_path={checkpoints['charlm']}", "prompt=the", cwd=tmp_path)[::2])
    assert msg == "error: unknown option 'prompt': seqlab-eval takes ckpt_path, data.<key>, trainer, trainer.<key>"
    code, out, _ = cli("eval", f"ckpt_path={checkpoints['charlm']}", "trainer=cpu", cwd=tmp_path)  # (its --help's)
    assert code == 0 and "test/loss" in out
    msg = one_error(*cli("chat", f"ckpt_path={checkpoints['charlm']}", "prompt=the", cwd=tmp_path)[::2])
    assert msg.startswith("error: unknown option 'prompt': seqlab-chat takes ckpt_path, device, empty_reply, length")
    # a typo gets its correction; another idea that shares a prefix does not (length_penalty is not length)
    msg = one_error(*cli("eval", "experiment=charlm", f"ckpt_path={checkpoints['charlm']}", cwd=tmp_path)[::2])
    assert msg == (
        "error: unknown option 'experiment' (a checkpoint knows its experiment): seqlab-eval takes "
        "ckpt_path, data.<key>, trainer, trainer.<key>"
    )
    msg = one_error(*cli("generate", f"ckpt_path={checkpoints['charlm']}", "temprature=0", cwd=tmp_path)[::2])
    assert "unknown option 'temprature': did you mean temperature=…? seqlab-generate takes ckpt_path" in msg
    msg = one_error(*cli("generate", f"ckpt_path={checkpoints['charlm']}", "length_penalty=1", cwd=tmp_path)[::2])
    assert msg.startswith("error: unknown option 'length_penalty': seqlab-generate takes ckpt_path, prompt")


def test_data_files_that_are_not_plain_files(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe")  # reading it would wait for a writer forever
    msg = one_error(*cli("train", f"data.path={tmp_path / 'pipe'}", cwd=tmp_path)[::2])
    assert "data path is not a regular file" in msg and not left_behind(tmp_path)


def test_a_byte_order_mark_is_not_data(tmp_path):
    from seqlab.textfiles import read_json_records, read_text

    (tmp_path / "pairs.jsonl").write_text('{"listen": "hi", "reply": "hello"}\n', encoding="utf-8-sig")
    assert read_json_records(tmp_path / "pairs.jsonl") == [{"listen": "hi", "reply": "hello"}]
    assert read_text(tmp_path / "pairs.jsonl").startswith("{")


def test_eval_on_a_text_of_another_alphabet(checkpoints, tmp_path):
    (tmp_path / "jp.txt").write_text("日本語のテキスト\n" * 400)
    msg = one_error(
        *cli("eval", f"ckpt_path={checkpoints['charlm']}", f"data.path={tmp_path / 'jp.txt'}", cwd=tmp_path)[::2]
    )
    assert "% of the characters of the test text are not in this model's vocabulary; evaluate it on" in msg


def test_eval_of_no_batches(checkpoints, tmp_path):
    msg = one_error(
        *cli("eval", f"ckpt_path={checkpoints['subseq']}", "trainer.limit_test_batches=0", cwd=tmp_path)[::2]
    )
    assert "trainer.limit_test_batches=0 tests on nothing" in msg and "test=false" not in msg  # (eval only tests)


def test_relative_paths_are_read_from_where_the_command_started(checkpoints, small_text, tmp_path):
    """hydra.job.chdir=true moves into the run folder; ckpt_path and data.path still mean what
    they meant in the user's folder."""
    import shutil

    shutil.copy(checkpoints["charlm"], tmp_path / "start.ckpt")
    shutil.copy(small_text, tmp_path / "text.txt")
    code, _, err = cli(
        "train",
        "data.path=text.txt",
        "ckpt_path=start.ckpt",
        *TINY_CHARLM,
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "hydra.job.chdir=true",
        cwd=tmp_path,
    )
    assert code == 0, err[-2000:]


def test_tools_take_no_hydra_settings(checkpoints, tmp_path):
    msg = one_error(
        *cli(
            "generate",
            f"ckpt_path={checkpoints['charlm']}",
            "prompt=the",
            f"hydra.run.dir={tmp_path / 'gen'}",
            cwd=tmp_path,
        )[::2]
    )
    assert "writes no run folder" in msg and not (tmp_path / "gen").exists()


def test_a_checkpoint_from_other_data_names_the_data_setting(checkpoints, tmp_path):
    msg = one_error(
        *cli(
            "train",
            "experiment=arithmetic",
            "model.hidden_size=16",
            "data.alphabet=printable",
            f"ckpt_path={checkpoints['arithmetic']}",
            "trainer.max_epochs=5",
            cwd=tmp_path,
        )[::2]
    )
    assert "data.alphabet ('compact' there, 'printable' here)" in msg


def test_a_torch_file_that_is_not_a_checkpoint(tmp_path):
    import datetime

    torch.save({"when": datetime.datetime(2026, 1, 1)}, tmp_path / "other.pt")
    msg = one_error(*cli("generate", f"ckpt_path={tmp_path / 'other.pt'}", cwd=tmp_path)[::2])
    assert "is a torch file but not a seqlab checkpoint" in msg


def test_edited_checkpoints(checkpoints, tmp_path):
    ckpt = torch.load(checkpoints["charlm"], weights_only=False)
    ckpt["hyper_parameters"]["hidden_size"] *= 2
    torch.save(ckpt, tmp_path / "resized.ckpt")
    ckpt["seqlab"]["task"] = "banana"
    torch.save(ckpt, tmp_path / "renamed.ckpt")
    msg = one_error(*cli("generate", f"ckpt_path={tmp_path / 'resized.ckpt'}", "prompt=the", cwd=tmp_path)[::2])
    assert "its weights do not fit the network its own hyperparameters describe in CharLMModule's code (code " in msg
    msg = one_error(*cli("generate", f"ckpt_path={tmp_path / 'renamed.ckpt'}", "prompt=the", cwd=tmp_path)[::2])
    assert "says it is a 'banana' checkpoint but names CharLMModule" in msg


def test_a_checkpoint_past_the_epochs_asked_for(checkpoints, small_text, tmp_path):
    msg = one_error(
        *cli(
            "train",
            f"ckpt_path={checkpoints['charlm']}",
            f"data.path={small_text}",
            *TINY_CHARLM,
            "trainer.max_epochs=0",
            cwd=tmp_path,
        )[::2]
    )
    assert "trains on nothing" in msg
    # the checkpoint trained 1 epoch: a run of 1 epoch from it has nothing to train
    args = [
        f"ckpt_path={checkpoints['subseq']}",
        "experiment=subseq",
        "model.hidden_size=16",
        "model.emb_dim=8",
        "model.n_layers=1",
        "trainer.limit_test_batches=1",
        "trainer.enable_progress_bar=false",
    ]
    msg = one_error(*cli("train", *args, "trainer.max_epochs=1", cwd=tmp_path)[::2])
    assert "has trained 1 epoch, all that trainer.max_epochs=1 asks for; pass trainer.max_epochs=2 or more" in msg
    code, _, err = cli("train", *args, "trainer.max_epochs=1", "train=false", cwd=tmp_path)  # testing it is fine
    assert code == 0, err[-2000:]


def test_eval_on_data_of_another_shape(checkpoints, tmp_path):
    for task, change, key in (
        ("subseq", "data.seq_len=12", "seq_len"),
        ("arithmetic", "data.alphabet=printable", "alphabet"),
    ):
        msg = one_error(*cli("eval", f"ckpt_path={checkpoints[task]}", change, cwd=tmp_path)[::2])
        assert f"changes the {key} this model was built for" in msg


def test_a_refused_resume_leaves_the_run_as_it_was(small_text, tmp_path):
    run = tmp_path / "run"
    few = [
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
    ]
    code, _, err = cli("train", f"data.path={small_text}", *TINY_CHARLM, *few, f"hydra.run.dir={run}", cwd=tmp_path)
    assert code == 0, err[-2000:]
    before = {p: p.read_bytes() for p in (run / ".hydra").iterdir()}
    events = set((run / "tensorboard").glob("events.out.tfevents.*"))
    msg = one_error(*cli("train", f"resume={run}", "model.hidden_size=48", cwd=tmp_path)[::2])
    assert "model.hidden_size (32 there, 48 here)" in msg
    assert {p: p.read_bytes() for p in (run / ".hydra").iterdir()} == before  # its settings untouched
    assert set((run / "tensorboard").glob("events.out.tfevents.*")) == events  # no new event file
    code, _, err = cli("train", f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path)  # and it still resumes
    assert code == 0, err[-2000:]
    assert not (run / ".hydra.before-resume").exists()


def test_resume_refuses_another_experiment(checkpoints, tmp_path):
    run = checkpoints["charlm"].parents[1]
    msg = one_error(*cli("train", f"resume={run}", "experiment=subseq", cwd=tmp_path)[::2])
    assert "resume= continues a run as it was started" in msg and "drop experiment=subseq" in msg


# ---- inference inputs ---------------------------------------------------------------------------
GENERATE_CASES = [
    ("charlm", ["prompt=the", "temperature=nan"], "temperature must be a number >= 0"),
    ("charlm", ["prompt=the", "length=1e100"], "length must be an integer from 0 to 100000"),
    ("charlm", ["prompt=the", "temperature=inf"], "temperature must be a number >= 0"),
    ("charlm", ["prompt=the", "temperature=-1"], "temperature must be a number >= 0"),
    ("charlm", ["prompt=the", "length=1e11"], "length must be an integer from 0 to 100000"),
    ("charlm", ["prompt=the", "length=-5"], "length must be an integer from 0 to 100000"),
    ("charlm", ["prompt=the", "seed=abc"], "seed must be an integer from 0 to 9223372036854775807 or null"),
    (
        "charlm",
        ["prompt=the", "beam_width=3"],
        "unknown option 'beam_width': seqlab-generate takes ckpt_path, prompt, "
        "device, length, temperature, seed (for this charlm checkpoint)",
    ),
    ("charlm", ["prompt=ΩΩ✓"], "no character of the prompt"),
    ("charlm", [], "the prompt is empty; pass e.g. prompt='the '"),  # (no prompt: the task's own example)
    ("charlm", ["prompt=the", "device=tpu"], "device='tpu' is not one of auto, cpu, cuda"),
    ("charlm", ["prompt=the", "seed=99999999999999999999"], "seed must be an integer from 0 to"),
    ("subseq", ["prompt=1 2 3"], "is not 10 numbers"),
    ("charlm", ["prompt=the", "prompt=he"], "prompt is given twice (prompt=the prompt=he); keep one"),
    (
        "subseq",
        ["prompt=" + " ".join(["5"] * 5000)],
        "prompt '5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 5 '… (5,000 numbers) is",
    ),
    (
        "subseq",
        ["prompt=2 3 1 8 2 5 8 6 4 5", "temperature=0"],
        "unknown option 'temperature': seqlab-generate takes ckpt_path, prompt, device (for this subseq checkpoint)",
    ),
    ("arithmetic", ["prompt=12 plus 7"], "malformed question"),
    ("arithmetic", ["prompt=" + "9" * 5000 + "+1=?"], "operands have at most 1000 digits, this one 5,000; ask"),
    ("arithmetic", ["prompt=1+2=?", "max_len=0"], "max_len must be an integer from 1 to 1000"),
]


@pytest.mark.parametrize(
    "task,args,expected", GENERATE_CASES, ids=[f"{t} {' '.join(a)}"[:50] for t, a, _ in GENERATE_CASES]
)
def test_bad_generate_input(task, args, expected, checkpoints, tmp_path):
    (tmp_path / "mine.txt").write_text("the user's own file")
    code, _, err = cli("generate", f"ckpt_path={checkpoints[task]}", *args, cwd=tmp_path)
    assert expected in one_error(code, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]  # the user's folder, untouched


def test_a_prompt_with_characters_the_model_lacks_is_answered_with_a_warning(checkpoints, tmp_path):
    ckpt = f"ckpt_path={checkpoints['charlm']}"
    code, out, err = cli("generate", ckpt, "prompt=the ☃日 will", "length=5", cwd=tmp_path)
    assert code == 0 and len(out) == 5 + 1, (out, err)  # its continuation, then print's newline
    assert err == "warning: this model's vocabulary has no '☃日': read as unknown\n"


def test_closed_stdout_and_eval_on_several_devices(checkpoints, tmp_path):
    """Output that goes nowhere (>&-) is an error for a tool that only prints; seqlab-eval tests
    on one device (Lightning would start a second process with settings it does not take)."""
    proc = subprocess.run(
        [sys.executable, "-m", "seqlab.generate", f"ckpt_path={checkpoints['subseq']}", "prompt=2 3 1 8 2 5 8 6 4 5"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        close_fds=True,
        preexec_fn=lambda: os.close(1),
    )
    assert "the output could not be written to stdout (Bad file descriptor); run it with stdout open" in one_error(
        proc.returncode, proc.stderr
    )
    msg = one_error(*cli("eval", f"ckpt_path={checkpoints['subseq']}", "trainer.devices=2", cwd=tmp_path)[::2])
    assert "seqlab-eval tests on one device (it starts no other processes); drop trainer.devices=2" in msg


def test_a_continue_line_quotes_a_path_with_spaces(tmp_path):
    from contextlib import ExitStack

    from seqlab.run.cli import Context

    run = tmp_path / "my runs ü" / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    with ExitStack() as stack:
        line = Context(stack, "seqlab-train", run_dir=run).continues()
    assert line == f"continue with: seqlab-train resume='{run}'"


def test_the_tensorboard_line_can_be_pasted(tmp_path, capsys):
    from omegaconf import OmegaConf

    from seqlab.train import report

    board = tmp_path / "my boards"
    logger = {"tb": {"_target_": "lightning.pytorch.loggers.TensorBoardLogger", "save_dir": str(board)}}
    report(OmegaConf.create({"model": {"monitor": "val/loss"}, "logger": logger}), tmp_path, {"val/loss": 1.0}, None)
    assert f"TensorBoard:     tensorboard --logdir '{board}'\n" in capsys.readouterr().out


def test_an_option_without_annotation_is_typed_by_its_default():
    from seqlab.errors import SeqlabError
    from seqlab.run.schema import check_options

    def respond(self, prompt, *, threshold=0.5, greedy=False):
        return prompt

    assert check_options("generate", {"threshold": 1, "greedy": True}, [], respond) == {"threshold": 1, "greedy": True}
    assert check_options("generate", {"threshold": None, "greedy": "yes"}, [], respond) == {"greedy": "yes"}

    def annotated(self, prompt, *, verbose: bool = False):
        return prompt

    # (pydantic reads yes as true for a flag: respond() gets the flag, not the word)
    assert check_options("generate", {"verbose": "yes"}, [], annotated) == {"verbose": True}
    assert check_options("generate", {"verbose": "no"}, [], annotated) == {"verbose": False}
    assert check_options("generate", {"verbose": 0}, [], annotated) == {"verbose": False}
    with pytest.raises(SeqlabError, match="threshold must be a number"):  # (a word where its default is a number)
        check_options("generate", {"threshold": "abc"}, [], respond)


def test_a_whole_float_is_the_integer_it_means(checkpoints, tmp_path):
    code, out, err = cli("generate", f"ckpt_path={checkpoints['charlm']}", "prompt=the", "length=2e1", cwd=tmp_path)
    assert code == 0 and len(out.rstrip("\n")) >= 20, err[-2000:]
    msg = one_error(*cli("eval", "ckpt_path=outputs/charlm/runs/<time>/checkpoints/last.ckpt", cwd=tmp_path)[::2])
    assert "(<time> is a placeholder: put a run's folder name there)" in msg


def test_questions_outside_training_get_a_warning_and_an_answer(checkpoints, tmp_path):
    for question, reason in (("12345+1=?", "operands of up to 2 digits"), ("3*4=?", "trained on + and - only")):
        code, out, err = cli("generate", f"ckpt_path={checkpoints['arithmetic']}", f"prompt={question}", cwd=tmp_path)
        assert code == 0 and len(out.splitlines()) == 1, err
        assert f"warning: {question} is outside what this model learned" in err and reason in err


def test_readme_style_prompt_with_symbols(checkpoints, tmp_path):
    """`prompt="12+7=?"` pasted into bash reaches us as prompt=12+7=? (the shell took the quotes)."""
    for prompt in ("prompt=12+7=?", 'prompt="12+7=?"', "prompt='12+7=?'"):
        code, out, err = cli(
            "generate", f"ckpt_path={checkpoints['arithmetic']}", prompt, "temperature=0", cwd=tmp_path
        )
        assert code == 0 and len(out.splitlines()) == 1, err


def test_chat_follows_the_checkpoints_task(checkpoints, tmp_path):
    """seqlab-chat answers each line with the checkpoint's task's respond(); a line it cannot
    read gets the polite answer and its reason on stderr; the task's options are checked."""
    code, out, err = cli("chat", f"ckpt_path={checkpoints['charlm']}", "length=3", stdin="the\n\n", cwd=tmp_path)
    # (a reply of 3 characters, then its line end: a sampled character may itself be a newline)
    assert code == 0 and out[3] == "\n" and out[4:].startswith("Sorry") and out.count("\n") >= 2, err
    code, out, err = cli("chat", f"ckpt_path={checkpoints['arithmetic']}", stdin="\ufeff12+7=?\n", cwd=tmp_path)
    assert code == 0 and "Sorry" not in out and not err.strip(), err  # (a file's byte-order mark is not the question)
    code, out, err = cli("chat", f"ckpt_path={checkpoints['subseq']}", stdin="x y\n", cwd=tmp_path)
    assert code == 0 and "Sorry" in out and "(prompt 'x y' is not" in err and "Traceback" not in err
    # bytes that are not UTF-8 (stdin holds them as surrogate escapes)
    code, out, err = cli("chat", f"ckpt_path={checkpoints['charlm']}", stdin="caf\udce9\n", cwd=tmp_path)
    assert code == 0 and "Sorry" in out and "(the line is not UTF-8 text; type it in UTF-8)" in err
    msg = one_error(*cli("chat", f"ckpt_path={checkpoints['charlm']}", "lenght=5", stdin="hi\n", cwd=tmp_path)[::2])
    assert msg.startswith("error: unknown option 'lenght': did you mean length=") and "charlm checkpoint" in msg


def test_links_that_lead_nowhere_and_a_sweep_folder_given_to_resume(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    msg = one_error(*cli("train", "experiment=charlm", f"data.path={tmp_path / 'loop'}", cwd=tmp_path)[::2])
    assert "data file not found:" in msg and "(a link that leads nowhere)" in msg
    msg = one_error(*cli("generate", f"ckpt_path={tmp_path / 'loop'}", "prompt=a", cwd=tmp_path)[::2])
    assert "checkpoint not found:" in msg and "(a link that leads nowhere)" in msg
    job = tmp_path / "sweep" / "0" / "checkpoints"
    job.mkdir(parents=True)
    (job / "last.ckpt").write_bytes(b"")
    msg = one_error(*cli("train", f"resume={tmp_path / 'sweep'}", cwd=tmp_path)[::2])
    assert f"no .hydra/); pass one of its jobs, e.g. resume={tmp_path / 'sweep' / '0'}" in msg


@pytest.mark.parametrize(
    "script,args,expected",
    [
        ("ablation.py", ["--jobs", "0"], "--jobs and --threads take a number of 1 or more"),
        ("ablation.py", ["--add", "record", "nowhere"], "--add record nowhere: no finished run there"),
        ("sweep_cores.py", ["--batches", "-5"], "--batches takes a number of 1 or more"),
        ("benchmark_speed.py", ["--batch-sizes", "0"], "--batch-sizes, --reps and --steps take numbers of 1 or more"),
        ("threads_busy.py", ["--steps", "0"], "--steps takes a number of 1 or more"),
        ("reproduce.py", ["--only", "trainer.max_epochs=3"], "error: --only names no experiment (e.g. charlm)"),
        ("ablation.py", ["--add", "recrd", "RUN"], "--add recrd: no such row; the rows are charlm, ema"),
        ("ablation.py", ["--add", "record", "RUN"], "RUN: not a char-LM run that validated"),
        ("benchmark_speed.py", ["--task", "subseq", "model.hiden_size=3"], "unknown config key 'model.hiden_size'"),
        ("reproduce.py", ["--quick", "--only", "gru_toy", "model.hiden_size=3"], "the runs of gru_toy failed"),
    ],
)
def test_the_scripts_refuse_bad_arguments(script, args, expected, tmp_path):
    from conftest import ROOT

    (tmp_path / "RUN").mkdir()  # a finished run of another task
    (tmp_path / "RUN" / "result.json").write_text('{"metrics": {"val/loss": 1.0, "best/val/loss": 1.0}}')
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert expected in proc.stderr.strip().splitlines()[-1]


def test_probe_l_folders_of_the_users(tmp_path):
    """A folder of the user's files given as hydra.sweep.dir is refused as hydra.run.dir's is (the
    sweep replaced its summary.csv); a working folder whose path holds $HOME is refused before the
    loggers would write to the folder it expands to."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.csv").write_text("my,data\n")
    args = [
        "experiment=gru_toy",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.check_val_every_n_epoch=1",
        "trainer.limit_val_batches=1",
    ]
    msg = one_error(*cli("train", "-m", *args, "seed=1,2", "hydra.sweep.dir=.", cwd=mine)[::2])
    assert msg == (
        "error: hydra.sweep.dir=. is a folder with files in it; a sweep needs a new or empty folder "
        "(e.g. hydra.sweep.dir=./sweep)"
    )
    assert [p.name for p in mine.iterdir()] == ["summary.csv"] and (mine / "summary.csv").read_text() == "my,data\n"
    odd = tmp_path / "runs$HOME"
    odd.mkdir()
    msg = one_error(*cli("train", *args, cwd=odd)[::2])
    assert "holds a $ that the loggers would read as an environment variable" in msg
    assert list(odd.iterdir()) == [] and not (tmp_path / "runs").exists()
    linked = tmp_path / "linked"  # (outputs/ a link to a folder that is gone: it said "File exists")
    linked.mkdir()
    (linked / "outputs").symlink_to(tmp_path / "gone")
    msg = one_error(*cli("train", *args, cwd=linked)[::2])
    assert f"{linked / 'outputs'} is a link to {tmp_path / 'gone'}, which is not there; make that folder" in msg


def test_a_users_file_named_as_a_library_hides_nothing_from_the_console_script(tmp_path):
    """seqlab-train looks in the current folder for the user's own task code, after the installed
    packages: a tensorboard.py or optuna.py there (probe L: a traceback, then a wrong diagnosis)
    does not hide the library of that name."""
    script = Path(sys.executable).parent / "seqlab-train"
    for name in ("tensorboard", "optuna"):
        (tmp_path / f"{name}.py").write_text("x = 1\n")
    proc = subprocess.run(
        [script, "experiment=gru_toy", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
         "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", "hydra.run.dir=run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))


def test_a_time_limit_that_ended_a_run_is_named_and_a_resume_within_it_refused(tmp_path):
    """trainer.max_time ended the run: a warning says so (it exited 0 in silence); a resume whose
    time is used up is refused (it trained nothing, exit 0, and blamed val_check_interval)."""
    args = ["experiment=gru_toy", "trainer.max_epochs=100000", "trainer.max_time=00:00:00:01"]
    code, _, err = cli("train", *args, "trainer.enable_progress_bar=false", "hydra.run.dir=run", cwd=tmp_path)
    assert code == 0, err[-3000:]
    assert "warning: trainer.max_time=00:00:00:01 ended the training after" in err
    assert f"to train on: seqlab-train resume={tmp_path / 'run'} trainer.max_time=<a longer time>" in err
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()}
    msg = one_error(*cli("train", "resume=run", cwd=tmp_path)[::2])
    assert msg.startswith("error: the run has trained ") and "all that trainer.max_time=00:00:00:01 allows" in msg
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()}
