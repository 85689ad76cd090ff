"""A task of the user's, outside the package (made by seqlab-new-task): it trains, its
checkpoints answer from any folder, and its mistakes are one line each."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import one_line_error, run_cli

from seqlab import newtask

FAST = ["trainer.max_epochs=2", "data.n_train=256", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def mine(tmp_path_factory):
    """A folder with a new task 'digits' in it, trained once."""
    folder = tmp_path_factory.mktemp("mine")
    assert newtask.main(["digits", str(folder)]) == 0
    proc = run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", *FAST, cwd=folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


def test_the_scaffold_refuses_to_overwrite_and_bad_names(mine, capsys):
    assert newtask.main(["digits", str(mine)]) == 2 and "digits/__init__.py exists" in capsys.readouterr().err
    assert newtask.main(["my-task"]) == 2 and "cannot name a Python package" in capsys.readouterr().err
    assert newtask.main(["outputs", str(mine)]) == 2 and "share a folder with the task's" in capsys.readouterr().err
    assert newtask.main(["random", str(mine)]) == 2 and "already a Python module's name" in capsys.readouterr().err
    assert newtask.main(["données", str(mine)]) == 2 and "has letters outside ASCII" in capsys.readouterr().err
    assert newtask.main(["mytask", "/proc/seqlab_none"]) == 2 and "error: cannot write /proc/seqlab_none" in (
        capsys.readouterr().err
    )
    (mine / "afile").write_text("")
    assert newtask.main(["mytask", str(mine / "afile")]) == 2 and "is a file, not a folder" in capsys.readouterr().err
    assert newtask.main(["1abc"]) == 2 and "_, starting with a letter" in capsys.readouterr().err
    assert newtask.main(["--help"]) == 0 and capsys.readouterr().out.startswith("seqlab-new-task <name> [folder]")


def test_its_checkpoint_answers_from_another_folder(mine, tmp_path):
    forget_digits()
    (last,) = mine.glob("outputs/digits/runs/*/checkpoints/last.ckpt")

    def tool(name, *args):
        return run_cli(name, f"ckpt_path={last}", *args, cwd=tmp_path, in_process=True)

    proc = tool("seqlab.generate", "prompt=12345678", "threshold=0.7")
    assert proc.returncode == 0 and proc.stdout.startswith(("sorted", "not sorted")), proc.stderr[-3000:]
    msg = one_line_error(tool("seqlab.generate", "prompt=1234", "threshold=1"))
    assert msg == "error: threshold must be a number in (0, 1), got 1; pass e.g. threshold=0.5"
    assert one_line_error(tool("seqlab.generate", "prompt=12ab")) == (
        "error: the prompt '12ab' must be digits; pass e.g. prompt=12345678"
    )
    assert one_line_error(tool("seqlab.eval", "data.seq_len=0")).startswith(
        "error: data.seq_len must be an integer >= 1"
    )
    proc = tool("seqlab.eval", "data.seq_len=12", "trainer.enable_progress_bar=false")
    assert proc.returncode == 0 and "test/acc" in proc.stdout, proc.stderr[-3000:]


def test_a_respond_that_returns_no_text_is_one_line(mine, tmp_path):
    forget_digits()
    copy = edited(mine, tmp_path, "        return f\"{'sorted'", "        f\"{'sorted'")
    (last,) = mine.glob("outputs/digits/runs/*/checkpoints/last.ckpt")
    shutil.copytree(last.parents[1], copy / "run")
    proc = run_cli("seqlab.generate", f"ckpt_path={copy / 'run/checkpoints/last.ckpt'}", "prompt=123", cwd=copy)
    assert one_line_error(proc) == "error: DigitsTask.respond() returned None; return the answer as a str"


def test_code_and_configs_that_disagree_are_one_line_each(mine, tmp_path):
    """An annotation no config value can meet, a checkpoint older than its task's __init__, a file
    that hides the task's package, an experiment that forgets 'override', a config folder one level
    too deep."""
    (last,) = mine.glob("outputs/digits/runs/*/checkpoints/last.ckpt")

    def train(copy, *args):
        return one_line_error(
            run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", *args, cwd=copy, in_process=True)
        )

    typed = "hidden_size: seqlab.types.PositiveInt, "
    copy = edited(mine, tmp_path / "a", typed, f"{typed}act: torch.nn.Module = None, ")
    assert train(copy, "+model.act=tanh") == (
        "error: model.act: DigitsTask.__init__ takes it as a Module, which no config value is; take a plain value "
        "there (a number, a string, a list) and build the object in __init__"
    )
    copy = edited(mine, tmp_path / "b", typed, f"{typed}n_layers: int, ")
    msg = one_line_error(run_cli("seqlab.eval", f"ckpt_path={last}", cwd=copy, in_process=True))
    assert msg == (
        f"error: {last} was saved before DigitsTask.__init__ took n_layers, so it has no value for it; give "
        f"n_layers a default in the code, or use the code it was trained with"
    )
    forget_digits()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "digits.py").write_text("x = 1\n")
    msg = one_line_error(run_cli("seqlab.eval", f"ckpt_path={last}", cwd=tmp_path / "c", in_process=True))
    assert msg == (
        f"error: {last} was written by digits.task.DigitsTask, but {tmp_path / 'c' / 'digits.py'} has the name of "
        f"its package and is found first; run from another folder, or rename that file"
    )
    forget_digits()
    copy = edited(
        mine, tmp_path / "e", '"acc": BinaryAccuracy()}', '"acc": BinaryAccuracy(), "stats": BinaryStatScores()}'
    )
    code = (
        (copy / "digits" / "task.py")
        .read_text()
        .replace("import BinaryAccuracy\n", "import BinaryAccuracy, BinaryStatScores\n")
    )
    update = '        self.metrics[stage]["acc"].update(logits.sigmoid(), y)\n'
    code = code.replace(update, update + update.replace('"acc"', '"stats"'))
    (copy / "digits" / "task.py").write_text(code)
    assert train(copy, *FAST) == (
        "error: val/stats computes [5] values, and a metric is logged as one number; give init_metrics one that "
        "averages (e.g. average='macro') or leave it out"
    )
    forget_digits()
    copy = edited(mine, tmp_path / "f", "def respond(self, prompt: str,", "def respond(self, text: str,")
    shutil.copytree(last.parents[1], copy / "run")
    msg = one_line_error(run_cli("seqlab.generate", "ckpt_path=run/checkpoints/last.ckpt", "prompt=12", cwd=copy))
    assert msg.startswith("error: the digits task's respond(text: str, *, threshold") and msg.endswith(
        "does not fit seqlab-generate, which calls respond(prompt, <its options>) and takes ckpt_path, prompt, "
        "device itself; rename text to prompt"
    )
    forget_digits()
    copy = edited(
        mine, tmp_path / "g", "defaults:\n", "defaults:\n  - size: small\n", file="conf/experiment/digits.yaml"
    )
    (copy / "conf" / "size").mkdir()
    (copy / "conf" / "size" / "small.yaml").write_text("# @package _global_\nmodel:\n  hidden_size: 4\n")
    assert train(copy) == (
        "error: conf/experiment/digits.yaml: '- size: small' picks from experiment/size/, and your group is "
        "conf/size; write '- /size: small'"
    )
    copy = edited(mine, tmp_path / "d", "  - override /data:", "  - /data:", file="conf/experiment/digits.yaml")
    assert train(copy) == (
        "error: conf/experiment/digits.yaml: '- /data: digits' picks a data that seqlab's train.yaml picks already; "
        "write '- override /data: digits'"
    )
    msg = one_line_error(
        run_cli("seqlab.train", "--config-dir", "conf/experiment", "experiment=digits", cwd=mine, in_process=True)
    )
    assert f"{mine}/conf/experiment/digits.yaml is there: pass --config-dir {mine}/conf, the folder that holds" in msg


def test_a_loader_of_an_iterable_dataset_trains(mine, tmp_path):
    """A DataLoader without a length (an IterableDataset's) passes the loader check."""
    loader = (
        "        x, y = self.examples(self.hparams.n_train, seed=1)\n\n"
        "        class Stream(torch.utils.data.IterableDataset):\n"
        "            def __iter__(self):\n"
        "                return iter(zip(x.split(64), y.split(64), strict=True))\n\n"
        "        return torch.utils.data.DataLoader(Stream(), batch_size=None)"
    )
    old = (
        "        return self.batches(*self.examples(self.hparams.n_train, seed=1), batch_size=self.hparams.batch_size)"
    )
    copy = edited(mine, tmp_path, old, loader)
    proc = run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", *FAST, cwd=copy, in_process=True)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_code_that_changed_since_and_its_dependencies(mine, tmp_path):
    """A package the task imports that is not installed; a respond() default its own annotation
    refuses; an experiment without a name; a run resumed after its network's code changed."""
    copy = edited(mine, tmp_path / "a", "import seqlab\n", "import seqlab\nimport no_such_package_here\n")
    msg = one_line_error(
        run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", *FAST, cwd=copy, in_process=True)
    )
    assert msg.startswith("error: model._target_=digits.task.DigitsTask: ") and msg.endswith(
        "digits/task.py, line 5, imports 'no_such_package_here', which is not installed; install it (pip install …) "
        "or drop that import"
    )
    (last,) = mine.glob("outputs/digits/runs/*/checkpoints/last.ckpt")
    copy = edited(
        mine, tmp_path / "b", "threshold: seqlab.types.Fraction = 0.5", "threshold: seqlab.types.Fraction = 5"
    )
    msg = one_line_error(run_cli("seqlab.generate", f"ckpt_path={last}", "prompt=1234", cwd=copy, in_process=True))
    assert msg == (
        "error: the digits task's respond() has a default its own annotation refuses (threshold must be a number "
        "in (0, 1), got 5); fix the default in its code"
    )
    copy = edited(
        mine,
        tmp_path / "e",
        "    def train_dataloader(self):",
        "    def prepare_data(self):\n        import urllib.request\n\n"
        "        urllib.request.urlopen('file:///no/such/data.zip')\n\n    def train_dataloader(self):",
    )
    msg = one_line_error(
        run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", *FAST, cwd=copy, in_process=True)
    )
    assert msg.startswith("error: a download failed (") and msg.endswith(
        "); check the network and the address, or put the data in place first"
    )
    copy = edited(mine, tmp_path / "c", "name: digits", "", file="conf/experiment/digits.yaml")
    proc = run_cli(
        "seqlab.train", "--config-dir", "conf", "experiment=digits", "trainer.max_epochs=0", cwd=copy, in_process=True
    )
    assert "warning: conf/experiment/digits.yaml sets no name, so its runs go under the default experiment's" in (
        proc.stderr
    )
    copy = edited(mine, tmp_path / "d", "self.rnn = torch.nn.GRU(", "self.rnn = torch.nn.LSTM(")
    shutil.copytree(last.parents[1], copy / "run")
    msg = one_line_error(run_cli("seqlab.train", "resume=run", "trainer.max_epochs=3", cwd=copy, in_process=True))
    assert msg == (
        f"error: resume={copy / 'run'} has another network than this run: rnn.bias_hh_l0 is [96] there, [128] here; "
        "no setting "
        "differs, so DigitsTask's code has changed since; use the code the checkpoint was trained with, or start a "
        "new run"
    )


def test_a_monitored_metric_that_is_not_a_number_says_so(mine, tmp_path):
    update = 'self.metrics[stage]["loss"].update(F.binary_cross_entropy_with_logits(logits, y)'
    copy = edited(mine, tmp_path, update, update + " * float('nan')")
    config = copy / "conf" / "model" / "digits.yaml"
    config.write_text(config.read_text().replace("monitor: val/acc", "monitor: val/loss").replace(": max", ": min"))
    proc = run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", *FAST, cwd=copy, in_process=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning: val/loss is nan: DigitsTask.evaluate() gave its metric no finite number" in proc.stderr


def test_a_plain_loader_resumed_mid_epoch_says_its_place_is_lost(mine, tmp_path):
    """A torch DataLoader (no state_dict()) stopped mid-epoch: the resume warns that the epoch
    starts afresh, and still trains on."""
    plain = (
        "        data = torch.utils.data.TensorDataset(*self.examples(self.hparams.n_train, seed=1))\n"
        "        return torch.utils.data.DataLoader(data, batch_size=self.hparams.batch_size, shuffle=True)"
    )
    old = (
        "        return self.batches(*self.examples(self.hparams.n_train, seed=1), batch_size=self.hparams.batch_size)"
    )
    copy, run = edited(mine, tmp_path, old, plain), tmp_path / "run"
    args = ["--config-dir", "conf", "experiment=digits", "trainer.enable_progress_bar=false", "data.n_train=1000000"]
    job = subprocess.Popen(
        [sys.executable, "-m", "seqlab.train", *args, "callbacks.step_checkpoint.every_n_train_steps=2"]
        + ["trainer.max_epochs=1", f"hydra.run.dir={run}"],
        cwd=copy,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (run / "checkpoints" / "last.ckpt").exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=120) == 128 + signal.SIGTERM, job.stderr.read()[-3000:]
    proc = run_cli("seqlab.train", f"resume={run}", "trainer.limit_train_batches=12", cwd=copy)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("warning: ")]
    assert "stopped in the middle of an epoch, and its training loader kept no position" in line
    assert "return self.batches(…) from train_dataloader()" in line


