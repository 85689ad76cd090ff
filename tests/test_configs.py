"""The configs are the one source of every default, and every config names real arguments."""

import inspect

import pytest
import torch
from conftest import CONF, TASKS, config_node
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from seqlab.errors import SeqlabError
from seqlab.module import Task
from seqlab.run.cli import CONF_DIR
from seqlab.run.schema import check_arguments, check_config, locate

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
NEEDS_PACKAGE = {"dialogue_chatterbot": "chatterbot_corpus"}


def signature_of(cls) -> dict[str, inspect.Parameter]:
    """The keyword arguments of `cls(...)`, following `**kwargs` up to the base classes that take them."""
    params = {}
    for klass in [c for c in cls.__mro__ if "__init__" in vars(c)]:
        sig = list(inspect.signature(klass.__init__).parameters.values())[1:]
        params |= {p.name: p for p in sig if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in params}
        if not any(p.kind == p.VAR_KEYWORD for p in sig):
            return params
    return params


def _signature_matches_config(node: dict, cls, provided=()) -> None:
    params = signature_of(cls)
    args = {k: v for k, v in node.items() if k != "_target_"}
    for name, p in params.items():
        if p.default is not p.empty:
            # a default in Python as well as in YAML is two sources that can drift
            assert name not in args, f"{cls.__name__}.{name} has a default in its signature and in the config"
        else:
            assert name in args or name in provided, f"{cls.__name__}.{name} has no value in the config"
    for key, value in args.items():
        assert key in params, f"config key {key} is not an argument of {cls.__name__}"
        assert value != "???", f"{key} is left unset in the config"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_each_experiment_names_real_arguments_with_valid_values(experiment):
    if experiment in NEEDS_PACKAGE:
        pytest.importorskip(NEEDS_PACKAGE[experiment])
    data, model = config_node(experiment, "data"), config_node(experiment, "model")
    data_cls, module_cls = locate("data", data), locate("model", model)
    provided = data_cls(**{k: v for k, v in data.items() if k != "_target_"}).model_kwargs()
    _signature_matches_config(data, data_cls)
    _signature_matches_config(model, module_cls, provided)
    check_arguments("data", data_cls, {k: v for k, v in data.items() if k != "_target_"})
    check_arguments("model", module_cls, {k: v for k, v in model.items() if k != "_target_"}, provided=provided)
    # and the experiment's values build its task's network
    module = module_cls(**{k: v for k, v in model.items() if k != "_target_"}, **provided)
    assert experiment.startswith(module.task) and data_cls.__module__.startswith(f"seqlab.tasks.{module.task}.")
    assert sum(p.numel() for p in module.parameters()) > 0


@pytest.mark.parametrize("group", ["model/optimizer", "model/scheduler"])
def test_optimizer_and_scheduler_options_build_torch_objects(group):
    sched = torch.optim.lr_scheduler
    bases = (torch.optim.Optimizer,) if group.endswith("optimizer") else (sched.LRScheduler, sched.ReduceLROnPlateau)
    options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    assert {"adam", "adamw", "sgd"} <= set(options) or {"plateau", "multistep", "cosine", "none"} <= set(options)
    for option in options:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(
                config_name="train",
                overrides=["experiment=gru_toy_tutorial", f"{group}={option}"],
                return_hydra_config=True,
            )
        GlobalHydra.instance().clear()
        choices = dict(cfg.hydra.runtime.choices)
        plain = {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}
        plain["model"]["scheduler"] = OmegaConf.to_container(cfg.model.scheduler, resolve=True)  # (T_max interpolates)
        plain["callbacks"] = plain["logger"] = None  # (their folders interpolate the run's)
        check_config(plain, choices)  # the option's arguments fit its class's signature
        node = plain["model"][group.split("/")[1]]
        if not node:
            assert option == "none"
            continue
        # and the base class's configure_optimizers builds it
        opt = {"_target_": "torch.optim.SGD", "lr": 0.1} if group.endswith("scheduler") else node
        sched_node = node if group.endswith("scheduler") else {}
        m = Tiny(optimizer=opt, scheduler=sched_node, monitor="val/loss", monitor_mode="min")
        out = m.configure_optimizers()
        optimizer = out["optimizer"] if isinstance(out, dict) else out
        assert isinstance(optimizer, torch.optim.Optimizer)
        if sched_node:
            assert isinstance(out["lr_scheduler"]["scheduler"], bases)


