"""Training throughput: the Lightning module against a plain PyTorch loop over the same model,
optimizer and batches, alternated in one process.

    python scripts/benchmark_speed.py                   # char-LM default recipe, 5 repetitions
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


def charlm_setup(args):
    dm = CharLMDataModule(bs=args.bs, bptt=args.bptt)
    dm.setup("fit")
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(args.warmup + args.steps)]
    module = CharLMModule(dm.model_kwargs()["vocab"], cell=args.cell, n_hidden=args.n_hidden, lr=3e-3)
    tokens = sum(x.numel() for x, _ in batches[args.warmup:])
    return module, batches, tokens


def plain_loop(module, batches, warmup, clip):
    """What one would write by hand: same model, Adam, clipping, stateful hidden state."""
    model = module.model
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=module.hparams.lr)
    h = None
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        logp, h = model(x, h)
        h = h.detach() if isinstance(h, torch.Tensor) else tuple(t.detach() for t in h)
        loss = torch.nn.functional.nll_loss(logp.reshape(-1, logp.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return time.perf_counter() - start, 0.0


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
    module.hidden = {}
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    total = clock.end - clock.start
    return total, clock.gap / total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="charlm", choices=["charlm"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--bptt", type=int, default=64)
    ap.add_argument("--n-hidden", type=int, default=512)
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--cells", nargs="*", default=["gru", "grucell"], help="cells to compare in the plain loop")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(model) in the plain loop")
    args = ap.parse_args()
    L.seed_everything(0, verbose=False)
    torch.set_num_threads(torch.get_num_threads())

    module, batches, tokens = charlm_setup(args)
    init = copy.deepcopy(module.state_dict())
    plain, light, ratios, gaps = [], [], [], []
    for rep in range(args.reps):  # alternate, so drifts of a noisy machine hit both alike
        module.load_state_dict(init)
        t_plain, _ = plain_loop(module, batches, args.warmup, 1.0)
        module.load_state_dict(init)
        t_light, gap = lightning_loop(module, batches, args.warmup, 1.0)
        plain.append(tokens / t_plain)
        light.append(tokens / t_light)
        ratios.append(t_plain / t_light)
        gaps.append(gap)
        print(f"rep {rep}: plain {plain[-1]:,.0f} tok/s, lightning {light[-1]:,.0f} tok/s, ratio {ratios[-1]:.3f}", flush=True)

    print(f"\n## {args.task}: {args.cell}, hidden {args.n_hidden}, bs {args.bs}, bptt {args.bptt}, "
          f"{args.steps} steps after {args.warmup} warm-up, {args.reps} repetitions, {torch.get_num_threads()} threads")
    print(f"plain loop:  {statistics.median(plain):,.0f} tok/s (median)")
    print(f"lightning:   {statistics.median(light):,.0f} tok/s (median)")
    print(f"ratio lightning/plain: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}")
    print(f"time between steps (data fetch + loop overhead): {100 * statistics.median(gaps):.2f}% of step time")
    print(f"peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    print("\n## recurrent cells (plain loop, same batches)")
    steps = max(3, args.steps // 4)
    for cell in args.cells:
        args.cell = cell
        m, b, tok = charlm_setup(argparse.Namespace(**{**vars(args), "steps": steps}))
        t, _ = plain_loop(m, b, args.warmup, 1.0)
        print(f"{cell:>8s}: {tok / t:,.0f} tok/s")
    if args.compile:
        m, b, tok = charlm_setup(argparse.Namespace(**{**vars(args), "cell": "gru", "steps": steps}))
        m.model = torch.compile(m.model)
        t, _ = plain_loop(m, b, args.warmup, 1.0)
        print(f"gru + torch.compile: {tok / t:,.0f} tok/s")


if __name__ == "__main__":
    main()
