"""Listen/reply pairs: the tutorial's `pairs.json`, a user's own file, or the ChatterBot corpus.

Text is lower-cased and split into words and punctuation marks; prompts and replies have
separate vocabularies with `<unk> <pad> <sos> <eos>` first; replies are wrapped in
`<sos> … <eos>`; batches are padded to their own longest sequence.

Splits are made by prompt, so that a held-out prompt was never seen in training, whatever its
replies. With no held-out fractions (the default, and the tutorial's setting) the task is
memorisation: validation and test read the training pairs. Each example knows every reply the
data gives for its prompt (its references), so a reply counts as right when it matches any.
"""

import functools
import re
from typing import Literal

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

from seqlab.datamodule import Batches, TaskData
from seqlab.errors import SeqlabError, warn
from seqlab.textfiles import read_json_records, resolve
from seqlab.types import NonNegativeInt, PositiveInt, Rate
from seqlab.vocab import Vocab

SPECIALS = ("<unk>", "<pad>", "<sos>", "<eos>")
UNK, PAD, SOS, EOS = range(4)
NO_MATCH = -1  # a reference word outside the output vocabulary: no reply can match it
EVAL_BS = 64
LONG_PAIR = 200  # tokens; the tutorial's pairs have under 20, the chatterbot corpus's under 40 after data.max_tokens

# The tutorial's cleaning: these characters become spaces, runs of ! , ? collapse to one.
_DROP = re.compile(r"[*\"“”\n\\…+\-/=()‘•:\[\]|’;]")
_REPEAT = re.compile(r"([!,?])\1+")
_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")  # words (with inner apostrophes) and single marks


def tokenize(text: str) -> list[str]:
    """'Hi!!, can I tell you a joke?' -> ['hi', '!', ',', 'can', 'i', 'tell', 'you', 'a', 'joke', '?']"""
    return _TOKEN.findall(_REPEAT.sub(r"\1", _DROP.sub(" ", text)).lower())


def detokenize(tokens: list[str]) -> str:
    """Words joined by spaces, with no space before a punctuation mark."""
    return re.sub(r" ([.,!?%)])", r"\1", " ".join(tokens))


def read_pairs(path: str | None) -> list[tuple[str, str]]:
    """(listen, reply) strings from a JSON list or JSON Lines of {"listen": …, "reply": …} objects."""
    p = resolve(path, "pairs.json")
    records = read_json_records(p)
    if not records:
        raise SeqlabError(
            f'{p} holds no listen/reply pairs; expected JSON objects like {{"listen": "hi", "reply": "hello"}}'
        )
    pairs = []
    for n, r in enumerate(records, 1):
        if not isinstance(r, dict):
            raise SeqlabError(
                f"{p}: record {n} is a {type(r).__name__}, not an object; expected "
                f'{{"listen": "…", "reply": "…"}} per record'
            )
        for key in ("listen", "reply"):
            if key not in r:
                raise SeqlabError(
                    f"{p}: record {n} has no {key!r} field; each record needs string fields 'listen' and 'reply'"
                )
            if not isinstance(r[key], str) or not tokenize(r[key]):
                raise SeqlabError(f"{p}: record {n} has an empty or non-text {key!r}; give it a sentence")
        pairs.append((r["listen"], r["reply"]))
    return pairs


def read_chatterbot(language: str = "english") -> list[tuple[str, str]]:
    """Consecutive turns of the ChatterBot corpus's conversations, read from the installed package."""
    try:
        from importlib import resources

        import chatterbot_corpus  # noqa: F401
    except ImportError:
        raise SeqlabError(
            "the ChatterBot corpus is not installed; run `pip install chatterbot-corpus`, "
            "or use data=dialogue (the bundled pairs)"
        ) from None
    import yaml

    folder = resources.files("chatterbot_corpus") / "data" / language
    files = (
        sorted((f for f in folder.iterdir() if f.name.endswith(".yml")), key=lambda f: f.name)
        if folder.is_dir()
        else []
    )
    if not files:
        raise SeqlabError(
            f"the installed chatterbot_corpus has no {language!r} conversations; set data.language=english"
        )
    pairs = []
    for f in files:
        doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for conversation in doc.get("conversations") or []:
            # One entry of trivia.yml is a single string (a YAML indentation slip): not a conversation.
            if not isinstance(conversation, list):
                continue
            turns = [str(t) for t in conversation if t is not None]
            pairs.extend((a, b) for a, b in zip(turns, turns[1:], strict=False) if tokenize(a) and tokenize(b))
    return pairs


