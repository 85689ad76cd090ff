"""Test metrics of a checkpoint, on the data it was trained with (or with data.<key>=… changed).

    seqlab-eval ckpt_path=outputs/charlm/runs/<time>/checkpoints/last.ckpt [data.path=other.txt]
"""

import signal
from contextlib import contextmanager

import hydra
from omegaconf import DictConfig, OmegaConf

from seqlab.checkpoint import load_datamodule, load_module
from seqlab.cli import entry_point
from seqlab.errors import Interrupted, SeqlabError, signal_name
from seqlab.validation import check_trainer


@contextmanager
def stop_on_signals():
    """Lightning turns Ctrl-C during a test into its own message and exit 1; SIGINT and SIGTERM
    here end with one line and 130 / 143 instead (an exception Lightning passes on)."""

    def stop(signum, frame):
        raise Interrupted(f"stopped by {signal_name(signum)}; the evaluation did not finish", 128 + signum, saved=True)

    before = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def data_overrides(args: list[str]) -> list[str]:
    """`data.<key>=…` changes a key of the checkpoint's own data settings, which eval.yaml
    cannot list (they depend on the task): add-or-override them."""
    return [f"++{a}" if a.startswith("data.") else a for a in args]


@entry_point("eval", rewrite=data_overrides)
def main(cfg: DictConfig) -> dict:
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    check_trainer(trainer_cfg)
    module, ckpt = load_module(cfg.ckpt_path)
    changes = OmegaConf.to_container(cfg.data, resolve=True)
    datamodule = load_datamodule(ckpt, cfg.ckpt_path, changes)
    datamodule.use_model(module)
    # Other data, yes; data of another shape (another example format, alphabet, vocabulary) than
    # the model was built for, no.
    for key, value in datamodule.model_kwargs().items():
        if key in module.hparams and module.hparams[key] != value:
            given = ", ".join(f"data.{k}={v}" for k, v in changes.items())
            raise SeqlabError(f"{given} changes the {key} this model was built for; evaluate it on data of its "
                              f"own format (drop those settings)")
    trainer = hydra.utils.instantiate(cfg.trainer, _convert_="all")
    with stop_on_signals():
        results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    for k, v in sorted(results.items()):
        print(f"{k}: {v:.4f}")
    return results


if __name__ == "__main__":
    main()
