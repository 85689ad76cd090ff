"""Every seqlab tool's command line, and the one boundary where a failure becomes one line.

    argv ─► parse: Hydra's flags apart, overrides checked, resume= expanded ─► compose (once)
         ─► the tool's run(cfg, ctx)      (-m: Hydra's sweeper and launcher call it once per job)
    seqlab's, Hydra's, OmegaConf's, Lightning's or PyYAML's typed errors, a full or read-only disk
         ─► "error: <what, and how to fix it>", exit status 2  (seqlab.run.explain)
    a stop signal ─► "stopped by …", exit status 128 + the signal; anything else is a bug: traceback

Each resource a command makes (a run folder, its lock, a sweep folder, the signal handlers)
registers its own clean-up on the command's ExitStack as it is made.
"""

import argparse
import os
import re
import shlex
import signal
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from seqlab.errors import STOP_SIGNALS, Interrupted, SeqlabError, warn
from seqlab.run import sweep  # (registers the resolvers the configs use)
from seqlab.run.schema import MANAGED

try:
    CONF_DIR = str(resources.files("seqlab.conf"))
except ModuleNotFoundError:  # (python -m run in the checkout's src/: Python imports that seqlab first)
    sys.exit(
        f"error: the seqlab imported from {Path(__file__).parents[1]} has no configs (conf/ maps to seqlab.conf "
        f"when it is installed); run from another folder, or install the checkout: pip install -e <its folder>"
    )


def is_group(key: str) -> bool:
    """A config group of seqlab's (experiment, model/optimizer, …): its value picks a file."""
    return bool(re.fullmatch(r"\w+(/\w+)*", key)) and (Path(CONF_DIR) / key).is_dir()


PRINTING = ("cfg", "info", "help", "hydra_help", "version", "shell_completion")  # Hydra prints, runs nothing
INFO = ["all", "config", "defaults", "defaults-tree", "plugins", "searchpath"]
# What people used to argparse scripts type, and the override that means it.
FLAG_ALIASES = {
    "epochs": "trainer.max_epochs",
    "lr": "model.optimizer.lr",
    "learning_rate": "model.optimizer.lr",
    "batch_size": "data.batch_size",
    "bs": "data.batch_size",
    "gpus": "trainer.devices",
    "data": "data.path",
    "output_dir": "hydra.run.dir",
}


@dataclass
class Context:
    """What a tool's run(cfg, ctx) gets besides its config: the command's ExitStack, the overrides
    a run records (resume= replays them), and the run's folder once it has one."""

    stack: ExitStack
    command: str  # how the user starts this tool: seqlab-train or python -m seqlab.train
    overrides: list[str] = field(default_factory=list)
    sweep_job: bool = False
    run_dir: Path | None = None
    replaced: bool = False  # the folder at run_dir's path was made anew while the command ran

    def hold_run_dir(self) -> None:
        """Keep the run's folder open while the command runs (its inode cannot be reused meanwhile),
        and on the way out note whether the folder at its path is still it: after an rm -rf, the next
        checkpoint's save makes a new one."""
        fd = os.open(self.run_dir, os.O_RDONLY)

        def release(*_):
            try:
                self.replaced = not os.path.samestat(os.fstat(fd), self.run_dir.stat())
            except OSError as e:  # (another fault, e.g. EACCES, says nothing of a removal)
                self.replaced = isinstance(e, FileNotFoundError)
            finally:
                os.close(fd)

        self.stack.push(release)

    def removed(self) -> bool:
        return self.run_dir is not None and (self.replaced or not self.run_dir.is_dir())

    def continues(self) -> str:
        if self.run_dir is not None and (self.run_dir / "checkpoints" / "last.ckpt").is_file():
            return f"continue with: {resume_command(self.command, self.run_dir)}"
        return "nothing was kept; start it again"


def resume_command(command: str, folder) -> str:
    """The command that continues the run in `folder`, as it can be pasted into a shell."""
    return f"{command} resume={shlex.quote(str(folder))}"


