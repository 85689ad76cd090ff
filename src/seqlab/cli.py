"""What the entry points share: where the configs are, checking overrides before Hydra
starts (so a typo gets one line that names the fix), and turning user errors into
one-line messages with exit code 2."""

import difflib
import functools
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from seqlab.errors import SeqlabError, exit_with

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def _all_keys(cfg, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            full = f"{prefix}{k}"
            keys.append(full)
            keys.extend(_all_keys(v, full + "."))
    return keys


def _group_options(group: str) -> list[str]:
    folder = Path(CONF_DIR) / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def check_overrides(config_name: str, args: list[str]) -> None:
    """Compose the config once with the command line's overrides and turn any composition
    error into a SeqlabError with a suggestion. Sweep overrides (`a=1,2`) are checked with
    their first value."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    overrides = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise SeqlabError(f"cannot parse the command line: {str(e).splitlines()[0]}; write overrides as key=value, and quote values with spaces or symbols: 'prompt=\"…\"'") from None
    plain = []
    for o in parsed:
        if o.key_or_group.startswith("hydra") or o.is_sweep_override():
            continue
        plain.append(o.input_line)
    groups = [line for o, line in zip(parsed, overrides) if line in plain and _group_options(o.key_or_group)]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=plain)
            base = compose(config_name=config_name, overrides=groups)
    except HydraException as e:
        raise SeqlabError(_explain(str(e), config_name)) from None
    finally:
        GlobalHydra.instance().clear()
    _check_types(base, cfg, [o for o in parsed if o.input_line in plain])


def _explain(message: str, config_name: str) -> str:
    first = message.strip().splitlines()[0]
    if first.startswith("Could not override"):
        key = first.split("'")[1]
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            known = _all_keys(OmegaConf.to_container(compose(config_name=config_name), resolve=False))
        GlobalHydra.instance().clear()
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}=…?" if close else f"prefix it with + to add a new key (+{key}=…)"
        return f"unknown config key {key!r}; {hint} (list the keys with --cfg job)"
    if first.startswith("In '") or "Could not find '" in first or "Could not load '" in first:
        # e.g. "Could not find 'experiment/charml'" — name the options of that group
        quoted = [q for q in first.split("'")[1::2] if "/" in q]
        if quoted:
            group, _, option = quoted[-1].rpartition("/")
            options = _group_options(group)
            close = difflib.get_close_matches(option, options, n=1)
            hint = f"did you mean {group}={close[0]}? " if close else ""
            return f"no config {option!r} in group {group!r}; {hint}options: {', '.join(options) or '(none)'}"
    return first + " (see --help for the config groups)"


def _check_types(base: DictConfig, cfg: DictConfig, parsed) -> None:
    """A value whose type clashes with the default's (a word where a number is expected) is
    an error here, not a crash deep inside the model."""
    for o in parsed:
        key = o.key_or_group
        if o.is_sweep_override() or key.startswith("hydra") or _group_options(key.replace(".", "/")):
            continue
        default = OmegaConf.select(base, key, default=None)
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(default, bool) or not isinstance(default, (int, float)) or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(default, int) and isinstance(value, float) and not value.is_integer()):
            kind = "an integer" if isinstance(default, int) else "a number"
            raise SeqlabError(f"{key} must be {kind}, got {value!r}; pass e.g. {key}={default}")


def job_name(override_dirname: str, limit: int = 100) -> str:
    """A sweep job's folder name from its overrides: floats shortened to 4 significant digits
    (an Optuna draw like 0.23560757511413075 reads 0.2356), and a long list cut with a hash of
    the whole, so a folder name never passes the file system's 255-byte limit."""
    import hashlib
    import re

    name = re.sub(r"(?<==)[-+]?\d*\.\d+(?:e[-+]?\d+)?(?=,|$)", lambda m: f"{float(m.group()):.4g}", override_dirname)
    if len(name) > limit:
        name = name[:limit].rstrip(",") + "~" + hashlib.sha1(override_dirname.encode()).hexdigest()[:8]
    return name


OmegaConf.register_new_resolver("seqlab.job_name", job_name, replace=True)


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig

    try:
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def entry_point(config_name: str):
    """Decorate a `fn(cfg)`: check the overrides, run it under Hydra, and report user errors
    in one line (exit code 2). In a sweep, a failing job raises instead, so the sweeper can
    record the failure and go on."""

    def wrap(fn):
        import hydra

        @functools.wraps(fn)
        def task(cfg: DictConfig):
            try:
                return fn(cfg)
            except Exception as e:
                message = user_error(e)
                if message is None or is_multirun():
                    raise  # a bug, or a sweep job: the sweeper records the failure
                _clean_run_dir(cfg)
                exit_with(message)

        hydra_main = hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)(task)

        @functools.wraps(fn)
        def main():
            args = sys.argv[1:] = resume_args(sys.argv[1:])
            if not any(a in ("--help", "-h", "--hydra-help", "--info", "--cfg", "-c", "--shell-completion") or
                       a.startswith("--info") for a in args):
                try:
                    check_overrides(config_name, args)
                except SeqlabError as e:
                    exit_with(str(e))
            return hydra_main()

        main.task = task
        return main

    return wrap