class PairData(torch.utils.data.Dataset):
    """One split, encoded once; each example points at its prompt's references."""

    def __init__(self, examples: list[tuple[list[str], list[str]]], src_vocab: Vocab, tgt_vocab: Vocab):
        replies: dict[tuple, list[list[str]]] = {}
        for src, tgt in examples:
            group = replies.setdefault(tuple(src), [])
            if tgt not in group:
                group.append(tgt)
        refs = {k: ([_encode_ref(tgt_vocab, r) for r in v], [" ".join(r) for r in v]) for k, v in replies.items()}
        self.items = [
            {
                "src": src_vocab.encode(src),
                "tgt": tgt_vocab.encode(["<sos>", *tgt, "<eos>"]),
                "refs": refs[tuple(src)][0],
                "ref_text": refs[tuple(src)][1],
            }
            for src, tgt in examples
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def _encode_ref(vocab: Vocab, tokens: list[str]) -> torch.Tensor:
    get = vocab.stoi.get
    return torch.tensor([get(t, NO_MATCH) for t in tokens] + [EOS], dtype=torch.long)


def collate(items: list[dict]) -> dict:
    """Pad to the batch's longest prompt and reply; references as (batch, n_refs, length)."""
    refs = [r for it in items for r in it["refs"]]
    n_refs = max(len(it["refs"]) for it in items)
    flat = pad_sequence(refs, batch_first=True, padding_value=PAD)
    # Empty reference slots can never match (a decoded reply has no negative ids).
    table = torch.full((len(items), n_refs, flat.size(1)), NO_MATCH - 1, dtype=torch.long)
    i = 0
    for b, it in enumerate(items):
        table[b, : len(it["refs"])] = flat[i : i + len(it["refs"])]
        i += len(it["refs"])
    return {
        "src": pad_sequence([it["src"] for it in items], batch_first=True, padding_value=PAD),
        "tgt": pad_sequence([it["tgt"] for it in items], batch_first=True, padding_value=PAD),
        "refs": table,
        "ref_text": [it["ref_text"] for it in items],
    }


def split_by_prompt(pairs: list, val_frac: float, test_frac: float, seed: int):
    """(train, val, test) lists of pairs. Whole prompts (with all their replies) are held out,
    in a seeded random order, until the validation and test parts hold about `val_frac` and
    `test_frac` of the pairs (some prompts have a hundred replies: counting prompts would not do)."""
    if val_frac == 0 and test_frac == 0:
        return pairs, pairs, pairs
    groups: dict[tuple, list] = {}
    for p in pairs:
        groups.setdefault(tuple(p[0]), []).append(p)
    keys = list(groups)
    order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(seed)).tolist()
    parts, want = ([], [], []), (val_frac * len(pairs), test_frac * len(pairs))
    for i in order:
        group = groups[keys[i]]
        part = 1 if len(parts[1]) < want[0] else 2 if len(parts[2]) < want[1] else 0
        parts[part].extend(group)
    return parts


