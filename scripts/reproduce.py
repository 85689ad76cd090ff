"""Reproduce and beat: train every task's seed experiment and default recipe, write a results table.

    python scripts/reproduce.py                      # all experiments, full length
    python scripts/reproduce.py --quick              # smoke version: a few batches each
    python scripts/reproduce.py --only charlm charlm_seed

Each experiment runs as `python -m seqlab.train experiment=<name>` (a normal run under
outputs/), and the table (markdown) is printed and written to --out.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# experiment -> (metric printed by the train entry point, the seed's own number, bar, better-is)
EXPERIMENTS = {
    "charlm_seed": ("val/loss", "1.5440 (fast.ai lesson 7)", 1.544, "min"),
    "charlm": ("val/loss", "1.5440 (fast.ai lesson 7)", 1.35, "min"),
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
        args += ["debug=limit_batches"]
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"error": f"exit {proc.returncode}", "wall": wall}
    found = dict(re.findall(r"^\s*(\S+/\S+): ([-0-9.naif]+)$", proc.stdout, re.M))
    return {k: float(v) for k, v in found.items()} | {"wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few batches per experiment (smoke test)")
    ap.add_argument("--only", nargs="*", default=None, help="experiments to run (default: all)")
    ap.add_argument("--out", default=str(ROOT / "outputs" / "results.md"))
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    a = ap.parse_args()
    names = a.only or list(EXPERIMENTS)
    rows = ["| experiment | metric | seed's number | bar | ours | training time | passes |",
            "|---|---|---|---|---|---|---|"]
    for name in names:
        metric, seed_number, bar, better = EXPERIMENTS[name]
        r = run(name, a.quick, a.overrides)
        value = r.get(metric)
        if value is None:
            rows.append(f"| {name} | {metric} | {seed_number} | {bar} | {r.get('error', 'missing')} | | no |")
            continue
        ok = value <= bar if better == "min" else value >= bar
        fit = r.get("time/fit_s", r["wall"])
        rows.append(f"| {name} | {metric} | {seed_number} | {'≤' if better == 'min' else '≥'} {bar} | {value:.4f} "
                    f"| {fit / 60:.1f} min | {'yes' if ok else 'no'} |")
        print(rows[-1], flush=True)
    table = "\n".join(rows) + f"\n\nMachine: {machine()}. Command: `python scripts/reproduce.py {' '.join(sys.argv[1:])}`\n"
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
