"""seqlab: small sequence models as Lightning modules driven by Hydra configs.

The task API: `seqlab.Task` (a LightningModule) and `seqlab.TaskData` (a LightningDataModule;
`seqlab.Batches` for its resumable loaders), `seqlab.SeqlabError` for a value a task cannot use,
`seqlab.types` for annotated arguments.
Imported when first named, so that `import seqlab` stays light.
"""

import importlib

__version__ = "0.1.0"

PUBLIC = {
    "Task": "seqlab.module",
    "TaskData": "seqlab.datamodule",
    "Batches": "seqlab.datamodule",
    "SeqlabError": "seqlab.errors",
    "evaluating": "seqlab.module",
    "types": "seqlab.types",
}


def __getattr__(name: str):
    if name not in PUBLIC:
        raise AttributeError(f"module 'seqlab' has no attribute {name!r}")
    module = importlib.import_module(PUBLIC[name])
    return module if module.__name__ == f"seqlab.{name}" else getattr(module, name)