@dataclass
class CommandLine:
    tool: str
    flags: list[str]  # Hydra's own, passed on as typed
    overrides: list[str]
    multirun: bool
    printing: bool


def parse(argv: list[str], tool: str, takes: list[str]) -> CommandLine:
    """Hydra's flags (wherever typed) apart from the overrides; dashed words that are not flags,
    what a tool does not take, and overrides Hydra cannot parse, each named with its fix."""
    from seqlab.run.explain import check_syntax
    from seqlab.run.schema import check_options, check_user_configs

    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--multirun", "-m", action="store_true")
    parser.add_argument("--run", "-r", action="store_true")  # (Hydra's: one job, as without -m)
    parser.add_argument("--config-dir", "-cd", action="append", default=[])
    parser.add_argument("--cfg", "-c", choices=["job", "hydra", "all"])
    parser.add_argument("--info", "-i", nargs="?", const="all", choices=INFO)
    parser.add_argument("--package", "-p")
    for flag in ("--resolve", "--shell-completion", "--help", "--hydra-help", "--version"):
        parser.add_argument(flag, *(["-h"] if flag == "--help" else []), action="store_true")
    try:
        ns, overrides = parser.parse_known_args(argv)
    except argparse.ArgumentError as e:
        raise SeqlabError(f"{e} (seqlab-{tool} --hydra-help lists these flags)") from None
    ns.multirun = ns.multirun or "hydra.mode=MULTIRUN" in (a.lstrip("+") for a in overrides)  # (Hydra's -m)
    flags = [  # (--run is what a command without -m does: not passed on)
        a
        for a in argv
        if a not in overrides and a not in ns.config_dir and not a.startswith(("-cd", "--config-d", "--run", "-r"))
    ]
    overrides = [a for a in overrides if a != "--"]  # (the shell's end of options: nothing to read)
    for a in (a for a in overrides if a.startswith("-")):
        name, _, value = a.lstrip("-").replace("-", "_").partition("=")
        after = [b for b in argv[argv.index(a) + 1 :][:1] if "=" not in b and not b.startswith("-")]
        example = f"{FLAG_ALIASES.get(name, name)}={value or (after or ['…'])[0]}"
        if name in ("config_name", "cn", "config_path", "cp"):  # Hydra's flags that pick the root config
            raise SeqlabError(
                f"{a}: seqlab-{tool} composes its own config ({tool}.yaml); pick settings with experiment=<name>, "
                f"and add a folder of your configs with --config-dir <folder>"
            )
        raise SeqlabError(f"{a} is not an option; overrides are written key=value without dashes, e.g. {example}")
    if tool != "train" and ns.config_dir:  # (a checkpoint names its task, whose code it finds itself)
        raise SeqlabError(f"seqlab-{tool} reads the checkpoint's own task and settings; drop --config-dir")
    if ns.run and ns.multirun:
        raise SeqlabError("--run asks for one job and -m for a sweep; keep one")
    printing = any(getattr(ns, name) for name in PRINTING)
    if ns.package and not ns.cfg:  # (Hydra would ignore it and train)
        raise SeqlabError(f"-p {ns.package} picks the part of the config that --cfg prints; add --cfg job")
    if printing and ns.multirun:
        raise SeqlabError("--cfg, --info and --help print and run nothing; drop -m (the config they show is a job's)")
    if tool != "train" and (ns.multirun or any(a.lstrip("+~").startswith(("hydra.", "hydra/")) for a in overrides)):
        raise SeqlabError(f"seqlab-{tool} writes no run folder and does not sweep: drop -m and hydra settings")
    if param := next((a for a in overrides if a.startswith("hydra.sweeper.params.")), None):  # (its key holds dots)
        name, _, value = param.removeprefix("hydra.sweeper.params.").partition("=")
        raise SeqlabError(
            f"hydra.sweeper.params.{name} cannot be set on the command line; give the search range as "
            f"the key itself: -m hparams_search=… '{name}={value}'"
        )
    keys = [a.lstrip("+~").partition("=")[0] for a in overrides]
    if managed := next((k for k in keys if k in MANAGED), None):  # (in a config file: check_config says it)
        raise SeqlabError(f"{managed} is seqlab's to set; pass {MANAGED[managed]} instead")
    swept = {k for a, k in zip(overrides, keys, strict=True) if ns.multirun and "," in a.partition("=")[2]}
    groups = [k for k in keys if is_group(k) or tool != "train" or k in swept]  # (else the last wins, as in Hydra)
    if twice := next((k for k in groups if keys.count(k) > 1), None):  # (two experiments: which one was meant?)
        typed = [a for a in overrides if a.lstrip("+~").partition("=")[0] == twice]
        raise SeqlabError(f"{twice} is given twice ({' '.join(typed)}); keep one")
    check_user_configs([Path(d).expanduser() for d in ns.config_dir], overrides)
    folders = ",".join(f"file://{Path(d).expanduser().resolve()}" for d in ns.config_dir)
    overrides = check_syntax(overrides + [f"hydra.searchpath=[{folders}]"] * bool(folders), ns.multirun or printing)
    if tool != "train":  # a tool's options depend on the checkpoint: added as given, checked by the tool
        for top in {a.lstrip("+~").split("=")[0].split(".")[0] for a in overrides}:  # (a group Hydra would load)
            if is_group(top) and top not in takes and f"{top}.<key>" not in takes:
                check_options(tool, {top: None}, takes + ["the options of its task's respond()"] * (tool != "eval"))
        for a in (a for a in overrides if "=" in a and f"{a.split('=')[0].lstrip('+~')}.<key>" in takes):
            top = a.split("=")[0].lstrip("+~")  # e.g. data=gru_toy: another task's data, or a preset
            if top not in takes:  # (seqlab-eval trainer=gpu: a preset of the tool's own)
                raise SeqlabError(
                    f"{a}: seqlab-{tool} keeps the checkpoint's own {top}; change its settings with {top}.<key>=…"
                )
        picks = [a for a in overrides if a.partition("=")[0] in takes and is_group(a.partition("=")[0])]
        overrides = [
            f"++{a}" if "=" in a and not a.startswith(("+", "~", "hydra.")) and a not in picks else a for a in overrides
        ]
    return CommandLine(tool, flags, overrides, ns.multirun, printing)


