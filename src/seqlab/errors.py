"""What seqlab raises for a person to read, and the signals that stop a command.

Task code raises `SeqlabError` for input it cannot use (a value, a data file, a prompt); the
command's boundary (seqlab.run.cli) shows its message as one line with exit status 2.
"""

import signal
import sys

# What a scheduler or a terminal sends to end a command: each stops it at the next step boundary
# with its checkpoint written (a second one stops it at once).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGXCPU")
)


class SeqlabError(Exception):
    """Input seqlab cannot use. The message names the problem and the fix, on one line; `key`
    is the config key it is about, where there is one."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class Interrupted(BaseException):
    """A command stopped by a signal. Not an Exception: no sweeper or framework `except Exception`
    takes it for a failed job and goes on. `message` is the line to show, `code` the exit status
    (128 + the signal), `saved` whether a checkpoint to resume from exists."""

    def __init__(self, signum: int, message: str | None = None, saved: bool = False):
        super().__init__(f"stopped by {signal_name(signum)}" if message is None else message)
        self.signum, self.code, self.saved = signum, 128 + signum, saved
        self.message = str(self)
        self.plain = message is None  # (nothing said about what was kept)


class SeqlabWarning(UserWarning):
    """Something the user should know about an answer (e.g. a question outside what the model
    learned); the tools show it as one `warning:` line."""


def signal_name(signum: int) -> str:
    """How a stop line names the signal: Ctrl-C for SIGINT (what the user pressed)."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def warn(message: str) -> None:
    """One line the user should read, without stopping (Python's warnings print two)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