class DialogueDataModule(TaskData):
    task = "dialogue"

    def __init__(
        self,
        corpus: Literal["pairs", "chatterbot"],
        path: str | None,
        language: str,
        val_frac: Rate,
        test_frac: Rate,
        min_freq: PositiveInt,
        max_tokens: PositiveInt | None,
        batch_size: PositiveInt,
        seed: NonNegativeInt,
    ):
        super().__init__()
        if corpus == "chatterbot" and path:
            raise SeqlabError(
                "data.path is for a pairs file; with data.corpus=chatterbot leave it null (or use data=dialogue)"
            )
        if corpus == "pairs" and language != "english":
            raise SeqlabError(
                f"data.language={language} picks a chatterbot corpus, but this run reads a pairs file; "
                f"use data=dialogue_chatterbot data.language={language}, or drop data.language"
            )
        if val_frac + test_frac >= 1:
            raise SeqlabError(
                f"data.val_frac + data.test_frac must be below 1 (the rest trains), got {val_frac} + "
                f"{test_frac}; pass e.g. data.val_frac=0.1 data.test_frac=0.1"
            )
        self.splits = None
        self.src_vocab: Vocab | None = None
        self.tgt_vocab: Vocab | None = None

    def prepare(self) -> None:
        """Read, tokenise, split and build the vocabularies (once)."""
        if self.splits is not None:
            return
        hp = self.hparams
        raw = read_chatterbot(hp.language) if hp.corpus == "chatterbot" else read_pairs(hp.path)
        pairs = [(tokenize(a), tokenize(b)) for a, b in raw]
        if hp.max_tokens:
            pairs = [(a, b) for a, b in pairs if len(a) <= hp.max_tokens and len(b) <= hp.max_tokens]
        if not pairs:
            raise SeqlabError(
                f"no pair has at most data.max_tokens={hp.max_tokens} tokens on both sides; raise it or set it to null"
            )
        longest = max(max(len(a), len(b)) for a, b in pairs)
        if longest > LONG_PAIR:  # a batch pads to its longest pair, and attention memory grows with its square
            warn(
                f"the longest pair has {longest} tokens, so its batches are slow and large; pass e.g. "
                f"data.max_tokens=100 to drop pairs longer than that"
            )
        self.splits = split_by_prompt(pairs, hp.val_frac, hp.test_frac, hp.seed)
        for name, part in zip(("training", "validation", "test"), self.splits, strict=False):
            if not part:
                raise SeqlabError(
                    f"the {name} split is empty ({len(pairs)} pairs); change data.val_frac/data.test_frac"
                )
        train = self.splits[0]
        if self.src_vocab is None:
            self.src_vocab = Vocab.build((t for a, _ in train for t in a), hp.min_freq, SPECIALS)
            self.tgt_vocab = Vocab.build((t for _, b in train for t in b), hp.min_freq, SPECIALS)
            if min(len(self.src_vocab), len(self.tgt_vocab)) == len(SPECIALS):  # (every word would read as <unk>)
                raise SeqlabError(
                    f"no word of the training pairs occurs data.min_freq={hp.min_freq} times, so every word would "
                    f"read as <unk>; pass a smaller data.min_freq (e.g. 1)"
                )

    def use_model(self, module) -> None:
        """Encode with a trained model's vocabularies (evaluating a checkpoint on other data)."""
        self.src_vocab, self.tgt_vocab = module.src_vocab, module.tgt_vocab

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def model_kwargs(self) -> dict:
        """The vocabularies, saved in the model's checkpoint."""
        self.prepare()
        return {"src_vocab": list(self.src_vocab.itos), "tgt_vocab": list(self.tgt_vocab.itos)}

    def _loader(self, part: int, bs: int) -> DataLoader:
        data = PairData(self.splits[part], self.src_vocab, self.tgt_vocab)
        # (pinned batches copy to a GPU without making the step wait)
        return DataLoader(data, batch_size=bs, collate_fn=collate, pin_memory=self.device().type == "cuda")

    def train_dataloader(self) -> DataLoader:
        data = PairData(self.splits[0], self.src_vocab, self.tgt_vocab)
        batches = Batches(
            functools.partial(self.order, len(data)),
            self.hparams.batch_size,
            lambda rows: collate([data[i] for i in rows.tolist()]),
        )
        return self.resumable(batches, pin_memory=self.device().type == "cuda")

    # Evaluation decodes every reply: bigger batches mean fewer decoding loops (same results).
    def val_dataloader(self) -> DataLoader:
        return self._loader(1, max(self.hparams.batch_size, EVAL_BS))

    def test_dataloader(self) -> DataLoader:
        return self._loader(2, max(self.hparams.batch_size, EVAL_BS))
