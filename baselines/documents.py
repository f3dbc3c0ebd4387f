"""Reading the files an engineer hands the sensor (zones, baselines), with one clear line per failure."""
from __future__ import annotations

import json
import os
from typing import Any, Callable


def read_document(path: str, what: str, fmt: str, parse: Callable[[bytes], Any],
                  error: type[Exception]) -> Any:
    """``parse`` the file at ``path``; any failure raises ``error`` with a message naming the file.

    ``what`` names the document ("zones file"), ``fmt`` its format ("TOML").
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return parse(raw)
    except ValueError as exc:  # JSON, TOML and UTF-8 decoding errors are all ValueErrors
        raise error(f"{path}: not valid {fmt}: {exc}") from None


def write_document(path: str, data: Any, sort_keys: bool = False) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a file).

    orjson when present: the standard library's indented encoder runs in pure
    Python and took longer than the rest of a small run on a large inventory.
    """
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(encode_document(data, sort_keys))
    os.replace(tmp, path)


def encode_document(data: Any, sort_keys: bool = False) -> bytes:
    """The bytes :func:`write_document` writes (for a writer that puts them on disk elsewhere)."""
    return _dumps(data, sort_keys) + b"\n"


def _dumps(data: Any, sort_keys: bool) -> bytes:
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a declared dependency
        return json.dumps(data, indent=2, sort_keys=sort_keys, default=str, ensure_ascii=False).encode()
    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    return orjson.dumps(data, option=option, default=str)
