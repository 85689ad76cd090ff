"""The arithmetic task (Tao): tutor and sensei, the target format, held-out sets, the seed's
net, answering by feeding back, gradient accumulation, training and sampling from a checkpoint."""

import random

import lightning as L
import pytest
import torch
from conftest import make_cfg, make_data, make_model, run_cli

from seqlab.checkpoint import load_module
from seqlab.errors import SeqlabError
from seqlab.tasks.arithmetic.data import ALPHABETS, END, IGNORE, Tutor, parse_question, render, sensei
from seqlab.tasks.arithmetic.model import ACTIVATIONS, UPDATES, TaoRNN, answer
from seqlab.train import build, train

COMPACT = ALPHABETS["compact"]
STOI = {c: i for i, c in enumerate(COMPACT)}
FAST = ["trainer.accelerator=cpu", "trainer.enable_model_summary=false", "trainer.enable_progress_bar=false"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These nets are tiny: one thread is faster (conftest.one_thread)."""


def decode(ids) -> str:
    return "".join(COMPACT[i] for i in ids if i != IGNORE)


@pytest.mark.parametrize("op", ["+", "-", "*"])
def test_sensei_answers_random_questions_like_python_integers(op):
    rng = random.Random(op)
    for _ in range(200):
        a, b = rng.randrange(10 ** rng.randint(1, 9)), rng.randrange(10 ** rng.randint(1, 9))
        q = f"{a}{op}{b}=?"
        expected = {"+": a + b, "-": a - b, "*": a * b}[op]
        assert sensei(q) == END * (q.index("=") + 1) + str(expected)


def test_target_format_is_the_seeds():
    # the seed's own example: as long as the question, the answer under the "?"
    assert sensei("1+1=?") == "\x00\x00\x00\x002" and len(sensei("1+2=?")) == len("1+2=?")
    assert sensei("12+7=?") == "\x00" * 5 + "19"
    assert sensei("3-12=?") == "\x00" * 5 + "-9"
    # the batch: input = question + answer (teacher forcing); target = the sensei's, then a closing END
    x, y, q_len = render(torch.tensor([12, 3]), torch.tensor([0, 1]), torch.tensor([7, 12]), STOI)
    assert decode(x[0, :8]) == "12+7=?19" and decode(y[0]) == sensei("12+7=?") + END
    assert decode(x[1][: q_len[1] + 2]) == "3-12=?-9" and decode(y[1]) == sensei("3-12=?") + END
    assert q_len.tolist() == [6, 6]
    assert y.shape == x.shape and (y[0] != IGNORE).sum() == len("12+7=?19")  # padding is ignored


@pytest.mark.parametrize("ops,digits", [("+", 1), ("-", 3), ("*", 4), ("+-*", 9)])
def test_batches_of_the_tutor_agree_with_the_sensei(ops, digits):
    tutor = Tutor(ops, digits)
    g = torch.Generator().manual_seed(digits)
    a, op, b = tutor.questions(tutor.draw(300, g))
    assert set(op.tolist()) == {"+-*".index(o) for o in ops} and int(a.max()) < 10**digits
    x, y, q_len = render(a, op, b, STOI)
    for i in range(x.size(0)):
        q = decode(x[i, : q_len[i]])
        assert parse_question(q) == (int(a[i]), "+-*"[op[i]], int(b[i]))
        n = int((y[i] != IGNORE).sum())
        assert decode(y[i, :n]) == sensei(q) + END
        assert decode(x[i, :n]) == q + sensei(q).lstrip(END)
    assert (
        max(
            len(sensei(f"{a}{o}{b}=?").lstrip(END))
            for a in (0, 10**digits - 1)
            for b in (0, 10**digits - 1)
            for o in ops
        )
        == tutor.max_answer_len()
    )


@pytest.mark.parametrize("bad", ["1+1=", "1+1", "a+1=?", "1/2=?", "+1=?", "1+-2=?", ""])
def test_malformed_question_is_a_user_error(bad):
    with pytest.raises(SeqlabError, match="12\\+7=\\?"):
        parse_question(bad)


def test_held_out_questions_never_drawn_for_training():
    dm = make_data("arithmetic", balance_digits=False, train_size=20_000, batch_size=1000)
    dm.setup("fit")
    assert len(dm.val_idx) == len(dm.test_idx) == 1000
    assert not torch.isin(dm.val_idx, dm.test_idx).any()
    drawn = dm.tutor.draw(50_000, torch.Generator().manual_seed(1), dm.exclude)
    assert not torch.isin(drawn, dm.exclude).any()
    assert drawn.unique().numel() > 15_000  # still the rest of the 20,000-question space
    x, y, q_len = next(iter(dm.val_dataloader()))
    assert x.size(0) == 1000
    # every epoch a new draw, repeatable
    ds = dm.train_dataloader().dataset
    first = [b[0] for b in ds]
    assert len(first) == len(ds) == 20
    ds.epoch_fn = lambda: 1
    assert not torch.equal(first[0], next(iter(ds))[0])
    ds.epoch_fn = lambda: 0
    assert torch.equal(first[0], next(iter(ds))[0])


def test_digit_balanced_training_draws_keep_out_the_held_out_sets():
    dm = make_data("arithmetic", balance_digits=True, train_size=20_000, batch_size=1000)
    dm.setup("fit")
    drawn = dm.tutor.draw(40_000, torch.Generator().manual_seed(1), dm.exclude)
    assert not torch.isin(drawn, dm.exclude).any()
    a, op, b = dm.tutor.questions(drawn)
    assert 0.4 < float((a < 10).float().mean()) < 0.6 and 0.4 < float((b < 10).float().mean()) < 0.6
    assert int(a.max()) == int(b.max()) == 99 and set(op.tolist()) == {0, 1}
    # the held-out sets stay uniform over the space: mostly 2-digit operands
    va, _, _ = dm.tutor.questions(dm.val_idx)
    assert float((va < 10).float().mean()) < 0.2


def test_tutorial_preset_asks_the_two_questions():
    dm = make_data("arithmetic_tutorial", train_size=400)
    dm.setup("fit")
    assert len(dm.alphabet) == 101 and dm.model_kwargs()["max_answer_len"] == 1
    alphabet = dm.alphabet
    seen = [("".join(alphabet[i] for i in x[0, : q[0]].tolist())) for x, _, q in dm.train_dataloader().dataset]
    assert set(seen) == {"1+1=?", "1+2=?"} and 120 < seen.count("1+1=?") < 280
    val = [
        "".join(alphabet[i] for i in x[k, : q[k]].tolist()) for x, _, q in dm.val_dataloader() for k in range(x.size(0))
    ]
    assert sorted(val) == ["1+1=?", "1+2=?"]


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"ops": "+/"}, "data.ops"),
        ({"digits": 0}, "data.digits"),
        ({"alphabet": "ascii"}, "data.alphabet"),
        ({"fixed": ["1+1"]}, "data.fixed"),
        ({"fixed": ["1234567890+1=?"]}, "data.fixed"),  # (answers are int64)
        ({"fixed": ["9" * 4400 + "+1=?"]}, "data.fixed"),  # (Python's int() reads at most 4300 digits)
        ({"batch_size": 0}, "data.batch_size"),
    ],
)
def test_bad_data_settings_name_the_key(kwargs, key):
    with pytest.raises(SeqlabError, match=key.replace(".", r"\.")):
        make_data("arithmetic", **kwargs)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_linear_cell_is_the_seeds_update(activation):
    """h' = act(Linear(cat(x, h))) and output = Linear(h'), step by step as the seed writes it."""
    torch.manual_seed(0)
    m = TaoRNN(16, 12, activation, 1)
    x = torch.randint(0, 16, (3, 7))
    logits, hs = m(x)
    h = torch.zeros(3, 12)
    act = ACTIVATIONS[activation]
    for t in range(7):
        h = act(m.xhh(torch.cat([torch.nn.functional.one_hot(x[:, t], 16).float(), h], 1)))
        torch.testing.assert_close(hs[:, t], h)
        torch.testing.assert_close(logits[:, t], m.ho(h))


def test_gru_update_is_a_gru_cell():
    torch.manual_seed(0)
    m = TaoRNN(16, 12, "gru", 1)
    assert set(UPDATES) == {"identity", "tanh", "relu", "gru"} and not hasattr(m, "xhh")
    cell = torch.nn.GRUCell(16, 12)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data.copy_(getattr(m.rnn, f"{name}_l0"))
    x = torch.randint(0, 16, (3, 5))
    _, hs = m(x)
    h = torch.zeros(3, 12)
    for t in range(5):
        h = cell(torch.nn.functional.one_hot(x[:, t], 16).float(), h)
        torch.testing.assert_close(hs[:, t], h)


def test_hidden_state_starts_at_zero_for_every_question():
    """Each question of a batch is read from a zero state: its outputs do not depend on its
    batch mates, nor on what the net read before."""
    torch.manual_seed(2)
    m = TaoRNN(16, 24, "tanh", 1)
    x, _, _ = render(torch.tensor([12, 5, 99]), torch.tensor([0, 1, 2]), torch.tensor([7, 17, 99]), STOI)
    together, _ = m(x)
    for i in range(3):
        torch.testing.assert_close(together[i], m(x[i : i + 1])[0][0])
    torch.testing.assert_close(together, m(x, torch.zeros(3, 24))[0])
    assert not torch.allclose(together, m(x, torch.ones(3, 24))[0])  # (the start state does matter)


@pytest.mark.parametrize("activation,n_layers", [("identity", 1), ("tanh", 1), ("gru", 1), ("gru", 3)])
def test_answers_feed_the_nets_own_characters_back(activation, n_layers):
    torch.manual_seed(1)
    m = TaoRNN(16, 24, activation, n_layers).eval()
    x, _, q_len = render(torch.tensor([12, 5, 99]), torch.tensor([0, 1, 2]), torch.tensor([7, 17, 99]), STOI)
    got, _ = answer(m, x, q_len, steps=6, end=STOI[END])
    for i in range(3):
        q = x[i, : q_len[i]].tolist()
        said = got[i].tolist()
        n = said.index(STOI[END]) + 1 if STOI[END] in said else len(said)
        # reading the question and then its own characters, the net says exactly those characters
        logits, _ = m(torch.tensor([q + said[: n - 1]]))
        assert logits[0, len(q) - 1 :].argmax(-1).tolist() == said[:n]
        assert all(t == STOI[END] for t in said[n:])
    # the answer does not depend on what follows the question in x (no teacher forcing)
    x2 = x.clone()
    x2[0, q_len[0] :] = STOI["7"]
    assert torch.equal(answer(m, x2, q_len, steps=6, end=STOI[END])[0], got)


def test_gradient_accumulation_steps_every_5_questions(tmp_path):
    """The seed preset: one question per batch, an optimizer step after every 5th."""
    cfg = make_cfg(
        [
            "experiment=arithmetic_tutorial",
            *FAST,
            "data.train_size=23",
            "trainer.max_epochs=1",
            "trainer.limit_val_batches=0",
            "test=false",
            "logger=none",
            "callbacks=none",
            "trainer.enable_checkpointing=false",
        ],
        tmp_path,
    )
    datamodule, model, trainer = build(cfg)

    class Count(L.Callback):
        def __init__(self):
            self.steps, self.changed, self.last = [], [], None

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.steps.append(trainer.fit_loop.batch_idx)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            assert batch[0].size(0) == 1  # one question per batch
            now = torch.cat([p.detach().flatten() for p in pl_module.parameters()])
            self.changed.append(self.last is not None and not torch.equal(now, self.last))
            self.last = now.clone()

    count = Count()
    trainer.callbacks.append(count)
    trainer.fit(model, datamodule=datamodule)
    # after questions 5, 10, 15, 20 and at the end of the epoch (question 23)
    assert count.steps == [4, 9, 14, 19, 22] and trainer.global_step == 5
    assert [i for i, c in enumerate(count.changed) if c] == [4, 9, 14, 19, 22]  # the weights change only then


@pytest.mark.parametrize("experiment", ["arithmetic", "arithmetic_tutorial"])
def test_fast_dev_run(experiment, tmp_path):
    metrics, _ = train(make_cfg([f"experiment={experiment}", "debug=fast_dev_run", *FAST], tmp_path))
    for stage in ("val", "test"):
        assert 0 <= metrics[f"{stage}/exact_acc"] <= 1 and 0 <= metrics[f"{stage}/char_acc"] <= 1
        assert 0 < metrics[f"{stage}/loss"] < 10


def test_learns_the_seeds_questions_and_samples_from_a_checkpoint(tmp_path):
    """A small tanh net learns 1+1=? / 1+2=? in seconds; generate answers from its checkpoint;
    TensorBoard gets the seed's three pictures and the loss curve."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics, best = train(
        make_cfg(
            [
                "experiment=arithmetic_tutorial",
                *FAST,
                "data.alphabet=compact",
                "data.train_size=128",
                "data.batch_size=4",
                "model.activation=tanh",
                "model.hidden_size=32",
                "model.optimizer.lr=0.02",
                "trainer.accumulate_grad_batches=1",
                "trainer.max_epochs=6",
                "trainer.check_val_every_n_epoch=3",
            ],
            tmp_path,
        )
    )
    assert metrics["test/exact_acc"] == 1.0 and metrics["test/char_acc"] == 1.0
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    curve = [e.value for e in acc.Scalars("train/loss_step")]
    assert "examples/tao" in acc.Tags()["images"] and len(curve) >= 3 and curve[-1] < curve[0]

    # temperature sampling from the checkpoint, as a user types it: the bare answer, no \x00 printed
    proc = run_cli(
        "seqlab.generate",
        f"ckpt_path={best}",
        "prompt='1+2=?'",
        "temperature=0.5",
        "seed=3",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "3\n"
    module, _ = load_module(best)
    assert module.respond("1+1=?", temperature=0) == "2"
    with pytest.raises(SeqlabError, match=r"malformed question.*12\+7=\?"):
        module.respond("1+2=")


def test_temperature_sampling_is_repeatable_and_varies(tmp_path):
    torch.manual_seed(0)
    m = make_model(
        "arithmetic",
        {"alphabet": list(COMPACT), "max_answer_len": 3, "questions": {"ops": "+-", "digits": 2}},
        hidden_size=16,
    )
    hot = [m.respond("12+7=?", temperature=5.0, seed=s, max_len=6) for s in range(12)]
    assert hot[0] == m.respond("12+7=?", temperature=5.0, seed=0, max_len=6)
    assert len(set(hot)) > 3  # a hot, untrained net says all sorts of things
    assert len({m.respond("12+7=?", temperature=0, seed=s, max_len=6) for s in range(5)}) == 1  # greedy
    with pytest.raises(SeqlabError, match="12\\+7=\\?"):
        m.respond("12 plus 7")
