"""The IEEE OUI registry that netaddr ships, read one prefix at a time.

netaddr's own look-up (``netaddr.OUI``) parses its whole index, 35,000 rows, the first time any OUI
is asked for: about 80 ms, most of the fixed cost of a short run. A run meets a handful of vendors, so
this module finds each prefix's row in the same index file with one byte search, reads that
registration from the registry text, and answers exactly what ``OUI(prefix).registration().org``
answers (the organisation on the registration's ``(hex)`` line). The index is read once per process,
on the first look-up; the callers cache each prefix's answer.
"""
from __future__ import annotations

import importlib.util
import os


class RegistryMissing(Exception):
    """netaddr's registry files are not where netaddr keeps them (an unusual install)."""


_REGISTRY: list[tuple[bytes, str]] = []   # once found: (the index's bytes, the registry text's path)


def _registry_files() -> tuple[bytes, str]:
    """netaddr's index (its bytes, a newline first) and registry text (its path); empty when not found."""
    if not _REGISTRY:
        spec = importlib.util.find_spec("netaddr")   # its location only: importing netaddr is not needed
        found = (b"", "")
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            index, text = os.path.join(folder, "eui", "oui.idx"), os.path.join(folder, "eui", "oui.txt")
            if os.path.exists(index) and os.path.exists(text):
                with open(index, "rb") as fh:
                    found = (b"\n" + fh.read(), text)   # every row then starts after a newline
                break
        _REGISTRY.append(found)
    return _REGISTRY[0]


def registered_org(prefix: int) -> str | None:
    """The organisation registered for the 24-bit OUI ``prefix``, or None when it is not registered.

    Raises RegistryMissing when the registry files are not where netaddr keeps them (the caller then asks
    netaddr itself). Index rows are ``prefix,offset,size`` in decimal; a prefix registered twice has
    two rows, and the first is netaddr's registration 0.
    """
    index, text = _registry_files()
    if not text:
        raise RegistryMissing("netaddr's OUI registry files were not found")
    at = index.find(b"\n%d," % prefix)
    if at < 0:
        return None
    end = index.find(b"\n", at + 1)
    _, offset, size = (int(field) for field in index[at + 1:end if end >= 0 else len(index)].split(b","))
    with open(text, "rb") as fh:
        fh.seek(offset)
        record = fh.read(size).decode("utf-8")
    org = ""   # (netaddr's answer for a registration without its "(hex)" line)
    for line in record.split("\n"):
        line = line.strip()
        if "(hex)" in line:
            org = line.split(None, 2)[2]   # "00-1B-1B   (hex)   Siemens AG": IndexError if the name is missing
    return org
