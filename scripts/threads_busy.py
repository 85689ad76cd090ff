"""Torch's CPU threads on an idle and on a busy machine: the charlm recipe's training step (LSTM-512,
64 streams × 32 characters, Adam) timed with 1 thread and with every core, first alone, then
while another process trains the same network on one thread (a second job, a notebook…).

    python scripts/threads_busy.py [--steps 40]

Prints a markdown table of characters a second (the README's "Threads" numbers).
"""

import argparse
import multiprocessing as mp
import os
import time

import torch

from seqlab.tasks.charlm.model import CharRNN

BATCH, BPTT, VOCAB = 64, 32, 60


def steps(n: int, threads: int) -> float:
    """Characters a second over `n` training steps (after 3 warm-up steps)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = CharRNN(VOCAB, "lstm", 128, 512, 1, 0.3)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    x = torch.randint(VOCAB, (BATCH, BPTT))
    for i in range(n + 3):
        if i == 3:
            start = time.perf_counter()
        logp, _ = model(x)
        loss = torch.nn.functional.nll_loss(logp.reshape(-1, VOCAB), x.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return n * BATCH * BPTT / (time.perf_counter() - start)


def compete(stop):
    while not stop.is_set():
        steps(5, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps takes a number of 1 or more")
    cores = os.cpu_count()
    rows = [(f"idle, {t} thread(s)", steps(args.steps, t)) for t in (1, cores)]
    stop = mp.get_context("spawn").Event()
    other = mp.get_context("spawn").Process(target=compete, args=(stop,))
    other.start()
    time.sleep(5)  # the competitor is past its start-up
    rows += [(f"one other process busy, {t} thread(s)", steps(args.steps, t)) for t in (1, cores)]
    stop.set()
    other.join()
    print(f"charlm step (LSTM-512, {BATCH}×{BPTT}), {cores} cores, torch {torch.__version__}\n")
    print("| machine, threads | chars/s | vs idle, 1 thread |\n|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {rate / rows[0][1]:.2f}× |")


if __name__ == "__main__":
    main()
