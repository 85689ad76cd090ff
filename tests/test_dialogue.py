"""The dialogue task: tokens and vocabularies, masks, greedy and beam search, training, chat."""

import importlib.util
import itertools
import json
import math

import pytest
import torch
from conftest import make_cfg, make_data, make_model, one_line_error, run_cli

from seqlab.decoding import beam_search, greedy_search
from seqlab.errors import SeqlabError
from seqlab.run.schema import check_options
from seqlab.tasks.dialogue.data import EOS, PAD, SOS, collate, detokenize, tokenize
from seqlab.tasks.dialogue.model import DialogueTransformer, causal_mask, make_masks
from seqlab.tasks.dialogue.module import exact_match
from seqlab.train import train

HAVE_CHATTERBOT = importlib.util.find_spec("chatterbot_corpus") is not None
TINY = [
    "model.emb_dim=16",
    "model.n_heads=2",
    "model.n_layers=1",
    "model.ff_dim=32",
    "trainer.accelerator=cpu",
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # tiny models: one thread is faster on a busy 2-core machine


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These nets are tiny: one thread is faster (conftest.one_thread)."""


# ---- data ---------------------------------------------------------------------------------------


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("Hi!!, can I tell you a joke?") == ["hi", "!", ",", "can", "i", "tell", "you", "a", "joke", "?"]
    assert tokenize(' Meowci "beaucoup"!') == ["meowci", "beaucoup", "!"]
    assert tokenize("don't (stop)") == ["don't", "stop"]
    assert tokenize("  ***  ") == []
    assert detokenize(["hi", "!", ",", "can", "i", "?"]) == "hi!, can i?"


def test_bundled_pairs_vocabularies_and_batches():
    dm = make_data("dialogue_tutorial", batch_size=4)
    dm.setup("fit")
    train, val, test = dm.splits
    assert len(train) == 32 and val is train and test is train  # memorisation: evaluated on the training pairs
    assert len({tuple(a) for a, _ in train}) == 31
    for vocab in (dm.src_vocab, dm.tgt_vocab):
        assert vocab.itos[:4] == ["<unk>", "<pad>", "<sos>", "<eos>"]
    assert "chloe" in dm.src_vocab and "meowci" in dm.tgt_vocab and "meowci" not in dm.src_vocab
    batch = next(iter(dm.val_dataloader()))
    assert batch["src"].shape[0] == 32
    tgt = batch["tgt"]
    assert (tgt[:, 0] == SOS).all() and ((tgt == EOS).sum(1) == 1).all()
    # padded to this batch's longest reply, not to a global length
    assert tgt.size(1) == max(len(b) for _, b in train) + 2 and (tgt[:, -1] != PAD).any()
    # "what is my name?" has two replies in the data: both are references of both records
    i = [n for n, (a, _) in enumerate(train) if a == tokenize("what is my name?")]
    assert len(i) == 2 and batch["ref_text"][i[0]] == ["its fluffy silly", "its snuggles silly"]
    assert (batch["refs"][i[0], :2] != -2).any(-1).all()


def test_exact_match_counts_any_reference():
    refs = collate(
        [
            {
                "src": torch.tensor([4]),
                "tgt": torch.tensor([SOS, 5, EOS]),
                "ref_text": ["a", "b"],
                "refs": [torch.tensor([5, EOS]), torch.tensor([6, 7, EOS])],
            },
            {
                "src": torch.tensor([4]),
                "tgt": torch.tensor([SOS, 5, EOS]),
                "ref_text": ["a"],
                "refs": [torch.tensor([5, EOS])],
            },
        ]
    )["refs"]
    decoded = torch.tensor([[6, 7, EOS, PAD], [5, EOS, PAD, PAD]])
    assert exact_match(decoded, refs).tolist() == [True, True]
    assert exact_match(torch.tensor([[6, EOS], [6, EOS]]), refs).tolist() == [False, False]
    assert exact_match(torch.tensor([[5, 5], [5, 5]]), refs).tolist() == [False, False]  # no <eos>: not a reply


@pytest.mark.parametrize(
    "content, expected",
    [
        ("this is not json {", "line 1 is not valid JSON"),
        ('{"listen": "hi"}\n{"listen": "yo", "reply": "hey"}', "record 1 has no 'reply' field"),
        ('[{"listen": "hi", "reply": "hey"}, ["hi", "hey"]]', "record 2 is a list"),
        ('{"listen": "hi", "reply": ""}', "record 1 has an empty or non-text 'reply'"),
        ("[]", "holds no listen/reply pairs"),
        ("  \n", "empty"),
    ],
)
def test_malformed_pairs_file(tmp_path, content, expected):
    path = tmp_path / "pairs.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SeqlabError) as e:
        make_data("dialogue_tutorial", path=str(path)).setup()
    assert expected in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_malformed_pairs_file_from_the_command_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"listen": "hi", "answer": "hey"}]', encoding="utf-8")
    msg = one_line_error(
        run_cli(
            "seqlab.train",
            "experiment=dialogue",
            f"data.path={path}",
            "debug=fast_dev_run",
            f"paths.root_dir={tmp_path}",
            env=ONE_THREAD,
        )
    )
    assert str(path) in msg and "'reply'" in msg


def test_user_pairs_as_a_json_list_with_held_out_prompts(tmp_path):
    pairs = [{"listen": f"question {i}", "reply": f"answer {i % 3}"} for i in range(20)]
    pairs += [{"listen": "question 0", "reply": "another answer"}]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(pairs), encoding="utf-8")
    dm = make_data("dialogue_tutorial", path=str(path), val_frac=0.2, test_frac=0.2, seed=1)
    dm.setup()
    prompts = [{tuple(a) for a, _ in part} for part in dm.splits]
    assert not (prompts[0] & prompts[1]) and not (prompts[0] & prompts[2])  # held-out prompts never trained on
    assert sum(len(p) for p in dm.splits) == 21 and 5 <= len(dm.splits[1]) <= 6 and 5 <= len(dm.splits[2]) <= 6
    held_out = next(iter(prompts[1]))
    replies = [b for a, b in dm.splits[1] if tuple(a) == held_out]
    assert len(replies) == (2 if held_out == ("question", "0") else 1)  # with all its replies


def test_a_very_long_pair_is_named_with_the_setting_that_drops_it(tmp_path, capsys):
    """Batches pad to their longest pair, so one 300-token reply makes training slow and large."""
    pairs = [{"listen": f"question {i}", "reply": "short"} for i in range(20)]
    pairs += [{"listen": "tell me all", "reply": " ".join(["word"] * 300)}]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(pairs), encoding="utf-8")
    make_data("dialogue_tutorial", path=str(path)).setup()
    assert "warning: the longest pair has 300 tokens" in capsys.readouterr().err
    dm = make_data("dialogue_tutorial", path=str(path), max_tokens=100)
    dm.setup()
    assert capsys.readouterr().err == "" and len(dm.splits[0]) == 20


# ---- model --------------------------------------------------------------------------------------


def test_masks_shapes_and_contents():
    src = torch.tensor([[5, 6, 7], [8, PAD, PAD]])
    tgt = torch.tensor([[SOS, 4, 5, 6], [SOS, 9, PAD, PAD]])
    src_mask, tgt_mask = make_masks(src, tgt, PAD)
    assert src_mask.shape == (2, 1, 3) and tgt_mask.shape == (2, 4, 4)
    assert src_mask[:, 0].tolist() == [[True, True, True], [True, False, False]]
    assert tgt_mask[0].tolist() == torch.ones(4, 4, dtype=torch.bool).tril().tolist()  # the causal triangle
    assert tgt_mask[1].tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, False, False],
        [True, True, False, False],
    ]  # pads never seen
    # The model's form (blocked = causal or a padded key) is exactly the complement.
    blocked = causal_mask(4)[None] | (tgt == PAD)[:, None, :]
    assert torch.equal(~tgt_mask, blocked)


def test_padding_and_future_tokens_do_not_change_the_output():
    torch.manual_seed(0)
    model = DialogueTransformer(12, 10, emb_dim=16, n_layers=2, n_heads=4, dropout=0.0, ff_dim=32, pad=PAD).eval()
    src = torch.tensor([[5, 6, 7, 8], [9, 4, PAD, PAD]])
    tgt = torch.tensor([[SOS, 4, 5, 6], [SOS, 7, 8, PAD]])
    with torch.no_grad():
        both = model(src, tgt)
        alone = model(src[1:, :2], tgt[1:, :3])
        torch.testing.assert_close(both[1, :3], alone[0], atol=1e-5, rtol=1e-5)  # source and target padding ignored
        changed = tgt.clone()
        changed[0, 3] = 9
        torch.testing.assert_close(model(src, changed)[0, :3], both[0, :3])  # no peeking at later tokens
        weights = model.cross_attention(src, tgt)
    assert weights.shape == (2, 4, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4))
    assert (weights[1, :, 2:] == 0).all()  # no attention on the source's padding


# ---- decoding -----------------------------------------------------------------------------------

# A hand-built decoder over the tokens sos=0, eos=1, a=2, b=3 (and 4, a padding id it never
# predicts): the next-token probabilities depend on the prefix. Greedy takes "a" (0.6), "a" (0.65),
# "<eos>" (0.5): 0.195; the best reply is "b <eos>" (0.4 * 0.9 = 0.36), while "a a" (0.39) is
# still ahead of it when it ends.
EOS_T, PAD_T, V = 1, 4, 5
TOY = {(): {2: 0.6, 3: 0.4}, (2,): {1: 0.3, 2: 0.65, 3: 0.05}, (3,): {1: 0.9, 2: 0.05, 3: 0.05}}


def toy_step(table, default=None):
    default = default or {1: 0.5, 2: 0.25, 3: 0.25}
    calls = []

    def step(tokens, state):
        calls.append(tokens.clone())
        rows = []
        for row in tokens.tolist():
            probs = table.get(tuple(row[1:]), default)
            rows.append([math.log(probs[v]) if probs.get(v, 0.0) > 0 else float("-inf") for v in range(V)])
        return torch.tensor(rows), state

    step.calls = calls
    return step


def best_by_enumeration(table, max_len):
    """The most probable complete reply (ending with eos, or max_len tokens long), by brute force."""
    step = toy_step(table)
    best = (float("-inf"), ())
    for n in range(1, max_len + 1):
        for seq in itertools.product((EOS_T, 2, 3), repeat=n):
            if EOS_T in seq[:-1] or (seq[-1] != EOS_T and n < max_len):
                continue
            logp = sum(step(torch.tensor([[0, *seq[:t]]]), None)[0][0, seq[t]].item() for t in range(n))
            best = max(best, (logp, seq))
    return best


def test_beam_search_finds_the_highest_scoring_reply_that_greedy_misses():
    greedy = greedy_search(toy_step(TOY), None, batch_size=1, sos=0, eos=EOS_T, max_len=3, pad=PAD_T)
    assert greedy.tokens[0].tolist() == [2, 2, EOS_T]  # greedy commits to "a"
    assert greedy.scores.item() == pytest.approx(math.log(0.6 * 0.65 * 0.5))
    beam = beam_search(toy_step(TOY), None, batch_size=1, sos=0, eos=EOS_T, max_len=3, beam_width=2, pad=PAD_T)
    score, seq = best_by_enumeration(TOY, 3)
    assert seq == (3, EOS_T)
    assert beam.tokens[0].tolist()[:2] == [3, EOS_T] and beam.finished.item()
    assert beam.scores.item() == pytest.approx(score) == pytest.approx(math.log(0.36))
    assert beam.scores.item() > greedy.scores.item()


def test_beams_that_ended_are_not_extended():
    step = toy_step(TOY)
    out = beam_search(step, None, batch_size=1, sos=0, eos=EOS_T, max_len=5, beam_width=3, pad=PAD_T)
    # the search went on after "b <eos>" ended at step 2 ("a a" was still open and better)...
    assert len(step.calls) == 3
    # ...but the finished reply kept its tokens and its score: nothing was appended after <eos>.
    assert out.tokens[0].tolist() == [3, EOS_T, PAD_T]
    assert out.scores.item() == pytest.approx(math.log(0.36))
    # and it was never fed back to the model as a prefix to extend with real tokens
    for tokens in step.calls:
        for row in tokens.tolist():
            if EOS_T in row[1:]:
                assert all(t == PAD_T for t in row[row.index(EOS_T, 1) + 1 :])


def test_no_beam_reaches_eos():
    step = toy_step({(): {2: 0.6, 3: 0.4}}, default={2: 0.7, 3: 0.3})  # eos has probability 0 everywhere
    out = beam_search(step, None, batch_size=2, sos=0, eos=EOS_T, max_len=4, beam_width=3, pad=PAD_T)
    assert out.tokens.shape == (2, 4) and not out.finished.any()
    assert out.tokens[0].tolist() == [2, 2, 2, 2]  # the best of the unfinished, not a crash
    assert out.scores[0].item() == pytest.approx(math.log(0.6 * 0.7**3))


def test_length_penalty_prefers_the_longer_reply_when_asked():
    table = {(): {1: 0.4, 2: 0.6}, (2,): {1: 0.6, 2: 0.4}}  # "<eos>": 0.4; "a <eos>": 0.36
    plain = beam_search(toy_step(table), None, 1, 0, EOS_T, max_len=3, beam_width=2, pad=PAD_T)
    normalised = beam_search(toy_step(table), None, 1, 0, EOS_T, max_len=3, beam_width=2, length_penalty=1.0, pad=PAD_T)
    assert plain.tokens[0, 0].item() == EOS_T
    assert normalised.tokens[0, :2].tolist() == [2, EOS_T]


def test_beam_width_one_is_greedy_on_the_transformer():
    torch.manual_seed(0)
    dm = make_data("dialogue_tutorial")
    module = make_model("dialogue_tutorial", dm.model_kwargs(), emb_dim=16, n_heads=2, n_layers=1, ff_dim=32)
    dm.setup()
    module.eval()
    src = next(iter(dm.val_dataloader()))["src"]
    greedy = module.decode(src, beam_width=1, max_len=8)
    state = module.model.encode(src)
    beam1 = beam_search(module._step, state, src.size(0), SOS, EOS, max_len=8, beam_width=1, pad=PAD)
    assert torch.equal(greedy.tokens, beam1.tokens)
    torch.testing.assert_close(greedy.scores, beam1.scores)
    assert not torch.equal(module.decode(src, beam_width=4, max_len=8).tokens, greedy.tokens)  # (the wide beam differs)


# ---- training, checkpoints, chat ---------------------------------------------------------------


@pytest.mark.parametrize("experiment", ["dialogue", "dialogue_tutorial"])
def test_fast_dev_run(experiment, tmp_path):
    metrics, _ = train(make_cfg([f"experiment={experiment}", "debug=fast_dev_run"], tmp_path))
    for stage in ("val", "test"):
        assert 0 < metrics[f"{stage}/loss"] < 20
        assert 0 <= metrics[f"{stage}/exact_acc"] <= 1 and 0 <= metrics[f"{stage}/token_acc"] <= 1
        assert 0 <= metrics[f"{stage}/bleu"] <= 1
    assert "train/loss" in metrics


def test_train_then_chat_through_a_pipe(tmp_path):
    metrics, best = train(make_cfg(["experiment=dialogue", *TINY, "trainer.max_epochs=3"], tmp_path))
    assert best and metrics["val/exact_acc"] >= 0
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard log"
    ckpt = tmp_path / "checkpoints" / "last.ckpt"

    # The bar: 20 piped lines, unknown words, an empty line and one with no words among them,
    # one reply each, no error.
    lines = [
        "hi",
        "hello hi",
        "how are you",
        "",
        "tell me a joke chloe",
        "How ?",
        "haha lol",
        "WHO ARE YOU?",
        "zxqv blorft ungrok",
        "what is my name?",
        "my name is fluffy",
        " * - * ",
        "are you alive?",
        "i dunno",
        "ok sure",
        "supercalifragilistic?",
        "bye bye",
        "you are a robot, right?",
        "!!!",
        "see you later chloe",
    ]
    assert len(lines) == 20
    proc = run_cli("seqlab.chat", f"ckpt_path={ckpt}", stdin="\n".join(lines) + "\n", env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-2000:]
    replies = proc.stdout.splitlines()
    assert len(replies) == 20 and all(r.strip() for r in replies)
    assert replies[3] == replies[11] == "Sorry, I didn't catch that. Say something?"
    assert "Traceback" not in proc.stderr

    proc = run_cli("seqlab.generate", f"ckpt_path={ckpt}", "prompt=hi chloe", "beam_width=1", env=ONE_THREAD)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1 and proc.stdout.strip()

    # eval reproduces the run's test metric (the checkpoint's vocabularies encode the data)
    proc = run_cli("seqlab.eval", f"ckpt_path={best}", env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"test/exact_acc: {metrics['test/exact_acc']:.4f}" in proc.stdout


def test_respond_and_log_examples():
    torch.manual_seed(0)
    dm = make_data("dialogue_tutorial")
    module = make_model(
        "dialogue_tutorial", dm.model_kwargs(), emb_dim=16, n_heads=2, n_layers=1, ff_dim=32, n_examples=3
    )
    dm.setup()
    with pytest.raises(SeqlabError, match="has no words"):
        module.respond("   ")
    # the options as seqlab-generate and seqlab-chat check them: respond's annotations
    with pytest.raises(SeqlabError, match="beam_width must be an integer from 1 to 100 or null, got 0"):
        check_options("chat", {"beam_width": 0}, ["ckpt_path"], module.respond, module.task)
    with pytest.raises(SeqlabError, match="unknown option 'length': seqlab-chat takes ckpt_path, beam_width, max_len"):
        check_options("chat", {"length": 3}, ["ckpt_path"], module.respond, module.task)
    module.eval()
    assert isinstance(module.respond("a sentence of words never seen"), str)  # unknown words: <unk>, no error
    module.eval()
    module.validation_step(next(iter(dm.val_dataloader())), 0)

    class Writer:
        def __init__(self):
            self.text, self.figures = {}, {}

        def add_text(self, tag, text, step):
            self.text[tag] = text

        def add_figure(self, tag, fig, step, close=True):
            self.figures[tag] = fig

    w = Writer()
    module.log_examples(w)
    table = w.text["examples/replies"].splitlines()
    assert len(table) == 2 + 3 and "hello hi" in table[2]
    assert w.figures["examples/attention"].axes[0].get_xlabel() == "prompt"


def test_optuna_search_space_never_splits_emb_dim_unevenly():
    from conftest import compose_with_hydra

    cfg = compose_with_hydra(["experiment=dialogue", "hparams_search=dialogue_optuna"])
    # it maximises the best val/exact_acc, in 20 epochs a trial (on 32 pairs most settings reach 100 % given time)
    assert cfg.model.monitor == "val/exact_acc" and cfg.trainer.max_epochs == 20
    params = cfg.hydra.sweeper.params
    emb, heads = (params[f"model.{k}"] for k in ("emb_dim", "n_heads"))
    choices = [[int(x) for x in c[len("choice(") : -1].split(",")] for c in (emb, heads)]
    assert all(e % h == 0 for e in choices[0] for h in choices[1])  # no trial fails on emb_dim % heads


# ---- the ChatterBot corpus (optional package) ---------------------------------------------------


@pytest.mark.skipif(not HAVE_CHATTERBOT, reason="pip install chatterbot-corpus")
def test_chatterbot_corpus_pairs_and_held_out_split():
    from seqlab.tasks.dialogue.data import read_chatterbot

    assert len(read_chatterbot()) == 2306
    dm = make_data("dialogue_chatterbot")
    dm.setup()
    train_prompts = {tuple(a) for a, _ in dm.splits[0]}
    assert all(tuple(a) not in train_prompts for part in dm.splits[1:] for a, _ in part)
    n = sum(len(p) for p in dm.splits)
    assert 0.1 * n <= len(dm.splits[1]) < 0.2 * n


@pytest.mark.skipif(not HAVE_CHATTERBOT, reason="pip install chatterbot-corpus")
def test_chatterbot_fast_dev_run(tmp_path):
    metrics, _ = train(make_cfg(["experiment=dialogue_chatterbot", "debug=fast_dev_run"], tmp_path))
    assert 0 <= metrics["test/bleu"] <= 1 and metrics["test/loss"] > 0


@pytest.mark.skipif(HAVE_CHATTERBOT, reason="chatterbot-corpus is installed")
def test_chatterbot_missing_package_is_a_one_line_error(tmp_path):
    msg = one_line_error(
        run_cli(
            "seqlab.train",
            "experiment=dialogue_chatterbot",
            "debug=fast_dev_run",
            f"paths.root_dir={tmp_path}",
            env=ONE_THREAD,
        )
    )
    assert "pip install chatterbot-corpus" in msg
