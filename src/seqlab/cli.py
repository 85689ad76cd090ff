"""What the entry points share: Hydra composes the config (once), and any user error — a typo
in a key, a bad value, a missing file, a full disk — ends the command with one line and exit
code 2, leaving no half-made run folder behind.

    seqlab-train experiment=subseq model.optimizer.lr=3e-3
    seqlab-train --config-dir my_configs experiment=my_experiment   # configs of your own beside ours
"""

import errno
import functools
import json
import os
import re
import signal
import sys
from pathlib import Path

from omegaconf import DictConfig

from seqlab import resume, rundir  # (rundir registers the config resolvers)
from seqlab.config_errors import explain, group_options
from seqlab.errors import Interrupted, SeqlabError, exit_with, signal_name

CONF_DIR = str(Path(__file__).resolve().parent / "conf")

# OS errors that are the machine's state, not a bug: reported in one line.
FAULTS = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space", errno.EACCES: "check the permissions",
          errno.EROFS: "write somewhere else", errno.ENOTDIR: None, errno.EEXIST: None}


def _folder_fix(filename) -> str:
    """The setting that chose the folder a write failed in, to point at a writable one."""
    given = dict(a.lstrip("+").split("=", 1) for a in sys.argv[1:] if "=" in a)
    keys = ("hydra.sweep.dir", "hydra.run.dir", "paths.root_dir")
    key = next((k for k in keys if given.get(k) and str(filename or "").startswith(given[k])), None)
    key = key or ("hydra.sweep.dir" if any(a in ("-m", "--multirun") for a in sys.argv) else "paths.root_dir")
    return f"set {key}=<a writable folder>"


# Where an exception raised by a library is the user's setting, not a bug: Hydra and its
# plugins (sweepers, launchers) and Lightning checking its own arguments.
SETTINGS_CODE = ("/hydra/", "/hydra_plugins/", "/optuna/", "/submitit/", "/joblib/", "/lightning/pytorch/trainer/",
                 "/lightning/fabric/", "/lightning/pytorch/callbacks/", "/lightning/pytorch/core/",
                 "/lightning/pytorch/loops/")


def _frames(e: BaseException) -> list[str]:
    """The files of every frame the exception passed through, outermost first."""
    files, tb = [], e.__traceback__
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return files


