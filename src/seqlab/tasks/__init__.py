"""The tasks: one folder each, with `data.py` (a TaskData), `model.py` (pure torch.nn)
and `module.py` (a Task), and their configs in seqlab/conf (data/<task>.yaml,
model/<task>.yaml, experiment/<task>*.yaml). Nothing here lists them: configs name the classes
by `_target_`, and a checkpoint records the classes that wrote it."""
