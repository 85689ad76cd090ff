"""The framework itself: configs compose and instantiate, entry points, errors."""

import hydra
import pytest
from conftest import CONF, TINY_CHARLM, make_cfg, one_line_error, run_cli

from seqlab.train import build

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (CONF / "trainer").glob("*.yaml"))
LOGGERS = sorted(p.stem for p in (CONF / "logger").glob("*.yaml"))
# Experiments whose data is read from an optional package: skipped where it is not installed.
NEEDS_PACKAGE = {"dialogue_chatterbot": "chatterbot_corpus"}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(experiment, tmp_path):
    if experiment in NEEDS_PACKAGE:
        pytest.importorskip(NEEDS_PACKAGE[experiment])
    cfg = make_cfg([f"experiment={experiment}", "trainer.accelerator=cpu"], tmp_path)
    assert cfg.name == experiment
    datamodule, model, trainer = build(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("trainer", TRAINERS)
def test_trainer_presets_compose(trainer, tmp_path):
    cfg = make_cfg([f"trainer={trainer}"], tmp_path)
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    if trainer in ("cpu", "default", "ddp_cpu"):
        t = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        assert t.num_devices >= 1


@pytest.mark.parametrize("logger", LOGGERS)
def test_logger_configs_instantiate(logger, tmp_path):
    from omegaconf import OmegaConf

    from seqlab.train import make

    cfg = make_cfg([f"logger={logger}"], tmp_path)
    loggers = [make(f"logger.{k}", v) for k, v in (OmegaConf.to_container(cfg.logger, resolve=True) or {}).items()]
    assert len(loggers) == {"none": 0, "many": 2}.get(logger, 1)


@pytest.mark.parametrize("debug", sorted(p.stem for p in (CONF / "debug").glob("*.yaml")))
def test_debug_presets_compose(debug, tmp_path):
    cfg = make_cfg([f"debug={debug}"], tmp_path)
    t = cfg.trainer
    assert t.fast_dev_run or t.limit_train_batches or t.overfit_batches


def test_every_model_knob_is_overridable(tmp_path):
    cfg = make_cfg(
        [
            "model.cell=lstm",
            "model.n_layers=2",
            "model.dropout=0.3",
            "data.bptt=32",
            "data.random_bptt=true",
            "trainer.gradient_clip_val=0.5",
        ],
        tmp_path,
    )
    assert (cfg.model.cell, cfg.model.n_layers, cfg.data.bptt, cfg.trainer.gradient_clip_val) == ("lstm", 2, 32, 0.5)


def test_numbers_build_as_the_numbers_they_mean(tmp_path):
    """max_epochs=1e0 and lr="1e-3" pass the annotations (pydantic reads 1.0 as 1, "1e-3" as 0.001),
    so every class gets the number itself: Lightning asserted on the float, nn.GRU refused a size
    of 8.0, Adam compared a string."""
    overrides = ["trainer.max_epochs=2e0", "model.hidden_size=8.0", "data.batch_size=4.0", "model.optimizer.lr='1e-3'"]
    datamodule, model, trainer = build(make_cfg(["experiment=gru_toy", *overrides], tmp_path))
    ints = (trainer.max_epochs, model.hparams.hidden_size, datamodule.hparams.batch_size)
    assert ints == (2, 8, 4) and all(type(v) is int for v in ints)
    assert model.configure_optimizers().defaults["lr"] == 0.001


# ---- errors a user meets, as the user meets them -------------------------------------------------------


def test_unknown_config_key_names_the_fix():
    msg = one_line_error(run_cli("seqlab.train", "model.hiden_size=10", in_process=True))
    assert "model.hiden_size" in msg and "model.hidden_size" in msg


def test_unknown_experiment_lists_the_options():
    msg = one_line_error(run_cli("seqlab.train", "experiment=charml", in_process=True))
    assert "charml" in msg and "charlm_tutorial" in msg


def test_wrong_type_value():
    msg = one_line_error(run_cli("seqlab.train", "data.batch_size=abc", in_process=True))
    assert "data.batch_size" in msg and "integer" in msg


def test_missing_data_file_leaves_no_run_dir(tmp_path):
    proc = run_cli(
        "seqlab.train", f"data.path={tmp_path / 'nope.txt'}", "debug=fast_dev_run", f"paths.root_dir={tmp_path}"
    )
    msg = one_line_error(proc)
    assert "not found" in msg and "data.path" in msg
    left = list((tmp_path / "outputs").rglob("*")) if (tmp_path / "outputs").exists() else []
    assert not left, f"a failed run left {left} behind"


def test_empty_corpus(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    msg = one_line_error(
        run_cli(
            "seqlab.train", f"data.path={empty}", "debug=fast_dev_run", f"paths.root_dir={tmp_path}", in_process=True
        )
    )
    assert "empty" in msg and str(empty) in msg


def test_non_utf8_corpus(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1") * 100)
    msg = one_line_error(
        run_cli("seqlab.train", f"data.path={bad}", "debug=fast_dev_run", f"paths.root_dir={tmp_path}", in_process=True)
    )
    assert "not UTF-8" in msg


def test_zero_bptt(tmp_path):
    msg = one_line_error(
        run_cli("seqlab.train", "data.bptt=0", "debug=fast_dev_run", f"paths.root_dir={tmp_path}", in_process=True)
    )
    assert "data.bptt" in msg


@pytest.mark.parametrize("tool", ["seqlab.eval", "seqlab.generate"])
def test_missing_checkpoint(tool, tmp_path):
    msg = one_line_error(run_cli(tool, f"ckpt_path={tmp_path / 'missing.ckpt'}", in_process=True))
    assert "checkpoint not found" in msg and "ckpt_path=" in msg


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    msg = one_line_error(run_cli("seqlab.generate", f"ckpt_path={bad}", in_process=True))
    assert "corrupt or truncated" in msg


def test_resume_from_missing_checkpoint_in_train(tmp_path):
    msg = one_line_error(
        run_cli(
            "seqlab.train",
            f"ckpt_path={tmp_path / 'x.ckpt'}",
            "debug=fast_dev_run",
            f"paths.root_dir={tmp_path}",
            in_process=True,
        )
    )
    assert "checkpoint not found" in msg


def test_csv_logger_run(small_text, tmp_path):
    from seqlab.train import train

    metrics, _ = train(
        make_cfg(
            [
                f"data.path={small_text}",
                *TINY_CHARLM,
                "logger=csv",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=2",
                "trainer.limit_val_batches=1",
            ],
            tmp_path,
        )
    )
    import csv

    rows = [row for p in (tmp_path / "csv").rglob("metrics.csv") for row in csv.DictReader(p.open())]
    logged = [float(row["val/loss"]) for row in rows if row.get("val/loss")]
    assert logged and abs(logged[-1] - metrics["val/loss"]) < 1e-5


def test_sampling_draws_where_its_generator_lives(monkeypatch):
    """A seeded generator is a CPU generator and every draw is made on the CPU, whatever device
    the logits are on (a CUDA tensor with a CPU generator is the crash this guards against);
    the tokens go back to the logits' device. The CUDA side runs in tests/test_gpu.py."""
    import torch

    from seqlab.sampling import make_generator, next_token

    seen = []
    real = torch.multinomial

    def multinomial(probs, n, generator=None):
        seen.append((probs.device, generator.device if generator is not None else None))
        return real(probs, n, generator=generator)

    monkeypatch.setattr(torch, "multinomial", multinomial)
    logits = torch.randn(3, 5, 11, dtype=torch.float16)  # half precision, as under bf16/fp16 mixed runs
    a = next_token(logits, 0.8, make_generator(7))
    b = next_token(logits.float(), 0.8, make_generator(7))
    assert a.shape == (3, 5) and a.device == logits.device and a.dtype == torch.int64
    assert torch.equal(a, b)  # the seed alone decides the draw
    assert all(p == torch.device("cpu") and g == torch.device("cpu") for p, g in seen)
    assert torch.equal(next_token(logits, 0, None), logits.argmax(-1))  # greedy: no draw at all
    assert len(seen) == 2
    # a tiny temperature tends to the greedy answer instead of overflowing (it blamed the weights)
    assert torch.equal(next_token(logits.float(), 1e-300, make_generator(7)), logits.float().argmax(-1))


def test_overfitting_draws_the_same_batches_every_epoch():
    """debug=overfit (trainer.overfit_batches): each epoch's draw is epoch 0's, so the few batches
    it trains on are the same ones every epoch; otherwise each epoch draws anew."""
    from types import SimpleNamespace

    import torch

    from seqlab.datamodule import TaskData

    class Rows(TaskData):
        def train_dataloader(self):
            pass

        def val_dataloader(self):
            pass

    data, cpu = Rows(), SimpleNamespace(root_device=torch.device("cpu"))
    for overfit, same in ((3, True), (0, False)):
        orders = []
        for epoch in (0, 4):
            data.trainer = SimpleNamespace(
                current_epoch=epoch, overfit_batches=overfit, global_rank=0, world_size=1, strategy=cpu
            )
            orders.append(data.order(100).tolist())
        assert (orders[0] == orders[1]) is same


def test_each_rank_reads_its_own_equal_share_in_the_same_order_on_a_resume():
    """TaskData.order: under DDP the ranks' shares are disjoint and equal (a rank with a batch
    more would wait for the others at the end of the epoch); the order is the seed's and the
    epoch's, so a resumed run draws the same one again."""
    import torch

    from seqlab.datamodule import TaskData

    class Shares(TaskData):
        def __init__(self):
            super().__init__()
            self.where, self.now = (0, 1), 0

        def rank_and_world(self):
            return self.where

        def epoch(self):
            return self.now

        def train_dataloader(self):
            pass

        def val_dataloader(self):
            pass

    data = Shares()
    torch.manual_seed(5)
    shares = []
    for rank in range(3):
        data.where = (rank, 3)
        shares.append(data.order(10).tolist())
    assert [len(s) for s in shares] == [3, 3, 3] and len(set(sum(shares, []))) == 9
    data.where = (0, 1)
    first = data.order(10).tolist()
    data.now = 1
    assert data.order(10).tolist() != first and sorted(first) == list(range(10))
    data.now, _ = 0, torch.rand(3)  # (the global generator moved on: the epoch's order stays)
    assert data.order(10).tolist() == first and data.order(10, shuffle=False).tolist() == list(range(10))


def test_a_windows_text_reads_as_lines(tmp_path):
    """CRLF line ends are one line end, not a character to learn; a byte-order mark is no text."""
    from seqlab.textfiles import read_text

    (tmp_path / "w.txt").write_bytes("\ufeffone line\r\nanother\r\n".encode())
    assert read_text(tmp_path / "w.txt") == "one line\nanother\n"
