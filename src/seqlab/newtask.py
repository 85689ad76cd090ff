"""seqlab-new-task <name> [folder]: a small working task of your own, outside the package.

It writes <folder>/<name>/task.py (the data and the model: a GRU that says whether a sequence of
digits is sorted), its configs under <folder>/conf/ and a test under <folder>/tests/; replace the
data and the network with yours and keep the methods. Nothing that exists is overwritten.
"""

import importlib.util
import keyword
import sys
from importlib import resources
from pathlib import Path

TASK = '''"""The {name} task: a GRU reads a sequence of digits and says whether it is sorted.
Made by seqlab-new-task; replace the data and the network with your own, keep the methods."""

import seqlab
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import BinaryAccuracy


class {cls}Data(seqlab.TaskData):
    task = "{name}"

    def __init__(
        self, n_train: seqlab.types.PositiveInt, seq_len: seqlab.types.PositiveInt, batch_size: seqlab.types.PositiveInt
    ):
        super().__init__()  # saves the arguments: a checkpoint rebuilds the data from them

    def examples(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 10, (n, self.hparams.seq_len), generator=g)
        x[::2] = x[::2].sort(dim=1).values  # half of them sorted
        return x, (x[:, 1:] >= x[:, :-1]).all(dim=1).float()

    def train_dataloader(self):
        return self.batches(*self.examples(self.hparams.n_train, seed=1), batch_size=self.hparams.batch_size)

    def val_dataloader(self):
        return self.batches(*self.examples(1024, seed=2), batch_size=256, shuffle=False)


class {cls}Task(seqlab.Task):
    task = "{name}"

    def __init__(self, hidden_size: seqlab.types.PositiveInt, **common):
        super().__init__(**common)  # the optimizer, the LR schedule and the monitored metric
        self.embed = torch.nn.Embedding(10, hidden_size)
        self.rnn = torch.nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.head = torch.nn.Linear(hidden_size, 1)
        self.init_metrics({{"loss": MeanMetric(), "acc": BinaryAccuracy()}})

    def forward(self, x):
        return self.head(self.rnn(self.embed(x))[1][-1]).squeeze(-1)

    def training_loss(self, batch):
        x, y = batch
        return F.binary_cross_entropy_with_logits(self(x), y)

    def evaluate(self, batch, batch_idx, stage):
        x, y = batch
        logits = self(x)
        self.metrics[stage]["loss"].update(F.binary_cross_entropy_with_logits(logits, y), len(y))
        self.metrics[stage]["acc"].update(logits.sigmoid(), y)

    def respond(self, prompt: str, *, threshold: seqlab.types.Fraction = 0.5) -> str:
        """'sorted' or 'not sorted' for a prompt of digits (e.g. prompt=12345678), and the probability."""
        if not prompt or not set(prompt) <= set("0123456789"):
            raise seqlab.SeqlabError(f"the prompt {{prompt!r}} must be digits; pass e.g. prompt=12345678")
        p = torch.sigmoid(self(torch.tensor([[int(c) for c in prompt]], device=self.device))).item()
        return f"{{'sorted' if p > threshold else 'not sorted'}} (p={{p:.2f}})"
'''

CONFIGS = {
    "model/{name}.yaml": """\
defaults:
  - optimizer: adam     # seqlab's model/optimizer/adam.yaml (sgd, adamw, … too)
  - scheduler: none
  - _self_

_target_: {name}.task.{cls}Task
hidden_size: 32
monitor: val/acc        # what checkpoints, early stopping and sweeps follow
monitor_mode: max
""",
    "data/{name}.yaml": """\
_target_: {name}.task.{cls}Data
n_train: 4096
seq_len: 8
batch_size: 64
""",
    "experiment/{name}.yaml": """\
# @package _global_
defaults:
  - override /model: {name}
  - override /data: {name}

name: {name}            # runs go to outputs/{name}/
trainer:
  max_epochs: 5
""",
    "hparams_search/{name}_optuna.yaml": """\
# @package _global_
defaults:
  - override /hydra/sweeper: optuna_study

searches: {name}        # the task whose keys it names
hydra:
  mode: MULTIRUN
  sweeper:
    n_trials: 4
    params:
      model.hidden_size: choice(8, 16, 32)
      model.optimizer.lr: tag(log, interval(1e-3, 1e-1))
""",
}

