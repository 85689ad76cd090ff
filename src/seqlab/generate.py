"""Sample or predict from any task's checkpoint.

    python -m seqlab.generate ckpt_path=… prompt="the meaning of life" length=300 temperature=0.8 seed=1

temperature=0 is greedy; a seed makes sampling repeatable.
"""

from omegaconf import DictConfig, OmegaConf

from seqlab.checkpoint import load_module
from seqlab.cli import entry_point


@entry_point("generate")
def main(cfg: DictConfig) -> str:
    module, _ = load_module(cfg.ckpt_path)
    options = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
               if k in ("length", "temperature", "seed", "beam_width", "max_len") and v is not None}
    out = module.respond(cfg.prompt, **{k: v for k, v in options.items() if k in module.respond_options()})
    print(out)
    return out


if __name__ == "__main__":
    main()
