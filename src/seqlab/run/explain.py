"""One line for what went wrong: from the typed errors of seqlab, Hydra, OmegaConf (their fields:
`full_key`, `parent_node`, a missing config's `options`), Lightning and PyYAML, never from their
message text; and the slips of typing an override, caught before Hydra reads it."""

import difflib
import errno
import inspect
import multiprocessing
import re
import sys
import urllib.error
from pathlib import Path

import hydra
import yaml
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationToMissingValueError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from seqlab.errors import SeqlabError

SEVERAL = r"[ ,](?=[\w.+~/-]+=)"  # where a second override starts inside a value
# The machine's state, not a bug: what to do about it.
FAULTS = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space",
    errno.EROFS: "make the disk writable",
    errno.EACCES: "check the permissions",
    errno.EPERM: "check the permissions and the file's attributes (lsattr)",
    errno.ENAMETOOLONG: "use a shorter path or name=",
    errno.EFBIG: "raise the file size limit (ulimit -f)",
}


def explain(e: BaseException, overrides: list[str], ctx=None) -> str | None:
    """The one line for a failure the user can fix; None for anything else (a bug)."""
    from seqlab.run.cli import searched

    if isinstance(e, SeqlabError):
        return deleted(e.key, str(e), overrides) or str(e)
    if isinstance(e, MissingConfigException) and e.options is not None:
        group, _, option = str(e.missing_cfg_file).rpartition("/")
        close = [o for o in e.options if o.lower() == option.lower()] or difflib.get_close_matches(
            option, e.options, n=1
        )
        folders = searched(overrides)
        astray = [f for d in folders for f in d.rglob(f"{option}.yaml")]  # (a file of the user's, in another folder)
        here = next((d for d in (Path("conf"), Path("configs")) if (d / group / f"{option}.yaml").is_file()), None)
        depth = len(group.split("/"))  # (--config-dir conf/experiment: one level too deep)
        right = next((f.parents[depth] for f in astray if f.relative_to(f.parents[depth]).parent == Path(group)), None)
        hint = (
            f"did you mean {group}={close[0]}? "
            if close
            else f"{astray[0]} is there: pass --config-dir {right}, the folder that holds {group}/; "
            if right
            else f"{astray[0]} belongs in {group}/; "
            if astray
            else f"{here}/{group}/{option}.yaml is there: pass --config-dir {here}; "
            if here and not folders
            else ""
        )
        options = ", ".join(sorted(e.options)) or "(none)"
        picked = [a.partition("=")[::2] for a in overrides if a.partition("=")[0] in ("experiment", "hparams_search")]
        files = [d / g / f"{o}.yaml" for d in folders for g, o in picked]  # (the user's files that pick options)
        if not any(a.lstrip("+~").startswith(f"{group}=") for a in overrides):
            for file in (f for f in files if f.is_file() and option in f.read_text()):
                close = f"did you mean {close[0]}? " if close else ""
                return (
                    f"{file} picks {option!r} of the {group} group, which has no such option; {close}options: {options}"
                )
        return f"no config {option!r} in group {group!r}; {hint}options: {options}"
    for err in (e, e.__cause__):  # (Hydra raises its own error from OmegaConf's, which names the key)
        if isinstance(err, (ConfigKeyError, ConfigAttributeError)) and err.full_key and err.parent_node is not None:
            return deleted(err.full_key, "", overrides) or unknown_key(err, overrides)
        unset = [k for k, _, v in (a.lstrip("+~").partition("=") for a in overrides) if v.strip("'\"") == "???"]
        if unset and isinstance(err, (MissingMandatoryValue, InterpolationToMissingValueError)):  # (or read in a path)
            if unset[0] == "prompt":  # (even quoted: OmegaConf reads the string ??? as its mark)
                return (
                    "prompt=???: the config reads ??? as a value still to give, never as text; add a character "
                    "(prompt='??? '), or type it to seqlab-chat"
                )
            return f"{unset[0]}=??? leaves it unset: ??? is the config's mark for a value still to give; give a value"
        if isinstance(err, OmegaConfBaseException) and err.full_key:
            message = f"{err.full_key}: {str(err.msg).strip().splitlines()[0]}"
            typed = [a for a in overrides if "${" in a and a.lstrip("+~").partition("=")[0] != err.full_key]
            fix = f"fix that value, or an interpolation you passed: {' '.join(typed)}" if typed else "fix that value"
            return deleted(err.full_key, message, overrides) or f"{message}; {fix}"
    if isinstance(e, (HydraException, OmegaConfBaseException, MisconfigurationException)):
        return one_line(str(e))
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:  # a config file of the user's
        at = e.problem_mark
        return f"{at.name} is not valid YAML: {e.problem} at line {at.line + 1}, column {at.column + 1}; fix it"
    if isinstance(e, FileNotFoundError) and ctx and ctx.removed():
        return (
            f"the run folder {ctx.run_dir} was removed while the command ran, and its checkpoints with it; start again"
        )
    optuna = sys.modules.get("optuna")  # (imported only by a search)
    if optuna is not None and isinstance(e, optuna.exceptions.StorageInternalError):
        return (
            "the Optuna study's database (hydra.sweeper.storage) cannot be written: a read-only file or folder, or a "
            "full disk; make it writable, or pass hydra.sweeper.storage=sqlite:///<another file>"
        )
    if isinstance(e, multiprocessing.TimeoutError):  # (joblib's, for hydra.launcher.timeout)
        return "a job of the parallel sweep ran longer than hydra.launcher.timeout allows; raise it, or drop it"
    if isinstance(e, urllib.error.URLError):  # (a task's own download: a fault of the network, not a bug)
        return f"a download failed ({e.reason}); check the network and the address, or put the data in place first"
    if isinstance(e, MemoryError):
        then = ctx.continues() if ctx else "start it again"
        return f"out of memory (the machine's, or a limit such as ulimit -v); use a smaller model or batch; {then}"
    e = e.__cause__ if isinstance(e.__cause__, OSError) and e.__cause__.errno in FAULTS else e  # (a logger's, wrapped)
    if isinstance(e, OSError) and e.errno in FAULTS:  # (a writer thread's has no file name)
        where = (
            f" ({e.filename if isinstance(e.filename, str) else ctx.run_dir})"
            if e.filename or ctx and ctx.run_dir
            else ""
        )
        return f"{e.strerror}{where}; {FAULTS[e.errno]}; {ctx.continues() if ctx else 'start it again'}"
    return None


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def deleted(key: str | None, message: str, overrides: list[str]) -> str | None:
    """A setting the run needs, deleted with ~key on the command line: the ~ is the mistake."""
    for gone in (a[1:].split("=")[0] for a in overrides if a.startswith("~")):
        if key and (key == gone or key.startswith(gone + ".")):
            if "." not in gone:  # a whole node: ~trainer
                return f"~{gone} removes the {gone} settings every run needs; drop it (another: {gone}=<option>)"
            return f"~{gone} deleted a setting this run needs ({message.split(';')[0] or key}); drop ~{gone}"
    return None


