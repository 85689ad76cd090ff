"""Chat with a dialogue checkpoint: one reply per line read from stdin, until EOF.

    seqlab-chat ckpt_path=outputs/dialogue/runs/<time>/checkpoints/last.ckpt
    printf 'hi\\nwho are you?\\n' | seqlab-chat ckpt_path=… beam_width=1

Words the model never saw read as <unk>; a line with no words at all (empty, or `***`) gets a
polite answer (conf/chat.yaml `empty_reply`), and an empty reply from the model shows as "...".
At a terminal a `> ` prompt is shown (on stderr, so that stdout holds only the replies).
Ctrl-C or Ctrl-D ends the chat.
"""

import sys

from omegaconf import DictConfig, OmegaConf

from seqlab.checkpoint import load_module
from seqlab.module import evaluating
from seqlab.run.cli import Context, tool_main
from seqlab.run.schema import check_options
from seqlab.tasks.dialogue.data import tokenize

TAKES = ["ckpt_path", "device", "empty_reply"]  # its own options; the others are those of the dialogue task's respond()


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
        with evaluating(module):
            reply = module.respond(text, **options) if tokenize(text) else empty_reply
        print(reply or "...", file=out, flush=True)  # a model that says <eos> at once still gets a line
        n += 1


def run(cfg: DictConfig, ctx: Context) -> int:
    module, _ = load_module(cfg.ckpt_path, expect_task="dialogue", device=cfg.device)
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
