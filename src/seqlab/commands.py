"""The console scripts (seqlab-train, -eval, -generate, -chat). Importing a tool takes seconds
(torch, Lightning); a Ctrl-C or SIGTERM in that time ends as one during a run does: one line
and exit 130 / 143, not an import traceback."""

import importlib
import os
import signal
import sys

from seqlab.errors import STOP_SIGNALS, signal_name


def _stop_while_importing(signum, frame):
    # Nothing is written before the tool starts, so leaving at once loses nothing; raising
    # KeyboardInterrupt instead could leave a module half-imported behind an `except`.
    print(f"stopped by {signal_name(signum)} while starting; nothing was written", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def _fail(message: str):
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _cwd_exists() -> bool:
    try:
        os.getcwd()
        return True
    except FileNotFoundError:
        return False


def _run(tool: str):
    if not _cwd_exists():  # (torch's libraries fail to load, with a fatal error of their own, from a removed folder)
        _fail("the current folder was removed after the shell entered it; cd to a folder that exists")
    threads = os.environ.get("OMP_NUM_THREADS", "1").strip()
    if not all(n.isdigit() and int(n) > 0 for n in threads.split(",")):  # (OpenMP would say it, loaded with torch)
        _fail(
            f"the environment's OMP_NUM_THREADS={threads} is not a number of threads; set it to 1 or more, or unset it"
        )
    before = {s: signal.signal(s, _stop_while_importing) for s in STOP_SIGNALS}
    try:
        main = importlib.import_module(f"seqlab.{tool}").main
    except MemoryError:
        _fail("not enough memory to load torch and Lightning (a limit such as ulimit -v?); nothing was written")
    except FileNotFoundError:
        if _cwd_exists():
            raise
        _fail("the current folder was removed while seqlab started; nothing was written: cd to a folder that exists")
    for s, handler in before.items():
        signal.signal(s, handler)
    main()  # (its value is for sweepers; a console script's return would become its exit status)


def train():
    return _run("train")


def eval():  # noqa: A001 (the console script's name)
    return _run("eval")


def generate():
    return _run("generate")


def chat():
    return _run("chat")
