"""Reproduce and beat: train each task's tutorial setting and our recipes, write a results table
and, per task, a picture of validation metric against training time.

    python scripts/reproduce.py                          # every experiment this machine can run
    python scripts/reproduce.py --quick                  # smoke version: a few batches each
    python scripts/reproduce.py --only charlm charlm_tutorial
    python scripts/reproduce.py --curves-only            # redraw the pictures from the last runs

Each experiment runs as `python -m seqlab.train experiment=<name>` (a normal run under outputs/),
its metrics read back from the run's result.json and its curve from its TensorBoard events. The
`<task>_gpu` recipes run only where there is a CUDA GPU. Run it on an otherwise idle machine:
the time bars assume the cores are not shared. Writes outputs/results.md (the table),
outputs/results.json (the runs) and docs/curves/<task>.png (beside the README).
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
    metric: str                  # as seqlab-train reports it (result.json "metrics")
    tutorial: str                # what the tutorial reports, or the check standing in for it
    bar: float | None            # None: reported, no bar (the tutorial gives no number)
    better: str = "max"          # "max" | "min"
    max_minutes: float | None = None   # a training-time bar
    no_slower_than: str | None = None  # … or: no more training time than this experiment
    seeds: tuple[int, ...] = ()  # several runs (seed=…): the mean is judged, each value shown
    gpu: bool = False            # a recipe for one CUDA GPU


CHARLM = "val loss 1.5440 nats/char after 8 epochs (best published: fast.ai's 2×512 LSTM, 1.252)"
SUBSEQ = "\"nearly never makes an error\" (its code here: 98.5 % exact)"
ARITH = "no accuracy reported; check: 1,000 held-out 2-digit +/- questions"
EXPERIMENTS = {
    "charlm_tutorial": Experiment("charlm", "val/loss", CHARLM, 1.544, "min"),
    "charlm": Experiment("charlm", "best/val/loss", CHARLM, 1.30, "min", max_minutes=15),
    "charlm_gpu": Experiment("charlm", "best/val/loss", CHARLM, 1.25, "min", max_minutes=5, gpu=True),
    # One run of the tutorial's setting swings by ±1 point from seed to seed: judged on the mean of three.
    "subseq_tutorial": Experiment("subseq", "test/exact_acc", SUBSEQ, 0.985, seeds=(42, 1, 2)),
    "subseq": Experiment("subseq", "test/exact_acc", SUBSEQ, 0.995, no_slower_than="subseq_tutorial"),
    "subseq_gpu": Experiment("subseq", "test/exact_acc", SUBSEQ, 0.999, max_minutes=1, gpu=True),
    "dialogue_tutorial": Experiment("dialogue", "train/loss", "training loss ~0.005–0.05; no reply accuracy given",
                                    0.05, "min"),
    "dialogue": Experiment("dialogue", "test/exact_acc", "no reply accuracy given; bar: every training prompt "
                           "answered exactly (beam search)", 1.0, max_minutes=5),
    "dialogue_chatterbot": Experiment("dialogue", "test/bleu", "— (a held-out corpus the tutorial never had)", None),
    "arithmetic_tutorial": Experiment("arithmetic", "test/exact_acc", "samples `____3`, `____2____`: no accuracy; "
                                      "check: 1+1=? and 1+2=? answered", 1.0),
    "arithmetic": Experiment("arithmetic", "test/exact_acc", ARITH, 0.995, max_minutes=10),
    "arithmetic_gpu": Experiment("arithmetic", "test/exact_acc", ARITH, 0.999, max_minutes=5, gpu=True),
    "gru_toy_tutorial": Experiment("gru_toy", "test/loss", "loss falls, samples stay `Matttt…` (its sampler never "
                                   "feeds back); check: loss below the uniform 1.386", 1.386, "min"),
    "gru_toy": Experiment("gru_toy", "test/continuation_ok", "check: greedy `Ma` → `MathMathMath`", 1.0),
}
# The validation metric each task's curve shows.
CURVE_METRIC = {"charlm": "val/loss", "subseq": "val/exact_acc", "dialogue": "val/exact_acc",
                "arithmetic": "val/exact_acc", "gru_toy": "val/loss"}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}"


def run(experiment: str, quick: bool, extra: list[str]) -> dict:
    args = [sys.executable, "-m", "seqlab.train", f"experiment={experiment}", "trainer.enable_progress_bar=false", *extra]
    if quick:
        args += ["debug=limit_batches", "trainer.max_epochs=1", "trainer.max_time=null", "trainer.check_val_every_n_epoch=1"]
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)  # runs go under ./outputs
    wall = time.perf_counter() - start
    found = re.search(r"^run directory:\s+(\S+)", proc.stdout, re.M)
    if proc.returncode != 0 or not found:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"error": f"exit {proc.returncode}", "wall": wall}
    result = json.loads((Path(found.group(1)) / "result.json").read_text())
    return result["metrics"] | {"wall": wall, "run_dir": found.group(1)}


def curve(run_dir: str, metric: str) -> tuple[list[float], list[float]]:
    """(minutes of training, value) of a validation metric, read from the run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    if metric not in acc.Tags()["scalars"]:
        return [], []
    points = acc.Scalars(metric)
    starts = [e.wall_time for tag in ("train/loss_step", "train/loss", metric) if tag in acc.Tags()["scalars"]
              for e in acc.Scalars(tag)[:1]]
    t0 = min(starts) if starts else points[0].wall_time
    return [(e.wall_time - t0) / 60 for e in points], [e.value for e in points]


