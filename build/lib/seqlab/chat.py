"""Chat with a dialogue checkpoint: one reply per line read from stdin, until EOF.

    seqlab-chat ckpt_path=outputs/dialogue/runs/<time>/checkpoints/last.ckpt
    printf 'hi\\nwho are you?\\n' | seqlab-chat ckpt_path=… beam_width=1

Words the model never saw read as <unk>; a line with no words at all (empty, or `***`) gets a
polite answer (conf/chat.yaml `empty_reply`), and an empty reply from the model shows as "...".
At a terminal a `> ` prompt is shown (on stderr, so that stdout holds only the replies).
Ctrl-C or Ctrl-D ends the chat.
"""

import sys

from omegaconf import DictConfig

from seqlab.checkpoint import load_module
from seqlab.cli import entry_point
from seqlab.tasks.dialogue.data import tokenize


def chat(module, lines, out, options: dict, empty_reply: str, prompt=None) -> int:
    """Answer each line of `lines` on `out`; returns how many lines were answered."""
    n = 0
    while True:
        if prompt:
            prompt()
        line = lines.readline()
        if not line:
            return n
        text = line.strip()
        reply = module.answer(text, **options) if tokenize(text) else empty_reply
        print(reply or "...", file=out, flush=True)  # a model that says <eos> at once still gets a line
        n += 1


@entry_point("chat")
def main(cfg: DictConfig) -> int:
    module, _ = load_module(cfg.ckpt_path, expect_task="dialogue", device=cfg.device)
    options = {"beam_width": cfg.beam_width, "max_len": cfg.max_len}
    module.answer("hi", **options)  # checks the options once, before the first line
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {cfg.ckpt_path}; Ctrl-D to quit", file=sys.stderr)

    def show_prompt():
        print("> ", end="", file=sys.stderr, flush=True)

    try:
        return chat(module, sys.stdin, sys.stdout, options, cfg.empty_reply, show_prompt if interactive else None)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