def resume_args(args: list[str]) -> list[str]:
    """`resume=<run dir>` continues that run in place: the run's own overrides (from
    .hydra/overrides.yaml), then the new command line's (e.g. a larger trainer.max_epochs),
    the same run folder (so TensorBoard keeps writing the same run) and its last.ckpt."""
    given = [a for a in args if a.startswith("resume=")]
    if not given:
        return args
    run_dir = Path(given[-1].split("=", 1)[1]).expanduser()
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    last = run_dir / "checkpoints" / "last.ckpt"
    if not overrides_file.is_file():
        exit_with(f"resume={run_dir} is not a seqlab run folder (no .hydra/overrides.yaml); pass resume=outputs/<name>/runs/<time>")
    if not last.is_file():
        exit_with(f"{run_dir} has no checkpoints/last.ckpt to resume from; start it again, or pass ckpt_path=<a .ckpt file>")
    import yaml

    old = [o for o in yaml.safe_load(overrides_file.read_text()) or []
           if not o.startswith(("ckpt_path=", "resume=", "hydra.run.dir="))]
    new = [a for a in args if not a.startswith("resume=")]
    key = lambda o: o.split("=", 1)[0].lstrip("+~")  # noqa: E731
    old = [o for o in old if key(o) not in {key(a) for a in new}]  # the new command line wins
    return [*old, *new, f"ckpt_path={last}", f"hydra.run.dir={run_dir.resolve()}"]


def user_error(e: BaseException) -> str | None:
    """The one-line message of a user error, looking through the wrappers Hydra's
    instantiate puts around it; None for anything else (a bug: keep the traceback)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, SeqlabError):
            return str(e)
        if isinstance(e, MisconfigurationException):
            return str(e).strip().splitlines()[0]
        e = e.__cause__ or e.__context__
    return None


def _clean_run_dir(cfg: DictConfig) -> None:
    """A run that failed before it wrote a checkpoint leaves nothing behind."""
    from hydra.core.hydra_config import HydraConfig

    try:
        out = Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return
    # Only a run folder of train's own making (it holds .hydra/) is removed: eval, generate
    # and chat run in the current folder, which is the user's, never ours to delete.
    out = out.resolve()
    if (out == Path.cwd().resolve() or out in Path.cwd().resolve().parents or not (out / ".hydra").is_dir()
            or any(out.rglob("*.ckpt")) or cfg.get("keep_failed_run_dir", False)):
        return
    shutil.rmtree(out, ignore_errors=True)
    # and the folders made for it alone (outputs/<name>/runs/), up to outputs/
    top = Path(cfg.paths.outputs_dir).resolve()
    for parent in out.parents:
        if parent == top or top not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()
