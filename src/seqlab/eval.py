"""Test metrics of a checkpoint, on the data it was trained with (or data.* overrides).

    python -m seqlab.eval ckpt_path=outputs/charlm/runs/<time>/checkpoints/last.ckpt
"""

import hydra
from omegaconf import DictConfig, OmegaConf

from seqlab.checkpoint import load_datamodule, load_module
from seqlab.cli import entry_point


@entry_point("eval")
def main(cfg: DictConfig) -> dict:
    module, ckpt = load_module(cfg.ckpt_path)
    datamodule = load_datamodule(ckpt, OmegaConf.to_container(cfg.data, resolve=True))
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, _convert_="all")
    results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    for k, v in sorted(results.items()):
        print(f"{k}: {v:.4f}")
    return results


if __name__ == "__main__":
    main()