def forget_digits():
    """In-process runs import the user's module (and put its folder on sys.path, as a checkpoint
    asks): each test starts without either."""
    for name in [m for m in sys.modules if m == "digits" or m.startswith("digits.")]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if not (Path(p) / "digits").is_dir()]


def edited(mine, tmp_path, old: str, new: str, file: str = "digits/task.py"):
    """A copy of the task with one of its files edited."""
    forget_digits()
    copy = tmp_path / "copy"
    shutil.copytree(mine / "digits", copy / "digits")
    shutil.copytree(mine / "conf", copy / "conf")
    code = copy / file
    assert old in code.read_text()
    code.write_text(code.read_text().replace(old, new))
    return copy


@pytest.mark.parametrize(
    "old,new,expected",
    [
        (
            "    def evaluate(",
            "    def evaluate_it(",
            "error: model._target_=digits.task.DigitsTask does not implement evaluate(), which every seqlab.Task must",
        ),
        (
            "    def val_dataloader(",
            "    def valid_dataloader(",
            "error: data._target_=digits.task.DigitsData does not implement val_dataloader(), which every "
            "seqlab.TaskData must",
        ),
        (
            'class DigitsTask(seqlab.Task):\n    task = "digits"',
            "class DigitsTask(seqlab.Task):",
            'error: model._target_=digits.task.DigitsTask declares no task name; give the class task = "<name>" '
            '(e.g. "my_task"), the same in its model and its data class',
        ),
        (
            'class DigitsTask(seqlab.Task):\n    task = "digits"',
            'class DigitsTask(seqlab.Task):\n    task = "digits-v2"',
            "error: model._target_=digits.task.DigitsTask declares task = 'digits-v2', which is not a name of "
            'letters, digits and _; give the class task = "<name>" (e.g. "my_task"), the same in its model and its '
            "data class",
        ),
        (
            "class DigitsTask(",
            "class DigitTask(",
            "error: model._target_=digits.task.DigitsTask: module digits.task has no class DigitsTask; fix the name",
        ),
        (
            'class DigitsData(seqlab.TaskData):\n    task = "digits"',
            'class DigitsData(seqlab.TaskData):\n    task = "digit"',
            "error: model/digits.yaml builds a 'digits' task and data/digits.yaml a 'digit' one; give DigitsTask "
            'and DigitsData the same task = "…"',
        ),
        (
            "hidden_size: seqlab.types.PositiveInt, **common):",
            "hidden_size: seqlab.types.PositiveInt):",
            "error: DigitsTask.__init__ does not take **common (optimizer, scheduler, monitor, monitor_mode) and pass "
            "it on: def __init__(self, <its arguments>, **common): super().__init__(**common)",
        ),
        (
            "        super().__init__()  # saves",
            "        pass  # saves",
            "error: DigitsData.__init__ does not call super().__init__() first, which saves its arguments "
            "(checkpoints rebuild the data from them); add it as its first line",
        ),
        (
            '        self.init_metrics({"loss": MeanMetric(), "acc": BinaryAccuracy()})',
            "        self.metric = MeanMetric()",
            "error: DigitsTask.__init__ does not call self.init_metrics({...}), which makes the metrics that "
            "evaluate() updates; add it, e.g. self.init_metrics({'loss': MeanMetric()})",
        ),
        (
            "    def train_dataloader(self):",
            "    def model_kwargs(self):\n        return {'size': 3}\n\n    def train_dataloader(self):",
            "error: DigitsData.model_kwargs() returns size, which DigitsTask does not take; rename it to one of its "
            "arguments (hidden_size, optimizer, scheduler, monitor, monitor_mode) or add it to them",
        ),
        (
            '        self.metrics[stage]["acc"].update(logits.sigmoid(), y)',
            "        pass",
            "error: DigitsTask.evaluate() never updated val/acc in a val pass; update self.metrics[stage]['acc'] "
            "there, or leave it out of init_metrics",
        ),
        (
            "    def train_dataloader(self):",
            "    def model_kwargs(self):\n        return {'hidden_size': 8}\n\n    def train_dataloader(self):",
            "error: DigitsData.model_kwargs() returns hidden_size, which the model config also sets "
            "(model.hidden_size=32); drop one of them",
        ),
        (
            "    def train_dataloader(self):",
            "    def model_kwargs(self):\n        return {'hidden_size': {1: 'a'}}\n\n    def train_dataloader(self):",
            "error: DigitsData.model_kwargs() returns hidden_size as a dict; return plain values (numbers, strings, "
            "lists, dicts of them with string keys): every checkpoint keeps them (e.g. tensor.tolist())",
        ),
        (
            "    def train_dataloader(self):",
            "    def model_kwargs(self):\n        {'size': 3}\n\n    def train_dataloader(self):",
            "error: DigitsData.model_kwargs() returned NoneType; return a dict of plain values (an empty one if the "
            "model needs nothing from the data)",
        ),
        (
            "    def training_loss(self, batch):",
            "    def configure_optimizers(self):\n        return torch.optim.SGD(self.parameters(), lr=0.1)\n\n"
            "    def training_loss(self, batch):",
            "error: DigitsTask.configure_optimizers() replaces the optimizer seqlab builds from model.optimizer and "
            "model.scheduler; drop it and pick model/optimizer=… (a class of your own may be its _target_)",
        ),
        (
            'class DigitsTask(seqlab.Task):\n    task = "digits"',
            'class DigitsTask(seqlab.Task):\n    task = "gru_toy"',
            "error: model._target_=digits.task.DigitsTask declares task = 'gru_toy', the name of one of seqlab's own "
            "tasks; give it a name of its own",
        ),
        (
            "    def evaluate(self, batch, batch_idx, stage):",
            "    def evaluate(self, batch, stage):",
            "error: DigitsTask.evaluate(self, batch, stage) cannot be called as seqlab calls it; "
            "def evaluate(self, batch, batch_idx: int, stage: str) -> None",
        ),
        (
            '"acc": BinaryAccuracy()}',
            '"acc": 0.0}',
            "error: DigitsTask.init_metrics() got acc as a float; give torchmetrics metrics, e.g. "
            "init_metrics({'acc': torchmetrics.MeanMetric()})",
        ),
        (
            "        return self.batches(*self.examples(self.hparams.n_train, seed=1), batch_size",
            "        self.batches(*self.examples(self.hparams.n_train, seed=1), batch_size",
            "error: DigitsData.train_dataloader() returned None; return its batches (e.g. return "
            "self.batches(x, y, batch_size=32), or a DataLoader)",
        ),
        (
            "        return self.batches(*self.examples(self.hparams.n_train, seed=1), batch_size",
            "        x, y = self.examples(self.hparams.n_train, seed=1)\n"
            "        return self.batches(x, y[:10], batch_size",
            "error: DigitsData.batches() takes tensors with one row per example, all with the same number of rows; "
            "got [256, 8], [10] (e.g. self.batches(x, y, batch_size=32))",
        ),
        (
            "        return self.batches(*self.examples(1024, seed=2), batch_size=256, shuffle=False)",
            "        return [self.examples(256, seed=2)]",
            "error: DigitsData.val_dataloader() returned a list, which Lightning reads as one loader per item; "
            "return its batches (e.g. return self.batches(x, y, batch_size=32), or a DataLoader)",
        ),
        (
            "        super().__init__(**common)  # the optimizer",
            "        self.init_metrics({})\n        super().__init__(**common)  # the optimizer",
            "error: DigitsTask.__init__ calls self.init_metrics() before super().__init__(**common); call "
            "super().__init__(**common) first",
        ),
        (
            "    def training_loss(self, batch):",
            "    def on_validation_epoch_end(self):\n        print('validation done')\n\n"
            "    def training_loss(self, batch):",
            "error: DigitsTask.on_validation_epoch_end() replaces seqlab's, which the run needs (the metrics, the "
            "carried state, the checkpoint's record); call super().on_validation_epoch_end(…) in it",
        ),
        (
            "seed=1), batch_size=self.hparams.batch_size)",
            "seed=1), batch_size=0)",
            "error: DigitsData.batches() got batch_size=0; pass a whole number of examples, 1 or more (annotate the "
            "data argument it comes from as seqlab.types.PositiveInt)",
        ),
    ],
    ids=[
        "no evaluate",
        "no val_dataloader",
        "no task name",
        "a task name with a dash",
        "class renamed",
        "two names",
        "no **common",
        "no super().__init__()",
        "no init_metrics",
        "model_kwargs",
        "a metric never updated",
        "model_kwargs and the config set one key",
        "model_kwargs with a dict keyed by numbers",
        "model_kwargs without a return",
        "configure_optimizers",
        "a task named like one of seqlab's",
        "evaluate's signature",
        "a metric that is not one",
        "a loader not returned",
        "tensors of two lengths",
        "a list for a loader",
        "init_metrics before super().__init__",
        "a hook without super()",
        "a batch size of 0",
    ],  # fmt: skip
)
def test_a_task_that_breaks_the_api_is_one_line(mine, tmp_path, old, new, expected):
    copy = edited(mine, tmp_path, old, new)
    msg = one_line_error(
        run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", *FAST, cwd=copy, in_process=True)
    )
    assert msg == expected and not (copy / "outputs").exists()


