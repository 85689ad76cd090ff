"""The GRU written with its matrices: the cell against nn.GRUCell, the seed's batches, the hidden
state carried over an epoch, sampling that feeds back, training and generating from a checkpoint."""

import pytest
import torch
from conftest import make_cfg, make_data, make_model, one_line_error, run_cli

from seqlab.errors import SeqlabError
from seqlab.tasks.gru_toy.model import MatrixGRU, generate
from seqlab.train import build, train

FAST = ["trainer.accelerator=cpu", "trainer.enable_model_summary=false", "trainer.enable_progress_bar=false"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These nets are tiny: one thread is faster (conftest.one_thread)."""


VOCAB = ["h", "a", "t", "M"]


@pytest.mark.parametrize("vocab,hidden", [(4, 2), (7, 16)])
def test_explicit_cell_computes_what_nn_grucell_computes(vocab, hidden):
    torch.manual_seed(vocab)
    ref = torch.nn.GRUCell(vocab, hidden)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()  # all biases non-zero, so b_hn really sits inside the reset gate
    mine = MatrixGRU(vocab, hidden, "randn").from_grucell(ref)
    x, h = torch.randn(5, vocab), torch.randn(5, hidden)
    torch.testing.assert_close(mine.cell(x, h), ref(x, h), atol=1e-6, rtol=0)
    # over a sequence of one-hot characters too, against nn.GRU with the same weights
    gru = torch.nn.GRU(vocab, hidden, batch_first=True)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(gru, f"{name}_l0").data.copy_(getattr(ref, name))
    # (in float64: over several steps float32 rounding alone drifts past 1e-6)
    ids = torch.randint(0, vocab, (3, 6))
    h0 = torch.randn(3, hidden, dtype=torch.float64)
    _, hs = mine.double()(ids, h0)
    expected, _ = gru.double()(torch.nn.functional.one_hot(ids, vocab).double(), h0[None])
    torch.testing.assert_close(hs, expected, atol=1e-6, rtol=0)
    mine.float()
    # the seed's own candidate, tanh(x Wh + (r*h) Uh + bh), is another function
    r = torch.sigmoid(x @ mine.Wr + h @ mine.Ur + mine.br)
    z = torch.sigmoid(x @ mine.Wz + h @ mine.Uz + mine.bz)
    seed_h = z * h + (1 - z) * torch.tanh(x @ mine.Wh + (r * h) @ mine.Uh + mine.bh)
    assert not torch.allclose(seed_h, ref(x, h), atol=1e-3)


def test_parameters_are_the_seeds_matrices():
    m = MatrixGRU(4, 2, "randn")
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert shapes == {
        "Wz": (4, 2),
        "Wr": (4, 2),
        "Wh": (4, 2),
        "Uz": (2, 2),
        "Ur": (2, 2),
        "Uh": (2, 2),
        "bz": (2,),
        "br": (2,),
        "bh": (2,),
        "bhn": (2,),
        "Wy": (2, 4),
        "by": (4,),
    }
    assert all(
        float(p.detach().abs().sum()) == 0 for n, p in m.named_parameters() if n.startswith("b")
    )  # the seed's zero biases


def _text(batch, vocab=VOCAB):
    return ["".join(vocab[i] for i in row) for row in batch.tolist()]


def test_seed_batches():
    dm = make_data("gru_toy_tutorial")
    assert [(_text(x), _text(y)) for x, y in dm.made] == [
        (["Mat", "hMa"], ["ath", "Mat"]),
        (["thM", "ath"], ["hMa", "thM"]),
        (["Mat", "hMa"], ["ath", "Mat"]),
    ]
    streams = make_data("gru_toy_tutorial", layout="streams").made
    # streams: the 19 input characters cut into two 9-character streams, "MathMathM" and "athMathMa"
    assert [(_text(x), _text(y)) for x, y in streams] == [
        (["Mat", "ath"], ["ath", "thM"]),
        (["hMa", "Mat"], ["Mat", "ath"]),
        (["thM", "hMa"], ["hMa", "Mat"]),
    ]
    # row j of batch i+1 continues row j of batch i
    assert ["".join(_text(x)[j] for x, _ in streams) for j in range(2)] == ["MathMathM", "athMathMa"]


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"text": "Mathx"}, "data.text"),
        ({"vocab": ["h", "h"]}, "data.vocab"),
        ({"layout": "rows"}, "data.layout"),
        ({"batch_size": 9}, "data.text"),
        ({"seq_len": 0}, "data.seq_len"),
    ],
)
def test_bad_data_settings_name_the_key(kwargs, key):
    with pytest.raises(SeqlabError, match=key.replace(".", r"\.")):
        make_data("gru_toy_tutorial", **kwargs)


def test_hidden_state_is_carried_over_the_batches_of_an_epoch():
    torch.manual_seed(0)
    m = make_model("gru_toy_tutorial", {"vocab": VOCAB}, hidden_size=3)
    batches = make_data("gru_toy_tutorial", layout="streams").made
    m.on_train_epoch_start()
    for b in batches:
        assert m.training_loss(b).requires_grad
    h = m.carried_state("train", 2)
    assert not h.requires_grad  # detached: truncated backprop through time
    _, hs = m.model(torch.cat([x for x, _ in batches], 1))  # one pass over the whole streams
    torch.testing.assert_close(h, hs[:, -1])
    # with the tutorial's cut the state is carried too, though the rows do not continue each other
    cut = make_data("gru_toy_tutorial", layout="tutorial").made
    m.on_train_epoch_start()
    assert m.carried_state("train", 2) is None
    m.training_loss(cut[0])
    h0 = m.carried_state("train", 2)
    logits = m._logits(cut[1], "train")
    torch.testing.assert_close(logits, m.model(cut[1][0], h0)[0])
    assert not torch.allclose(logits, m.model(cut[1][0])[0])


def _cycle_model() -> MatrixGRU:
    """A hand-set GRU that predicts the next character of "Math" from the character it just read:
    update gate shut (z≈0, so h' = n), n = tanh(3·one_hot), Wy maps each character to its successor."""
    m = MatrixGRU(4, 4, "randn")
    nxt = {3: 1, 1: 2, 2: 0, 0: 3}  # M->a, a->t, t->h, h->M (ids of h a t M)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.bz.fill_(-20.0)
        m.Wh.copy_(3 * torch.eye(4))
        for i, j in nxt.items():
            m.Wy[i, j] = 5.0
    return m.eval()


def test_sampling_feeds_each_character_back():
    m = _cycle_model()
    prompt = torch.tensor([3, 1])  # "Ma"
    out = generate(m, prompt, 10, temperature=0)
    assert "".join(VOCAB[i] for i in out) == "thMathMath"  # only possible if each pick is read back in
    # the seed's sampler kept reading the prompt: it says "t" for ever
    h, seed_out = torch.zeros(1, 4), []
    for _ in range(10):
        lg, hs = m(prompt[None], h)
        h = hs[:, -1]
        seed_out.append(VOCAB[int(lg[0, -1].argmax())])
    assert "".join(seed_out) == "t" * 10
    # a random net: reading the prompt and then its own characters, it picks exactly those characters
    torch.manual_seed(3)
    r = MatrixGRU(4, 8, "randn").eval()
    out = generate(r, prompt, 12, temperature=0)
    logits, _ = r(torch.cat([prompt, torch.tensor(out[:-1])])[None])
    assert logits[0, 1:].argmax(-1).tolist() == out
    # sampled: repeatable with a generator, and the temperature matters
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert generate(m, prompt, 20, 1.5, g1) == generate(m, prompt, 20, 1.5, g2)
    hot = generate(m, prompt, 200, 50.0, torch.Generator().manual_seed(0))
    assert len(set(hot)) == 4  # near-uniform at a high temperature, where greedy never leaves the cycle


def test_tutorial_setting_uses_plain_sgd(tmp_path):
    _, model, _ = build(make_cfg(["experiment=gru_toy_tutorial", *FAST], tmp_path))
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["lr"] == 0.01 and opt.defaults["momentum"] == 0
    assert not opt.defaults["nesterov"] and opt.defaults["weight_decay"] == 0
    assert model.model.hidden_size == 2


@pytest.mark.parametrize("experiment", ["gru_toy", "gru_toy_tutorial"])
def test_fast_dev_run(experiment, tmp_path):
    metrics, _ = train(make_cfg([f"experiment={experiment}", "debug=fast_dev_run", *FAST], tmp_path))
    assert 0 < metrics["test/loss"] < 5 and metrics["test/continuation_ok"] in (0.0, 1.0)
    assert 0 <= metrics["val/char_acc"] <= 1


def test_learns_math_and_generates_from_a_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics, best = train(make_cfg(["experiment=gru_toy", *FAST, "trainer.max_epochs=20"], tmp_path))
    assert metrics["test/continuation_ok"] == 1.0 and metrics["test/char_acc"] == 1.0
    # TensorBoard: the hidden-state trajectory and output probabilities as an image, and the loss curve
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    assert "examples/gru_toy" in acc.Tags()["images"] and len(acc.Scalars("train/loss_step")) > 3
    proc = run_cli(
        "seqlab.generate", f"ckpt_path={best}", "prompt=Ma", "length=10", "temperature=0", env={"OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "MathMathMath\n"  # the prompt and its 10-character continuation, as the seed prints
    msg = one_line_error(run_cli("seqlab.generate", f"ckpt_path={best}", "prompt=Mx", env={"OMP_NUM_THREADS": "1"}))
    assert "prompt" in msg and "h a t M" in msg
