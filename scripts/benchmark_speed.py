"""Training throughput: the Lightning module against a plain PyTorch loop over the same model,
optimizer and batches, alternated in one process.

    python scripts/benchmark_speed.py                   # char-LM and subseq default recipes, 5 repetitions
    python scripts/benchmark_speed.py --task charlm --reps 5 --steps 40 --warmup 5 --cells gru grucell
    python scripts/benchmark_speed.py --compile          # also time torch.compile on the plain loop

Reports tokens/s for both, the Lightning/plain ratio (median, min, max over repetitions), the
share of Lightning's step time spent between steps (data fetch + loop overhead), peak memory,
and fused vs unrolled recurrent cells.
"""

import argparse
import copy
import resource
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader

from seqlab.tasks.charlm.data import CharLMDataModule
from seqlab.tasks.charlm.module import CharLMModule
from seqlab.tasks.subseq.data import SubseqDataModule
from seqlab.tasks.subseq.module import SubseqModule


def charlm_setup(args):
    dm = CharLMDataModule(bs=args.bs, bptt=args.bptt)
    dm.setup("fit")
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(args.warmup + args.steps)]
    module = CharLMModule(dm.model_kwargs()["vocab"], cell=args.cell, n_hidden=args.n_hidden, lr=3e-3,
                          scheduler="none")  # the plain loop has no scheduler either
    tokens = sum(x.numel() for x, _ in batches[args.warmup:])
    return module, batches, tokens


def subseq_setup(args):
    """The subseq default recipe's model and batch size; examples as the data module draws them."""
    dm = SubseqDataModule(batch_size=args.sub_bs, train_size=args.sub_bs * (args.warmup + args.steps))
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    module = SubseqModule(**dm.model_kwargs(), teacher_forcing=0.5, lr=3e-3, scheduler="none")
    examples = sum(x.size(0) for x, _ in batches[args.warmup:])
    return module, batches, examples


def charlm_loss(model, batch, state):
    x, y = batch
    logp, h = model(x, state.get("h"))
    state["h"] = h.detach() if isinstance(h, torch.Tensor) else tuple(t.detach() for t in h)
    return torch.nn.functional.nll_loss(logp.reshape(-1, logp.size(-1)), y.reshape(-1))


def subseq_loss(model, batch, state):
    x, y = batch
    force = (torch.rand(model.out_len - 1) < state["teacher_forcing"]).tolist()
    logits = model(x, y, force)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


TASKS = {"charlm": (charlm_setup, charlm_loss, "chars"), "subseq": (subseq_setup, subseq_loss, "examples")}


def plain_loop(module, batches, warmup, clip, loss_fn=charlm_loss):
    """What one would write by hand: same model, Adam, clipping (and, for the char-LM, the
    stateful hidden state)."""
    model = module.model
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=module.hparams.lr)
    state = {"teacher_forcing": module.hparams.get("teacher_forcing", 0.0)}
    for i, batch in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        loss = loss_fn(model, batch, state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return time.perf_counter() - start


class StepClock(L.Callback):
    """Wall time of the measured steps, and the gaps between them (data fetch + loop overhead)."""

    def __init__(self, warmup):
        self.warmup, self.start, self.end, self.gap, self.last_end = warmup, None, None, 0.0, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        if batch_idx == self.warmup:
            self.start = now
        elif batch_idx > self.warmup:
            self.gap += now - self.last_end

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.last_end = self.end = time.perf_counter()


def lightning_loop(module, batches, warmup, clip):
    clock = StepClock(warmup)
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, gradient_clip_val=clip,
        callbacks=[clock],
    )
    if isinstance(getattr(module, "hidden", None), dict):
        module.hidden = {}  # the char-LM starts from a zero state, as the plain loop does
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    total = clock.end - clock.start
    return total, clock.gap / total


def compare(task, args):
    setup, loss_fn, unit = TASKS[task]
    L.seed_everything(0, verbose=False)
    module, batches, units = setup(args)
    init = copy.deepcopy(module.state_dict())
    plain, light, ratios, gaps = [], [], [], []
    for rep in range(args.reps):  # alternate, so drifts of a noisy machine hit both alike
        module.load_state_dict(init)
        t_plain = plain_loop(module, batches, args.warmup, 1.0, loss_fn)
        module.load_state_dict(init)
        t_light, gap = lightning_loop(module, batches, args.warmup, 1.0)
        plain.append(units / t_plain)
        light.append(units / t_light)
        ratios.append(t_plain / t_light)
        gaps.append(gap)
        print(f"rep {rep}: plain {plain[-1]:,.0f} {unit}/s, lightning {light[-1]:,.0f} {unit}/s, ratio {ratios[-1]:.3f}",
              flush=True)
    what = (f"{args.cell}, hidden {args.n_hidden}, bs {args.bs}, bptt {args.bptt}" if task == "charlm"
            else f"3-layer GRU enc-dec, batch {args.sub_bs}")
    print(f"\n## {task}: {what}, {args.steps} steps after {args.warmup} warm-up, {args.reps} repetitions, "
          f"{torch.get_num_threads()} threads")
    print(f"plain loop:  {statistics.median(plain):,.0f} {unit}/s (median)")
    print(f"lightning:   {statistics.median(light):,.0f} {unit}/s (median)")
    print(f"ratio lightning/plain: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}")
    print(f"time between steps (data fetch + loop overhead): {100 * statistics.median(gaps):.2f}% of step time")
    print(f"peak RSS of the process so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="both", choices=["charlm", "subseq", "both"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--bptt", type=int, default=32)
    ap.add_argument("--n-hidden", type=int, default=512)
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--sub-bs", type=int, default=64, help="subseq batch size (the subseq recipe's)")
    ap.add_argument("--cells", nargs="*", default=["gru", "grucell"], help="cells to compare in the plain loop")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(model) in the plain loop")
    args = ap.parse_args()
    for task in (["charlm", "subseq"] if args.task == "both" else [args.task]):
        compare(task, args)
    if args.task == "subseq":
        return

    print("## char-LM recurrent cells (plain loop, same batches)")
    steps = max(3, args.steps // 4)
    for cell in args.cells:
        m, b, tok = charlm_setup(argparse.Namespace(**{**vars(args), "cell": cell, "steps": steps}))
        t = plain_loop(m, b, args.warmup, 1.0)
        print(f"{cell:>8s}: {tok / t:,.0f} chars/s")
    if args.compile:
        m, b, tok = charlm_setup(argparse.Namespace(**{**vars(args), "cell": "gru", "steps": steps}))
        m.model = torch.compile(m.model)
        t = plain_loop(m, b, args.warmup, 1.0)
        print(f"gru + torch.compile: {tok / t:,.0f} chars/s")


if __name__ == "__main__":
    main()