def draw_curves(results: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for task, metric in CURVE_METRIC.items():
        runs = [(name, r) for name, r in results.items() if EXPERIMENTS[name].task == task and r.get("run_dir")]
        lines = [(name, *curve(r["run_dir"], metric)) for name, r in runs]
        lines = [line for line in lines if line[1]]
        if not lines:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for name, minutes, values in lines:
            ax.plot(minutes, values, marker="o", markersize=2.5, linewidth=1.2, label=name)
        bar = EXPERIMENTS[f"{task}"].bar if task in EXPERIMENTS else None
        if bar is not None and metric == EXPERIMENTS[task].metric.replace("best/", ""):
            ax.axhline(bar, color="0.5", linestyle="--", linewidth=0.8, label=f"bar {bar:g}")
        ax.set_xlabel("training time (minutes)")
        ax.set_ylabel(metric)
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{task}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few batches per experiment (smoke test)")
    ap.add_argument("--only", nargs="*", default=None, help="experiments to run (default: all this machine can)")
    ap.add_argument("--out", default="outputs/results.md")
    ap.add_argument("--curves-dir", default=str(ROOT / "docs" / "curves"))
    ap.add_argument("--curves-only", action="store_true", help="redraw the curves from outputs/results.json")
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    a = ap.parse_args()
    store = Path(a.out).with_suffix(".json")
    if a.curves_only:
        for path in draw_curves(json.loads(store.read_text()), Path(a.curves_dir)):
            print(f"curve: {path}")
        return
    has_gpu = torch.cuda.is_available()
    names = a.only or [n for n, e in EXPERIMENTS.items() if has_gpu or not e.gpu]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        sys.exit(f"error: unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    if not has_gpu and any(EXPERIMENTS[n].gpu for n in names):
        sys.exit("error: the <task>_gpu recipes need a CUDA GPU; leave them out of --only")
    rows = ["| task | experiment | metric | tutorial's result | bar | ours | training time | passes |",
            "|---|---|---|---|---|---|---|---|"]
    fit_minutes, results = {}, json.loads(store.read_text()) if store.is_file() else {}
    for name in names:
        e = EXPERIMENTS[name]
        runs = [run(name, a.quick, [*a.overrides, *([f"seed={seed}"] if seed is not None else [])])
                for seed in (e.seeds or (None,))]
        results[name] = runs[0]
        values = [r.get(e.metric) for r in runs]
        bar = "—" if e.bar is None else f"{'≤' if e.better == 'min' else '≥'} {e.bar:g}"
        if any(v is None for v in values):
            error = next(r.get("error", "missing") for r, v in zip(runs, values) if v is None)
            rows.append(f"| {e.task} | {name} | {e.metric} | {e.tutorial} | {bar} | {error} | | no |")
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
            ours += " (mean of seeds " + ", ".join(f"{s}: {v:.4f}" for s, v in zip(e.seeds, values)) + ")"
        where = f" ({torch.cuda.get_device_name(0)})" if e.gpu else ""
        rows.append(f"| {e.task} | {name} | {e.metric} | {e.tutorial} | {bar} | {ours} | {minutes:.1f} min{where} "
                    f"| {'—' if e.bar is None else 'yes' if ok else 'no'} |")
        print(rows[-1], flush=True)
    command = "python scripts/reproduce.py" + "".join(f" {x}" for x in sys.argv[1:])
    table = "\n".join(rows) + f"\n\nMachine: {machine()}. Command: `{command}`\n"
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(table)
    store.write_text(json.dumps(results, indent=1))
    print(table)
    if not a.quick:
        for path in draw_curves(results, Path(a.curves_dir)):
            print(f"curve: {path}")


if __name__ == "__main__":
    main()
