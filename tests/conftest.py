import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from seqlab.run.cli import CONF_DIR
from seqlab.run.schema import check_arguments, locate

ROOT = Path(__file__).resolve().parents[1]

# Under pytest-xdist (`-n`) the workers train at the same time: one intra-op thread each, in this
# process and in the commands it starts (a tiny net's second thread would only wait for a core).
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
CONF = Path(CONF_DIR)
TASKS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))

# A small, fast char-LM: a few hundred lines of real text, a small model.
TINY_CHARLM = [
    "data.batch_size=4",
    "data.bptt=16",
    "model.hidden_size=32",
    "model.emb_dim=8",
    "trainer.accelerator=cpu",
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture
def one_thread():
    """Tiny nets: on a busy 2-core machine a second intra-op thread only waits for a core (a
    step gets ~10x slower), so such a test runs on one and gives the setting back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def config_node(experiment: str, group: str, overrides: list[str] = ()) -> dict:
    """The `data` or `model` node of an experiment as plain values, as seqlab-train gets it."""
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}", *overrides])
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg[group], resolve=True)


def make_data(experiment: str, **changes):
    """The experiment's data module with some settings changed, checked as seqlab-train checks them."""
    node = config_node(experiment, "data")
    cls = locate("data", node)
    args = {k: v for k, v in node.items() if k != "_target_"} | changes
    check_arguments("data", cls, changes, provided=None)
    return cls(**args)


def make_model(experiment: str, provided: dict, **changes):
    """The experiment's module (with what the data provides, e.g. the vocabulary), some settings changed."""
    node = config_node(experiment, "model")
    cls = locate("model", node)
    args = {k: v for k, v in node.items() if k != "_target_"} | changes
    check_arguments("model", cls, changes, provided=None)
    return cls(**args, **provided)


def compose_with_hydra(overrides: list[str], config_name: str = "train") -> DictConfig:
    """The composed config with its `hydra` node (sweeper, launcher), as a run would see it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg


def run_cli(
    module: str,
    *args: str,
    cwd: Path | None = None,
    timeout: int = 300,
    stdin: str | None = None,
    env: dict | None = None,
    in_process: bool = False,
    argv0: str | None = None,
) -> subprocess.CompletedProcess:
    """Run `python -m <module> args…` as a user would; outputs/ goes under `cwd`.

    `in_process=True` calls the entry point's own `main` here instead (sys.argv, stdin, the
    folder and the output streams set as a subprocess would see them): the same code path from
    the command line on, without paying 3 s of imports. For errors that stop before training.
    `argv0="seqlab-train"` runs it as the console script rather than `python -m`."""
    if not in_process:
        full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=cwd or ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            env=full_env,
        )
    import contextlib
    import importlib
    import io

    out, err, code = io.StringIO(), io.StringIO(), 0
    argv, here, stdin_before = sys.argv, os.getcwd(), sys.stdin
    sys.argv, sys.stdin = [argv0 or module, *args], io.StringIO(stdin or "")
    os.chdir(cwd or ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                importlib.import_module(module).main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv, sys.stdin = argv, stdin_before
        os.chdir(here)
        GlobalHydra.instance().clear()
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The user-facing error: exit code 2, a single `error: …` line, the last on stderr (a run
    that fails mid-training has printed Lightning's start-up lines before it), no traceback."""
    assert proc.returncode == 2, (
        f"exit code {proc.returncode}\nstdout:{proc.stdout[-2000:]}\nstderr:{proc.stderr[-3000:]}"
    )
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return errors[0]
