"""Chat with a dialogue checkpoint: one reply per line read from stdin, until EOF.

    python -m seqlab.chat ckpt_path=outputs/dialogue/runs/<time>/checkpoints/last.ckpt
    printf 'hi\\nwho are you?\\n' | python -m seqlab.chat ckpt_path=… beam_width=1

Words the model never saw read as <unk>; an empty line, or one with no words at all (`***`),
gets a polite answer (conf/chat.yaml `empty_reply`), and an empty reply from the model shows as "...". At a terminal a
`> ` prompt is shown (on stderr, so that stdout holds only the replies).
"""

import sys

from omegaconf import DictConfig

from seqlab.checkpoint import load_module
from seqlab.cli import entry_point
from seqlab.tasks.dialogue.data import tokenize


def chat(module, lines, out, beam_width: int, max_len: int, empty_reply: str, prompt=None) -> int:
    """Answer each line of `lines` on `out`; returns how many lines were answered."""
    n = 0
    while True:
        if prompt:
            prompt()
        line = lines.readline()
        if not line:
            return n
        # (the tokenizer drops some marks entirely: a line of them has nothing to answer)
        text = line.strip()
        reply = module.respond(text, beam_width=beam_width, max_len=max_len) if tokenize(text) else empty_reply
        # (a model that answers <eos> at once still gets a visible line)
        print(reply or "...", file=out, flush=True)
        n += 1


@entry_point("chat")
def main(cfg: DictConfig) -> int:
    module, _ = load_module(cfg.ckpt_path, expect_task="dialogue")
    # Check the options once, before the first line, so a typo fails at start and not mid-chat.
    module.respond("hi", beam_width=cfg.beam_width, max_len=cfg.max_len)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {cfg.ckpt_path} (beam width {cfg.beam_width}); Ctrl-D to quit", file=sys.stderr)

    def show_prompt():
        print("> ", end="", file=sys.stderr, flush=True)

    try:
        return chat(module, sys.stdin, sys.stdout, cfg.beam_width, cfg.max_len, cfg.empty_reply,
                    show_prompt if interactive else None)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 0


if __name__ == "__main__":
    main()
