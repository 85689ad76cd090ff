"""Hydra's composition errors (a typo in a key or an option, an unparsable override) as one line
that names the fix."""

import difflib
import inspect
from pathlib import Path

from omegaconf import OmegaConf


def group_options(group: str, config_dirs: list[str]) -> list[str]:
    """The options of a config group, in the package's configs and the user's --config-dir."""
    found = set()
    for d in config_dirs:
        folder = Path(d) / group
        if folder.is_dir():
            found |= {p.stem for p in folder.glob("*.yaml")}
    return sorted(found)


def _all_keys(cfg, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            keys.append(f"{prefix}{k}")
            keys.extend(_all_keys(v, f"{prefix}{k}."))
    return keys


def _compose(config_name: str, config_dirs: list[str], overrides: list[str], read):
    """`read(cfg)` of the config `overrides` compose (outside a Hydra run, its hydra node
    included); None if they do not compose (Hydra then reports why)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        search = [f"hydra.searchpath=[{','.join('file://' + d for d in config_dirs[1:])}]"] if config_dirs[1:] else []
        with initialize_config_dir(config_dir=config_dirs[0], version_base="1.3"):
            return read(compose(config_name=config_name, overrides=overrides + search, return_hydra_config=True))
    except Exception:
        return None
    finally:
        GlobalHydra.instance().clear()


def _composed(config_name: str, config_dirs: list[str], groups: list[str]) -> dict:
    """The config with only the command line's group choices (experiment=…, model/optimizer=…)."""
    cfg = _compose(config_name, config_dirs, groups, OmegaConf.to_container) or {}
    return {k: v for k, v in cfg.items() if k != "hydra"}


def resolve(key: str, config_name: str, config_dirs: list[str], args: list[str]):
    """The value of one key of the config the command line composes."""
    overrides = [a for a in args if not a.startswith("-") and a not in config_dirs]
    return _compose(config_name, config_dirs, overrides, lambda cfg: OmegaConf.select(cfg, key))


EXAMPLE_CALLBACK = "{_target_:lightning.pytorch.callbacks.EarlyStopping,monitor:val/loss,patience:5}"


def _missing_part(key: str, cfg: dict) -> str | None:
    """An unknown key that is a real argument of the class its node builds (a Trainer argument
    the config leaves at Lightning's default), or one below a callback or logger this run does
    not have: say how to add it."""
    import hydra

    parts = key.split(".")
    parent, depth = cfg, 0
    while depth < len(parts) - 1 and isinstance(parent.get(parts[depth]), dict):
        parent, depth = parent[parts[depth]], depth + 1
    if depth == len(parts) - 1 and "_target_" in parent:
        try:
            params = inspect.signature(hydra.utils.get_class(parent["_target_"])).parameters
        except Exception:
            params = {}
        name, where = parent["_target_"].rsplit(".", 1)[-1], ".".join(parts[:-1])
        if parts[-1] in params:
            return f"{key} is an argument of {name} that this config leaves at its default; add it with +{key}=…"
        if depth >= 2 and params:  # model.optimizer, model.scheduler, callbacks.<name>, logger.<name>
            known = [p for p in params if p not in ("self", "params", "optimizer", "args", "kwargs")]
            close = difflib.get_close_matches(parts[-1], known, n=1)
            hint = f"did you mean {where}.{close[0]}=…?" if close else f"its arguments: {', '.join(known)}"
            return f"{key} is not an argument of {name}; {hint}"
    if parts[0] in ("callbacks", "logger") and len(parts) > 2 and depth <= 1:
        have = ", ".join(cfg.get(parts[0]) or {}) or "none"
        if parts[0] == "logger":
            return (f"this run has no logger {parts[1]} (its loggers: {have}); pick loggers with logger=…, e.g. "
                    f"logger=many for TensorBoard and CSV")
        return (f"this run has no callback {parts[1]} (its callbacks: {have}); add one with "
                f"'+callbacks.{parts[1]}={EXAMPLE_CALLBACK}'")
    return None


def explain(message: str, config_name: str, config_dirs: list[str], args: list[str]) -> str | None:
    """One line for a Hydra composition error message, or None if it is not one."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if first.startswith("Could not append") and "already" in message:  # +key=… for a key the config has
        key = first.split("'")[1]
        value = next((a.split("=", 1)[1] for a in args if a.lstrip("+").split("=", 1)[0] == key and "=" in a), "…")
        return f"+{key} adds a new key, but {key} is already set; drop the + ({key}={value}), or write ++{key}={value}"
    if first.startswith("Could not override") or first.startswith("Could not append"):
        key = first.split("'")[1]
        groups = [a for a in args if "=" in a and not a.startswith(("-", "+", "~"))
                  and group_options(a.split("=")[0].replace(".", "/"), config_dirs)]
        cfg = _composed(config_name, config_dirs, groups) or _composed(config_name, config_dirs, [])
        missing = _missing_part(key, cfg)
        if missing:
            return missing
        node_name = key.split(".")[0]
        node = cfg.get(node_name) if "." in key else None
        if isinstance(node, dict) and "_target_" in node:  # a key of the task's data or model
            keys = [f"{node_name}.{k}" for k in node if k != "_target_"]
            close = difflib.get_close_matches(key, keys, n=1, cutoff=0.75)
            task = node["_target_"].split(".")[2] if node["_target_"].startswith("seqlab.tasks.") else node["_target_"]
            hint = f"did you mean {close[0]}=…?" if close else f"the {task} {node_name} has: {', '.join(keys)}"
            return f"unknown config key {key!r}; {hint}"
        if config_name != "train":  # eval, generate, chat: a short, closed list of options
            options = [f"{k}.<key>" if isinstance(v, dict) else k for k, v in cfg.items() if k not in ("hydra", "paths")]
            close = difflib.get_close_matches(key, options, n=1, cutoff=0.8)  # a typo, not a different idea
            hint = f"did you mean {close[0]}=…? " if close else ""
            why = " (a checkpoint knows its experiment)" if key in ("experiment", "model", "data") and \
                "ckpt_path" in options else ""
            return f"unknown option {key!r}{why}: {hint}seqlab-{config_name} takes {', '.join(options)}"
        groups = [p.name for d in config_dirs for p in Path(d).iterdir() if p.is_dir() and p.name not in ("hydra", "debug")]
        value = next((a.split("=", 1)[1] for a in args if a.lstrip("+~").split("=", 1)[0] == key and "=" in a), "…")
        group = difflib.get_close_matches(key, groups, n=1, cutoff=0.75) if "." not in key else []
        if group:  # experimnet=gru_toy
            return f"unknown config key {key!r}; did you mean {group[0]}={value}?"
        close = difflib.get_close_matches(key, _all_keys(cfg), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}=…?" if close else "this config has no such key"
        return f"unknown config key {key!r}; {hint} (list the keys with: seqlab-{config_name} --cfg job)"
    if first.startswith("Ambiguous value for argument"):
        return (f"{first.rstrip('.')}: a value with commas is a sweep; add -m to sweep it, or write a list "
                f"in brackets, e.g. 'key=[a,b]'")
    if first.startswith("Error merging override") and len(lines) > 1:
        return f"{first.rstrip('.')}: {lines[1].strip()}"
    if first.startswith("In '") or "Could not find '" in first or "Could not load '" in first:
        # e.g. "In 'train': Could not find 'experiment/charml'": name the options of that group
        quoted = [q for q in first.split("'")[1::2] if "/" in q]
        if quoted:
            group, _, option = quoted[-1].rpartition("/")
            options = group_options(group, config_dirs)
            close = difflib.get_close_matches(option, options, n=1)
            hint = f"did you mean {group}={close[0]}? " if close else ""
            return f"no config {option!r} in group {group!r}; {hint}options: {', '.join(options) or '(none)'}"
    if "mismatched input" in first or "extraneous input" in first or "no viable alternative" in first \
            or "token recognition error" in first or first.startswith("Error parsing override"):
        bad = next((line.split("'", 1)[1].rsplit("'", 1)[0] for line in lines if line.startswith("Error parsing override")), "")
        where = f" in {bad!r}" if bad else ""
        return (f"cannot parse the command line{where}: {first}; write overrides as key=value and quote values "
                f"with spaces or symbols, e.g. 'key=\"a value=?\"'")
    return None