class Tiny(Task):
    task = "tiny"

    def __init__(self, **common):
        super().__init__(**common)
        self.layer = torch.nn.Linear(3, 2)

    def training_loss(self, batch):
        return self.layer(batch).sum()

    def evaluate(self, batch, batch_idx, stage):
        pass


def test_callbacks_of_our_own_take_what_the_config_gives():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=False)
    GlobalHydra.instance().clear()
    callbacks = OmegaConf.to_container(cfg.callbacks, resolve=False)
    ours = {name: node for name, node in callbacks.items() if node["_target_"].startswith("seqlab.")}
    assert {"log_examples", "stop_on_non_finite", "step_checkpoint"} <= set(ours)
    for name, node in ours.items():
        _signature_matches_config(node, locate(name, node))


def test_every_built_in_task_is_a_task_of_the_public_api():
    """The built-in tasks are what a user's task is: seqlab.Task and seqlab.TaskData subclasses
    with the same declared name, nothing abstract left; the lifecycle lives in the base class."""
    from pathlib import Path

    import seqlab

    root = Path(seqlab.__file__).parent / "tasks"
    total = sum(len(p.read_text().splitlines()) for p in root.glob("*/module.py"))
    assert total <= 650, f"the task modules have {total} lines together"
    for task in TASKS:
        cls = locate("model", config_node(f"{task}_tutorial", "model"))
        data = locate("data", config_node(f"{task}_tutorial", "data"))
        assert issubclass(cls, seqlab.Task) and issubclass(data, seqlab.TaskData)
        assert cls.task == data.task == task and not inspect.isabstract(cls) and not inspect.isabstract(data)
        assert cls.responds()
        assert "configure_optimizers" not in vars(cls) and "on_validation_epoch_end" not in vars(cls)
        for name, p in inspect.signature(cls.respond).parameters.items():
            assert name in ("self", "prompt") or p.kind == p.KEYWORD_ONLY


def test_a_task_without_the_interface_says_what_is_missing():
    class Half(Task):
        task = "half"

    assert Half.__abstractmethods__ == {"training_loss", "evaluate"}
    with pytest.raises(TypeError):
        Half(optimizer={"_target_": "torch.optim.SGD", "lr": 0.1}, scheduler={}, monitor="val/loss", monitor_mode="min")
    assert not Tiny.responds()
    with pytest.raises(SeqlabError, match="the tiny task answers no prompts"):
        Tiny(optimizer={}, scheduler={}, monitor="val/loss", monitor_mode="min").respond("hi")


@pytest.mark.parametrize("tool", ["eval", "generate", "chat"])
def test_the_checkpoint_tools_help_lists_their_own_settings_not_the_training_groups(tool):
    from conftest import run_cli

    out = run_cli(f"seqlab.{tool}", "--help", in_process=True).stdout
    assert out.startswith(f"seqlab-{tool}: ") and "ckpt_path: null" in out
    assert "Configuration groups" not in out and "experiment:" not in out
    assert "== Configuration groups ==" in run_cli("seqlab.train", "--help", in_process=True).stdout


def test_a_bare_info_flag_prints_hydras_report():
    from conftest import run_cli

    proc = run_cli("seqlab.train", "experiment=gru_toy", "--info", in_process=True)
    assert proc.returncode == 0 and "Installed Hydra Plugins" in proc.stdout, proc.stderr[-2000:]
    proc = run_cli("seqlab.train", "--run", "--cfg", "job", "experiment=gru_toy", in_process=True)  # (Hydra's --run)
    assert proc.returncode == 0 and proc.stdout.startswith("name: gru_toy"), proc.stderr[-2000:]
