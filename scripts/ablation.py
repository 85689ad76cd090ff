"""What each regulariser does to the char-LM: the `charlm` recipe with one option changed at a time
(and the record recipe), each a normal run under outputs/, its best validation loss and training
minutes read back from its result.json.

    python scripts/ablation.py                   # every row, two at a time (one thread each)
    python scripts/ablation.py --only ema wdrop  # some rows
    python scripts/ablation.py --jobs 1          # one at a time, on every core

Runs keep a fixed epoch budget, so a busy machine costs minutes, not quality; the minutes of rows
run two at a time are not those of one run alone (scripts/threads_busy.py measures by how much).
Results add up in outputs/ablation.json; the table is printed and written to outputs/ablation.md,
the validation curves drawn to docs/curves/charlm-ablation.png. A run made otherwise (the record by
scripts/reproduce.py) joins the table with `--add record <run folder> --threads 2`.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = {
    "charlm": ("the recipe: LSTM-512, dropout 0.3, 26 epochs", []),
    "ema": ("+ weight average (EMA, decay 0.999)", ["callbacks=ema"]),
    "ema_wdrop": ("+ EMA + weight-dropped LSTM (0.25)", ["callbacks=ema", "model.weight_dropout=0.25"]),
    "tied": ("+ tied embedding and output (through a projection)", ["model.tie_weights=true"]),
    "adamw": (
        "+ AdamW, weight decay 0.1",
        ["model/optimizer=adamw", "model.optimizer.lr=2e-3", "model.optimizer.weight_decay=0.1"],
    ),
    "record": ("charlm_record", ["experiment=charlm_record"]),
    "record_wdrop": (
        "charlm_record + weight drop 0.2, embedding dropout 0.1, 32 epochs",
        ["experiment=charlm_record", "model.weight_dropout=0.2", "model.emb_dropout=0.1", "trainer.max_epochs=32"],
    ),
    "record_locked": (
        "charlm_record + locked (variational) dropout, bptt 64",
        ["experiment=charlm_record", "model.locked_dropout=true", "data.bptt=64"],
    ),
}


def run(name: str, threads: int | None) -> dict:
    what, overrides = ROWS[name]
    experiment = [] if any(o.startswith("experiment=") for o in overrides) else ["experiment=charlm"]
    args = [sys.executable, "-m", "seqlab.train", *experiment, *overrides, "trainer.enable_progress_bar=false"]
    args += [f"threads={threads}"] if threads else []
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    found = re.search(r"^run directory:\s+(\S+)", proc.stdout, re.M)
    if proc.returncode != 0 or not found:
        return {"what": what, "error": proc.stderr.strip().splitlines()[-1:]}
    return row(what, found.group(1), threads)


def row(what: str, run_dir: str, threads: int | None) -> dict:
    metrics = json.loads((Path(run_dir) / "result.json").read_text())["metrics"]
    return {
        "what": what,
        "best_val_loss": metrics["best/val/loss"],
        "minutes": metrics["time/fit_s"] / 60,
        "threads": threads,
        "run_dir": run_dir,
    }


def draw(store: dict, path: Path) -> None:
    """Validation loss per epoch of each row (per epoch: the rows' minutes are not comparable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, r in store.items():
        if "run_dir" in r:
            acc = EventAccumulator(str(Path(r["run_dir"]) / "tensorboard"), size_guidance={"scalars": 0})
            acc.Reload()
            values = [e.value for e in acc.Scalars("val/loss")]
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=2, linewidth=1.1, label=name)
    ax.set_ylim(1.24, 1.45)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val/loss (nats/char)")
    ax.set_title("charlm: one option at a time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (each gets cores // jobs threads)")
    parser.add_argument("--add", nargs=2, metavar=("ROW", "RUN_DIR"), help="a finished run as a row (no training)")
    parser.add_argument("--threads", type=int, help="with --add: the threads that run had")
    args = parser.parse_args()
    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--jobs and --threads take a number of 1 or more")
    if args.add and args.add[0] not in ROWS:
        parser.error(f"--add {args.add[0]}: no such row; the rows are {', '.join(ROWS)}")
    if args.add and not (Path(args.add[1]) / "result.json").is_file():
        parser.error(f"--add {args.add[0]} {args.add[1]}: no finished run there (no result.json); pass a run's folder")
    if (
        args.add
        and not {"best/val/loss", "val/bpc"}
        <= json.loads((Path(args.add[1]) / "result.json").read_text()).get("metrics", {}).keys()
    ):
        parser.error(
            f"--add {args.add[0]} {args.add[1]}: not a char-LM run that validated (its result.json has no "
            f"best/val/loss or val/bpc); pass a finished charlm run's folder"
        )
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    store_path = ROOT / "outputs" / "ablation.json"
    store = json.loads(store_path.read_text()) if store_path.exists() else {}
    if args.add:
        store[args.add[0]] = row(ROWS[args.add[0]][0], args.add[1], args.threads)
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            for name, result in zip(args.only, pool.map(lambda n: run(n, threads), args.only), strict=True):
                store[name] = result
                print(name, result, flush=True)
    store_path.parent.mkdir(exist_ok=True)
    store_path.write_text(json.dumps(store, indent=1))
    lines = ["| row | what | best val loss | training minutes (threads) |", "|---|---|---|---|"]
    for name, r in store.items():
        value = f"{r['best_val_loss']:.4f}" if "best_val_loss" in r else f"failed: {r['error']}"
        minutes = f"{r['minutes']:.1f} ({r['threads'] or 'all'})" if "minutes" in r else "—"
        lines.append(f"| {name} | {r['what']} | {value} | {minutes} |")
    (ROOT / "outputs" / "ablation.md").write_text("\n".join(lines) + "\n")
    draw(store, ROOT / "docs" / "curves" / "charlm-ablation.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