TEST = '''"""The {name} task trains, and its checkpoint answers (made by seqlab-new-task)."""

import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def test_trains_and_answers(tmp_path):
    train = ["seqlab-train", "--config-dir", f"{{HERE}}/conf", "experiment={name}", "trainer.max_epochs=1"]
    subprocess.run([*train, f"paths.root_dir={{tmp_path}}"], cwd=HERE, check=True)
    (last,) = tmp_path.glob("outputs/{name}/runs/*/checkpoints/last.ckpt")
    ask = ["seqlab-generate", f"ckpt_path={{last}}", "prompt=12345678"]
    answer = subprocess.run(ask, cwd=HERE, check=True, capture_output=True, text=True)
    assert answer.stdout.startswith(("sorted", "not sorted"))
'''


def files(name: str) -> dict[str, str]:
    """The files of a new task, by path relative to its folder."""
    cls = "".join(part.capitalize() for part in name.split("_"))
    out = {f"{name}/__init__.py": "", f"{name}/task.py": TASK.format(name=name, cls=cls)}
    out |= {f"conf/{path.format(name=name)}": text.format(name=name, cls=cls) for path, text in CONFIGS.items()}
    return out | {f"tests/test_{name}.py": TEST.format(name=name)}


def module_there(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # (__main__: a module without a spec)
        return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(args) not in (1, 2) or args[0].startswith("-"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    name, folder = args[0], Path(args[1] if len(args) == 2 else ".")
    ours = {
        p.stem for group in ("experiment", "model") for p in resources.files("seqlab.conf").joinpath(group).iterdir()
    }
    why = None
    if keyword.iskeyword(name):
        why = "is a Python keyword"
    elif not name.isidentifier() or name != name.lower():
        why = "cannot name a Python package"
    elif not name.isascii():  # (Hydra reads experiment=données only quoted)
        why = "has letters outside ASCII, which a command-line override cannot take unquoted"
    elif name in ("seqlab", "conf", "tests", "outputs"):
        why = "would hide seqlab's package or share a folder with the task's configs, tests or runs"
    elif len(name) > 60:
        why = "is longer than 60 characters (it names the runs' folders)"
    elif name in ours:
        why = "names one of seqlab's own tasks (the two would share configs and an outputs/ folder)"
    elif not (folder / name).is_dir() and (name in sys.stdlib_module_names or module_there(name)):
        why = "is already a Python module's name (the module and the task's package would hide one another)"
    if why:
        rule = "lower-case ASCII letters, digits and _, starting with a letter"
        print(f"error: {name!r} {why}; pass another name: {rule}", file=sys.stderr)
        return 2
    if folder.exists() and not folder.is_dir():
        print(f"error: {folder} is a file, not a folder; pass a folder to write the task into", file=sys.stderr)
        return 2
    new = files(name)
    there = [p for p in new if (folder / p).exists()]
    if there:
        print(f"error: {folder / there[0]} exists; pick another name or folder (nothing was written)", file=sys.stderr)
        return 2
    made = []  # files, and the folders made for them: what goes again if a write fails
    try:
        for path, text in new.items():
            made += [d for d in reversed((folder / path).parents) if not d.exists()]
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
            made.append(folder / path)
    except OSError as e:  # (a read-only or full disk)
        for path in reversed([p for p in made if p.exists()]):
            path.unlink() if path.is_file() else path.rmdir()
        print(
            f"error: cannot write {e.filename or folder} ({e.strerror}); pass a folder you can write", file=sys.stderr
        )
        return 2
    print(f"wrote the {name} task in {folder.absolute()}: {', '.join(new)}")
    print(f"train it (from {folder}): seqlab-train --config-dir conf experiment={name}")
    return 0