def compose(tool: str, overrides: list[str]):
    """The tool's config as the overrides make it; its `hydra` node becomes the HydraConfig, as in
    a job Hydra runs."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=CONF_DIR, job_name=tool, version_base="1.3"):
        cfg = hydra_compose(config_name=tool, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    task = cfg.copy()
    with open_dict(task):
        del task["hydra"]
    return task


def options(group: str, overrides: list[str]) -> list[str]:
    """The options of a config group: seqlab's and those of the user's folders the overrides add."""
    return sorted({p.stem for d in [Path(CONF_DIR), *searched(overrides)] for p in d.glob(f"{group}/*.yaml")})


def searched(overrides: list[str]) -> list[Path]:
    """The user's config folders an override list adds (--config-dir, or a resumed run's)."""
    paths = [a.partition("=[")[2].rstrip("]") for a in overrides if a.startswith("hydra.searchpath=")][-1:]
    return [Path(f.removeprefix("file://")) for a in paths for f in a.split(",") if f]


def given(hc, part: str = "task") -> list[str]:
    """The command line's overrides as typed (`part`: task or hydra), not read as interpolations."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(hc.overrides[part], resolve=False)


def recorded(hc) -> list[str]:
    """What a run records for resume= to replay: its overrides and the user's config folders."""
    return [*given(hc), *(o for o in given(hc, "hydra") if o.startswith("hydra.searchpath="))]


