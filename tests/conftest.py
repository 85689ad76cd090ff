import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from seqlab.cli import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]

# A small, fast char-LM: a few hundred lines of real text, a small model.
TINY_CHARLM = [
    "data.bs=4", "data.bptt=16", "model.n_hidden=32", "model.n_fac=8",
    "trainer.accelerator=cpu", "trainer.enable_model_summary=false", "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="session")
def small_text(tmp_path_factory) -> Path:
    """The first 400 lines of the bundled Nietzsche text."""
    from seqlab.textfiles import bundled

    lines = bundled("nietzsche.txt").read_text(encoding="utf-8").split("\n")[:400]
    p = tmp_path_factory.mktemp("data") / "small.txt"
    p.write_text("\n".join(lines), encoding="utf-8")
    return p


def make_cfg(overrides: list[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """Compose a config as the command line would, with its run folder at `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg["hydra"]
    GlobalHydra.instance().clear()
    return cfg


def compose_with_hydra(overrides: list[str], config_name: str = "train") -> DictConfig:
    """The composed config with its `hydra` node (sweeper, launcher), as a run would see it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg


def run_cli(module: str, *args: str, cwd: Path | None = None, timeout: int = 300, stdin: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m <module> args…` as a user would; outputs/ goes under `cwd`."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, input=stdin, env=full_env)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The user-facing error: exit code 2, a single `error: …` line, the last on stderr (a run
    that fails mid-training has printed Lightning's start-up lines before it), no traceback."""
    assert proc.returncode == 2, f"exit code {proc.returncode}\nstdout:{proc.stdout[-2000:]}\nstderr:{proc.stderr[-3000:]}"
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return errors[0]
