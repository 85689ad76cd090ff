"""The char-LM task: stream batching, stateful hidden state, training, checkpoints, generation."""

import re

import conftest
import pytest
import torch
from conftest import TINY_CHARLM, make_cfg, make_data, make_model, one_line_error, run_cli

from seqlab.tasks.charlm.data import CharStreams, batchify, bptt_windows, split_text
from seqlab.tasks.charlm.model import CharRNN
from seqlab.train import train


def test_windows_cover_each_stream_exactly_once():
    for random_bptt in (False, True):
        w = bptt_windows(1000, 16, random_bptt, seed=3)
        starts = [s for s, _ in w]
        assert starts[0] == 0
        assert all(s + n == t for (s, n), t in zip(w, starts[1:], strict=False))
        assert w[-1][0] + w[-1][1] == 999  # the last target is the last token
    assert {n for _, n in bptt_windows(1000, 16, False, 0)[:-1]} == {16}
    assert len({n for _, n in bptt_windows(10_000, 16, True, 0)}) > 3  # lengths really vary
    assert bptt_windows(10_000, 16, True, 1) != bptt_windows(10_000, 16, True, 2)  # a new draw per epoch
    # ... but always as many batches as fixed-length reading gives (Lightning counts them once)
    assert len(bptt_windows(10_000, 16, True, 1)) == len(bptt_windows(10_000, 16, False, 0)) == 625


def test_row_j_of_batch_i_plus_1_continues_row_j_of_batch_i():
    ids = torch.arange(1003)
    streams = batchify(ids, 4)
    assert streams.shape == (4, 250)
    batches = list(CharStreams(streams, bptt=7, random_bptt=True, seed=0))
    x = torch.cat([b[0] for b in batches], dim=1)
    y = torch.cat([b[1] for b in batches], dim=1)
    assert torch.equal(x, streams[:, :-1])  # reading the batches in order reads each stream in order
    assert torch.equal(y, streams[:, 1:])  # targets are the inputs shifted by one
    assert torch.equal(x[1, :3], torch.tensor([250, 251, 252]))  # stream 1 starts a quarter in


def test_datamodule_split_vocab_and_batches(small_text):
    dm = make_data("charlm_tutorial", path=str(small_text), batch_size=4, bptt=10, min_freq=3)
    dm.setup("fit")
    text = small_text.read_text(encoding="utf-8").lower()
    lines = text.split("\n")
    n_train = -(-len(lines) * 8 // 10)  # ceil(0.8 * lines)
    train_chars = len("\n".join(lines[:n_train]) + "\n")
    assert dm.train_streams.numel() == train_chars // 4 * 4
    assert dm.vocab.itos[0] == "<unk>" and " " in dm.vocab and "A" not in dm.vocab
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (4, 10)
    assert dm.vocab.decode(x[0]) == text[:10]


def _module(**kw):
    return make_model("charlm", {"vocab": ["<unk>", *"abcdefgh"]}, emb_dim=4, hidden_size=8, dropout=0.0, **kw)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm", "rnncell", "grucell"])
def test_hidden_state_is_carried_detached_and_reset(cell):
    torch.manual_seed(0)
    m = _module(cell=cell)
    x = torch.randint(0, 9, (3, 12))
    batches = [(x[:, :6], x[:, 1:7]), (x[:, 6:11], x[:, 7:12])]
    m.on_train_epoch_start()
    for b in batches:
        assert m.training_loss(b).requires_grad
    h = m.carried_state("train", 3)
    flat = h if isinstance(h, torch.Tensor) else h[0]
    assert not flat.requires_grad  # detached: the next batch does not backprop into this one
    # carried: two stateful batches end where one pass over the whole sequence ends
    _, h_full = m.model(x[:, :11])
    torch.testing.assert_close(h, h_full)
    m.on_train_epoch_start()
    assert m.carried_state("train", 3) is None  # reset at each epoch start
    m.evaluate(batches[0], 0, "val")
    assert m.carried_state("val", 3) is not None and m.carried_state("train", 3) is None  # its own state
    m.evaluate((x[:2, :6], x[:2, 1:7]), 1, "val")  # fewer streams: a fresh state of the right size
    h = m.carried_state("val", 2)
    assert (h if isinstance(h, torch.Tensor) else h[0]).size(1) == 2


def test_unrolled_cells_match_fused_layers():
    torch.manual_seed(0)
    for fused, unrolled in (("rnn", "rnncell"), ("gru", "grucell")):
        a, b = CharRNN(9, fused, 4, 8, 1, 0.0), CharRNN(9, unrolled, 4, 8, 1, 0.0)
        b.embedding.load_state_dict(a.embedding.state_dict())
        b.out.load_state_dict(a.out.state_dict())
        cell = b.rnn.cells[0]
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(a.rnn, f"{name}_l0"))
        x = torch.randint(0, 9, (2, 7))
        torch.testing.assert_close(a(x)[0], b(x)[0])


