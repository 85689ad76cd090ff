"""User-facing errors: one line that names the problem and the fix, exit code 2."""

import sys


class SeqlabError(Exception):
    """A problem with the user's input (config, data file, checkpoint, prompt).

    The message is shown as-is on one line, without a traceback.
    """


def exit_with(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise SeqlabError(message)
