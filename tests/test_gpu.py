"""The GPU tier: every experiment trains on `trainer=gpu` (TensorBoard examples, test, checkpoints),
a GPU run resumes, and eval/generate/chat run from a GPU checkpoint on the GPU and on the CPU.

Skipped where there is no CUDA GPU. `SEQLAB_GPU_TIER_ON_CPU=1 pytest -m gpu` runs the same tests
with `trainer=cpu` instead, to check the tier itself on a machine without one.
"""

import json
import os

import pytest
import torch
from conftest import CONF, run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ON_CPU = os.environ.get("SEQLAB_GPU_TIER_ON_CPU") == "1"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available() and not ON_CPU, reason="needs a CUDA GPU (none on this machine)"),
]
TRAINER = "trainer=cpu" if ON_CPU and not torch.cuda.is_available() else "trainer=gpu"
DEVICE = "cpu" if TRAINER == "trainer=cpu" else "cuda"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SHORT = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=8",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.check_val_every_n_epoch=1",
    "trainer.max_time=null",
    "trainer.enable_progress_bar=false",
]


def _train(tmp_path, experiment, *extra):
    run = tmp_path / experiment
    proc = run_cli(
        "seqlab.train",
        f"experiment={experiment}",
        TRAINER,
        *SHORT,
        *extra,
        f"hydra.run.dir={run}",
        f"paths.root_dir={tmp_path}",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run, json.loads((run / "result.json").read_text())


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_trains_on_the_gpu(experiment, tmp_path):
    if experiment == "dialogue_chatterbot":
        pytest.importorskip("chatterbot_corpus")
    run, result = _train(tmp_path, experiment)
    metrics = result["metrics"]
    assert result["value"] is not None and any(k.startswith("test/") for k in metrics)
    assert all(v == v for v in metrics.values())  # no NaN
    assert (run / "checkpoints" / "last.ckpt").is_file() and result["best_checkpoint"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["seqlab"]["task"] in experiment
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0, "images": 0}).Reload()
    drawn = set(acc.Tags()["images"]) | {t for t in acc.Tags()["tensors"] if t.endswith("text_summary")}
    assert drawn, f"{experiment} drew nothing in TensorBoard"


def test_a_gpu_run_resumes_and_its_checkpoint_answers_anywhere(tmp_path):
    run, _ = _train(tmp_path, "charlm", "trainer.max_epochs=1", "callbacks.step_checkpoint.every_n_train_steps=4")
    proc = run_cli("seqlab.train", f"resume={run}", "trainer.max_epochs=2", f"paths.root_dir={tmp_path}", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1

    # generate: on this device and on the CPU, repeatable with a seed on each
    for device in dict.fromkeys([DEVICE, "cpu"]):
        args = [f"ckpt_path={last}", "prompt=the will", "length=40", "temperature=0.8", "seed=3", f"device={device}"]
        a, b = run_cli("seqlab.generate", *args), run_cli("seqlab.generate", *args)
        assert a.returncode == 0, a.stderr[-2000:]
        assert a.stdout == b.stdout and len(a.stdout) == 41
    # eval on the CPU of a checkpoint written on the GPU
    proc = run_cli(
        "seqlab.eval",
        f"ckpt_path={last}",
        "trainer=cpu",
        "trainer.limit_test_batches=2",
        "trainer.enable_progress_bar=false",
    )
    assert proc.returncode == 0 and "test/loss" in proc.stdout, proc.stderr[-2000:]


def test_chat_and_beam_search_from_a_gpu_checkpoint(tmp_path):
    run, _ = _train(tmp_path, "dialogue")
    last = run / "checkpoints" / "last.ckpt"
    for device in dict.fromkeys([DEVICE, "cpu"]):
        proc = run_cli("seqlab.chat", f"ckpt_path={last}", f"device={device}", stdin="hi\nwho are you?\n\n")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert len(proc.stdout.splitlines()) == 3
        proc = run_cli("seqlab.generate", f"ckpt_path={last}", "prompt=hi", "beam_width=3", f"device={device}")
        assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-2000:]


def test_a_cpu_checkpoint_runs_on_the_gpu(tmp_path):
    run = tmp_path / "cpu_run"
    proc = run_cli(
        "seqlab.train",
        "experiment=arithmetic",
        "trainer=cpu",
        *SHORT,
        f"hydra.run.dir={run}",
        f"paths.root_dir={tmp_path}",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli(
        "seqlab.generate",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "prompt=12+7=?",
        "temperature=0.5",
        "seed=1",
        f"device={DEVICE}",
    )
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1, proc.stderr[-2000:]