def _raised_in(e: BaseException) -> str:
    """The file of the innermost frame: where the exception was raised."""
    files = _frames(e)
    return files[-1] if files else ""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def user_error(e: BaseException) -> str | None:
    """The one-line message of a user error, looking through the exceptions that Hydra and
    Lightning wrap around it; None for anything else (a bug: keep the traceback)."""
    import torch
    import yaml
    from hydra.errors import HydraException, InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from omegaconf.errors import OmegaConfBaseException

    chain, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:  # our own message first, wherever it is in the chain
        if isinstance(e, SeqlabError):
            return str(e)
    for e in chain:
        if isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "can't allocate memory" in str(e)):
            return ("not enough memory for this model and batch (" + _first_line(e)[:100] + "…); "
                    "use a smaller model.hidden_size or data.batch_size")
        if isinstance(e, OSError) and (e.errno in FAULTS or (e.errno in (errno.ENOENT, errno.EPERM)
                                                             and any("/hydra/" in f for f in _frames(e)))):
            where = f" {e.filename}" if e.filename else ""
            return f"cannot write{where}: {e.strerror}; {FAULTS.get(e.errno) or _folder_fix(e.filename)}" + \
                (" (finished checkpoints are intact)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "")
        if isinstance(e, yaml.YAMLError):  # a config file of the user's (--config-dir) that does not parse
            mark = getattr(e, "problem_mark", None)
            where = f" ({mark.name}, line {mark.line + 1})" if mark else ""
            return f"a config file is not valid YAML{where}: {getattr(e, 'problem', None) or _first_line(e)}; fix that file"
        if type(e).__module__.startswith("sqlalchemy"):  # the Optuna sweeper's study storage
            return (f"cannot open the Optuna study's storage ({_first_line(e)[:120]}); check hydra.sweeper.storage "
                    f"(e.g. sqlite:///outputs/optuna_<name>.db)")
    if isinstance(chain[0], InstantiationException) and len(chain) > 1:
        target = re.search(r"'([\w.]+)'", str(chain[0]))
        return f"cannot build {target.group(1) if target else 'an object of the config'}: {_first_line(chain[-1])}"
    for e in chain:
        if isinstance(e, OmegaConfBaseException) and getattr(e, "full_key", None) and e.full_key not in _first_line(e):
            return f"{e.full_key}: {_first_line(e)}; fix that value"  # e.g. an interpolation to a key that is not there
        if isinstance(e, (MisconfigurationException, HydraException, OmegaConfBaseException)):
            return _first_line(e)
        if isinstance(e, ValueError) and str(e) == "Record does not exist." and "/optuna/" in _raised_in(e):
            reason = _first_trial_error()
            if reason:
                return (f"no Optuna trial finished: the first failed with '{reason}' (the sweep summary lists "
                        f"each); fix the search space or the overrides")
            return ("no Optuna trial finished with a value of the monitored metric (each job's result.json says "
                    "why); check model.monitor and that the trials validate (trainer.check_val_every_n_epoch)")
        if isinstance(e, (ValueError, TypeError, RuntimeError, ZeroDivisionError)) and \
                any(part in _raised_in(e) for part in SETTINGS_CODE):
            return _first_line(e)
    return None


def command_name(tool: str) -> str:
    """How the user started this tool: `seqlab-train` or `python -m seqlab.train`."""
    return f"seqlab-{tool}" if Path(sys.argv[0]).name.startswith("seqlab-") else f"python -m seqlab.{tool}"


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def _output_dir() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    try:
        return HydraConfig.get().runtime.output_dir
    except ValueError:
        return None


def _launch_dir() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    try:
        return HydraConfig.get().runtime.cwd
    except ValueError:
        return None


def _config_dirs(args: list[str]) -> list[str]:
    dirs = [CONF_DIR]
    for i, a in enumerate(args):
        if a in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(str(Path(args[i + 1]).resolve()))
        elif a.startswith("--config-dir="):
            dirs.append(str(Path(a.split("=", 1)[1]).resolve()))
    return dirs


def _parse_error(args: list[str]) -> str | None:
    """The override Hydra could not parse, named, with how to quote it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for a in args:
        if a.startswith("-"):
            continue
        try:
            parser.parse_overrides([a])
        except HydraException as e:
            return _parse_hint(a, args) or (
                f"cannot parse {a!r} ({str(e).splitlines()[0]}); quote a value with spaces or symbols for Hydra, "
                f"e.g. '{a.partition('=')[0]}=\"{a.partition('=')[2]}\"'")
    return None


def _parse_hint(a: str, args: list[str]) -> str | None:
    """The usual slips behind an override Hydra cannot parse, each with its fix."""
    key, eq, value = a.partition("=")
    if not eq:
        if ":" in a and not a.startswith(("'", '"')):
            return f"{a!r} is not key=value; write {a.replace(':', '=', 1)} (overrides use =, not :)"
        i = args.index(a)
        rest = args[i + 1:i + 3]
        if rest and rest[0].startswith("="):  # `key = value` or `key =value`
            value = rest[0][1:] or (rest[1] if len(rest) > 1 else "…")
            return f"{a!r} is not key=value: write no spaces around =, e.g. {a}={value}"
        before = args[i - 1].replace("'", "").replace('"', "") if i > 0 and "=" in args[i - 1] else ""
        split = f" (quote it whole: '{before} {a}')" if before else ""
        return (f"{a!r} is not key=value: a stray word, or part of a value the shell split at a space{split}; "
                f"drop it or write key=value")
    if any(q in value for q in "“”‘’"):
        return f"{a!r} has typographic quotes; use straight quotes ' or \" (or none): {key}={value.strip('“”‘’')}"
    if value.endswith(","):
        return f"{a!r} ends with a comma; drop it ({key}={value.rstrip(',')}), or add -m and a second value to sweep"
    for opening, closing in ("[]", "{}", "()"):
        if value.count(opening) > value.count(closing):
            return f"{a!r} has an unclosed '{opening}'; close it: {key}={value}{closing * (value.count(opening) - value.count(closing))}"
        if value.count(closing) > value.count(opening):
            return f"{a!r} has a '{closing}' that no '{opening}' opens; match them, e.g. {key}={opening}{value.replace(closing, '')}{closing}"
    for quote in "'\"":
        if value.count(quote) % 2:
            return f"{a!r} has an unclosed {quote}; close it, or drop the quotes"
    return None


# What people used to argparse scripts type, and the override that means it.
FLAG_ALIASES = {"epochs": "trainer.max_epochs", "max_epochs": "trainer.max_epochs", "lr": "model.optimizer.lr",
                "learning_rate": "model.optimizer.lr", "batch_size": "data.batch_size", "bs": "data.batch_size",
                "gpus": "trainer.devices", "devices": "trainer.devices", "data": "data.path", "output_dir": "hydra.run.dir"}


def _check_flags(args: list[str], tool: str) -> None:
    """Hydra's own command-line parser, run first: dashed words it does not know (`--epochs 3`,
    `--lr=0.1`) and wrong values of its flags (`--cfg jobs`) would end in argparse's usage
    block; name the override or value meant instead."""
    from hydra._internal.utils import get_args_parser  # (what hydra.main parses with)

    parser = get_args_parser()

    def fail(message: str):
        raise SeqlabError(f"{message} (seqlab-{tool} --hydra-help lists these flags)")

    parser.error = fail
    _, unknown = parser.parse_known_args(args)
    if unknown:
        a = unknown[0]
        name, eq, value = a.lstrip("-").partition("=")
        i = args.index(a)
        if not eq and i + 1 < len(args) and "=" not in args[i + 1] and not args[i + 1].startswith("-"):
            value = args[i + 1]
        key = FLAG_ALIASES.get(name.replace("-", "_"), name.replace("-", "_"))
        raise SeqlabError(f"{a} is not an option; overrides are written key=value without dashes, e.g. "
                          f"{key}={value or '…'}")


def blame_deletion(message: str, args: list[str]) -> str:
    """A key deleted with ~key that the run then misses: the ~ is the mistake to name."""
    for a in args:
        key = a[1:].split("=", 1)[0] if a.startswith("~") else ""
        if key and (message.startswith((f"{key} ", f"{key}.")) or f"'{key}'" in message or f"'{key}." in message):
            group = key.replace(".", "/")  # a config group with a `none` option switches it off that way
            off = f" (to switch it off: {group}=none)" if "none" in group_options(group, _config_dirs(args)) else ""
            return f"~{key} deleted a setting this run needs ({message.split(';')[0]}); drop ~{key}{off}"
    return message


def _first_trial_error() -> str | None:
    """The reason the first job of the current sweep failed, from its result.json."""
    from seqlab import sweep

    if sweep.current_sweep is None:
        return None
    for row in sweep.collect(sweep.current_sweep):
        if row["status"].startswith("failed: "):
            return row["status"].removeprefix("failed: ")
    return None


def quiet_lightning() -> None:
    """Lines Lightning prints that do not concern a seqlab run: an advertisement, a torch
    deprecation inside Lightning, and a warning about data-loading workers seqlab does not use."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not str(record.getMessage()).startswith("💡 Tip"))


