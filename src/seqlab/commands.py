"""The console scripts (seqlab-train, -eval, -generate, -chat). Importing a tool takes seconds
(torch, Lightning); a Ctrl-C in that time ends as one during a run does: one line and exit
130, not an import traceback."""

import importlib
import sys


def _run(tool: str):
    try:
        main = importlib.import_module(f"seqlab.{tool}").main
    except KeyboardInterrupt:
        print("stopped by Ctrl-C", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    return main()


def train():
    return _run("train")


def eval():  # noqa: A001 (the console script's name)
    return _run("eval")


def generate():
    return _run("generate")


def chat():
    return _run("chat")
