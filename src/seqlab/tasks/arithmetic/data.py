"""Grade-school arithmetic from a tutor and a sensei (the arithmetic tutorial, "Tao").

The tutor draws questions `<a><op><b>=?`; the sensei answers them. The format is the tutorial's:
the sensei's target has one `\\x00` for every position of the question up to and including
`=`, then the answer's characters. The net reads one character per step and says one
character per step, so it says `\\x00` while it reads the question and the answer's first
character when it reads `?` — the `?` is the cue to start answering. Each further answer
character is said when the previous one is read back in, and a closing `\\x00` (the tutorial's
generator also went on with `\\x00` after the answer) ends the answer:

    input   1 2 + 7 = ? 1 9
    target  ␀ ␀ ␀ ␀ ␀ 1 9 ␀         (sensei("12+7=?") = "␀␀␀␀␀19", then the closing ␀)

Answers are exact integer arithmetic on int64 tensors (no `eval` of strings, which the tutorial
used). Validation and test questions are fixed sets drawn once; training questions are drawn
fresh every epoch and never from those sets, as long as the question space is at least twice
the size of the held-out sets (otherwise, e.g. the tutorial's two questions, every set is the
whole space). The held-out sets are uniform over the question space; `balance_digits` only
changes how training questions are drawn (short operands as often as long ones).
"""

import math
import re
import string
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch.utils.data import DataLoader, IterableDataset

from seqlab.datamodule import TaskData
from seqlab.errors import SeqlabError
from seqlab.types import NonNegativeInt, PositiveInt

OPS = "+-*"
END = "\x00"  # the sensei's filler before the answer, and the end of an answer
IGNORE = -100  # target of padding positions (F.nll_loss's ignore_index)
ALPHABETS = {
    # what questions and answers use: 16 characters
    "compact": END + "0123456789" + OPS + "=?",
    # the tutorial's Char2Vec: 101 characters, \x00 and Python's printable ones
    "printable": END + string.printable,
}
QUESTION = re.compile(r"^(\d+)([+*-])(\d+)=\?$")
FORMAT_HINT = "a question like 12+7=? (digits, one of + - *, digits, then =?)"
MAX_DIGITS = 9  # products of two 9-digit numbers still fit in int64
MAX_READ = 1000  # a question's operands, read (and answered with a warning beyond what a model learned)


def parse_question(question: str) -> tuple[int, str, int]:
    m = QUESTION.match(question.strip()) if isinstance(question, str) else None
    if m is None:
        raise SeqlabError(f"malformed question {question!r}; expected {FORMAT_HINT}")
    if (longest := max(len(m.group(1)), len(m.group(3)))) > MAX_READ:  # (Python's int() refuses over 4300 digits)
        raise SeqlabError(
            f"a question's operands have at most {MAX_READ} digits, this one {longest:,}; ask a shorter one"
        )
    return int(m.group(1)), m.group(2), int(m.group(3))


