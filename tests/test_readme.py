"""Every command block of the README runs as written, in bash, with tiny settings.

The blocks run in a fresh folder where each task has a small finished run at
`outputs/<task>/runs/<time>` (the README's placeholder). Shell functions add tiny settings to
the commands (one short epoch, one Optuna trial, a few benchmark steps) and stand in for what a
test cannot start: installs and the TensorBoard server. A command that needs a GPU or a SLURM
cluster is composed (`--cfg job`) where there is none.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli

README = ROOT / "README.md"
TINY_TRAIN = (
    "trainer.max_epochs=1 trainer.limit_train_batches=2 trainer.limit_val_batches=1 "
    "trainer.limit_test_batches=1 trainer.check_val_every_n_epoch=1 trainer.max_time=null "
    "trainer.enable_progress_bar=false threads=1"
)
NO_HARDWARE = "" if torch.cuda.is_available() else "trainer=gpu|experiment=*_gpu|"
PRELUDE = f"""
set -euo pipefail
RESUMES=0
tiny_train() {{
  local extra=({TINY_TRAIN}) args=() a compose=0
  for a in "$@"; do
    case "$a" in
      hparams_search=*) extra+=(hydra.sweeper.n_trials=1) ;;
      resume=*) RESUMES=$((RESUMES + 1)); extra+=(trainer.max_epochs=$((1 + RESUMES))) ;;  # one epoch more each time
      {NO_HARDWARE}hydra/launcher=slurm) compose=1 ;;
    esac
  done
  if (( compose )); then  # no such hardware here: compose the config instead of running it
    for a in "$@"; do [[ "$a" == -m ]] || args+=("$a"); done
    command seqlab-train "${{args[@]}}" --cfg job > /dev/null
  else
    command seqlab-train "$@" "${{extra[@]}}"
  fi
}}
seqlab-train() {{ tiny_train "$@"; }}
seqlab-eval() {{ command seqlab-eval "$@" trainer.limit_test_batches=2 trainer.enable_progress_bar=false; }}
python() {{
  case "${{1:-}} ${{2:-}}" in
    "-m seqlab.train") shift 2; tiny_train "$@" ;;
    "scripts/reproduce.py "*) shift; command python scripts/reproduce.py --quick --curves-dir "$PWD/curves" "$@" ;;
    "scripts/benchmark_speed.py "*)
      if [[ "$*" == *cuda* && {int(not torch.cuda.is_available())} == 1 ]]; then echo "(no GPU: skipped)"; return; fi
      shift; command python scripts/benchmark_speed.py "$@" --reps 1 --steps 2 --warmup 1 ;;
    "scripts/gpu_check.py "*)
      [[ {int(torch.cuda.is_available())} == 1 ]] && command python "$@" || echo "(no GPU: skipped)" ;;
    *) command python "$@" ;;
  esac
}}
pip() {{ echo "(pip $* : installed already)"; }}
tensorboard() {{ echo "(tensorboard: a server, not started here)"; }}
"""


def bash_blocks() -> list[tuple[int, str]]:
    """(line number, text) of every ```bash block of the README."""
    text = README.read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in re.finditer(r"```bash\n(.*?)```", text, re.S)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder with a small finished run of every task, where the README's paths point."""
    root = tmp_path_factory.mktemp("readme")
    (root / "scripts").symlink_to(ROOT / "scripts")
    for task in ("charlm", "subseq", "dialogue", "arithmetic", "gru_toy"):
        proc = run_cli(
            "seqlab.train",
            f"experiment={task}",
            *TINY_TRAIN.split(),
            f"hydra.run.dir={root}/outputs/{task}/runs/PLACEHOLDER",
            cwd=root,
            in_process=True,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.mark.slow
@pytest.mark.parametrize("line,block", bash_blocks(), ids=[f"README line {n}" for n, _ in bash_blocks()])
def test_readme_block_runs_as_written(line, block, folder):
    if "python3 -m venv" in block:
        pytest.skip("the set-up commands: CI runs them (.ci/run)")
    script = block.replace("<time>", "PLACEHOLDER")
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    proc = subprocess.run(
        ["bash", "-c", PRELUDE + script], cwd=folder, capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, (
        f"README line {line}:\n{script}\n--- stdout\n{proc.stdout[-2000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    )
    assert "Traceback" not in proc.stderr


def test_readme_names_real_experiments_and_keys():
    """Every experiment=… and model/data key the README mentions exists."""
    from conftest import CONF

    text = README.read_text()
    experiments = {p.stem for p in (CONF / "experiment").glob("*.yaml")}
    named = set(re.findall(r"experiment=([a-z_]+)", text)) - {"my_experiment", "tiny_math"}
    assert named <= experiments, named - experiments
    for shown in re.findall(r"`(<task>_[a-z]+|[a-z_]+_tutorial)`", text):
        assert shown.startswith("<task>") or shown in experiments
    if shutil.which("seqlab-train") is None:
        pytest.skip("console scripts not on PATH")
