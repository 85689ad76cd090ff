"""Training throughput: Lightning, as `seqlab-train` runs it (the project's configured callbacks,
TensorBoard logger and progress bar), against a plain PyTorch loop over the same model, loss
code, optimizer, clipping and batches; the two alternated in one process.

    python scripts/benchmark_speed.py                                  # char-LM and subseq, batch 64
    python scripts/benchmark_speed.py --device cuda --batch-sizes 64 512 --profile
    python scripts/benchmark_speed.py --task charlm --reps 7 --steps 40 --warmup 10

Both loops time the same steps inside one epoch (epoch ends, validation and checkpoints are not
per-step costs), synchronising the GPU before reading the clock. Reports tokens/s for both, the
Lightning/plain ratio (median, min, max over repetitions), the time per step Lightning adds,
and with --profile where Lightning's step time goes (its SimpleProfiler, one extra run).
"""

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from seqlab.callbacks import GracefulStop
from seqlab.run.cli import CONF_DIR
from seqlab.run.explain import explain
from seqlab.train import build

# What one training example is, to count throughput.
UNITS = {"charlm": "chars", "subseq": "examples"}


def config(task: str, batch_size: int, device: str, steps: int, out_dir: str, extra: list[str]):
    overrides = [
        f"experiment={task}",
        f"data.batch_size={batch_size}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        "trainer.devices=1",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=-1",
        "trainer.max_time=null",
        "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_model_summary=false",
        "test=false",
        *extra,
    ]
    if task == "subseq":  # fresh examples: an epoch long enough for every measured step
        overrides.append(f"data.train_size={batch_size * (steps + 1)}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.paths.output_dir = out_dir
    return cfg


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Clock(L.Callback):
    """Wall time from the start of step `warmup` to the end of step `warmup + steps`."""

    def __init__(self, warmup: int, steps: int, device: str):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.start = self.end = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            sync(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.warmup + self.steps:
            sync(self.device)
            self.end = time.perf_counter()


def lightning_run(cfg, warmup: int, steps: int, device: str, profile: bool = False) -> float:
    L.seed_everything(0, verbose=False)
    datamodule, model, trainer = build(cfg)
    clock = Clock(warmup, steps, device)
    trainer.callbacks.append(GracefulStop(Path(cfg.paths.output_dir) / "checkpoints", ""))  # as seqlab-train has it
    trainer.callbacks.append(clock)
    if profile:
        trainer.profiler = L.pytorch.profilers.SimpleProfiler(dirpath=cfg.paths.output_dir, filename="profile")
    trainer.fit(model, datamodule=datamodule)
    if profile:  # the report's rows, the longest first, with Lightning's long callback names cut
        rows = [
            [c.strip() for c in line.split("|")[1:-1]]
            for line in Path(cfg.paths.output_dir, "fit-profile.txt").read_text().splitlines()
            if line.startswith("|  ")
        ]
        print(f"{'action':60s} {'mean ms':>9s} {'calls':>6s} {'total %':>8s}")
        for action, mean, calls, _, pct in [r for r in rows if r[0] != "Action" and r[1] != "-"][:24]:
            print(f"{action[:60]:60s} {1000 * float(mean):9.3f} {calls:>6s} {float(pct):8.2f}")
    return clock.end - clock.start


def plain_run(cfg, task: str, warmup: int, steps: int, device: str) -> tuple[float, int]:
    """What one would write by hand around the same module: its loss code, the configured
    optimizer and clipping, the same batches already on the device."""
    L.seed_everything(0, verbose=False)
    datamodule, model, _ = build(cfg)
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    batches = [tuple(t.to(device) for t in next(loader)) for _ in range(warmup + steps + 1)]
    model.to(device).train()
    optimizer = hydra.utils.instantiate(cfg.model.optimizer, params=model.parameters())
    clip = cfg.trainer.gradient_clip_val
    model.on_train_epoch_start()
    for i, batch in enumerate(batches[: warmup + steps]):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        loss = model.training_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
    sync(device)
    elapsed = time.perf_counter() - start
    return elapsed, sum(b[0].numel() if task == "charlm" else b[0].size(0) for b in batches[warmup : warmup + steps])


def steps_in_an_epoch(cfg) -> int:
    datamodule, _, _ = build(cfg)
    datamodule.setup("fit")
    return len(datamodule.train_dataloader())


def compare(task: str, batch_size: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        probe = config(task, batch_size, args.device, args.warmup + args.steps, tmp, args.overrides)
        steps = min(args.steps, steps_in_an_epoch(probe) - args.warmup - 1)
        cfg = config(task, batch_size, args.device, args.warmup + steps, tmp, args.overrides)
        plain, light, ratios = [], [], []
        for rep in range(args.reps):  # alternated, so drifts of a shared machine hit both alike
            t_plain, units = plain_run(cfg, task, args.warmup, steps, args.device)
            t_light = lightning_run(cfg, args.warmup, steps, args.device)
            plain.append(t_plain)
            light.append(t_light)
            ratios.append(t_plain / t_light)
            print(
                f"  rep {rep}: plain {units / t_plain:,.0f} {UNITS[task]}/s, lightning {units / t_light:,.0f} "
                f"{UNITS[task]}/s, ratio {ratios[-1]:.3f}",
                flush=True,
            )
        if args.profile:
            lightning_run(cfg, args.warmup, steps, args.device, profile=True)
    added_ms = 1000 * statistics.median((tl - tp) / steps for tl, tp in zip(light, plain, strict=False))
    return {
        "task": task,
        "batch": batch_size,
        "steps": steps,
        "unit": UNITS[task],
        "plain": units / statistics.median(plain),
        "lightning": units / statistics.median(light),
        "ratio": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "plain_ms": 1000 * statistics.median(plain) / steps,
        "added_ms": added_ms,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="both", choices=["charlm", "subseq", "both"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--profile", action="store_true", help="also print Lightning's SimpleProfiler report per setting")
    ap.add_argument("overrides", nargs="*", help="extra key=value config overrides for both loops")
    args = ap.parse_args()
    if min(*args.batch_sizes, args.reps, args.steps) < 1 or args.warmup < 0:
        ap.error("--batch-sizes, --reps and --steps take numbers of 1 or more, --warmup 0 or more")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but this machine has no usable CUDA GPU; use --device cpu")
    warnings.filterwarnings("ignore")
    what = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# {what}; torch {torch.__version__}, lightning {L.__version__}")
    rows = []
    try:
        for task in ["charlm", "subseq"] if args.task == "both" else [args.task]:
            for batch_size in args.batch_sizes:
                print(f"## {task}, batch {batch_size}", flush=True)
                rows.append(compare(task, batch_size, args))
    except Exception as e:  # a mistake in the overrides: seqlab-train's one line
        if (message := explain(e, args.overrides)) is None:
            raise
        sys.exit(f"error: {message}")
    print("\n| task | batch | steps | plain | Lightning | ratio (median, min–max) | plain ms/step ", end="")
    print("| Lightning adds ms/step |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['task']} | {r['batch']} | {r['steps']} | {r['plain']:,.0f} {r['unit']}/s "
            f"| {r['lightning']:,.0f} {r['unit']}/s "
            f"| {r['ratio']:.3f} ({r['min']:.3f}–{r['max']:.3f}) | {r['plain_ms']:.2f} | {r['added_ms']:.2f} |"
        )


if __name__ == "__main__":
    main()
