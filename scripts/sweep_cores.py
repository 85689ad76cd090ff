"""A 2-job grid on this machine three ways: one job after another (each with torch's default
threads), in parallel with the cores shared (hydra/launcher=parallel: cores // n_jobs threads a
job), and in parallel with each job taking every core (threads=<cores>, oversubscribed).

    python scripts/sweep_cores.py [--batches 150]

Prints a markdown table of wall times (the README's "Sweeps share the machine" numbers).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

GRID = [
    "experiment=charlm",
    "model.optimizer.lr=1e-3,2e-3",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
]


def sweep(extra: list[str], batches: int, root: str) -> float:
    limits = [f"trainer.limit_train_batches={batches}", "trainer.limit_val_batches=5", "trainer.limit_test_batches=5"]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # (nothing set by hand)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "seqlab.train", "-m", *GRID, *limits, *extra, f"paths.root_dir={root}"],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=150, help="training batches per job")
    args = parser.parse_args()
    if args.batches < 1:
        parser.error("--batches takes a number of 1 or more")
    cores = os.cpu_count()
    ways = [
        ("one after another (basic launcher, default threads)", []),
        (f"2 at once, cores shared ({max(1, cores // 2)} thread(s) each)", ["hydra/launcher=parallel"]),
        (f"2 at once, {cores} threads each (oversubscribed)", ["hydra/launcher=parallel", f"threads={cores}"]),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for name, extra in ways:
            rows.append((name, sweep(extra, args.batches, root)))
    print(f"2-job grid, experiment=charlm, {args.batches} training batches a job, {cores} cores\n")
    print("| how | wall s | vs one after another |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {rows[0][1] / seconds:.2f}× |")


if __name__ == "__main__":
    main()