def solve_one(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def sensei(question: str) -> str:
    """The tutorial's sensei, without eval: `\\x00` up to and including `=`, then the answer."""
    a, op, b = parse_question(question)
    return END * (question.index("=") + 1) + str(solve_one(a, op, b))


def solve(a: torch.Tensor, op: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact answers on int64 tensors; `op` indexes OPS."""
    return torch.where(op == 0, a + b, torch.where(op == 1, a - b, a * b))


def _digit_slots(x: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decimal digits of x >= 0, right-aligned in `width` slots, and which slots are used
    (leading zeros are not, the last slot always is)."""
    powers = 10 ** torch.arange(width - 1, -1, -1, dtype=torch.long)
    digits = torch.div(x[:, None], powers, rounding_mode="floor") % 10
    used = (x[:, None] >= powers) | (torch.arange(width) == width - 1)
    return digits, used


def _width(x: torch.Tensor) -> int:
    return len(str(int(x.max()))) if x.numel() else 1


def render(
    a: torch.Tensor, op: torch.Tensor, b: torch.Tensor, stoi: dict
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Questions and answers as a padded batch, all with tensor operations.

    Returns x (N, T): question then answer characters (the teacher-forced input); y (N, T):
    the target — END up to the position of `=`, the answer from `?` on, the closing END,
    IGNORE on padding; q_len (N,): the questions' lengths.
    """
    r = solve(a, op, b)
    digit_ids = torch.tensor([stoi[c] for c in "0123456789"])
    op_ids = torch.tensor([stoi[c] for c in OPS])
    n = a.numel()
    one = torch.ones(n, 1, dtype=torch.bool)

    def const(ch: str) -> torch.Tensor:
        return torch.full((n, 1), stoi[ch], dtype=torch.long)

    da, ua = _digit_slots(a, _width(a))
    db, ub = _digit_slots(b, _width(b))
    dr, ur = _digit_slots(r.abs(), _width(r.abs()))
    # every character the longest example could have, with a mask of those this one has
    slots = torch.cat(
        [
            digit_ids[da],
            op_ids[op][:, None],
            digit_ids[db],
            const("="),
            const("?"),
            const("-"),
            digit_ids[dr],
            const(END),
        ],
        1,
    )
    used = torch.cat([ua, one, ub, one, one, (r < 0)[:, None], ur, one], 1)
    # squeeze the used slots to the left, keeping their order
    order = torch.sort((~used).to(torch.int8), dim=1, stable=True).indices
    seq = slots.gather(1, order)
    n_used = used.sum(1)
    q_len = ua.sum(1) + ub.sum(1) + 3
    pos = torch.arange(seq.size(1))
    seq = seq.masked_fill(pos >= n_used[:, None], stoi[END])
    x = seq[:, :-1]  # question + answer
    y = seq[:, 1:].masked_fill(pos[:-1] < (q_len - 1)[:, None], stoi[END])
    y = y.masked_fill(pos[:-1] >= (n_used - 1)[:, None], IGNORE)
    return x.contiguous(), y.contiguous(), q_len


class Tutor:
    """Draws questions: two operands of up to `digits` digits and an operator from `ops`
    (each uniformly), or one of the `fixed` questions. A question is an index into the
    question space, so held-out sets and training draws can be kept apart cheaply."""

    def __init__(self, ops: str = "+-", digits: int = 2, fixed: list[str] | None = None, balance_digits: bool = False):
        self.fixed, self.balance_digits, self.digits = None, balance_digits, digits
        if fixed:
            parsed = [parse_question(q) for q in fixed]
            columns = zip(*[(a, OPS.index(op), b) for a, op, b in parsed], strict=True)
            self.fixed = tuple(torch.tensor(v, dtype=torch.long) for v in columns)
            self.size = len(parsed)
        else:
            self.op_ids = torch.tensor([OPS.index(o) for o in ops])
            self.n = 10**digits
            self.size = len(ops) * self.n * self.n

    def questions(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a, op, b) of the questions with these indices."""
        if self.fixed is not None:
            return tuple(t[idx] for t in self.fixed)
        nn = self.n * self.n
        return (
            torch.div(idx % nn, self.n, rounding_mode="floor"),
            self.op_ids[torch.div(idx, nn, rounding_mode="floor")],
            idx % self.n,
        )

    def _random(self, count: int, generator: torch.Generator) -> torch.Tensor:
        if not self.balance_digits or self.fixed is not None:
            return torch.randint(self.size, (count,), generator=generator)

        # Each operand's length uniform in 1..digits, then the number uniform among those of
        # that length: uniformly drawn 2-digit operands are 1-digit only 10 % of the time, and
        # questions like 7+2=? (their own shapes, not zero-padded) were the ones left wrong.
        def operand():
            length = torch.randint(1, self.digits + 1, (count,), generator=generator)
            low = torch.where(length == 1, 0, 10 ** (length - 1))
            return low + (torch.rand(count, generator=generator) * (10**length - low)).long()

        op = torch.randint(len(self.op_ids), (count,), generator=generator)
        return (op * self.n + operand()) * self.n + operand()

    def draw(self, count: int, generator: torch.Generator, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """`count` question indices (uniform, or digit-balanced: see `_random`), none in `exclude`."""
        idx = self._random(count, generator)
        if exclude is None or not exclude.numel():
            return idx
        while True:
            bad = torch.isin(idx, exclude)
            if not bad.any():
                return idx
            idx[bad] = self._random(int(bad.sum()), generator)

    def distinct(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """`count` different question indices, in random order."""
        if self.size <= 10_000_000:
            return torch.randperm(self.size, generator=generator)[:count]
        idx = torch.unique(torch.randint(self.size, (2 * count + 100,), generator=generator))
        return idx[torch.randperm(idx.numel(), generator=generator)][:count]

    def max_answer_len(self) -> int:
        """Characters of the longest answer (sign included)."""
        if self.fixed is not None:
            a, op, b = self.fixed
        else:
            ends = torch.tensor([0, self.n - 1])
            a, op, b = (t.reshape(-1) for t in torch.meshgrid(ends, self.op_ids, ends, indexing="ij"))
        return max(len(str(int(v))) for v in solve(a, op, b))


class TrainQuestions(IterableDataset):
    """`count` fresh questions per epoch in batches; the draw is fixed by (seed, epoch, rank)."""

    def __init__(
        self,
        tutor: Tutor,
        stoi: dict,
        count: int,
        batch_size: int,
        seed: int,
        exclude: torch.Tensor,
        epoch_fn=None,
        rank: int = 0,
        device="cpu",
    ):
        self.tutor, self.stoi, self.count, self.batch_size = tutor, stoi, count, batch_size
        self.seed, self.exclude, self.rank, self.device = seed, exclude, rank, device
        self.epoch_fn = epoch_fn or (lambda: 0)

    def __len__(self) -> int:
        return math.ceil(self.count / self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch_fn(), self.rank)) % 2**62)
        x, y, q_len = render(*self.tutor.questions(self.tutor.draw(self.count, g, self.exclude)), self.stoi)
        # each batch as wide as its own longest question + answer, as if rendered alone
        widths = [int(w.max()) for w in (y != IGNORE).sum(1).split(self.batch_size)]
        x, y, q_len = (t.to(self.device) for t in (x, y, q_len))  # one copy an epoch
        for i, width in enumerate(widths):
            rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
            yield x[rows, :width], y[rows, :width], q_len[rows]


class ArithmeticDataModule(TaskData):
    task = "arithmetic"

    def __init__(
        self,
        ops: str,
        digits: Annotated[int, Field(ge=1, le=MAX_DIGITS)],
        fixed: list[str] | None,
        balance_digits: bool,
        alphabet: Literal["compact", "printable"],
        train_size: PositiveInt,
        batch_size: PositiveInt,
        val_size: PositiveInt,
        test_size: PositiveInt,
        eval_batch_size: PositiveInt,
        seed: NonNegativeInt,
    ):
        super().__init__()
        if fixed is not None and not fixed:
            raise SeqlabError(
                "data.fixed is an empty list; give questions, e.g. data.fixed='[\"1+1=?\"]', or "
                "data.fixed=null to draw from data.ops and data.digits"
            )
        if fixed:
            for q in fixed:
                try:
                    a, _, b = parse_question(q)
                except SeqlabError as e:
                    raise SeqlabError(f"data.fixed: {e}") from None
                if max(a, b) >= 10**MAX_DIGITS:  # (the answers are int64)
                    raise SeqlabError(
                        f"data.fixed has the question {str(q)[:40]!r}, whose operands pass {MAX_DIGITS} digits; "
                        f"use at most {MAX_DIGITS}"
                    )
        elif not ops or any(o not in OPS for o in ops) or len(set(ops)) != len(ops):
            raise SeqlabError(
                f"data.ops must be distinct characters from '{OPS}', got {ops!r}; pass e.g. data.ops='+-*'"
            )
        self.alphabet = ALPHABETS[alphabet]
        self.stoi = {c: i for i, c in enumerate(self.alphabet)}
        self.tutor = Tutor(ops, digits, fixed, balance_digits)

    def model_kwargs(self) -> dict:
        """The alphabet, the longest answer, and what questions the net will be asked (the model
        warns about questions from outside it)."""
        hp = self.hparams
        return {
            "alphabet": list(self.alphabet),
            "max_answer_len": self.tutor.max_answer_len(),
            "questions": {"ops": hp.ops, "digits": hp.digits} if not hp.fixed else {"fixed": list(hp.fixed)},
        }

    def setup(self, stage: str | None = None) -> None:
        hp, tutor = self.hparams, self.tutor
        g = torch.Generator().manual_seed(hp.seed)
        held = hp.val_size + hp.test_size
        if held * 2 <= tutor.size:
            idx = tutor.distinct(held, g)
            self.val_idx, self.test_idx = idx[: hp.val_size], idx[hp.val_size :]
            self.exclude = idx
        else:
            # Too few questions to hold any out (e.g. the tutorial's two): every set is all of them.
            self.val_idx = self.test_idx = torch.arange(tutor.size)
            self.exclude = None
        self.val_batches, self.test_batches = self._fixed(self.val_idx), self._fixed(self.test_idx)

    def _fixed(self, idx: torch.Tensor) -> list:
        return [
            tuple(t.to(self.device()) for t in render(*self.tutor.questions(chunk), self.stoi))
            for chunk in idx.split(self.hparams.eval_batch_size)
        ]

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return self.resumable(
            TrainQuestions(
                self.tutor,
                self.stoi,
                hp.train_size,
                hp.batch_size,
                hp.seed,
                self.exclude,
                self.epoch,
                self.rank_and_world()[0],
                self.device(),
            )
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_batches, batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_batches, batch_size=None)


def out_of_range(question: str, questions: dict) -> str | None:
    """Why a well-formed question lies outside what the net was trained on, or None."""
    a, op, b = parse_question(question)
    if "fixed" in questions:
        return (
            None
            if question.strip() in questions["fixed"]
            else f"it was trained on {', '.join(questions['fixed'])} only"
        )
    if op not in questions["ops"]:
        return f"it was trained on {' and '.join(questions['ops'])} only"
    if max(a, b) >= 10 ** questions["digits"]:
        return f"it was trained on operands of up to {questions['digits']} digits"
    return None
