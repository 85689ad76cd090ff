"""Test metrics of a checkpoint, on the data it was trained with (or with data.<key>=… changed).

seqlab-eval ckpt_path=outputs/charlm/runs/<time>/checkpoints/last.ckpt [data.path=other.txt]
"""

import torch
from omegaconf import DictConfig, OmegaConf

from seqlab.checkpoint import data_class, load_datamodule, load_module
from seqlab.errors import SeqlabError
from seqlab.run.cli import Context, tool_main
from seqlab.run.schema import check_arguments, check_options, check_trainer
from seqlab.train import make

TAKES = ["ckpt_path", "data.<key>", "trainer", "trainer.<key>"]  # seqlab-eval's own options (trainer=gpu: a preset)


def run(cfg: DictConfig, ctx: Context) -> dict:
    given = OmegaConf.to_container(cfg, resolve=True)
    check_options("eval", {k: v for k, v in given.items() if k != "paths"}, TAKES)
    check_trainer(given["trainer"], "eval")
    module, ckpt = load_module(cfg.ckpt_path)
    devices, nodes = given["trainer"].get("devices"), given["trainer"].get("num_nodes") or 1
    one = devices in (1, "1") or isinstance(devices, list) and len(devices) == 1
    one = one or devices in ("auto", -1, "-1") and torch.cuda.device_count() <= 1  # (all there are: one)
    if nodes != 1 or not one:  # (Lightning would start the command again in other processes)
        raise SeqlabError(
            f"seqlab-eval tests on one device (it starts no other processes); drop trainer.devices={devices}"
            + (f" and trainer.num_nodes={nodes}" if nodes != 1 else "")
        )
    # data.<key>=… changes a setting of the checkpoint's own data (eval.yaml cannot list them).
    changes = given["data"]
    check_arguments("data", data_class(ckpt, cfg.ckpt_path), changes, provided=None)
    datamodule = load_datamodule(ckpt, cfg.ckpt_path, changes)
    datamodule.use_model(module)
    # Other data, yes; data of another shape (another example format, alphabet, vocabulary) than
    # the model was built for, no.
    for key, value in datamodule.model_kwargs().items():
        if key in module.hparams and module.hparams[key] != value:
            changed = ", ".join(f"data.{k}={v}" for k, v in changes.items())
            raise SeqlabError(
                f"{changed} changes the {key} this model was built for; evaluate it on data of its "
                f"own format (drop those settings)"
            )
    trainer = make("trainer", given["trainer"])
    results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    for k, v in sorted(results.items()):
        print(f"{k}: {v:.4f}")
    return results


main = tool_main("eval", run, TAKES)

if __name__ == "__main__":
    main()