@pytest.mark.parametrize("experiment", ["charlm", "charlm_tutorial"])
def test_fast_dev_run(experiment, small_text, tmp_path):
    cfg = make_cfg([f"experiment={experiment}", f"data.path={small_text}", "debug=fast_dev_run"], tmp_path)
    metrics, _ = train(cfg)
    assert 0 < metrics["val/loss"] < 10 and 0 < metrics["test/loss"] < 10
    assert metrics["val/bpc"] == pytest.approx(metrics["val/loss"] / 0.6931471805599453, rel=1e-5)
    assert metrics["val/ppl"] == pytest.approx(2.718281828459045 ** metrics["val/loss"], rel=1e-4)


def test_train_resume_generate_eval(small_text, tmp_path):
    run1 = tmp_path / "run1"
    common = [f"data.path={small_text}", *TINY_CHARLM, "trainer.limit_train_batches=5", "trainer.limit_val_batches=3"]
    metrics, best = train(make_cfg([*common, "trainer.max_epochs=1"], run1))
    last = run1 / "checkpoints" / "last.ckpt"
    assert last.is_file() and best and "best-epoch00" in best
    assert torch.load(last, weights_only=True)["epoch"] == 0

    # Resuming from last.ckpt continues the epoch count (and the step count).
    run2 = tmp_path / "run2"
    train(make_cfg([*common, "trainer.max_epochs=3", f"ckpt_path={last}"], run2))
    ckpt = torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 15

    # Generate: text of the asked length, repeatable with a seed, greedy with temperature 0.
    def gen(*args):
        proc = run_cli("seqlab.generate", f"ckpt_path={last}", "prompt=The meaning", *args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout[:-1]  # print() adds one newline

    a, b = gen("length=40", "seed=7", "temperature=1.0"), gen("length=40", "seed=7", "temperature=1.0")
    assert len(a) == 40 and a == b
    assert len(gen("length=25", "temperature=0")) == 25

    # Evaluate reproduces the run's test metric (tested on the best checkpoint, full test set).
    proc = run_cli("seqlab.eval", f"ckpt_path={best}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = float(re.search(r"test/loss: ([0-9.]+)", proc.stdout).group(1))
    assert got == pytest.approx(metrics["test/loss"], abs=1e-4)


def test_generate_rejects_bad_options(small_text, tmp_path):
    train(
        make_cfg(
            [
                f"data.path={small_text}",
                *TINY_CHARLM,
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=2",
                "trainer.limit_val_batches=1",
            ],
            tmp_path,
        )
    )
    ckpt = tmp_path / "checkpoints" / "last.ckpt"

    def run_cli(*args, **kw):  # these stop before any work: run in this process
        return conftest.run_cli(*args, **kw, in_process=True)

    assert "temperature" in one_line_error(
        run_cli("seqlab.generate", f"ckpt_path={ckpt}", "prompt=the", "temperature=-1")
    )
    assert "length" in one_line_error(run_cli("seqlab.generate", f"ckpt_path={ckpt}", "prompt=the", "length=-5"))
    assert "temperature must be a number >= 0, got true" in one_line_error(
        run_cli("seqlab.generate", f"ckpt_path={ckpt}", "prompt=the", "temperature=true")
    )
    assert "prompt" in one_line_error(run_cli("seqlab.generate", f"ckpt_path={ckpt}", "prompt="))
    # a truncated copy of a real checkpoint (a copy interrupted mid-way)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    assert "corrupt or truncated" in one_line_error(run_cli("seqlab.generate", f"ckpt_path={cut}", "prompt=the"))
    # seqlab-chat follows the checkpoint's task: a char-LM continues each line
    proc = run_cli("seqlab.chat", f"ckpt_path={ckpt}", "length=5", stdin="the\nwill\n")
    assert proc.returncode == 0 and [len(line) for line in proc.stdout.splitlines()] == [5, 5]
    # characters outside the vocabulary are not an error: they read as <unk>
    proc = run_cli("seqlab.generate", f"ckpt_path={ckpt}", "prompt='Ω✓ the'", "length=5")
    assert proc.returncode == 0 and len(proc.stdout[:-1]) == 5


def test_split_by_lines_or_by_characters_for_a_single_line():
    text = "\n".join(f"line {i}" for i in range(10))
    train_part, val_part = split_text(text, 0.8)
    assert train_part.count("\n") == 8 and val_part == "line 8\nline 9"  # ceil(0.8 * 10) lines train
    one_line = "x" * 1000  # a corpus without line breaks: nothing to split by lines
    train_part, val_part = split_text(one_line, 0.8)
    assert len(train_part) == 800 and len(val_part) == 200
    train_part, val_part = split_text(one_line + "\n", 0.8)  # a final newline does not make a second line
    assert len(train_part) == 801 and len(val_part) == 200


def test_regularisers_tied_weights_weight_drop_and_embedding_dropout():
    torch.manual_seed(0)
    x = torch.randint(0, 9, (2, 7))
    tied = CharRNN(9, "lstm", 4, 8, 1, 0.0, tie_weights=True)
    assert tied.out.weight is tied.embedding.weight and tied.proj.weight.shape == (4, 8)
    assert sum(p.numel() for p in tied.parameters()) < sum(
        p.numel() for p in CharRNN(9, "lstm", 4, 8, 1, 0.0).parameters()
    )
    assert tied(x)[0].shape == (2, 7, 9)

    # Weight drop: each training call sees its own dropped recurrent weights (the gradient reaches
    # them); evaluation uses the weights as they are, like the same network without it.
    wd = CharRNN(9, "lstm", 4, 8, 2, 0.0, weight_dropout=0.5)
    plain = CharRNN(9, "lstm", 4, 8, 2, 0.0)
    plain.load_state_dict({k.replace("rnn.rnn.", "rnn."): v for k, v in wd.state_dict().items()})
    assert not torch.equal(wd(x)[0], wd(x)[0])
    wd(x)[0].sum().backward()
    assert wd.rnn.rnn.weight_hh_l1.grad.abs().sum() > 0
    wd.eval(), plain.eval()
    torch.testing.assert_close(wd(x)[0], plain(x)[0])

    emb = CharRNN(9, "gru", 4, 8, 1, 0.0, emb_dropout=0.5)
    assert not torch.equal(emb(x)[0], emb(x)[0]) and emb.drop.p == 0.0
    emb.eval()
    assert torch.equal(emb(x)[0], emb(x)[0])
    with pytest.raises(
        Exception, match="model.weight_dropout is for the fused cells.*use model.cell=gru or model.weight_dropout=0"
    ):
        _module(cell="grucell", weight_dropout=0.2)


def test_locked_dropout_keeps_one_mask_per_window_and_the_stacked_layers_compute_the_same_network():
    from seqlab.recurrent import LockedDropout

    torch.manual_seed(0)
    drop = LockedDropout(0.5).train()
    masked = drop(torch.ones(3, 20, 6))
    assert torch.equal(masked, masked[:, :1].expand(-1, 20, -1))  # the same units dropped at every step
    assert masked.eq(0).any() and masked.eq(2).any()  # (kept units scaled by 1/(1-p))
    assert torch.equal(drop.eval()(masked), masked)

    # Two layers run one over another (the lock needs the gap between them) are the multi-layer
    # LSTM's function: its weights, renamed, give the same outputs and state, carried or not.
    x = torch.randint(0, 9, (2, 7))
    locked = CharRNN(9, "lstm", 4, 8, 2, 0.3, locked_dropout=True)
    plain = CharRNN(9, "lstm", 4, 8, 2, 0.3)
    plain.load_state_dict(
        {re.sub(r"rnn\.layers\.(\d)\.(\w+)_l0", r"rnn.\2_l\1", k): v for k, v in locked.state_dict().items()}
    )
    locked.eval(), plain.eval()
    (a, ha), (b, hb) = locked(x), plain(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(locked(x, ha)[0], plain(x, hb)[0])
    assert ha[0].shape == (2, 2, 8)
    locked.train()
    assert not torch.equal(locked(x)[0], locked(x)[0])
    locked(x)[0].sum().backward()
    assert locked.rnn.layers[1].weight_hh_l0.grad.abs().sum() > 0
    with pytest.raises(Exception, match="model.locked_dropout is for the fused cells.*model.locked_dropout=false"):
        _module(cell="rnncell", locked_dropout=True)


def test_weight_average_is_what_validation_checkpoints_and_resume_use(small_text, tmp_path, capsys):
    common = [f"data.path={small_text}", *TINY_CHARLM, "trainer.limit_train_batches=6", "trainer.limit_val_batches=2"]
    common += ["callbacks=ema", "callbacks.ema.decay=0.5", "trainer.limit_test_batches=2"]
    metrics, best = train(make_cfg([*common, "trainer.max_epochs=1"], tmp_path / "a"))
    ckpt = torch.load(best, weights_only=False)
    average, current = ckpt["state_dict"], ckpt["current_model_state"]
    assert average.keys() == current.keys() and any(not torch.equal(average[k], current[k]) for k in average)
    # The run's own test reads the average too, as seqlab-eval of that checkpoint does (not the
    # trained weights the checkpoint keeps beside it).
    import lightning as L

    from seqlab.checkpoint import load_datamodule, load_module

    module, state = load_module(best)
    plain = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, limit_test_batches=2)
    averaged = plain.test(module, datamodule=load_datamodule(state, best, {}), verbose=False)[0]["test/loss"]
    assert metrics["test/loss"] == pytest.approx(averaged, abs=1e-6)
    module.load_state_dict(current)
    trained = plain.test(module, datamodule=load_datamodule(state, best, {}), verbose=False)[0]["test/loss"]
    assert abs(trained - averaged) > 1e-4  # (the two differ: the check above can tell them apart)
    # Resumed, the run goes on from the weights it trained (not the average) and keeps averaging.
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    train(make_cfg([*common, "trainer.max_epochs=2", f"ckpt_path={last}"], tmp_path / "b"))
    again = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=False)
    assert again["epoch"] == 1 and again["callbacks"]["EMAWeightAveraging"]["latest_update_step"] == 12
    # A new run from it without callbacks=ema starts from the average, and is told so.
    capsys.readouterr()
    plain_run = [c for c in common if not c.startswith("callbacks")]
    train(make_cfg([*plain_run, "trainer.max_epochs=2", f"ckpt_path={last}"], tmp_path / "c"))
    assert "was trained with a weight average (callbacks=ema): without one this run" in capsys.readouterr().err


def test_a_checkpoint_knows_its_text(tmp_path, capsys):
    """Resuming on an edited text file says so (its validation split has moved)."""
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 50)
    state = make_data("charlm", path=str(text)).state_dict()
    make_data("charlm", path=str(text)).load_state_dict(state)
    assert "warning" not in capsys.readouterr().err
    text.write_text("the quick brown fox jumps over the lazy cat\n" * 50)
    make_data("charlm", path=str(text)).load_state_dict(state)
    assert "warning: the text is not the one this checkpoint trained on" in capsys.readouterr().err
