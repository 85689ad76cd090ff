"""Reading the corpora: the bundled files or a user's own, with clear errors."""

import json
from importlib import resources
from pathlib import Path

from seqlab.errors import SeqlabError


def bundled(name: str) -> Path:
    """Path of a corpus shipped inside the package (src/seqlab/data)."""
    return Path(str(resources.files("seqlab") / "data" / name))


def resolve(path: str | None, default_name: str, what: str = "data.path") -> Path:
    """The user's file, or the bundled one for null. (An empty string is a mistake, e.g. an
    unset $VARIABLE, not a request for the bundled file.)"""
    if path is not None and not str(path).strip():
        raise SeqlabError(f"{what} is empty; pass a file, or {what}=null for the bundled {default_name}")
    if path is None:
        return bundled(default_name)
    from hydra.utils import to_absolute_path  # relative to where the command started, even after a chdir

    return Path(to_absolute_path(str(Path(path).expanduser())))


def read_text(path: Path, what: str = "data.path") -> str:
    if not path.exists():
        gone = " (a link that leads nowhere)" if path.is_symlink() else ""
        raise SeqlabError(f"data file not found: {path}{gone}; set {what}=<an existing UTF-8 text file>")
    if path.is_dir():
        raise SeqlabError(f"data path is a folder, not a file: {path}; set {what}=<a UTF-8 text file>")
    if not path.is_file():  # a pipe or a device would block or never end
        raise SeqlabError(f"data path is not a regular file: {path}; set {what}=<a UTF-8 text file>")
    raw = path.read_bytes()
    if b"\0" in raw[: 1 << 16]:  # text in no common encoding holds NUL bytes (UTF-16 aside)
        kind = "UTF-16 text" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "binary, not text"
        fix = (
            f"convert it: iconv -f UTF-16 -t UTF-8 {path} > {path.stem}.utf8.txt"
            if "UTF-16" in kind
            else f"set {what}=<a UTF-8 text file>"
        )
        raise SeqlabError(f"data file is {kind}: {path}; {fix}")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is not text
        text = text.replace("\r\n", "\n")  # (a Windows file's line ends are not characters to learn)
    except UnicodeDecodeError as e:
        raise SeqlabError(
            f"data file is not UTF-8 text: {path} (byte {e.start}); convert it from its encoding, e.g. "
            f"iconv -f LATIN1 -t UTF-8 {path} > {path.stem}.utf8.txt, or set {what}"
        ) from None
    if not text.strip():
        raise SeqlabError(f"data file is empty: {path}; set {what}=<a non-empty text file>")
    return text


def read_json_records(path: Path, what: str = "data.path") -> list:
    """A JSON list, or JSON Lines (one JSON value per line)."""
    text = read_text(path, what)
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError as e:
        if text.lstrip().startswith("["):  # meant as one JSON list: its own error is the one to show
            raise SeqlabError(
                f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}; fix it there "
                f"(or write one JSON object per line)"
            ) from None
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise SeqlabError(
                f"{path}: line {n} is not valid JSON ({e.msg}); expected a JSON list or JSON Lines"
            ) from None
    return records
