"""User-facing errors: one line that names the problem and the fix, exit code 2."""

import signal
import sys


class SeqlabError(Exception):
    """A problem with the user's input (config, data file, checkpoint, prompt).

    The message is shown as-is on one line, without a traceback.
    """


class Interrupted(Exception):
    """A run stopped by a signal (SIGINT, SIGTERM) at a step boundary: `message` is the one
    line to show, `code` the exit status (128 + the signal), `saved` whether a checkpoint to
    resume from exists."""

    def __init__(self, message: str, code: int, saved: bool):
        super().__init__(message)
        self.message, self.code, self.saved = message, code, saved


def exit_with(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def signal_name(signum: int) -> str:
    """How a stop line names the signal: Ctrl-C for SIGINT (what the user pressed)."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def warn(message: str) -> None:
    """One line the user should read, without stopping (Python's warnings print two)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


class SeqlabWarning(UserWarning):
    """Something the user should know about an answer (e.g. a question outside what the model
    learned); seqlab-generate shows it as one `warning:` line."""