def test_a_loss_that_is_not_one_number_is_one_line(mine, tmp_path):
    loss = "F.binary_cross_entropy_with_logits(self(x), y"
    copy = edited(mine, tmp_path, f"{loss})", f"{loss}, reduction='none')")
    msg = one_line_error(
        run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", cwd=copy, in_process=True)
    )
    assert msg.startswith("error: DigitsTask.training_loss() returned a tensor of shape [") and msg.endswith(
        "; return the batch's loss as one number, a 0-dimensional tensor (e.g. loss.mean())"
    )
    assert not any((copy / "outputs").rglob("*.ckpt"))


def test_a_run_that_never_validates_says_why(mine, tmp_path):
    """An empty validation loader trains, keeps no best checkpoint and names the loader."""
    loader = "return self.batches(*self.examples(1024, seed=2), batch_size=256, shuffle=False)"
    copy = edited(mine, tmp_path, loader, "return []")
    proc = run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", *FAST, cwd=copy, in_process=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "warning: val/acc was never measured, so no best checkpoint was kept; DigitsData.val_dataloader() gave no "
        "batches: give it the validation data"
    ) in proc.stderr


def test_config_slips_of_a_task_are_one_line(mine, tmp_path):
    copy = edited(mine, tmp_path, "monitor: val/acc", "# monitor: val/acc", "conf/model/digits.yaml")
    msg = one_line_error(
        run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", cwd=copy, in_process=True)
    )
    assert msg == (
        "error: model.monitor is not set; give the model config (model/digits.yaml) the metric runs follow, "
        "e.g. monitor: val/loss and monitor_mode: min"
    )
    forget_digits()
    msg = one_line_error(run_cli("seqlab.train", "experiment=digits", cwd=mine, in_process=True))
    assert msg.startswith(
        "error: no config 'digits' in group 'experiment'; conf/experiment/digits.yaml is there: pass --config-dir conf"
    )
    copy = edited(mine, tmp_path / "2", "searches: digits", "", "conf/hparams_search/digits_optuna.yaml")
    sweep = ["-m", "--config-dir", "conf", "experiment=digits", "hparams_search=digits_optuna"]
    msg = one_line_error(run_cli("seqlab.train", *sweep, cwd=copy, in_process=True))
    assert msg == (
        "error: hparams_search=digits_optuna does not say which task it searches; give it searches: digits "
        "(if that is the task whose keys it names)"
    )
    forget_digits()
    (last,) = mine.glob("outputs/digits/runs/*/checkpoints/last.ckpt")
    msg = one_line_error(run_cli("seqlab.eval", f"ckpt_path={last}", "data=gru_toy", cwd=tmp_path, in_process=True))
    assert (
        msg == "error: data=gru_toy: seqlab-eval keeps the checkpoint's own data; change its settings with data.<key>=…"
    )


