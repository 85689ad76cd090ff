"""Sweeps and dashboards: grid and Optuna sweeps leave their jobs and a summary; TensorBoard's
HPARAMS tab holds the real final metrics; each task draws its text or pictures."""

import csv
import json
import sqlite3

import pytest
from conftest import CONF, TASKS, TINY_CHARLM, compose_with_hydra, make_cfg, one_line_error, run_cli
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seqlab.train import train

FEW_BATCHES = [
    "trainer.max_epochs=1",
    "trainer.check_val_every_n_epoch=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
]


def _has_text(acc: EventAccumulator) -> bool:
    try:
        return bool(acc.PluginTagToContent("text"))
    except KeyError:  # no text summary at all
        return False


def _events(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0, "images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_grid_sweep_leaves_named_jobs_and_a_summary(small_text, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "seqlab.train",
        "-m",
        f"data.path={small_text}",
        *TINY_CHARLM,
        *FEW_BATCHES,
        "model.optimizer.lr=0.001,0.003",
        f"hydra.sweep.dir={sweep}",
        f"paths.root_dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    # named by job number and overrides, so the two jobs are told apart at a glance
    assert len(jobs) == 2 and jobs[0].startswith("0_") and jobs[1].startswith("1_")
    assert jobs == ["0_model.optimizer.lr=0.001", "1_model.optimizer.lr=0.003"]  # what differs, not what is set
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["job"] for r in rows] == jobs and all(r["status"] == "ok" for r in rows)
    for r in rows:  # the summary's value is the job's own result
        result = json.loads((sweep / r["job"] / "result.json").read_text())
        assert float(r["value"]) == pytest.approx(result["value"]) and 0 < result["value"] < 10
    assert "model.optimizer.lr=0.003" in (sweep / "summary.md").read_text()
    # a job's folder name holds '=' and ',': resume= of it still reads as one path
    proc = run_cli("seqlab.train", f"resume={sweep / jobs[0]}", "trainer.max_epochs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((sweep / jobs[0] / "result.json").read_text())["best_checkpoint"].startswith(str(sweep / jobs[0]))


def test_optuna_sweep_records_trials_and_continues_the_study(small_text, tmp_path):
    sweep, db = tmp_path / "sweep", tmp_path / "study.db"
    args = [
        "-m",
        "hparams_search=charlm_optuna",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage=sqlite:///{db}",
        f"data.path={small_text}",
        *TINY_CHARLM,
        *FEW_BATCHES,
        "model.hidden_size=32",
        "data.bptt=16",
        f"hydra.sweep.dir={sweep}",
        f"paths.root_dir={tmp_path}",
    ]
    proc = run_cli("seqlab.train", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Best parameters" in proc.stdout + proc.stderr
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 2 and all(r["status"] == "ok" and float(r["value"]) > 0 for r in rows)
    # The same command with the same storage continues the study: 2 more trials, 4 in all (in a new
    # sweep folder: the first one, which holds the first trials, is never written into again).
    assert "already holds a sweep" in one_line_error(run_cli("seqlab.train", *args, in_process=True))
    proc = run_cli("seqlab.train", *args, f"hydra.sweep.dir={tmp_path / 'sweep2'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with sqlite3.connect(db) as con:
        states = [s for (s,) in con.execute("select state from trials")]
        lrs = [v for (v,) in con.execute("select param_value from trial_params where param_name='model.optimizer.lr'")]
    assert states == ["COMPLETE"] * 4
    assert len(set(lrs)) == 4  # (the continued study proposes new trials, not the ones it began with)


def test_hparams_tab_holds_the_real_final_metric(small_text, tmp_path):
    metrics, _ = train(make_cfg([f"data.path={small_text}", *TINY_CHARLM, *FEW_BATCHES], tmp_path))
    acc = _events(tmp_path)
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    )
    hparams = start.session_start_info.hparams
    assert hparams["model/hidden_size"].number_value == 32 and hparams["experiment"].string_value == "charlm"
    # registered as NaN when the run starts (never a made-up -1), the real value at the end:
    # the HPARAMS tab shows the last one
    best = acc.Scalars("hp/best_loss")
    assert best[-1].value == pytest.approx(metrics["best/val/loss"], rel=1e-6) and 0 < best[-1].value < 10
    assert acc.Scalars("hp/test_loss")[-1].value == pytest.approx(metrics["test/loss"], rel=1e-6)
    assert "hp_metric" not in acc.Tags()["scalars"]
    # the learning rate is logged too
    assert any(t.startswith("lr-") for t in acc.Tags()["scalars"])


# Per task: its default experiment, a few batches; what it must draw each validation epoch.
DRAWS = {
    "charlm": {"text"},
    "subseq": {"text"},
    "dialogue": {"text", "images"},
    "arithmetic": {"images"},
    "gru_toy": {"images"},
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_each_task_draws_its_summaries(task, tmp_path):
    overrides = [
        f"experiment={task}",
        *FEW_BATCHES,
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.max_time=null",
    ]
    train(make_cfg(overrides, tmp_path))
    acc = _events(tmp_path)
    tags = acc.Tags()
    got = {"images"} if tags["images"] else set()
    if _has_text(acc):
        got.add("text")
    assert DRAWS[task] <= got, f"{task} drew {got} (tags: {tags})"
    assert acc.Scalars("time/log_examples_s")[0].value < 5.0  # pictures cost little time
    # and switched off by config
    off = tmp_path / "off"
    train(make_cfg([*overrides, "callbacks.log_examples.every_n_epochs=0"], off))
    acc = _events(off)
    assert not acc.Tags()["images"] and not _has_text(acc)


@pytest.mark.parametrize("search", sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml")))
def test_optuna_search_space_names_real_keys(search):
    """Each task's search optimises what seqlab.train returns for that task, over keys its
    config really has (a typo would make every trial fail), with resumable storage."""
    task = search.removesuffix("_optuna")
    cfg = compose_with_hydra([f"experiment={task}", f"hparams_search={search}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == ("maximize" if cfg.model.monitor_mode == "max" else "minimize")
    assert len(sweeper.params) >= 4 and sweeper.storage.startswith("sqlite:///") and sweeper.sampler.seed is not None
    for key, space in sweeper.params.items():
        if "/" in key:  # a config group's options, e.g. model/optimizer: choice(sgd, adam)
            options = {p.stem for p in (CONF / key).glob("*.yaml")}
            assert set(space[len("choice(") : -1].replace(" ", "").split(",")) <= options, key
        else:
            assert OmegaConf.select(cfg, key) is not None, key


def test_slurm_launcher_config_composes():
    launcher = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"]).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.timeout_min == 60


def test_a_failed_job_is_listed_with_its_reason_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "seqlab.train",
        "-m",
        "experiment=gru_toy",
        "trainer.max_epochs=5",
        "trainer.enable_progress_bar=false",
        "data.text=MathMathMathMathMath,Mxyz,MathMathMathMath",  # (a wrong value's type is refused before)
        f"hydra.sweep.dir={sweep}",
        f"paths.root_dir={tmp_path}",
    )
    why = "data.text has characters not in data.vocab: 'xyz'; write it with the characters 'hatM' only"
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {why}")
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["status"] for r in rows[::2]] == ["ok", "ok"] and rows[1]["status"].startswith(f"failed: {why}")
    assert "sweep summary (3 jobs)" in proc.stdout  # printed although a job failed
    assert "Traceback" not in (sweep / rows[1]["job"] / "train.log").read_text()


def test_optuna_picked_by_hand_searches_the_command_lines_ranges(tmp_path):
    """hydra/sweeper=optuna without a search config: its own default direction is an enum."""
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "seqlab.train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "experiment=gru_toy",
        "model.hidden_size=2,4", "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1",
        "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}", f"paths.root_dir={tmp_path}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 2 and all(r["status"] == "ok" and r["job"].split("_", 1)[1].startswith("model.hidden_size=")
                                  for r in rows)  # fmt: skip


def test_hydra_mode_multirun_on_the_command_line_is_minus_m():
    """Hydra reads hydra.mode=MULTIRUN as -m: a comma list is then a sweep, not a slip."""
    from seqlab.run.cli import parse

    line = parse(["experiment=gru_toy", "hydra.mode=MULTIRUN", "model.hidden_size=4,6"], "train", [])
    assert line.multirun and "model.hidden_size=4,6" in line.overrides
    assert not parse(["experiment=gru_toy"], "train", []).multirun
