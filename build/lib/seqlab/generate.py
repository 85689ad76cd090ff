"""Sample or predict from any task's checkpoint.

    seqlab-generate ckpt_path=… prompt="the meaning of life" length=300 temperature=0.8 seed=1
    seqlab-generate ckpt_path=… prompt=12+7=? temperature=0

The options a task takes are those of its module's `respond` (conf/generate.yaml lists them).
"""

import sys
import warnings

from omegaconf import DictConfig, OmegaConf

from seqlab.checkpoint import load_module
from seqlab.cli import entry_point
from seqlab.errors import SeqlabError, SeqlabWarning

NOT_OPTIONS = ("ckpt_path", "prompt", "device", "paths")


def quote_prompt(args: list[str]) -> list[str]:
    """Take `prompt=12+7=?` as typed: the shell has already removed any quotes, and Hydra's
    grammar would read the symbols. A prompt already quoted for Hydra stays as it is."""
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key.lstrip("+") == "prompt" and not (value[:1] in "'\"" and value[-1:] == value[:1] and len(value) > 1):
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
            a = f"{key}={value}"
        out.append(a)
    return out


@entry_point("generate", rewrite=quote_prompt)
def main(cfg: DictConfig) -> str:
    module, _ = load_module(cfg.ckpt_path, device=cfg.device)
    if cfg.prompt is None:
        raise SeqlabError("no prompt given; pass prompt=…, e.g. prompt='the will to power'")
    options = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in NOT_OPTIONS and v is not None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SeqlabWarning)
        out = module.answer(str(cfg.prompt), **options)
    for w in caught:  # e.g. a question outside what the model learned: one line, then the answer
        if issubclass(w.category, SeqlabWarning):
            print(f"warning: {w.message}", file=sys.stderr)
    print(out)
    return out


if __name__ == "__main__":
    main()
