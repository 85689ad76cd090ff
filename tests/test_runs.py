"""Runs that survive: resume into the same run, kill-and-resume, NaN stop, determinism, DDP on
the CPU, and the errors of bad trainer settings."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import torch
from conftest import ROOT, TINY_CHARLM, make_cfg, one_line_error, run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seqlab.train import train


def _val_losses(run_dir) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars("val/loss")]


def _last(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")


def test_resume_continues_the_same_run(small_text, tmp_path):
    run = tmp_path / "run"
    common = [f"data.path={small_text}", *TINY_CHARLM, "trainer.limit_train_batches=4", "trainer.limit_val_batches=2"]
    proc = run_cli(
        "seqlab.train", *common, "trainer.max_epochs=1", f"hydra.run.dir={run}", f"paths.root_dir={tmp_path}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _last(run)["epoch"] == 0

    # resume=<run dir> with a larger max_epochs: the same folder, the same TensorBoard run.
    proc = run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=3", f"paths.root_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = _last(run)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 12
    assert not (tmp_path / "outputs").exists(), "resume made a new run folder"
    assert [d.name for d in (run / "tensorboard").iterdir() if d.is_dir()] == []  # no version_1/ beside it
    steps = [s for s, _ in _val_losses(run)]
    assert steps == [3, 7, 11]  # the three epochs' validations, one curve


def test_last_checkpoint_follows_every_epoch(small_text, tmp_path):
    """The best checkpoint is set to follow the highest validation loss, so it stays at epoch 0
    while the loss falls; last.ckpt must still be the latest epoch (what resume restarts from)."""
    train(
        make_cfg(
            [
                f"data.path={small_text}",
                *TINY_CHARLM,
                "callbacks.model_checkpoint.mode=max",
                "trainer.max_epochs=3",
                "trainer.limit_train_batches=2",
                "trainer.limit_val_batches=2",
            ],
            tmp_path,
        )
    )
    assert _last(tmp_path)["epoch"] == 2
    assert [p.name for p in (tmp_path / "checkpoints").glob("best-*.ckpt")] == ["best-epoch00.ckpt"]


def test_resume_of_a_folder_without_a_run_is_one_line(tmp_path):
    msg = one_line_error(run_cli("seqlab.train", f"resume={tmp_path}", in_process=True))
    assert "not a seqlab run folder" in msg


def _interrupt_args(small_text, root):
    return [
        f"data.path={small_text}",
        *TINY_CHARLM,
        "data.random_bptt=true",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=25",
        "trainer.limit_val_batches=4",
        "callbacks.step_checkpoint.every_n_train_steps=5",
        "seed=3",
        f"paths.root_dir={root}",
    ]


@pytest.fixture(scope="module")
def run_left_alone(small_text, tmp_path_factory):
    """The short run the interrupted ones are compared with."""
    root = tmp_path_factory.mktemp("alone")
    proc = run_cli("seqlab.train", *_interrupt_args(small_text, root), f"hydra.run.dir={root / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run"


def _start(tool: str, *args: str, cwd, stdout=subprocess.DEVNULL, **env) -> subprocess.Popen:
    """A console script (seqlab.commands: its start-up signal handling too) in a child process."""
    return subprocess.Popen(
        [sys.executable, "-c", f"from seqlab.commands import {tool}; {tool}()", *args],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **env},
    )


def _wait_for(root, pattern: str, job: subprocess.Popen, timeout: float = 240, count: int = 1) -> None:
    """Until `count` files matching `pattern` exist under `root` (or the job ended)."""
    deadline = time.time() + timeout
    while len(list(root.glob(pattern))) < count and job.poll() is None and time.time() < deadline:
        time.sleep(0.02)


def _nothing_left(root) -> bool:
    return not any(p.is_file() for p in (root / "outputs").rglob("*"))


def _interrupt(args, run_dir, sig) -> subprocess.CompletedProcess:
    """Start a run, send `sig` once its first step checkpoint exists (mid-epoch), wait for it."""
    job = _start("train", *args, f"hydra.run.dir={run_dir}", cwd=ROOT)
    _wait_for(run_dir, "checkpoints/last.ckpt", job)
    job.send_signal(sig)
    _, err = job.communicate(timeout=120)
    return subprocess.CompletedProcess(job.args, job.returncode, "", err)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_interrupt_and_resume_matches_an_uninterrupted_run(sig, small_text, tmp_path, run_left_alone):
    """Stop a run mid-epoch, resume it, and compare with the run left alone: the same final
    validation loss (tolerance 1e-4 nats: the same batches in the same order, the carried hidden
    state and the RNG restored; only float summation order may differ). SIGKILL leaves the last
    step checkpoint; SIGTERM and SIGINT stop at the next step with last.ckpt written, exit
    143 / 130, and one line that says how to continue."""
    steps_per_epoch = _last(run_left_alone)["global_step"] // 2
    stopped = tmp_path / "stopped"
    proc = _interrupt(_interrupt_args(small_text, tmp_path), stopped, sig)
    saved = _last(stopped)  # loads: a kill mid-save leaves at most a temporary file beside it
    assert 0 < saved["global_step"] < 2 * steps_per_epoch  # stopped mid-run
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + sig, proc.stderr[-3000:]
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        assert lines[-1].startswith(f"stopped by {signal.Signals(sig).name} at step {saved['global_step']} ")
        assert f"resume={stopped}" in lines[-1] and "Traceback" not in proc.stderr
    if saved["global_step"] % steps_per_epoch:  # mid-epoch: its place is counted in batches of this size
        proc = run_cli("seqlab.train", f"resume={stopped}", "data.batch_size=3")
        assert proc.returncode == 2 and "resume= goes on from the middle of an epoch" in proc.stderr, proc.stderr

    proc = run_cli("seqlab.train", f"resume={stopped}")
    assert proc.returncode == 0 and "kept no position" not in proc.stderr, proc.stderr[-3000:]
    assert not list((stopped / "checkpoints").glob(".*.tmp")), "a temporary file of a killed save was left"
    a, b = (json.loads((d / "result.json").read_text()) for d in (run_left_alone, stopped))
    assert _last(stopped)["epoch"] == 1 and _last(stopped)["global_step"] == 2 * steps_per_epoch
    assert b["metrics"]["val/loss"] == pytest.approx(a["metrics"]["val/loss"], abs=1e-4)


def test_non_finite_loss_stops_with_the_step(small_text, tmp_path):
    proc = run_cli(
        "seqlab.train",
        f"data.path={small_text}",
        *TINY_CHARLM,
        "model/optimizer=sgd",
        "model.optimizer.lr=1e38",
        "trainer.max_epochs=1",
        "trainer.gradient_clip_val=null",
        f"paths.root_dir={tmp_path}",
    )
    msg = one_line_error(proc)
    assert "training loss is not finite" in msg and "at step" in msg and "model.optimizer.lr" in msg
    assert not any((tmp_path / "outputs").rglob("*.yaml")), "a failed run without a checkpoint left files behind"


def test_seeded_deterministic_runs_are_identical(small_text, tmp_path):
    over = [
        f"data.path={small_text}",
        *TINY_CHARLM,
        "data.random_bptt=true",
        "model.dropout=0.2",
        "seed=11",
        "trainer.deterministic=true",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=6",
        "trainer.limit_val_batches=3",
        "logger=none",
        "callbacks=none",
        "trainer.enable_checkpointing=false",
    ]
    a, _ = train(make_cfg(over, tmp_path / "a"))
    b, _ = train(make_cfg(over, tmp_path / "b"))
    keys = [k for k in a if k.startswith(("val/", "test/", "train/"))]
    assert keys and {k: a[k] for k in keys} == {k: b[k] for k in keys}


@pytest.mark.slow
# Dialogue reads a map-style dataset through Lightning's distributed sampler; the other tasks draw
# per rank as subseq's does (the rank is in the seed). The char-LM, which splits its streams by
# rank, trains over two torchrun "nodes" in tests/test_launchers.py.
@pytest.mark.parametrize("task", ["dialogue", "subseq"])
def test_cpu_ddp_trains_each_kind_of_data(task, tmp_path):
    """Two processes over gloo, a few batches: runs, syncs metrics, only rank 0 writes logs."""
    (tmp_path / "tmp").mkdir()
    small = {"charlm": ["model.hidden_size=32", "model.emb_dim=8"], "subseq": ["model.hidden_size=32"]}
    proc = run_cli(
        "seqlab.train",
        f"experiment={task}",
        *small.get(task, []),
        "trainer=ddp_cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.check_val_every_n_epoch=1",
        "trainer.max_time=null",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path}/run",
        f"paths.root_dir={tmp_path}",
        timeout=420,
        env={"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "", "TMPDIR": str(tmp_path / "tmp")},  # (what a user sees)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list((tmp_path / "tmp").glob("tmp*"))  # (Lightning's spawn leaves a folder in TMPDIR, seqlab's goes)
    # the spawned processes are as quiet as the command: no library's notes (path:line: …)
    assert "site-packages" not in proc.stderr, proc.stderr[-3000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["value"] is not None and result["best_checkpoint"]
    # Only rank 0 logs: one validation, one val/loss point (the main process and the spawned
    # rank 0 each open their own event file in the one run folder).
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    monitor = result["monitor"]
    assert len(acc.Scalars(monitor)) == 1, acc.Scalars(monitor)
    assert not (tmp_path / "outputs").exists()  # no stray run folders from the second process


@pytest.mark.slow
def test_ctrl_c_to_a_cpu_ddp_run_is_one_line_and_resumes(tmp_path):
    """A terminal's Ctrl-C reaches every process of trainer=ddp_cpu (the spawned ones too): rank 0
    says the one line, no process prints a traceback, exit 130, and the run resumes."""
    run_dir = tmp_path / "run"
    args = ["experiment=gru_toy", "trainer=ddp_cpu", "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}"]
    job = subprocess.Popen(
        [sys.executable, "-c", "from seqlab.commands import train; train()", *args, "trainer.max_epochs=100000"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"},
        start_new_session=True,  # (its own process group, as a terminal's foreground job)
    )
    _wait_for(run_dir, "checkpoints/last.ckpt", job, timeout=300)
    time.sleep(1)
    os.killpg(job.pid, signal.SIGINT)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 130 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("stopped by SIGINT at step ") and f"resume={run_dir}" in last, last
    epochs = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["epoch"]
    proc = run_cli("seqlab.train", f"resume={run_dir}", f"trainer.max_epochs={epochs + 2}", "test=false", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_gpu_on_a_machine_without_one_is_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    msg = one_line_error(
        run_cli(
            "seqlab.train", "trainer=gpu", "trainer.fast_dev_run=true", f"paths.root_dir={tmp_path}", in_process=True
        )
    )
    assert "gpu" in msg.lower()
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.yaml"))


def test_more_devices_than_exist_is_one_line(tmp_path):
    n = (os.cpu_count() or 1) + 1
    msg = one_line_error(
        run_cli(
            "seqlab.train",
            "trainer=ddp_cpu",
            f"trainer.devices={n}",
            "debug=fast_dev_run",
            f"paths.root_dir={tmp_path}",
            in_process=True,
        )
    )
    assert "devices" in msg and str(n) in msg


def test_zero_batch_size(tmp_path):
    msg = one_line_error(
        run_cli(
            "seqlab.train", "data.batch_size=0", "debug=fast_dev_run", f"paths.root_dir={tmp_path}", in_process=True
        )
    )
    assert "data.batch_size" in msg


def test_failed_tool_keeps_the_callers_folder(tmp_path):
    """eval/generate/chat run in the user's folder: an error there must not delete it."""
    (tmp_path / "keep.txt").write_text("mine")
    proc = run_cli("seqlab.generate", f"ckpt_path={tmp_path / 'missing.ckpt'}", cwd=tmp_path, in_process=True)
    assert proc.returncode == 2 and (tmp_path / "keep.txt").read_text() == "mine"


