"""Every seqlab tool's command line, and the one boundary where a failure becomes one line.

    argv ──► CommandLine: Hydra's flags apart, overrides checked, resume= expanded   (this file)
         ──► compose: Hydra's compose API, once                                       (this file)
         ──► the tool's run(cfg, ctx): check ─► claim a run folder ─► build ─► fit ─► test ─► report
         (-m: Hydra's sweeper and launcher call run(cfg, ctx) once per job, each in its job folder)

    SeqlabError, Hydra's and OmegaConf's errors, Lightning's MisconfigurationException,
    a full or read-only disk ──► "error: <what and how to fix it>", exit status 2
    a stop signal ──► "stopped by …", exit status 128 + the signal
    anything else is a bug and keeps its traceback.

Each resource a command makes (a run folder, its lock, a sweep folder, the signal handlers)
registers its own clean-up on the command's ExitStack as it is made.
"""

import argparse
import difflib
import errno
import os
import signal
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from seqlab.errors import STOP_SIGNALS, Interrupted, SeqlabError, signal_name
from seqlab.run import sweep  # (registers the resolvers the configs use)

CONF_DIR = str(resources.files("seqlab.conf"))
# Hydra's flags that print something and exit, without running the tool.
PRINTING = ("cfg", "info", "help", "hydra_help", "version", "shell_completion")
# What people used to argparse scripts type, and the override that means it.
FLAG_ALIASES = {"epochs": "trainer.max_epochs", "max_epochs": "trainer.max_epochs", "lr": "model.optimizer.lr",
                "learning_rate": "model.optimizer.lr", "batch_size": "data.batch_size", "bs": "data.batch_size",
                "gpus": "trainer.devices", "devices": "trainer.devices", "data": "data.path", "output_dir": "hydra.run.dir"}


@dataclass
class Context:
    """What a tool's run(cfg, ctx) gets besides its config: the command's ExitStack, the overrides
    to record with the run (resume= replays them), and the run folder once it has one."""

    stack: ExitStack
    command: str  # how the user starts this tool: seqlab-train or python -m seqlab.train
    overrides: list[str] = field(default_factory=list)
    sweep_job: bool = False
    run_dir: Path | None = None

    def continues(self) -> str:
        """How to continue this run, or that there is nothing to continue."""
        if self.run_dir is not None and (self.run_dir / "checkpoints" / "last.ckpt").is_file():
            return f"continue with: {self.command} resume={self.run_dir}"
        return "nothing was kept; start it again"


@dataclass
class CommandLine:
    tool: str
    flags: list[str]  # Hydra's own, passed on as given
    overrides: list[str]
    multirun: bool = False
    printing: bool = False