received: list[int] = []  # the signal that ended a run before training installed its handler


def _stop(signum, frame):
    """SIGTERM as Ctrl-C until training installs its own handler (module-level: DDP's spawn
    pickles the handlers Lightning saves)."""
    received.append(signum)
    raise KeyboardInterrupt


def _clean_run(cfg) -> None:
    rundir.clean_failed_run(_output_dir(), cfg.get("paths", {}).get("outputs_dir"), _launch_dir())


def _record_job_error(message: str) -> None:
    """A sweep job's one-line reason, where the sweep summary reads it."""
    if is_multirun() and _output_dir():
        Path(_output_dir(), "result.json").write_text(json.dumps({"error": message}))


def entry_point(config_name: str, rewrite=None):
    """Decorate `fn(cfg)` as a console entry point: `rewrite(args)` may adjust the command line
    first (e.g. resume=), then Hydra composes the config and runs `fn`; user errors become one
    line. In a sweep a failing job records its reason and raises, so the sweeper goes on."""

    def wrap(fn):
        import hydra

        @functools.wraps(fn)
        def task(cfg: DictConfig):
            try:
                result = fn(cfg)
                resume.started()
                return result
            except Interrupted as e:
                resume.started()
                if not e.saved:
                    _clean_run(cfg)
                else:  # the sweep summary shows how to continue the job
                    _record_job_error(e.message)
                print(e.message, file=sys.stderr, flush=True)
                raise SystemExit(e.code) from None
            except KeyboardInterrupt:  # a signal before training started: nothing to keep
                resume.restore()
                _clean_run(cfg)
                raise
            except Exception as e:
                message = user_error(e)
                if message is None:
                    raise
                if is_multirun():  # the sweep summary shows the reason
                    _record_job_error(message)
                    raise
                resume.restore()
                _clean_run(cfg)
                rundir.clean_made()
                exit_with(blame_deletion(message, sys.argv[1:]))

        hydra_main = hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)(task)

        @functools.wraps(fn)
        def main():
            # Hydra's parser takes its flags only before the overrides: `key=1 -m key2=1,2` is
            # what people type too.
            args = sys.argv[1:]
            args = [a for a in args if a in ("-m", "--multirun")] + [a for a in args if a not in ("-m", "--multirun")]
            try:
                _check_flags(args, config_name)
                if config_name != "train":  # eval, generate and chat print their results and write no files
                    hydra_key = next((a for a in args if a.lstrip("+~").startswith(("hydra.", "hydra/"))), None)
                    if hydra_key is not None:
                        raise SeqlabError(f"seqlab-{config_name} writes no run folder, so it takes no Hydra settings; "
                                          f"drop {hydra_key.split('=')[0]}")
                    if any(a in ("-m", "--multirun") for a in args):
                        raise SeqlabError(f"seqlab-{config_name} does not sweep; drop -m (a loop in the shell runs it "
                                          f"for several checkpoints)")
                rundir.made.clear()
                rundir.given.clear()
                args = rewrite(args) if rewrite else args
            except SeqlabError as e:
                exit_with(str(e))
            sys.argv[1:] = args
            # Errors reach the handler below instead of Hydra's multi-line report.
            os.environ["HYDRA_FULL_ERROR"] = "1"
            from seqlab import sweep

            sweep.current_sweep, sweep.empty, sweep.new_study = None, False, None
            received.clear()
            signal.signal(signal.SIGTERM, _stop)
            quiet_lightning()
            try:
                result = hydra_main()
            except KeyboardInterrupt:
                if sweep.current_sweep is not None:
                    sweep.print_summary(sweep.current_sweep)
                nothing_kept = rundir.clean_made()
                signum = received[-1] if received else signal.SIGINT
                name = signal_name(signum)
                started = "" if config_name != "train" else (
                    "; the sweep's finished jobs are kept" if sweep.current_sweep else
                    " before training began; nothing was written, nothing to resume" if nothing_kept else "")
                print(f"stopped by {name}{started}", file=sys.stderr, flush=True)
                raise SystemExit(128 + signum) from None
            except SystemExit:
                if sweep.current_sweep is not None:  # a sweep job stopped by a signal
                    sweep.print_summary(sweep.current_sweep)
                raise
            except Exception as e:
                from hydra.errors import OverrideParseException

                if sweep.current_sweep is not None:
                    sweep.print_summary(sweep.current_sweep)
                if isinstance(e, OverrideParseException):
                    message = _parse_error(args)
                else:
                    text = str(e) + (f"\n{e.__cause__}" if e.__cause__ else "")  # (the reason is often the cause's)
                    message = explain(text, config_name, _config_dirs(args), args) if _is_hydra(e) else None
                message = message or user_error(e)
                if message is None:
                    raise
                resume.restore()
                rundir.clean_made(sweep.new_study, sweep.current_sweep)
                exit_with(blame_deletion(message, args))
            if sweep.empty:
                rundir.clean_made(sweep.new_study, sweep.current_sweep)
                exit_with("the sweep has no jobs (a sweep value such as range(4,2) is empty); check the -m values")
            return result

        main.task = task
        return main

    return wrap


def _is_hydra(e: BaseException) -> bool:
    """A Hydra error, or Hydra refusing a command line (e.g. `-m` together with `--cfg`)."""
    from hydra.errors import HydraException

    return isinstance(e, HydraException) or (isinstance(e, ValueError) and "/hydra/" in _raised_in(e))