def unknown_key(e, overrides: list[str]) -> str:
    """A key the config lacks: a misspelt group, a callback or logger the run has not, an argument
    of the class the node builds that the config leaves at its default (+key), or the near one."""
    from seqlab.run.cli import CONF_DIR, is_group

    key = next((a.lstrip("+~").split("=")[0] for a in overrides if a.lstrip("+~").startswith(e.full_key)), e.full_key)
    name, where, node = str(e.key), e.full_key[: -len(str(e.key))].rstrip("."), e.parent_node
    value = next((a.split("=", 1)[1] for a in overrides if a.lstrip("+~").startswith(key + "=")), "…")
    groups = difflib.get_close_matches(name, [p.name for p in Path(CONF_DIR).iterdir()], n=1, cutoff=0.75)
    if not where and groups:  # experimnet=gru_toy
        return f"unknown config key {key!r}; did you mean {groups[0]}={value}?"
    if where in ("callbacks", "logger") and key != e.full_key:  # callbacks.early_stopping.patience
        one = where.rstrip("s")
        off = next((a for a in overrides if a in (f"{where}=none", f"{where}=null")), None)
        add = (
            f"{off} turned them off; drop it, or drop the {key}=… override"
            if off
            else "pick loggers with logger=…, e.g. logger=many"
            if one == "logger"
            else "add one with '+"
            + (f"callbacks.{name}={{_target_:lightning.pytorch.callbacks.EarlyStopping,monitor:val/loss}}'")
        )
        return f"this run has no {one} {name} (its {one}s: {', '.join(node) or 'none'}); {add}"
    try:
        cls = hydra.utils.get_class(node["_target_"]) if "_target_" in node else None
    except Exception:  # a _target_ that does not import: its own line comes when it is checked
        cls = None
    params = [p for p in inspect.signature(cls).parameters if p not in ("self", "params", "optimizer")] if cls else []
    if name in params:
        return (
            f"{key} is an argument of {cls.__name__} that this config leaves at its default; add it with +{key}={value}"
        )
    if params and not hasattr(cls, "task"):  # a class seqlab does not own: its own arguments
        close = difflib.get_close_matches(name, params, n=1)
        hint = f"did you mean {where}.{close[0]}=…?" if close else f"its arguments: {', '.join(params)}"
        if where == "hydra.sweeper" and not close:  # n_trials, direction, …: an Optuna search's
            hint += " (an Optuna search's settings need one: add hparams_search=<task>_optuna)"
        return f"{key} is not an argument of {cls.__name__}; {hint}"
    known = [k for k in node if k != "_target_"]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    whose = f"the {cls.task} {where}" if hasattr(cls, "task") else where
    hint = f"did you mean {where + '.' if where else ''}{close[0]}=…?" if close else f"{whose} has: {', '.join(known)}"
    hint = hint if where or close else "this config has no such key"
    if where and not known and is_group(where.replace(".", "/")):  # model/scheduler=none: an empty node
        hint = f"{where} is empty (none); pick an option first: {where.replace('.', '/')}=<option>"
    return f"unknown config key {key!r}; {hint} (--cfg job lists the keys)"