def parse(argv: list[str], tool: str, takes: list[str] = ()) -> CommandLine:
    """Hydra's flags (wherever they are typed) apart from the overrides, and the slips of typing
    that would otherwise end in an argparse usage block or a Hydra parse error."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--multirun", "-m", action="store_true")
    parser.add_argument("--config-dir", "-cd", action="append", default=[])
    parser.add_argument("--cfg", "-c", choices=["job", "hydra", "all"])
    parser.add_argument("--info", "-i", nargs="?", const="all",
                        choices=["all", "config", "defaults", "defaults-tree", "plugins", "searchpath"])
    parser.add_argument("--package", "-p")
    parser.add_argument("--resolve", action="store_true")
    parser.add_argument("--shell-completion", "-sc", action="store_true")
    for name in ("--help", "--hydra-help", "--version"):
        parser.add_argument(name, *(["-h"] if name == "--help" else []), action="store_true")
    try:
        ns, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as e:
        raise SeqlabError(f"{e} (seqlab-{tool} --hydra-help lists these flags)") from None
    for a in rest:
        if a.startswith("-"):
            name, eq, value = a.lstrip("-").partition("=")
            i = argv.index(a)
            if not eq and i + 1 < len(argv) and "=" not in argv[i + 1] and not argv[i + 1].startswith("-"):
                value = argv[i + 1]
            key = FLAG_ALIASES.get(name.replace("-", "_"), name.replace("-", "_"))
            raise SeqlabError(f"{a} is not an option; overrides are written key=value without dashes, e.g. "
                              f"{key}={value or '…'}")
    overrides = list(rest)
    if ns.config_dir:
        if any(a.startswith("hydra.searchpath=") for a in overrides):
            raise SeqlabError("--config-dir and hydra.searchpath= both add config folders; use one of them")
        folders = ",".join(f"file://{Path(d).expanduser().resolve()}" for d in ns.config_dir)
        overrides.append(f"hydra.searchpath=[{folders}]")
    flags = [a for a in argv if a not in rest and a not in ns.config_dir and a not in ("--config-dir", "-cd")
             and not a.startswith("--config-dir=")]
    printing = any(getattr(ns, name) for name in PRINTING)
    if printing and ns.multirun:
        raise SeqlabError("--cfg, --info and --help print and run nothing; drop -m (the config they show is a job's)")
    sweep_param = next((a for a in rest if a.lstrip("+~").startswith("hydra.sweeper.params.")), None)
    if sweep_param:  # its keys hold dots (model.lr), which an override cannot name
        name, _, value = sweep_param.lstrip("+~").removeprefix("hydra.sweeper.params.").partition("=")
        raise SeqlabError(f"hydra.sweeper.params.{name} cannot be set on the command line; give the search range as "
                          f"the key itself: -m hparams_search=… '{name}={value.strip(chr(34) + chr(39)) or 'choice(1,2)'}'")
    if tool != "train":
        if ns.multirun:
            raise SeqlabError(f"seqlab-{tool} does not sweep; drop -m (a loop in the shell runs it for several "
                              f"checkpoints)")
        hydra_key = next((a for a in overrides if a.lstrip("+~").startswith(("hydra.", "hydra/"))
                          and not a.startswith("hydra.searchpath=")), None)
        if hydra_key is not None:
            raise SeqlabError(f"seqlab-{tool} writes no run folder, so it takes no Hydra settings; drop "
                              f"{hydra_key.split('=')[0]}")
    overrides = quoted(overrides, ns.multirun)
    if tool != "train":  # a tool's options depend on the checkpoint: added or overridden, checked by the tool
        from seqlab.run.schema import check_options

        for a in overrides:  # (a config group the tool has not, e.g. experiment=: Hydra would try to load it)
            top = a.lstrip("+~").split("=")[0].split(".")[0]
            if (Path(CONF_DIR) / top).is_dir() and top not in takes and f"{top}.<key>" not in takes:
                check_options(tool, {top: None}, takes)
        overrides = [f"++{a}" if "=" in a and not a.startswith(("+", "~", "hydra.")) else a for a in overrides]
    check_syntax(overrides, ns.multirun or printing)
    return CommandLine(tool, flags, overrides, ns.multirun, printing)


def quoted(overrides: list[str], multirun: bool) -> list[str]:
    """Values taken as typed, which Hydra's grammar would read as syntax: a prompt (`prompt=12+7=?`:
    the shell has already removed any quotes) and paths (a grid job's folder holds '=' and ','),
    unless -m sweeps them. A value already quoted for Hydra stays as it is."""
    paths = ("resume",) if multirun else ("resume", "ckpt_path", "data.path")
    out = []
    for a in overrides:
        key, eq, value = a.partition("=")
        literal = key.lstrip("+") == "prompt" or (key.lstrip("+") in paths and "${" not in value
                                                  and any(c in value for c in "=,[]{}()' "))
        if eq and literal and not (len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]):
            a = f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        out.append(a)
    return out


def check_syntax(overrides: list[str], sweeping: bool) -> None:
    """Each override as Hydra's parser reads it; a value with commas outside -m is a sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for i, a in enumerate(overrides):
        try:
            parsed = parser.parse_overrides([a])[0]
        except OverrideParseException:
            raise SeqlabError(parse_hint(a, overrides[i - 1] if i else "", overrides[i + 1 : i + 3])) from None
        if parsed.is_sweep_override() and not sweeping and not a.startswith("hydra."):
            raise SeqlabError(f"{a}: a value with commas is a sweep; add -m to sweep it, or write a list in brackets, "
                              f"e.g. '{parsed.key_or_group}=[{a.split('=', 1)[1]}]'", parsed.key_or_group)


def parse_hint(a: str, before: str, after: list[str]) -> str:
    """The usual slips behind an override Hydra cannot parse, each with its fix."""
    key, eq, value = a.partition("=")
    if not eq:
        if ":" in a and not a.startswith(("'", '"')):
            return f"{a!r} is not key=value; write {a.replace(':', '=', 1)} (overrides use =, not :)"
        if after and after[0].startswith("="):  # `key = value` or `key =value`
            value = after[0][1:] or (after[1] if len(after) > 1 else "…")
            return f"{a!r} is not key=value: write no spaces around =, e.g. {a}={value}"
        before = before.replace("'", "").replace('"', "") if "=" in before else ""
        split = f" (quote it whole: '{before} {a}')" if before else ""
        return (f"{a!r} is not key=value: a stray word, or part of a value the shell split at a space{split}; "
                f"drop it or write key=value")
    if any(q in value for q in "“”‘’"):
        return f"{a!r} has typographic quotes; use straight quotes ' or \" (or none): {key}={value.strip('“”‘’')}"
    if value.endswith(","):
        return f"{a!r} ends with a comma; drop it ({key}={value.rstrip(',')}), or add -m and a second value to sweep"
    for opening, closing in ("[]", "{}", "()"):
        missing = value.count(opening) - value.count(closing)
        if missing > 0:
            return f"{a!r} has an unclosed '{opening}'; close it: {key}={value}{closing * missing}"
        if missing < 0:
            return f"{a!r} has a '{closing}' that no '{opening}' opens; match them"
    if any(value.count(q) % 2 for q in "'\""):
        return f"{a!r} has an unclosed quote; close it, or drop the quotes"
    return (f"cannot parse {a!r}; quote a value with spaces or symbols for Hydra, e.g. "
            f"'{key}=\"{value}\"'")


# ---- composing --------------------------------------------------------------------------------------
def compose(tool: str, overrides: list[str]):
    """The tool's config as the overrides make it; its `hydra` node becomes the HydraConfig, as
    in a job Hydra runs."""
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


def first_job(overrides: list[str]) -> list[str]:
    """A sweep's first job: each list of values replaced by its first (a search range by the
    config's own value), so that it is checked before the sweep makes anything."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    jobs = []
    for text, o in zip(overrides, OverridesParser.create().parse_overrides(overrides), strict=True):
        if not o.is_sweep_override():
            jobs.append(text)
        elif o.is_discrete_sweep():
            values = list(o.sweep_string_iterator())
            if not values:
                raise SeqlabError(f"the sweep has no jobs ({text} is empty); check the -m values", o.key_or_group)
            jobs.append(f"{o.get_key_element()}={values[0]}")
    return jobs


# ---- the boundary ----------------------------------------------------------------------------------
def command(tool: str, run, takes: list[str] = ()):
    """The tool's command: `run(cfg, ctx)` on the composed config (per job under -m), inside the
    boundary. Returns what `run` returns (a sweeper optimises it). `takes`: a tool's own options."""
    ctx = None
    try:
        with ExitStack() as stack:
            guard_streams()
            for s in STOP_SIGNALS:
                stack.callback(signal.signal, s, signal.signal(s, stop))
            stack.callback(sys.path.remove, os.getcwd()) if os.getcwd() not in sys.path else None
            sys.path.insert(0, os.getcwd()) if os.getcwd() not in sys.path else None  # user code, as python -m finds it
            quiet_lightning()
            line = parse(sys.argv[1:], tool, takes)
            ctx = Context(stack, command_name(tool))
            if tool == "train" and any(a.startswith("resume=") for a in line.overrides):
                from seqlab.run.resume import resume_overrides

                if line.multirun:
                    raise SeqlabError("resume= continues one run and cannot be swept; drop -m (resume each sweep "
                                      "job's folder on its own: resume=outputs/<name>/multirun/<time>/<job>)")
                from hydra.core.override_parser.overrides_parser import OverridesParser

                given = next(a for a in reversed(line.overrides) if a.startswith("resume="))
                line.overrides = resume_overrides(OverridesParser.create().parse_override(given).value(), line.overrides)
            if line.printing:
                return hydra_main(line, lambda cfg: None)
            if tool == "train":
                return sweep_or_run(line, run, ctx)
            return run(compose(tool, line.overrides), ctx)
    except KeyboardInterrupt:  # (SIGINT before the handler was set)
        report_stop(Interrupted(signal.SIGINT), tool)
    except Interrupted as e:
        report_stop(e, tool)
    except BrokenPipeError:  # the reader of our output went away (| head): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(128 + signal.SIGPIPE) from None
    except Exception as e:
        message = explain(e, line.overrides if "line" in locals() else [], ctx)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def report_stop(e: Interrupted, tool: str):
    started = e.message != str(Interrupted(e.signum))
    tail = "" if started or tool != "train" else " before training began; nothing was kept"
    print(e.message + tail, file=sys.stderr, flush=True)
    raise SystemExit(e.code)


def stop(signum, frame):
    """A stop signal before training has begun, or outside it (module-level: DDP's spawn pickles
    the handlers Lightning saves)."""
    raise Interrupted(signum)


def sweep_or_run(line: CommandLine, run, ctx: Context):
    from hydra.types import RunMode

    from hydra.core.hydra_config import HydraConfig

    cfg = compose("train", first_job(line.overrides) if line.multirun else line.overrides)
    hc = HydraConfig.get()
    if not line.multirun and hc.mode != RunMode.MULTIRUN:  # (an hparams_search sets MULTIRUN itself)
        ctx.overrides = recorded(hc)
        return run(cfg, ctx)
    line.multirun = True
    return sweep.run_sweep(line, cfg, run, ctx)


def given(hc, part: str = "task") -> list[str]:
    """The command line's overrides as typed (`part`: task or hydra), not as interpolations."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(hc.overrides[part], resolve=False)


def recorded(hc) -> list[str]:
    """What a run records for resume= to replay: its overrides and the user's config folders."""
    return [*given(hc), *(o for o in given(hc, "hydra") if o.startswith("hydra.searchpath="))]


def hydra_main(line: CommandLine, task):
    """Hydra's own main (its flags, sweeper and launcher) on this command line."""
    import hydra

    sys.argv[1:] = [*line.flags, *line.overrides, f"hydra.job.name={line.tool}"]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # its errors reach the boundary, not its own report
    return hydra.main(config_path=CONF_DIR, config_name=line.tool, version_base="1.3")(task)()


def explain(e: BaseException, overrides: list[str], ctx: Context | None) -> str | None:
    """The one line for a failure the user can fix; None for anything else (a bug)."""
    from hydra.errors import HydraException, MissingConfigException
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    import yaml
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    if isinstance(e, SeqlabError):
        return deleted(e.key, str(e), overrides) or str(e)
    if isinstance(e, MissingConfigException) and e.options is not None:
        group, _, option = str(e.missing_cfg_file).rpartition("/")
        close = difflib.get_close_matches(option, e.options, n=1)
        hint = f"did you mean {group}={close[0]}? " if close else ""
        return f"no config {option!r} in group {group!r}; {hint}options: {', '.join(sorted(e.options)) or '(none)'}"
    for err in (e, e.__cause__):  # (Hydra raises its own error from OmegaConf's, which names the key)
        if isinstance(err, (ConfigKeyError, ConfigAttributeError)) and err.full_key and err.parent_node is not None:
            return deleted(err.full_key, f"{err.full_key} is not in the config", overrides) or unknown_key(err, overrides)
        if isinstance(err, OmegaConfBaseException) and err.full_key:
            message = f"{err.full_key}: {str(err.msg).strip().splitlines()[0]}"
            return deleted(err.full_key, message, overrides) or f"{message}; fix that value"
    if isinstance(e, (HydraException, OmegaConfBaseException, MisconfigurationException)):
        return one_line(str(e))
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:  # a config file of the user's
        mark = e.problem_mark
        return f"{mark.name} is not valid YAML: {e.problem} at line {mark.line + 1}, column {mark.column + 1}; fix it there"
    if isinstance(e, OSError) and e.errno in FAULTS and e.filename:
        return f"{e.strerror} ({e.filename}); {FAULTS[e.errno]}; {ctx.continues() if ctx else 'start it again'}"
    return None


FAULTS = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space (over the disk quota)",
          errno.EROFS: "the disk is read-only: make it writable", errno.EACCES: "check the folder's permissions"}


