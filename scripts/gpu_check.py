"""The GPU check: what a person with a CUDA GPU runs to see that seqlab works there and what
Lightning costs there (about 5 minutes on one H100-class GPU). Prints a report and writes it
to outputs/gpu_check.md.

    python scripts/gpu_check.py
    python scripts/gpu_check.py --cpu        # the same steps on the CPU, to check this script itself

1. the GPU test tier (tests/test_gpu.py: every experiment trains on trainer=gpu, a GPU run
   resumes, eval/generate/chat run from a GPU checkpoint on the GPU and on the CPU);
2. Lightning (with the project's callbacks and logger) against a plain loop, char-LM and
   subseq at batch 64 and 512 (scripts/benchmark_speed.py), with Lightning's profile at 64.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def step(title: str, args: list[str], env: dict, report: list[str]) -> bool:
    print(f"\n=== {title}\n$ {' '.join(args)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env})
    took = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.strip() and "it/s]" not in line]
    tail = "\n".join(lines[-40:])
    print(tail)
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr)
    report += [
        f"## {title} ({took:.0f} s, exit {proc.returncode})",
        "",
        "```",
        f"$ {' '.join(args[1:])}",
        tail,
        "```",
        "",
    ]
    return proc.returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run the same steps on the CPU (checks this script)")
    ap.add_argument("--out", default=str(ROOT / "outputs" / "gpu_check.md"))
    a = ap.parse_args()
    if not a.cpu and not torch.cuda.is_available():
        sys.exit("error: no usable CUDA GPU here; run this on a GPU machine (or --cpu to check the script)")
    device = "cpu" if a.cpu else "cuda"
    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "CPU"
    head = (
        f"# GPU check: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}"
    )
    print(head)
    report = [head, ""]
    env = {"SEQLAB_GPU_TIER_ON_CPU": "1"} if a.cpu else {}
    # -o addopts: one process (the GPU is one device), and pytest-xdist need not be installed.
    ok = step(
        "GPU test tier",
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-o",
            "addopts=-ra",
            "-m",
            "gpu",
            "tests/test_gpu.py",
            "-p",
            "no:cacheprovider",
        ],
        env,
        report,
    )
    sizes = ["64"] if a.cpu else ["64", "512"]
    ok &= step(
        "Lightning against a plain loop",
        [
            sys.executable,
            "scripts/benchmark_speed.py",
            "--device",
            device,
            "--batch-sizes",
            *sizes,
            "--reps",
            "3",
            "--steps",
            "30",
            "--warmup",
            "10",
        ],
        env,
        report,
    )
    ok &= step(
        "Where Lightning's step time goes (batch 64, SimpleProfiler)",
        [
            sys.executable,
            "scripts/benchmark_speed.py",
            "--device",
            device,
            "--task",
            "charlm",
            "--batch-sizes",
            "64",
            "--reps",
            "1",
            "--steps",
            "30",
            "--warmup",
            "10",
            "--profile",
        ],
        env,
        report,
    )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(report) + "\n")
    print(f"\nreport: {a.out}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
