"""The package installs like any other: a wheel, installed without the checkout, runs every
entry point from an empty folder, and takes a user's own configs with --config-dir."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import ROOT


def _run(args, cwd, **kw):
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"},
        **kw,
    )
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv holding seqlab's wheel alone (its dependencies from this environment)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Build the wheel with this environment's setuptools (no download), from a copy of the
    # sources (an in-tree build would leave build/ in the checkout).
    source, dist = tmp / "source", tmp / "dist"
    for folder in ("src", "conf"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source], tmp)
    wheel = next(dist.glob("seqlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "seqlab/conf/train.yaml",
        "seqlab/conf/experiment/gru_toy.yaml",
        "seqlab/conf/model/optimizer/adam.yaml",
        "seqlab/data/nietzsche.txt",
        "seqlab/data/pairs.json",
    } <= names
    assert not any(n.startswith(("tests/", "conf/")) for n in names)

    # A fresh venv with the wheel alone; torch, Lightning, Hydra… come from this environment
    # through a .pth line (a path, not an import hook: this environment's editable seqlab stays out).
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp)
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], tmp)
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).stdout.strip())
    (site / "seqlab_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = _run([py, "-c", "import seqlab; print(seqlab.__file__)"], tmp).stdout.strip()
    assert where.startswith(str(venv)), f"seqlab was imported from {where}, not from the wheel"

    return venv


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_from_an_empty_folder(venv, tmp_path):
    py = venv / "bin" / "python"
    empty = tmp_path / "empty"
    empty.mkdir()
    bin_ = venv / "bin"
    out = _run(
        [bin_ / "seqlab-train", "experiment=gru_toy", "trainer.max_epochs=2", "trainer.enable_progress_bar=false"],
        empty,
    ).stdout
    last = next((empty / "outputs" / "gru_toy" / "runs").glob("*/checkpoints/last.ckpt"))
    assert "run directory:" in out and last.is_file()
    reply = _run(
        [bin_ / "seqlab-generate", f"ckpt_path={last}", "prompt=Ma", "length=6", "temperature=0"], empty
    ).stdout
    assert reply.startswith("Ma") and len(reply.strip()) == 8
    assert (
        "test/loss"
        in _run([bin_ / "seqlab-eval", f"ckpt_path={last}", "trainer.enable_progress_bar=false"], empty).stdout
    )
    assert "Usage: seqlab-chat ckpt_path=" in _run([bin_ / "seqlab-chat", "--help"], empty).stdout
    assert _run([py, "-m", "seqlab.train", "--cfg", "job", "experiment=subseq"], empty).stdout.count("hidden_size") == 1
    # python -m in the checkout's src/ imports the seqlab there, which has no configs: one line.
    proc = subprocess.run([py, "-m", "seqlab.train"], cwd=ROOT / "src", capture_output=True, text=True, timeout=120)
    assert (
        proc.returncode == 1
        and proc.stderr.startswith("error: the seqlab imported from ")
        and "Traceback" not in (proc.stderr)
    ), proc.stderr[-3000:]

    # A user's own experiment, in a folder of theirs, without editing the package.
    mine = tmp_path / "my_configs" / "experiment"
    mine.mkdir(parents=True)
    (mine / "tiny_math.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /data: gru_toy\n  - override /model: gru_toy\n"
        "name: tiny_math\nmodel:\n  hidden_size: 4\ntrainer:\n  max_epochs: 1\n"
    )
    _run(
        [
            bin_ / "seqlab-train",
            "--config-dir",
            tmp_path / "my_configs",
            "experiment=tiny_math",
            "trainer.enable_progress_bar=false",
        ],
        empty,
    )
    assert next((empty / "outputs" / "tiny_math" / "runs").glob("*/checkpoints/last.ckpt")).is_file()


@pytest.mark.slow
def test_the_guide_your_own_task(venv, tmp_path):
    """docs/your-own-task.md word for word, from the wheel, in an empty folder: each bash block
    succeeds, except the mistake, which ends in the one line the guide shows."""
    guide = (ROOT / "docs" / "your-own-task.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", guide, re.S)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    env["PYTHONWARNINGS"] = "ignore"
    for i, (lang, code) in enumerate(blocks):
        if lang != "bash":
            continue
        proc = subprocess.run(["bash", "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
        if code.startswith("# a mistake"):
            shown = blocks[i + 1][1].strip()
            assert proc.returncode == 2 and proc.stderr.strip() == shown, proc.stderr[-3000:]
        else:
            assert proc.returncode == 0, f"{code}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    runs = list(tmp_path.glob("outputs/sorted/runs/*/"))
    last = torch.load(runs[0] / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(runs) == 1 and last["seqlab_resume"]["epochs_done"] == 7 and (runs[0] / "result.json").is_file()
    assert list(tmp_path.glob("outputs/sorted/multirun/*/*/checkpoints/last.ckpt"))
    assert (tmp_path / "outputs" / "optuna_sorted.db").is_file() and not (tmp_path / "elsewhere" / "outputs").exists()
    # The scaffold's own test passes as written.
    test = subprocess.run(
        [venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "tests/test_sorted.py"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert test.returncode == 0, test.stdout[-3000:]