# ---- the command --------------------------------------------------------------------------------------
def command(tool: str, run, takes: list[str] = ()):
    """`run(cfg, ctx)` on the composed config (per job under -m), inside the boundary; returns its
    value (for sweepers). `takes`: the tool's own options."""
    from seqlab.run.explain import explain
    from seqlab.run.resume import resume_overrides
    from seqlab.run.schema import check_user_configs

    line, ctx = None, None
    try:
        with ExitStack() as stack:
            for s in STOP_SIGNALS:
                stack.callback(signal.signal, s, signal.signal(s, stop))
            if os.getcwd() not in sys.path:  # the user's own code; last, so a tensorboard.py there hides no package
                sys.path.append(os.getcwd())
                stack.callback(sys.path.remove, os.getcwd())
            setup_process()
            line, ctx = parse(sys.argv[1:], tool, list(takes)), Context(stack, command_name(tool))
            if tool == "train" and (resumed := resume_overrides(line.overrides, line.multirun)) != line.overrides:
                line.overrides = resumed  # (as typed without resume=; the run's experiment file is read now)
                check_user_configs(searched(resumed), resumed)
            if "--version" in line.flags:  # (Hydra's would name Hydra's)
                return print(versions())
            if line.printing:
                return hydra_main(line, lambda cfg: None)
            result = sweep_or_run(line, run, ctx) if tool == "train" else run(compose(tool, line.overrides), ctx)
            sys.stdout.flush()
            if lost := getattr(sys.stdout, "lost", None):
                done = (
                    f"; the run is complete: {ctx.run_dir}" if ctx.run_dir else "; run it with stdout open (> out.txt)"
                )
                done = "; the sweep is complete (its folder's summary.md lists the jobs)" if line.multirun else done
                raise SeqlabError(f"the output could not be written to stdout ({lost.strerror}){done}")
            return result
    except (KeyboardInterrupt, Interrupted) as e:  # (KeyboardInterrupt: a Ctrl-C before our handler)
        stopped = e if isinstance(e, Interrupted) else Interrupted(signal.SIGINT)
        before = tool == "train" and stopped.plain
        if stopped.message:  # (empty: the processes it spawned said it)
            print(stopped.message + (" before training began; nothing was kept" if before else ""), file=sys.stderr)
        raise SystemExit(stopped.code) from None
    except BrokenPipeError:  # the reader of our output went away (| head): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(128 + signal.SIGPIPE) from None
    except Exception as e:
        message = explain(e, line.overrides if line else [], ctx)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def versions() -> str:
    """What a bug report needs: seqlab's version and its libraries'."""
    from importlib.metadata import version

    libraries = ("torch", "lightning", "hydra-core", "omegaconf", "pydantic")
    return f"seqlab {version('seqlab')} (" + ", ".join(f"{n} {version(n)}" for n in libraries) + ")"


def stop(signum, frame):
    """A stop signal before training began (module-level: DDP's spawn pickles the handlers Lightning saves)."""
    raise Interrupted(signum)


def sweep_or_run(line: CommandLine, run, ctx: Context):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    cfg = compose("train", sweep.grid_jobs(line.overrides)[0][0] if line.multirun else line.overrides)
    if line.multirun or HydraConfig.get().mode == RunMode.MULTIRUN:  # (an hparams_search sets MULTIRUN itself)
        return sweep.run_sweep(line, cfg, run, ctx)
    ctx.overrides = recorded(HydraConfig.get())
    for a in (a for a in line.overrides if a.lstrip("+").startswith(("hydra/launcher=", "hydra/sweeper="))):
        warn(f"{a} acts on a sweep, and this is one run; add -m to sweep")
    if verbose := HydraConfig.get().verbose:  # (Hydra's flag: debug logging of every logger, or those named)
        import logging

        logging.basicConfig(stream=sys.stderr, format="[%(name)s][%(levelname)s] %(message)s")
        for name in [None] if verbose is True else [verbose] if isinstance(verbose, str) else verbose:
            logging.getLogger(name).setLevel(logging.DEBUG)
    return run(cfg, ctx)