def test_device_cuda_without_a_gpu_is_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run = tmp_path / "run"
    proc = run_cli(
        "seqlab.train",
        "experiment=gru_toy",
        "trainer=cpu",
        "trainer.max_epochs=1",
        f"hydra.run.dir={run}",
        f"paths.root_dir={tmp_path}",
        in_process=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    msg = one_line_error(
        run_cli(
            "seqlab.generate",
            f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            "prompt=Ma",
            "device=cuda",
            in_process=True,
        )
    )
    assert "no usable CUDA GPU" in msg and "device=cpu" in msg


def test_two_runs_asking_for_one_folder_get_one_each(tmp_path):
    """Two runs that start in the same second ask for the same timestamped folder: the second
    gets <time>_1. Here both ask for the same name on purpose (a time to the year), at the same time."""
    folder = str(tmp_path / "runs" / "same_") + "${now:%Y}"
    jobs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seqlab.train",
                "experiment=gru_toy",
                "trainer.max_epochs=5",
                f"seed={seed}",
                "trainer.enable_progress_bar=false",
                f"hydra.run.dir={folder}",
                f"paths.root_dir={tmp_path}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"},
        )
        for seed in (1, 2)
    ]
    for job in jobs:
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err[-3000:]
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    year = time.strftime("%Y")
    assert folders == [f"same_{year}", f"same_{year}_1"]
    seeds, pids = set(), set()
    for name in folders:
        run = tmp_path / "runs" / name
        overrides = (run / ".hydra" / "overrides.yaml").read_text()
        seeds |= {s for s in ("seed=1", "seed=2") if s in overrides}
        assert (run / "result.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
        assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
        # event files: events.out.tfevents.<time>.<host>.<pid>.<n>; one process wrote each folder
        writers = {p.name.split(".")[-2] for p in (run / "tensorboard").glob("events.out.tfevents.*")}
        assert len(writers) == 1
        pids |= writers
    assert seeds == {"seed=1", "seed=2"} and len(pids) == 2


def test_two_runs_given_one_folder_by_hand_do_not_share_it(tmp_path):
    """hydra.run.dir=<new folder> for two runs started at once: both find it empty, one takes it
    (an atomic mkdir of its .hydra/), the other is refused before it writes anything."""
    jobs = [
        _start(
            "train",
            "experiment=gru_toy",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={tmp_path / 'run'}",
            cwd=tmp_path,
            OMP_NUM_THREADS="1",
        )
        for _ in range(2)
    ]
    errs = [job.communicate(timeout=300)[1] for job in jobs]
    results = [(job.returncode, err) for job, err in zip(jobs, errs, strict=False)]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    msg = one_line_error(subprocess.CompletedProcess([], 2, "", refused))
    assert msg.startswith(
        f"error: hydra.run.dir={tmp_path / 'run'} is in use by a run that is still going"
    ) or msg.startswith(f"error: hydra.run.dir={tmp_path / 'run'} already holds a run")  # (if the first one ended)
    writers = {p.name.split(".")[-2] for p in (tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*")}
    assert len(writers) == 1 and (tmp_path / "run" / "result.json").is_file()


def test_resume_of_a_run_that_is_still_going_is_refused(tmp_path):
    """The running run holds a lock on its folder (released by the kernel even on kill -9)."""
    job = _start(
        "train",
        "experiment=gru_toy",
        "trainer.max_epochs=100000",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    _wait_for(tmp_path, "run/checkpoints/last.ckpt", job)
    proc = run_cli("seqlab.train", f"resume={tmp_path / 'run'}")
    assert "that run is still going" in one_line_error(proc)
    job.kill()
    job.wait()
    proc = run_cli("seqlab.train", f"resume={tmp_path / 'run'}", "train=false")  # the lock went with the process
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "run" / ".hydra" / "seqlab.lock").exists()


def test_a_second_ctrl_c_during_validation_stops_at_once(tmp_path):
    """The first Ctrl-C waits for the validation to end; a second one stops now, with the one
    line and exit 130 (Lightning would print its own message and exit 1); a run with no
    checkpoint yet leaves nothing."""
    job = _start(
        "train",
        "experiment=subseq",
        "data.val_size=200000",
        "trainer.limit_train_batches=2",
        "trainer.num_sanity_val_steps=0",
        "threads=1",
        "trainer.enable_progress_bar=false",
        "callbacks.log_examples.every_n_epochs=0",
        cwd=tmp_path,
    )
    _wait_for(tmp_path, "outputs/subseq/runs/*/tensorboard/events.*", job)
    time.sleep(2)  # in the long validation of the first epoch
    job.send_signal(signal.SIGINT)
    time.sleep(1)
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("stopped at once by a second SIGINT at step 2 ")
    assert "no checkpoint was written yet; nothing to resume" in err and _nothing_left(tmp_path)


def _sigterm_to_a_sweep(tmp_path, *args: str, jobs: int = 1) -> tuple[str, str]:
    """A gru_toy sweep, sent SIGTERM once `jobs` of its jobs have a step checkpoint: (stdout, stderr)."""
    job = _start(
        "train",
        "-m",
        "experiment=gru_toy",
        *args,
        "trainer.enable_progress_bar=false",
        "callbacks.step_checkpoint.every_n_train_steps=3",
        cwd=tmp_path,
        stdout=subprocess.PIPE,
    )
    _wait_for(tmp_path, "outputs/gru_toy/multirun/*/*/checkpoints/last.ckpt", job, count=jobs)
    job.send_signal(signal.SIGTERM)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 143, err[-3000:]
    return out, err


def test_sigterm_stops_a_sweep_with_its_summary(tmp_path):
    out, err = _sigterm_to_a_sweep(tmp_path, "seed=1,2")
    last = err.strip().splitlines()[-1]
    assert last.startswith("stopped by SIGTERM at step ") and "resume=" in last
    assert "sweep summary (1 jobs of 2; 1 did not run)" in out and "| failed: stopped by SIGTERM" in out


@pytest.mark.slow
def test_sigterm_to_a_parallel_sweep_names_what_was_kept(tmp_path):
    """The jobs train in a launcher's processes: the stop line says their checkpoints are kept."""
    out, err = _sigterm_to_a_sweep(tmp_path, "seed=1,2", "hydra/launcher=parallel", "trainer.max_epochs=100000", jobs=2)
    assert err.strip().splitlines()[-1] == (
        "stopped by SIGTERM; the jobs that had begun keep their checkpoints: continue one with "
        "python -m seqlab.train resume=<its folder> (the summary above lists them)"
    )
    assert "sweep summary (2 jobs)" in out


@pytest.mark.slow
def test_sigterm_to_an_optuna_search_fails_its_running_trial(tmp_path):
    """The stopped trial is marked failed in the study (else it stays RUNNING for good)."""
    import optuna

    db = tmp_path / "study.db"
    search = ["hparams_search=gru_toy_optuna", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage=sqlite:///{db}"]
    _sigterm_to_a_sweep(tmp_path, *search, "trainer.max_epochs=100000")
    trials = optuna.load_study(study_name="gru_toy", storage=f"sqlite:///{db}").trials
    assert [t.state.name for t in trials] == ["FAIL"], trials


def test_a_signal_while_the_run_starts_leaves_nothing(tmp_path):
    """SIGTERM or Ctrl-C before training has begun: one line, 130 / 143, no run folder."""
    for sig, delay in ((signal.SIGTERM, 0.3), (signal.SIGINT, 2.5), (signal.SIGTERM, 3.0)):
        job = _start("train", "experiment=gru_toy", "trainer.enable_progress_bar=false", cwd=tmp_path)
        time.sleep(delay)
        job.send_signal(sig)
        _, err = job.communicate(timeout=120)
        assert job.returncode == 128 + sig and "Traceback" not in err, err[-3000:]
        last = err.strip().splitlines()[-1]
        if not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.ckpt")):
            assert last.startswith(("stopped by Ctrl-C", "stopped by SIGTERM")), (
                last
            )  # stopped before the first checkpoint
            assert _nothing_left(tmp_path)
        shutil.rmtree(tmp_path / "outputs", ignore_errors=True)


def test_eval_stops_on_a_signal_in_one_line(tmp_path):
    """Lightning ends a test interrupted by Ctrl-C with exit 1 and no word of it; seqlab-eval
    says so and exits 130 / 143."""
    args = [
        "experiment=subseq",
        "model.hidden_size=16",
        "model.emb_dim=8",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        "test=false",
    ]
    assert run_cli("seqlab.train", *args).returncode == 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        job = _start(
            "eval",
            f"ckpt_path={tmp_path / 'run/checkpoints/last.ckpt'}",
            "data.test_size=4000000",
            "data.eval_batch_size=8",
            cwd=tmp_path,
        )
        time.sleep(10)  # in the test loop (a slow machine may still be starting: a line of the same kind then)
        job.send_signal(sig)
        _, err = job.communicate(timeout=120)
        name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
        assert job.returncode == 128 + sig and "Traceback" not in err, err[-3000:]
        assert err.strip().splitlines()[-1].startswith(f"stopped by {name}")


class SignalAfterLastBatch(L.Callback):
    """Sends this process SIGTERM at the end of the first epoch's last training batch."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == 0 and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_at_an_epochs_last_batch_lets_its_validation_run(tmp_path):
    """Stopping right there would save a step that a resume treats as validated: the run
    validates the epoch (and keeps its best checkpoint) before it stops."""
    from seqlab.errors import Interrupted

    cfg = make_cfg(
        [
            "experiment=gru_toy",
            "trainer.max_epochs=3",
            "trainer.check_val_every_n_epoch=1",
            "trainer.enable_progress_bar=false",
            "+callbacks.signal._target_=test_runs.SignalAfterLastBatch",
        ],
        tmp_path,
    )
    with pytest.raises(Interrupted) as stopped:
        train(cfg)
    assert stopped.value.code == 143 and "(epoch 1)" in stopped.value.message
    assert list((tmp_path / "checkpoints").glob("best-epoch00.ckpt"))  # the epoch validated before the stop


def test_a_moved_run_resumes_from_its_own_files(tmp_path):
    """A run folder copied elsewhere and resumed: the best checkpoint it tests is its own copy,
    not the file in the old folder (which is gone here)."""
    args = ["experiment=gru_toy", "trainer.enable_progress_bar=false"]
    assert run_cli("seqlab.train", *args, "trainer.max_epochs=5", f"hydra.run.dir={tmp_path / 'a'}").returncode == 0
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    proc = run_cli("seqlab.train", f"resume={tmp_path / 'b'}", "trainer.max_epochs=10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = json.loads((tmp_path / "b" / "result.json").read_text())["best_checkpoint"]
    assert best.startswith(str(tmp_path / "b" / "checkpoints"))
    assert len(list((tmp_path / "b" / "checkpoints").glob("best-*.ckpt"))) == 1


@pytest.mark.slow
def test_slurm_preemption_requeues_and_the_requeued_job_resumes(small_text, tmp_path):
    """As on a SLURM cluster under the slurm launcher: the pre-emption signal (submitit's USR2)
    makes Lightning save an HPC checkpoint and call `scontrol requeue <job id>`; SLURM then stops
    the job (SIGTERM) and starts it again, which continues from the newest checkpoint. The
    cluster is played by environment variables and an `scontrol` that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls.txt"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "seqlab",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
        "SUBMITIT_EXECUTOR": "slurm",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    run = tmp_path / "run"
    args = [sys.executable, "-m", "seqlab.train", *_interrupt_args(small_text, tmp_path), f"hydra.run.dir={run}"]
    job = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **slurm},
    )
    deadline = time.time() + 240
    while not (run / "checkpoints" / "last.ckpt").exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    job.send_signal(signal.SIGUSR2)
    while not calls.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    job.send_signal(signal.SIGTERM)  # what SLURM does to a requeued job
    _, err = job.communicate(timeout=120)
    assert calls.read_text().split() == ["requeue", "4242"], err[-3000:]
    assert list(run.glob("hpc_ckpt_*.ckpt")), "no HPC checkpoint"
    assert job.returncode == 143, err[-3000:]
    stopped_at = _last(run)["global_step"]

    # the same job again, as SLURM restarts it
    proc = run_cli(*args[2:], env={**slurm, "SLURM_RESTART_COUNT": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"starting from {run / 'checkpoints' / 'last.ckpt'} (step {stopped_at}," in proc.stderr
    end = _last(run)
    assert end["epoch"] == 1 and end["global_step"] == 50 and stopped_at < 50
