"""Reproduce and beat: train every task's seed experiment and default recipe, write a results table.

    python scripts/reproduce.py                      # all experiments, full length
    python scripts/reproduce.py --quick              # smoke version: a few batches each
    python scripts/reproduce.py --only charlm charlm_seed

Each experiment runs as `python -m seqlab.train experiment=<name>` (a normal run under
outputs/, its metrics read back from the run's result.json), and the table (markdown) is
printed and written to --out. Run it on an otherwise idle machine: the wall-time bars
assume the cores are not shared.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Experiment:
    task: str
    metric: str                  # as the train entry point reports it (result.json "metrics")
    seed_number: str             # what the tutorial reports (DESIGN.md), or the check standing in for it
    bar: float | None           # None: reported, no bar (the tutorial gives no number)
    better: str = "max"          # "max" | "min"
    max_minutes: float | None = None   # a wall-time bar on training
    no_slower_than: str | None = None  # … or: no more training time than this experiment
    seeds: tuple[int, ...] = ()  # several runs (seed=…): the mean is judged, the range shown


EXPERIMENTS = {
    "charlm_seed": Experiment("charlm", "val/loss", "val loss 1.5440 nats/char after 8 epochs", 1.544, "min"),
    "charlm": Experiment("charlm", "best/val/loss", "val loss 1.5440 nats/char after 8 epochs", 1.35, "min",
                         max_minutes=15),
    # One run of the tutorial's setting swings by ±1 point from seed to seed (the last epochs'
    # validation accuracy moves 1-2 points at a fixed LR): judged on the mean of three seeds.
    "subseq_seed": Experiment("subseq", "test/exact_acc", "\"nearly never makes an error\" (its code here: 98.5 % exact)",
                              0.985, seeds=(42, 1, 2)),
    "subseq": Experiment("subseq", "test/exact_acc", "\"nearly never makes an error\" (its code here: 98.5 % exact)",
                         0.995, no_slower_than="subseq_seed"),
    "dialogue_seed": Experiment("dialogue", "train/loss", "training loss ~0.005–0.05; no reply accuracy given",
                                0.05, "min"),
    "dialogue": Experiment("dialogue", "test/exact_acc", "no reply accuracy given; bar: every training prompt answered "
                           "exactly (beam search)", 1.0, max_minutes=5),
    "dialogue_chatterbot": Experiment("dialogue", "test/bleu", "— (a held-out corpus the tutorial never had)", None),
    "arithmetic_seed": Experiment("arithmetic", "test/exact_acc", "samples `____3`, `____2____`: no accuracy; "
                                  "check: 1+1=? and 1+2=? answered", 1.0),
    "arithmetic": Experiment("arithmetic", "test/exact_acc", "no accuracy reported; check: 1,000 held-out 2-digit "
                             "+/- questions", 0.99, max_minutes=10),
    "gru_toy_seed": Experiment("gru_toy", "test/loss", "loss falls, samples stay `Matttt…` (its sampler never "
                               "feeds back); check: loss below the uniform 1.386", 1.386, "min"),
    "gru_toy": Experiment("gru_toy", "test/continuation_ok", "check: greedy `Ma` → `MathMathMath`", 1.0),
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", GPU " + torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores{gpu}"


def run(experiment: str, quick: bool, extra: list[str]) -> dict:
    args = [sys.executable, "-m", "seqlab.train", f"experiment={experiment}", "trainer.enable_progress_bar=false", *extra]
    if quick:
        args += ["debug=limit_batches", "trainer.max_epochs=1", "trainer.max_time=null"]
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    found = re.search(r"^run directory:\s+(\S+)", proc.stdout, re.M)
    if proc.returncode != 0 or not found:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"error": f"exit {proc.returncode}", "wall": wall}
    result = json.loads((Path(found.group(1)) / "result.json").read_text())
    return result["metrics"] | {"wall": wall, "run_dir": found.group(1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few batches per experiment (smoke test)")
    ap.add_argument("--only", nargs="*", default=None, help="experiments to run (default: all)")
    ap.add_argument("--out", default=str(ROOT / "outputs" / "results.md"))
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    a = ap.parse_args()
    names = a.only or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        sys.exit(f"error: unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    rows = ["| task | experiment | metric | tutorial's result | bar | ours | training time | passes |",
            "|---|---|---|---|---|---|---|---|"]
    fit_minutes = {}
    for name in names:
        e = EXPERIMENTS[name]
        runs = [run(name, a.quick, [*a.overrides, *([f"seed={seed}"] if seed is not None else [])])
                for seed in (e.seeds or (None,))]
        values = [r.get(e.metric) for r in runs]
        bar = "—" if e.bar is None else f"{'≤' if e.better == 'min' else '≥'} {e.bar:g}"
        if any(v is None for v in values):
            error = next(r.get("error", "missing") for r, v in zip(runs, values) if v is None)
            rows.append(f"| {e.task} | {name} | {e.metric} | {e.seed_number} | {bar} | {error} | | no |")
            print(rows[-1], flush=True)
            continue
        value = sum(values) / len(values)
        minutes = sum(r.get("time/fit_s", r["wall"]) for r in runs) / len(runs) / 60
        fit_minutes[name] = minutes
        ok = e.bar is None or (value <= e.bar if e.better == "min" else value >= e.bar)
        if e.max_minutes is not None:
            bar += f" in ≤ {e.max_minutes:g} min"
            ok = ok and minutes <= e.max_minutes
        if e.no_slower_than is not None:
            bar += f" in ≤ {e.no_slower_than}'s time"
            if e.no_slower_than in fit_minutes:
                ok = ok and minutes <= fit_minutes[e.no_slower_than]
        ours = f"{value:.4f}"
        if len(values) > 1:
            seeds = ", ".join(f"{s}: {v:.4f}" for s, v in zip(e.seeds, values))
            ours += f" (mean of seeds {seeds})"
        rows.append(f"| {e.task} | {name} | {e.metric} | {e.seed_number} | {bar} | {ours} | {minutes:.1f} min "
                    f"| {'—' if e.bar is None else 'yes' if ok else 'no'} |")
        print(rows[-1], flush=True)
    command = "python scripts/reproduce.py" + "".join(f" {x}" for x in sys.argv[1:])
    table = "\n".join(rows) + f"\n\nMachine: {machine()}. Command: `{command}`\n"
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
