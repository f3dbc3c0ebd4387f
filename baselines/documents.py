"""Reading the files an engineer hands the sensor (zones, baselines), with one clear line per failure."""
from __future__ import annotations

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