# ---- overrides as typed -------------------------------------------------------------------------------
def check_syntax(overrides: list[str], sweeping: bool) -> list[str]:
    """Each override as Hydra's parser reads it, prompts and paths (a grid job's folder holds '='
    and ',') taken as typed; a value with commas outside -m is a sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from seqlab.run.cli import is_group, options

    parser, checked = OverridesParser.create(), []
    for i, a in enumerate(overrides):
        key, eq, value = a.lstrip("+").partition("=")
        literal = key == "prompt" or (
            key in ("resume",) + ("ckpt_path", "data.path") * (not sweeping) and any(c in value for c in "=,[]{}()' <>")
        )
        if eq and literal and "${" not in value and not (value[:1] in "'\"" and value[-1:] == value[:1] != ""):
            a = f"{a.partition('=')[0]}={quote(value)}"
        try:
            parsed = parser.parse_overrides([a])[0]
        except OverrideParseException:
            raise SeqlabError(parse_hint(a, overrides, i)) from None
        if parsed.is_sweep_override() and a.startswith("hydra."):
            raise SeqlabError(
                f"{a}: Hydra's own settings take one value, not a sweep; give one (where a sweep's jobs go: "
                f"hydra.sweep.dir=<folder>)"
            )
        decimal = r"-?\d+,0\d+" if sweeping else r"-?0,\d+|-?\d+,0\d+"  # (0,7 and 1,05: likely a decimal)
        if eq and re.fullmatch(decimal, value):
            raise SeqlabError(
                f"{a} holds a comma: a decimal is written with a point ({key}={value.replace(',', '.')}), "
                f"several values go in brackets ({key}=[{value}])" + ("" if sweeping else ", or -m sweeps them"),
                parsed.key_or_group,
            )
        group = is_group(parsed.key_or_group) and not a.startswith("hydra")
        if group and parsed.is_add() and not a.startswith("++"):  # (every group of ours has a default)
            raise SeqlabError(f"{parsed.key_or_group} has a default option already; write {a.lstrip('+')} (without +)")
        if group and parsed.value() is None and not parsed.is_delete():
            raise SeqlabError(
                f"{a} picks no option of the {parsed.key_or_group} group; pick one of "
                f"{', '.join(options(parsed.key_or_group, overrides))}, "
                f"or drop it to keep the default"
            )
        if parsed.is_sweep_override() and not sweeping:
            raise SeqlabError(
                f"{a}: a value with commas is a sweep; add -m to sweep it"
                + ("" if group else f" (a key that takes a list takes it in brackets: '{key}=[{value}]')"),
                parsed.key_or_group,
            )
        checked.append(a)
    return checked


def parse_hint(a: str, overrides: list[str], i: int) -> str:
    """The usual slips behind an override Hydra cannot parse (the i-th), each with its fix."""
    from seqlab.run.cli import FLAG_ALIASES, is_group, options

    key, eq, value = a.partition("=")
    before, after = overrides[i - 1] if i else "", overrides[i + 1 : i + 3]
    if not eq and ":" in a:
        return f"{a!r} is not key=value; write {a.replace(':', '=', 1)} (overrides use =, not :)"
    if not eq and after and after[0].startswith("="):  # `key = value`
        return f"{a!r} is not key=value: write no spaces around =, e.g. {a}={after[0][1:] or (after[1:] or ['…'])[0]}"
    if not eq and (a.endswith(".ckpt") or Path(a, "checkpoints").is_dir()):  # a checkpoint or a run, named bare
        return f"{a!r} is not key=value; write {'ckpt_path' if a.endswith('.ckpt') else 'resume'}={a}"
    keylike = (
        re.fullmatch(r"\w+(\.\w+)+", a) and is_group(a.split(".")[0]) or is_group(a)
    )  # (else maybe a value's word)
    if not eq and after and "=" not in after[0] and ("=" not in before or keylike) and re.fullmatch(r"[\w./]+", a):
        pick = is_group(a) and after[0] in options(a, overrides)  # (`data corpus.txt`: data.path, as --data meant)
        return f"{a!r} is not key=value; write {a if pick else FLAG_ALIASES.get(a, a)}={after[0]}"
    if not eq and is_group(a):
        return f"{a!r} picks no option; write {a}=<one of {', '.join(options(a, overrides))}>"
    if not eq:  # (a value the shell split: its first word holds the =, the words after it none)
        end = next((j for j in range(i + 1, len(overrides)) if "=" in overrides[j]), len(overrides))
        whole = " ".join([before, *overrides[i:end]]).replace("'", "")
        whole = f" (quote it whole: '{whole}')" if "=" in before else ""
        return f"{a!r} is not key=value: a stray word, or part of a value the shell split at a space{whole}; drop it"
    if empty := re.search(r"\b(choice|range|interval)\(\s*\)", value):
        values = "1e-4,1e-2" if empty.group(1) == "interval" else "4,8"
        return f"{a!r}: {empty.group(1)}() needs values, e.g. {key}={empty.group(1)}({values})"
    if re.search(SEVERAL, value):  # 'a=1 b=2' as one word, or a=1,b=2
        return f"{a!r} holds several overrides; write each as a word of its own: {re.sub(SEVERAL, ' ', a)}"
    if any(q in value for q in "“”‘’"):
        return f"{a!r} has typographic quotes; use straight quotes ' or \" (or none): {key}={value.strip('“”‘’')}"
    if ",," in value or value.startswith(","):
        return f"{a!r} has an empty value between commas; drop it: {key}={','.join(v for v in value.split(',') if v)}"
    if value.endswith(","):
        return f"{a!r} ends with a comma; drop it ({key}={value.rstrip(',')}), or add -m and a second value to sweep"
    for opening, closing in ("[]", "{}", "()"):
        if (missing := value.count(opening) - value.count(closing)) > 0:
            return f"{a!r} has an unclosed '{opening}'; close it: {key}={value}{closing * missing}"
    if not key.lstrip("+~").isascii():  # (mödel.hidden_size: quoting the value cannot help)
        odd = next(c for c in key if not c.isascii())
        return f"{a!r}: the key holds {odd!r}, which no config key does; keys are ASCII (--cfg job lists them)"
    if odd := next((c for c in value if c.isdigit() and not c.isascii()), None):  # (a full-width ８)
        return f"{a!r}: {odd!r} is a digit of another script; type it as an ASCII digit: {key}={ascii_digits(value)}"
    if value.startswith("(") and value.endswith(")"):  # a Python tuple
        return f"{a!r}: a list is written in brackets, e.g. {key}=[{value[1:-1]}]"
    return f"cannot parse {a!r}; quote a value with spaces or symbols for Hydra, e.g. '{key}=\"{value}\"'"


def ascii_digits(value: str) -> str:
    """Digits of any script as ASCII digits (８ -> 8)."""
    import unicodedata

    return "".join(str(unicodedata.digit(c)) if c.isdigit() and not c.isascii() else c for c in value)


def quote(value: str) -> str:
    """A value Hydra reads literally, whatever symbols it holds."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