def test_import_failures_say_which(mine, tmp_path):
    forget_digits()
    # the module is not on the Python path (run from another folder)
    msg = one_line_error(
        run_cli("seqlab.train", "--config-dir", f"{mine}/conf", "experiment=digits", cwd=tmp_path, in_process=True)
    )
    assert msg.startswith(
        "error: model._target_=digits.task.DigitsTask: there is no module 'digits' on the Python path"
    )
    # an error inside the user's module is theirs: its traceback, pointing at their line
    copy = edited(mine, tmp_path, "import seqlab\n", "import seqlab\n\nundefined_name + 1\n")
    proc = run_cli("seqlab.train", "--config-dir", "conf", "experiment=digits", cwd=copy)
    assert proc.returncode == 1 and "NameError: name 'undefined_name' is not defined" in proc.stderr
    line = (copy / "digits" / "task.py").read_text().splitlines().index("undefined_name + 1") + 1
    assert f'digits/task.py", line {line}, in <module>' in proc.stderr


def test_a_task_without_respond_answers_no_prompts(mine, tmp_path):
    copy = edited(mine, tmp_path, "    def respond(", "    def answer(")  # (found first: it is where the tool starts)
    (last,) = mine.glob("outputs/digits/runs/*/checkpoints/last.ckpt")
    for tool, option in (("seqlab.generate", "prompt=123"), ("seqlab.chat", "device=cpu")):
        forget_digits()
        msg = one_line_error(run_cli(tool, f"ckpt_path={last}", option, cwd=copy, stdin="123\n", in_process=True))
        assert msg == "error: the digits task answers no prompts: its DigitsTask has no respond()", msg


