"""The subseq task: the generator, seeded streams, the encoder-decoder, training, prediction."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from conftest import make_cfg, make_data, make_model, one_line_error, run_cli

from seqlab.errors import SeqlabError
from seqlab.tasks.subseq.data import TEST, TRAIN, VAL, FreshExamples, make_examples, stream_seed
from seqlab.tasks.subseq.model import Seq2Seq
from seqlab.train import train

FORMAT = {"seq_len": 10, "max_start": 5, "min_len": 2, "digit_low": 1, "digit_high": 9}


def _module(**kw):
    return make_model("subseq_tutorial", FORMAT, hidden_size=16, emb_dim=8, **kw)


# A small, fast model and short runs.
TINY_SUBSEQ = [
    "model.emb_dim=16",
    "model.hidden_size=32",
    "model.n_layers=2",
    "data.val_size=64",
    "data.test_size=64",
    "trainer.accelerator=cpu",
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
]


def test_generator_invariant_over_many_draws():
    for seed in range(20):
        x, y = make_examples(5000, seed)
        assert x.shape == (5000, 10) and y.shape == (5000, 8)
        idx, length, digits = x[:, 0], x[:, 1], x[:, 2:]
        assert idx.min() >= 0 and idx.max() <= 5
        assert (length >= 2).all() and (length <= 8 - idx).all()  # every slice fits
        assert digits.min() >= 1 and digits.max() <= 9
        for i in range(0, 5000, 7):  # the seed's own check, example by example
            a, n = int(idx[i]), int(length[i])
            assert torch.equal(y[i, :n], x[i, 2 + a : 2 + a + n]), (x[i], y[i])
            assert (y[i, n:] == 0).all()
    # every (idx, len) pair the seed can draw occurs, and no other
    pairs = {(int(a), int(n)) for a, n in x[:, :2].tolist()}
    assert pairs == {(a, n) for a in range(6) for n in range(2, 9 - a)}


def test_generator_takes_the_format_from_config():
    x, y = make_examples(3000, 0, seq_len=14, max_start=3, min_len=4, digit_low=2, digit_high=5)
    assert x.shape == (3000, 14) and y.shape == (3000, 12)
    assert x[:, 0].max() == 3 and x[:, 1].min() == 4 and x[:, 1].max() == 12
    assert x[:, 2:].min() == 2 and x[:, 2:].max() == 5
    n = (y != 0).sum(1)
    assert torch.equal(n, x[:, 1])  # exactly len non-zero outputs, then the zeros


def _datamodule(**kw):
    dm = make_data("subseq_tutorial", **kw)
    dm.setup("fit")
    return dm


def test_val_and_test_sets_are_fixed_and_apart_from_training():
    a, b = _datamodule(seed=0), _datamodule(seed=123)
    for part in ("val_set", "test_set"):  # the same sets in every run, whatever the run's seed
        assert all(torch.equal(p, q) for p, q in zip(getattr(a, part), getattr(b, part), strict=False))
    assert not torch.equal(a.val_set[0], a.test_set[0])
    assert a.val_set[0].shape == (2000, 10)
    # the held-out seeds are not among the training stream's seeds (for any run seed or epoch)
    held_out = {stream_seed(1, VAL), stream_seed(2, TEST)}
    train_seeds = {stream_seed(s, TRAIN, e) for s in range(3) for e in range(300)}
    assert not held_out & train_seeds and len(train_seeds) == 900
    # ... even when the numbers coincide: the stream id keeps them apart
    assert stream_seed(1, TRAIN) != stream_seed(1, VAL)
    # and no validation or test example shows up in the first training epochs
    rows = lambda t: {tuple(r) for r in t.tolist()}  # noqa: E731
    held = rows(a.val_set[0]) | rows(a.test_set[0])
    trained = set()
    for epoch in range(4):
        trained |= rows(torch.cat([bx for bx, _ in FreshExamples(4096, 512, 0, a.format(), lambda epoch=epoch: epoch)]))
    assert len(trained) > 16000 and not held & trained


def test_training_stream_is_fresh_per_epoch_and_repeatable():
    fmt = _datamodule().format()
    epoch = {"n": 0}
    ds = FreshExamples(100, 32, seed=5, fmt=fmt, epoch_fn=lambda: epoch["n"])
    assert len(ds) == 4 and [len(bx) for bx, _ in ds] == [32, 32, 32, 4]
    first = torch.cat([bx for bx, _ in ds])
    assert torch.equal(first, torch.cat([bx for bx, _ in ds]))  # same epoch, same examples
    epoch["n"] = 3
    third = torch.cat([bx for bx, _ in ds])
    assert not torch.equal(first, third)  # a new epoch, new examples
    # a resumed run (a new dataset at epoch 3) draws what the first run drew at epoch 3
    resumed = FreshExamples(100, 32, seed=5, fmt=fmt, epoch_fn=lambda: 3)
    assert torch.equal(third, torch.cat([bx for bx, _ in resumed]))


@pytest.mark.parametrize(
    "kw, word",
    [
        ({"max_start": 7}, "max_start"),
        ({"digit_low": 0}, "digit_low"),
        ({"batch_size": 0}, "batch_size"),
        ({"min_len": 0}, "min_len"),
    ],
)
def test_bad_data_config(kw, word):
    with pytest.raises(SeqlabError, match=word):
        make_data("subseq_tutorial", **kw)


def test_forced_runs_in_one_call_equal_step_by_step_decoding():
    torch.manual_seed(0)
    m = Seq2Seq(10, 10, 8, emb_dim=8, hidden_size=16, n_layers=2, dropout=0.5, init_range=0.08).eval()
    x, y = make_examples(16, 0)
    h = m.encoder(x)

    def stepwise(force):
        hs, tok, outs = h, torch.zeros(16, 1, dtype=torch.long), []
        for t in range(8):
            out, hs = m.decoder(tok, hs)
            outs.append(out)
            if t < 7:
                tok = y[:, t : t + 1] if force[t] else out[:, -1].argmax(-1, keepdim=True)
        return torch.cat(outs, 1)

    for force in ([True] * 7, [False] * 7, [True, False, True, True, False, False, True]):
        torch.testing.assert_close(m(x, y, force), stepwise(force))
    torch.testing.assert_close(m(x), stepwise([False] * 7))  # no target: greedy
    assert m.predict(x).shape == (16, 8)
    with pytest.raises(ValueError):
        m(x, y, [True] * 3)


def test_uniform_init_and_teacher_forcing_schedule():
    m = _module(teacher_forcing=1.0, teacher_forcing_end=0.0)
    assert all(p.abs().max() <= 0.08 for p in m.parameters())
    assert m.teacher_forcing_ratio() == 1.0  # no trainer yet: the start value
    # with a trainer: linear from the start value (first epoch) to the end value (last epoch)
    trainer = L.Trainer(max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    m.trainer = trainer
    ratios = []
    for epoch in range(5):
        trainer.fit_loop.epoch_progress.current.completed = epoch
        ratios.append(m.teacher_forcing_ratio())
    assert ratios == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    constant = _module(teacher_forcing=0.3)
    constant.trainer = trainer
    assert constant.teacher_forcing_ratio() == 0.3  # no end value: no schedule
    with pytest.raises(SeqlabError, match="teacher_forcing"):
        _module(teacher_forcing=1.5)


def test_teacher_forcing_in_training_only():
    torch.manual_seed(0)
    x, y = make_examples(64, 0)
    m = _module(dropout=0.0, teacher_forcing=1.0)
    # ratio 1: every step after the first reads the target
    torch.testing.assert_close(
        m.training_loss((x, y)), F.cross_entropy(m.model(x, y, [True] * 7).flatten(0, 1), y.flatten())
    )
    m.hparams.teacher_forcing = 0.0  # ratio 0: the model reads its own guesses
    torch.testing.assert_close(m.training_loss((x, y)), F.cross_entropy(m.model(x).flatten(0, 1), y.flatten()))
    # validation decodes without the target: a scrambled target changes the scores, not the predictions
    m.hparams.teacher_forcing = 1.0
    m.eval()
    pred = m.evaluate((x, y), 0, "val")
    assert torch.equal(pred, m.evaluate((x, torch.randint(0, 10, y.shape)), 1, "val"))
    assert torch.equal(pred, m.model.predict(x))


def test_token_and_exact_accuracy():
    """Exact accuracy counts whole sequences, token accuracy single outputs (the padding included)."""
    m = _module()
    x, y = make_examples(10, 0)
    pred = y.clone()
    pred[:4, 0] = 0  # 4 sequences with one wrong token each (the first token is never padding)
    m.model.forward = lambda src, target=None, force=None: F.one_hot(pred, 10).float()
    assert torch.equal(m.evaluate((x, y), 0, "test"), pred)
    assert m.metrics["test"]["exact_acc"].compute() == pytest.approx(0.6)
    assert m.metrics["test"]["token_acc"].compute() == pytest.approx(1 - 4 / 80)


def test_log_examples_writes_a_table():
    m = _module(n_examples=5)
    x, y = make_examples(100, 0)
    m.evaluate((x, y), 0, "val")

    class Writer:
        def add_text(self, tag, text, step):
            self.tag, self.text = tag, text

    w = Writer()
    m.log_examples(w)
    lines = w.text.splitlines()
    assert w.tag == "examples/val" and len(lines) == 2 + 5 and lines[0].startswith("| input")
    assert " ".join(map(str, y[0].tolist())) in w.text or "✗" in w.text


@pytest.mark.parametrize("experiment", ["subseq", "subseq_tutorial"])
def test_fast_dev_run(experiment, tmp_path):
    cfg = make_cfg([f"experiment={experiment}", "debug=fast_dev_run", "trainer.enable_progress_bar=false"], tmp_path)
    metrics, _ = train(cfg)
    for key in ("val/exact_acc", "val/token_acc", "test/exact_acc", "test/token_acc"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["val/exact_acc"] <= metrics["val/token_acc"]  # a right sequence has only right tokens
    assert 0 < metrics["train/loss_step"] < 10 and 0 < metrics["test/loss"] < 10


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("subseq_run")
    cfg = make_cfg(["experiment=subseq", *TINY_SUBSEQ, "trainer.max_epochs=2", "trainer.limit_train_batches=3"], out)
    metrics, best = train(cfg)
    assert best and (out / "checkpoints" / "last.ckpt").is_file()
    return out, metrics, best


@pytest.fixture(scope="module")
def checkpoint(tiny_run):
    return tiny_run[2]


def test_tensorboard_gets_an_example_table_each_validation_epoch(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, metrics, _ = tiny_run
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    tables = acc.Tensors("examples/val/text_summary")
    assert len(tables) == 2  # two epochs, no table from the sanity check
    text = tables[-1].tensor_proto.string_val[0].decode()
    assert text.startswith("| input") and len(text.splitlines()) == 2 + 8  # header, rule, n_examples rows
    assert len(acc.Scalars("val/exact_acc")) == 2 and 0 <= metrics["test/exact_acc"] <= metrics["test/token_acc"] <= 1


def test_eval_entry_point(checkpoint):
    proc = run_cli("seqlab.eval", f"ckpt_path={checkpoint}", "trainer.enable_progress_bar=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = dict(line.split(": ") for line in proc.stdout.splitlines() if line.startswith("test/"))
    assert {"test/exact_acc", "test/token_acc", "test/loss"} <= scores.keys()
    assert 0 <= float(scores["test/exact_acc"]) <= float(scores["test/token_acc"]) <= 1


def test_predict_from_checkpoint(checkpoint):
    from seqlab.checkpoint import load_module

    proc = run_cli("seqlab.generate", f"ckpt_path={checkpoint}", "prompt=2 3 1 8 2 5 8 6 4 5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.strip().split()
    assert len(out) == 8 and all(0 <= int(t) <= 9 for t in out)
    module, _ = load_module(checkpoint)
    assert out == module.respond("2 3 1 8 2 5 8 6 4 5").split()  # the CLI prints the model's greedy output
    expected = module.model.predict(torch.tensor([[2, 3, 1, 8, 2, 5, 8, 6, 4, 5]]))[0].tolist()
    assert [int(t) for t in out] == expected
    assert module.respond("2,3,1,8,2,5,8,6,4,5") == module.respond("2318258645") == " ".join(out)


def test_bad_prediction_input(checkpoint):
    from seqlab.checkpoint import load_module

    module, _ = load_module(checkpoint)
    for prompt, word in [
        ("1 2 3", "10 numbers"),
        ("a b c d e f g h i j", "10 numbers"),
        ("", "10 numbers"),
        ("6 2 1 1 1 1 1 1 1 1", "idx=6"),
        ("5 4 1 1 1 1 1 1 1 1", "len=4"),
        ("2 3 1 0 2 5 8 6 4 5", "digit"),
        ("2 3 1 12 2 5 8 6 4 5", "digit"),
    ]:
        with pytest.raises(SeqlabError, match=word):
            module.respond(prompt)
    msg = one_line_error(run_cli("seqlab.generate", f"ckpt_path={checkpoint}", "prompt=1 2 3"))
    assert "10 numbers" in msg and "idx" in msg and "1..9" in msg
