"""Task registry: a checkpoint names its task, and the registry finds its classes.

A task is a folder under `seqlab/tasks/` with `module.py` (LightningModule with a
`task` class attribute) and `data.py` (LightningDataModule).
"""

from importlib import import_module

from seqlab.errors import SeqlabError

TASKS = {
    "charlm": ("seqlab.tasks.charlm.module:CharLMModule", "seqlab.tasks.charlm.data:CharLMDataModule"),
    "subseq": ("seqlab.tasks.subseq.module:SubseqModule", "seqlab.tasks.subseq.data:SubseqDataModule"),
    "arithmetic": ("seqlab.tasks.arithmetic.module:ArithmeticModule", "seqlab.tasks.arithmetic.data:ArithmeticDataModule"),
    "gru_toy": ("seqlab.tasks.gru_toy.module:GRUToyModule", "seqlab.tasks.gru_toy.data:GRUToyDataModule"),
    "dialogue": ("seqlab.tasks.dialogue.module:DialogueModule", "seqlab.tasks.dialogue.data:DialogueDataModule"),
}


def _load(spec: str):
    mod, _, name = spec.partition(":")
    return getattr(import_module(mod), name)


def task_classes(task: str):
    if task not in TASKS:
        raise SeqlabError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}")
    module_spec, data_spec = TASKS[task]
    return _load(module_spec), _load(data_spec)