def deleted(key: str | None, message: str, overrides: list[str]) -> str | None:
    """A setting the run needs, deleted with ~key on the command line: the ~ is the mistake."""
    for a in overrides:
        gone = a[1:].split("=", 1)[0] if a.startswith("~") else ""
        if gone and key and (key == gone or key.startswith(gone + ".")):
            if "." not in gone:  # a whole node: ~trainer
                return f"{a} removes the {gone} settings every run needs; drop it (another option: {gone}=<option>)"
            return f"~{gone} deleted a setting this run needs ({message.split(';')[0]}); drop ~{gone}"
    return None


def unknown_key(e, overrides: list[str]) -> str:
    """A key the config does not have: the near one, the class's own argument (+key), or the
    node's keys; a group name typed wrong; a callback or logger the run lacks."""
    import inspect

    import hydra

    key = next((a.lstrip("+~").split("=")[0] for a in overrides if a.lstrip("+~").startswith(e.full_key)), e.full_key)
    node, name = e.parent_node, key[len(e.full_key) - len(str(e.key)):].split(".")[0]
    where = e.full_key[: -len(str(e.key))].rstrip(".")
    value = next((a.split("=", 1)[1] for a in overrides if a.lstrip("+~").startswith(key + "=")), "…")
    groups = [p.name for p in Path(CONF_DIR).iterdir() if p.is_dir() and not p.name.startswith("_")]
    if not where and difflib.get_close_matches(name, groups, n=1, cutoff=0.75):  # experimnet=gru_toy
        return f"unknown config key {key!r}; did you mean {difflib.get_close_matches(name, groups, n=1)[0]}={value}?"
    if where.split(".")[0] in ("callbacks", "logger") and where.count(".") == 0 and "." in key[len(where) + 1 :]:
        have = ", ".join(node.keys()) or "none"
        if where == "logger":
            return f"this run has no logger {name} (its loggers: {have}); pick loggers with logger=…, e.g. logger=many"
        return (f"this run has no callback {name} (its callbacks: {have}); add one with '+callbacks.{name}="
                "{_target_:lightning.pytorch.callbacks.EarlyStopping,monitor:val/loss,patience:5}'")
    known, label = [k for k in node.keys() if k != "_target_"], where
    if "_target_" in node:
        try:
            cls = hydra.utils.get_class(node["_target_"])
            params = [p for p in inspect.signature(cls).parameters if p not in ("self", "params", "optimizer", "args",
                                                                                  "kwargs")]
            label = f"the {cls.task} {where}" if getattr(cls, "task", "") else where
        except Exception:  # a _target_ that does not import: its own line comes when it is checked
            params = []
        owner = str(node["_target_"]).rsplit(".", 1)[-1]
        if name in params:
            return f"{key} is an argument of {owner} that this config leaves at its default; add it with +{key}={value}"
        if not where.startswith(("model", "data")) or where.count("."):  # a class seqlab does not own
            close = difflib.get_close_matches(name, params, n=1)
            hint = f"did you mean {where}.{close[0]}=…?" if close else f"its arguments: {', '.join(params)}"
            return f"{key} is not an argument of {owner}; {hint}"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    prefix = f"{where}." if where else ""
    hint = f"did you mean {prefix}{close[0]}=…?" if close else (
        f"{label} has: {', '.join(prefix + k for k in known)}" if where else "this config has no such key")
    return f"unknown config key {key!r}; {hint} (list the keys with --cfg job)"


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).strip().splitlines() if line.strip()) or "unknown error"


