"""Chat with a checkpoint: one reply (its task's respond()) per line read from stdin, until EOF.

    seqlab-chat ckpt_path=outputs/dialogue/runs/<time>/checkpoints/last.ckpt
    printf 'hi\\nwho are you?\\n' | seqlab-chat ckpt_path=… beam_width=1

A line the task cannot read (empty, or `***` for the dialogue model) gets a polite answer
(conf/chat.yaml `empty_reply`) and the reason on stderr; an empty reply shows as "...".
At a terminal a `> ` prompt is shown (on stderr, so that stdout holds only the replies).
Ctrl-C or Ctrl-D ends the chat.
"""

import sys

from omegaconf import DictConfig, OmegaConf

from seqlab.checkpoint import load_responder
from seqlab.errors import SeqlabError
from seqlab.module import answer
from seqlab.run.cli import Context, tool_main
from seqlab.run.schema import check_options

LONGEST = 100_000  # characters of one message
TAKES = ["ckpt_path", "device", "empty_reply"]  # its own options; the others are those of the task's respond()


def chat(module, lines, out, options: dict, empty_reply: str, prompt=None) -> int:
    """Answer each line of `lines` on `out`; returns how many lines were answered."""
    n = 0
    while True:
        if prompt:
            prompt()
        line = lines.readline(LONGEST + 1)
        if n == 0:  # (a file's byte-order mark is not the first message)
            line = line.removeprefix("\ufeff")
            if line.startswith(("\udcff\udcfe", "\udcfe\udcff")):  # (stdin keeps undecodable bytes as these)
                raise SeqlabError("the input is UTF-16 text; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8 <file>)")
        if not line:
            return n
        if len(line) > LONGEST and not skip_rest(lines):
            raise SeqlabError("the input has no line ends (binary data?); send text, one message a line")
        try:
            if len(line) > LONGEST:
                raise SeqlabError(f"a message is at most {LONGEST:,} characters; that line was skipped")
            if any("\udc80" <= c <= "\udcff" for c in line):
                raise SeqlabError("the line is not UTF-8 text; type it in UTF-8")
            reply = answer(module, line.strip(), options) if line.strip() else empty_reply
        except SeqlabError as e:  # a line this task cannot read: say why, and go on
            print(f"({e})", file=sys.stderr, flush=True)
            reply = empty_reply
        print(reply or "...", file=out, flush=True)  # a model that says <eos> at once still gets a line
        n += 1


def skip_rest(lines, chunks: int = 1000) -> bool:
    """Read to the end of an over-long line; False where no end comes (/dev/zero)."""
    for _ in range(chunks):
        chunk = lines.readline(LONGEST)
        if not chunk or chunk.endswith("\n"):
            return True
    return False


def run(cfg: DictConfig, ctx: Context) -> int:
    module = load_responder(cfg.ckpt_path, device=cfg.device)
    given = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "paths"}
    options = check_options("chat", given, TAKES, module.respond, module.task)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {cfg.ckpt_path}; Ctrl-D to quit", file=sys.stderr)

    def show_prompt():
        print("> ", end="", file=sys.stderr, flush=True)

    return chat(module, sys.stdin, sys.stdout, options, cfg.empty_reply, show_prompt if interactive else None)


main = tool_main("chat", run, TAKES)

if __name__ == "__main__":
    main()
