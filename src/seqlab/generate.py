"""Sample or predict from any task's checkpoint.

    seqlab-generate ckpt_path=… prompt="the meaning of life" length=300 temperature=0.8 seed=1
    seqlab-generate ckpt_path=… prompt=12+7=? temperature=0

The options are those of the checkpoint's task's `respond` (its signature and docstring).
"""

import sys
import warnings

from omegaconf import DictConfig, OmegaConf

from seqlab.checkpoint import load_responder
from seqlab.errors import SeqlabWarning
from seqlab.module import answer
from seqlab.run.cli import Context, tool_main
from seqlab.run.schema import check_options

TAKES = ["ckpt_path", "prompt", "device"]  # its own options; the others are those of the checkpoint task's respond()


def run(cfg: DictConfig, ctx: Context) -> str:
    module = load_responder(cfg.ckpt_path, device=cfg.device)
    given = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "paths"}
    options = check_options("generate", given, TAKES, module.respond, module.task)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SeqlabWarning)
        out = answer(module, "" if cfg.prompt is None else str(cfg.prompt), options)  # (the task says what "" lacks)
    for w in caught:  # e.g. a question outside what the model learned: one line, then the answer
        if issubclass(w.category, SeqlabWarning):
            print(f"warning: {w.message}", file=sys.stderr)
    print(out)
    return out


main = tool_main("generate", run, TAKES)

if __name__ == "__main__":
    main()