# ---- the process around the command ----------------------------------------------------------------
def command_name(tool: str) -> str:
    """How the user started this tool: `seqlab-train` or `python -m seqlab.train`."""
    return f"seqlab-{tool}" if Path(sys.argv[0]).name.startswith("seqlab-") else f"python -m seqlab.{tool}"


def guard_streams() -> None:
    """A command started with stdin, stdout or stderr closed (`<&-`) reads and writes /dev/null
    there instead; else the first file it opens takes that number and its writes go astray."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            os.dup2(os.open(os.devnull, os.O_RDWR), fd)
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode))  # noqa: SIM115 (for the process's lifetime)


def quiet_lightning() -> None:
    """What Lightning says that does not concern a seqlab run: its start-up notes and
    advertisements, hints about data-loading workers seqlab does not use, and a torch
    deprecation inside Lightning. Its warnings about the run itself still show."""
    import logging
    import warnings

    from lightning.fabric.utilities.warnings import PossibleUserWarning

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=PossibleUserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"lightning\.")
    # (seqlab's iterable datasets have a length, and each rank's share is cut to the same size)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"lightning\.pytorch\.utilities\.data")


def tool_main(tool: str, run, takes: list[str] = ()):
    """The `main()` of a tool module: `python -m seqlab.<tool>` and the console scripts."""

    def main():
        return command(tool, run, takes)

    return main


__all__ = ["CONF_DIR", "Context", "command", "compose", "signal_name", "tool_main"]