def hydra_main(line: CommandLine, task):
    """Hydra's own main (its flags, sweeper and launcher) on this command line."""
    import hydra

    sys.argv[1:] = [*line.overrides, f"hydra.job.name={line.tool}", *line.flags]  # (a bare --info takes no word)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # its errors reach the boundary, not its own report
    return hydra.main(config_path=CONF_DIR, config_name=line.tool, version_base="1.3")(task)()


def command_name(tool: str) -> str:
    """How the user started this tool: `seqlab-train` or `python -m seqlab.train`."""
    return f"seqlab-{tool}" if Path(sys.argv[0]).name.startswith("seqlab-") else f"python -m seqlab.{tool}"


class Unread:
    """stdout that cannot be written (`| head` has ended; a full disk, a read-only file): the command
    goes on, its lines into /dev/null; `lost` keeps why, unless nobody was reading any more."""

    def __init__(self, stream):
        self.stream, self.lost = stream, None

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def write(self, text: str) -> int:
        return self.guard(self.stream.write, text) or len(text)

    def flush(self) -> None:
        self.guard(self.stream.flush)

    def guard(self, write, *text):
        try:
            return write(*text)
        except OSError as e:
            self.lost = self.lost or (None if isinstance(e, BrokenPipeError) else e)
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())


def setup_process() -> None:
    """Closed stdin, stdout or stderr (`<&-`) read and write /dev/null instead (else the first file
    opened takes that number); and none of what Lightning says that does not concern a seqlab run
    (start-up notes and advertisements, hints about data-loading workers, a torch deprecation)."""
    import threading

    from seqlab.run.explain import FAULTS

    closed = []
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError as e:
            os.dup2(os.open(os.devnull, os.O_RDWR), fd)
            closed += [e] * (fd == 1)
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode))  # noqa: SIM115 (for the process's lifetime)
        if fd and hasattr(getattr(sys, name), "reconfigure"):  # (PYTHONIOENCODING=ascii and a sample's 'ä')
            getattr(sys, name).reconfigure(errors="backslashreplace")
    if not isinstance(sys.stdout, Unread):
        sys.stdout = Unread(sys.stdout)
    sys.stdout.lost = sys.stdout.lost or (closed[0] if closed else None)  # (>&-: what it prints goes nowhere)
    default_hook = threading.excepthook  # a writer thread's full or read-only disk: the command says it, once

    def thread_failed(a):
        e, run = a.exc_value, os.environ.get("SEQLAB_RUN_DIR")
        gone = isinstance(e, FileNotFoundError) and run and os.fsdecode(e.filename or "").startswith(run + os.sep)
        return isinstance(e, OSError) and (e.errno in FAULTS or gone) or default_hook(a)  # (gone: removed by hand)

    threading.excepthook = thread_failed
    quiet_libraries()


def quiet_libraries() -> None:
    """In each process that trains (a parallel sweep's workers too)."""
    import logging
    import warnings

    from lightning.fabric.utilities.warnings import PossibleUserWarning

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.trainer.connectors.signal_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # (it ends the other processes when one has stopped: trainer=ddp_cpu and a signal, said once by rank 0)
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=PossibleUserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"lightning\.")
    # (seqlab's iterable datasets have a length, and each rank's share is cut to the same size)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"lightning\.pytorch\.utilities\.data")
    # (the model summary cannot size bf16 weights, and says so: its table is still right)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"lightning\.pytorch\.utilities\.model_summary")
    # (a resumed run's checkpoints folder is not empty: it is the run's own)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"lightning\.pytorch\.callbacks\.model_checkpoint")


def tool_main(tool: str, run, takes: list[str] = ()):
    """The `main()` of a tool module: `python -m seqlab.<tool>` and the console scripts."""
    return lambda: command(tool, run, takes)