def test_a_changed_search_space_names_the_study(mine):
    sweep = ["-m", "--config-dir", "conf", "experiment=digits", "hparams_search=digits_optuna", *FAST]
    proc = run_cli("seqlab.train", *sweep, "hydra.sweeper.n_trials=1", cwd=mine)
    assert proc.returncode == 0, proc.stderr[-3000:]
    space = mine / "conf" / "hparams_search" / "digits_optuna.yaml"
    space.write_text(space.read_text().replace("choice(8, 16, 32)", "choice(8, 16)"))
    msg = one_line_error(run_cli("seqlab.train", *sweep, "hydra.sweeper.n_trials=1", cwd=mine))
    assert msg == (
        f"error: the search space changed (model.hidden_size) since study 'digits' in {mine}/outputs/optuna_digits.db "
        "began; pass hydra.sweeper.study_name=digits_2 to start a new study, or put the space back to continue this one"
    )
    space.write_text(space.read_text().replace("choice(8, 16)", "choice(8, 16, 32)"))


def test_the_scaffold_refuses_keywords_and_the_names_of_built_in_tasks(tmp_path, capsys):
    for name, why in (("class", "is a Python keyword"), ("charlm", "names one of seqlab's own tasks")):
        assert newtask.main([name, str(tmp_path)]) == 2 and why in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
