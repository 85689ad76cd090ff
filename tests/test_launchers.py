"""One run, however it is launched: torchrun (one machine or two "nodes" here, gloo on the CPU)
and srun (its environment, simulated for two tasks) leave one run folder, one report, the same
test metrics as one process with the same global batch, and a run that resumes under the same
launcher; a sweep's parallel jobs share the cores."""

import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_CHARLM, one_line_error
from omegaconf import OmegaConf

from seqlab.train import idle_cores, shared_cores

pytestmark = pytest.mark.slow
GRU = ["experiment=gru_toy", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]
DDP = ["trainer.strategy=ddp", "trainer.check_val_every_n_epoch=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, cwd, env=None):
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # LOGLEVEL quiets torchrun's own agent: at exit, the agent that holds the store may close it
        # while another still waits on the exit barrier, which logs a traceback and exits 0
        # (pytorch/pytorch#69520). Our program's errors are printed regardless of it.
        env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "LOGLEVEL": "CRITICAL", **(env or {})},
    )


def finish(*procs):
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
    return [out for out, _ in outs]


def torchrun(nodes: int, per_node: int, port: int):
    return [
        "-m", "torch.distributed.run", f"--nnodes={nodes}", f"--nproc-per-node={per_node}",
        "--master-addr=127.0.0.1", f"--master-port={port}",
    ]  # fmt: skip


def one_run(root):
    runs = [p for p in root.glob("outputs/*/runs/*") if p.is_dir()]
    assert len(runs) == 1, runs
    run = runs[0]
    assert (run / "result.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert list(run.glob("tensorboard/**/events.out.tfevents.*")) and (run / ".hydra" / "config.yaml").is_file()
    assert not list(run.parent.glob(".launch-*"))
    return run


def test_torchrun_on_one_machine_writes_one_run(tmp_path):
    port = free_port()
    cmd = [*torchrun(1, 2, port), "-m", "seqlab.train", *GRU, *DDP, "trainer.devices=2", "trainer.max_epochs=2"]
    (out,) = finish(start(cmd, tmp_path))
    one_run(tmp_path)
    assert out.count("run directory:") == 1  # (resume= under torchrun: the two-node test)


def test_two_nodes_write_one_run_with_the_metrics_of_one_process(tmp_path, small_text):
    same = [
        "experiment=charlm", f"data.path={small_text}", *TINY_CHARLM, "model.dropout=0", "seed=1",
        "trainer.max_epochs=2",
    ]  # fmt: skip
    (alone,) = finish(
        start(["-m", "seqlab.train", *same, "data.batch_size=8", f"hydra.run.dir={tmp_path}/alone"], tmp_path)
    )
    port, nodes = free_port(), tmp_path / "nodes"
    nodes.mkdir()
    cmd = ["-m", "seqlab.train", *same, *DDP, "data.batch_size=4", "trainer.devices=1", "trainer.num_nodes=2"]
    first, second = finish(
        start([*torchrun(2, 1, port), "--node-rank=0", *cmd], nodes),
        start([*torchrun(2, 1, port), "--node-rank=1", *cmd], nodes),
    )
    run = one_run(nodes)
    assert first.count("run directory:") == 1 and "run directory:" not in second

    def metrics(out):
        return {
            k: float(v) for k, v in (line.split(": ") for line in out.splitlines() if line.strip().startswith("test/"))
        }

    one, two = metrics(alone), metrics(first)
    assert one.keys() == two.keys() and one and all(abs(one[k] - two[k]) < 1e-4 for k in one), (one, two)
    # resumed by the same two launches, from another port
    port, more = free_port(), [f"resume={run}", "trainer.max_epochs=3"]
    finish(
        start([*torchrun(2, 1, port), "--node-rank=0", *cmd, *more], nodes),
        start([*torchrun(2, 1, port), "--node-rank=1", *cmd, *more], nodes),
    )
    assert one_run(nodes) == run
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["seqlab_resume"]["epochs_done"] == 3


def test_srun_tasks_write_one_run(tmp_path):
    slurm = {
        "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NODELIST": "127.0.0.1", "SLURM_JOB_NAME": "seqlab", "SLURM_NODEID": "0",
    }  # fmt: skip
    cmd = ["-m", "seqlab.train", *GRU, *DDP, "trainer.devices=2", "trainer.max_epochs=2"]
    outs = finish(*(start(cmd, tmp_path, slurm | {"SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)}) for r in (0, 1)))
    one_run(tmp_path)
    assert outs[0].count("run directory:") == 1 and outs[1] == ""


def test_a_sweep_under_a_launcher_is_refused(tmp_path):
    slurm = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "0"}
    proc = start(["-m", "seqlab.train", "-m", *GRU, "model.hidden_size=2,4"], tmp_path, slurm)
    out, err = proc.communicate(timeout=300)
    msg = one_line_error(subprocess.CompletedProcess([], proc.returncode, out, err))
    assert msg.startswith("error: -m under torchrun or srun would run the whole sweep in every process")
    assert not (tmp_path / "outputs").exists()


def test_parallel_jobs_share_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    job = SimpleNamespace(sweep_job=True)
    for n_jobs, threads in ((2, 4), (3, 2), (16, 1), (-1, 1), (-2, 1), (1, None)):
        assert shared_cores(OmegaConf.create({"launcher": {"n_jobs": n_jobs}}), job) == threads, n_jobs
    assert shared_cores(OmegaConf.create({"launcher": {}}), job) is None  # (the basic launcher: one job at a time)
    assert shared_cores(OmegaConf.create({"launcher": {"n_jobs": 2}}), SimpleNamespace(sweep_job=False)) is None


def test_threads_auto_takes_the_idle_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    for load, threads in ((0.1, 2), (0.9, 1), (1.2, 1), (3.5, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert idle_cores() == threads, load
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # two cores of a busy machine of 64: its load, spread
    monkeypatch.setattr(os, "getloadavg", lambda: (16.0, 16.0, 16.0))
    assert idle_cores() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own choice stays
    assert idle_cores() is None
