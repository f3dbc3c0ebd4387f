"""The shapes every CIP service decoder shares: a parsed message, its typed service data, short-data checks.

A decoder (cip.py, connmgr.py, logix.py, pccc.py) reads ``Message.data`` and
sets ``Message.detail`` to one :class:`Detail`: the service data it decoded,
as typed attributes, which writes its own columns of the cip log.  Data too
short for what the service needs raises :class:`ShortData` through
:func:`need`; the parser turns that into the ``cip.bad_service_data`` anomaly.
Any other exception out of a decoder is a bug, kept in ``Message.faults``.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Final

from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.epath import Path

DATA_HEX_CAP: Final = 64    # bytes of undecoded service data kept as hex
MAX_VALUES: Final = 256     # typed values kept per record; the rest is counted in values_truncated


class ShortData(Exception):
    """Service data shorter than, or inconsistent with, what its service needs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise ShortData(f"{what}: {len(data)} bytes, needs {size}")


class Detail:
    """Decoded service data of one message; each subclass writes its own columns of the cip log."""

    __slots__ = ()
    COLUMNS: ClassVar[str] = ""    # the columns a subclass may write, for the log's declaration (records.py)

    def fill_row(self, row: dict[str, Any]) -> None:
        raise NotImplementedError


class Message:
    """One CIP request or response, with whatever of its service data decoded."""

    __slots__ = ("service", "is_response", "path", "status", "ext_status", "data", "detail", "children", "embedded",
                 "route_path", "errors", "faults", "raw", "_name")

    def __init__(self, service: int, is_response: bool, status: int | None = None) -> None:
        self.service = service
        self.is_response = is_response
        self.path: Path | None = None
        self.status = status
        self.ext_status: int | None = None
        self.data = b""
        self.detail: Detail | None = None
        self.children: list[Message] = []          # Multiple Service Packet services, in order
        self.embedded: Message | None = None        # Unconnected Send's request
        self.route_path: str | None = None
        self.errors: list[tuple[str, str]] | None = None    # (anomaly name, reason)
        self.faults: list[Exception] | None = None          # decoder bugs the parser survived
        self.raw = b""                                      # the message's bytes, for the Zeek logs' own reading
        self._name: str | None = None

    def flag(self, name: str, reason: str) -> None:
        if self.errors is None:
            self.errors = []
        self.errors.append((name, reason))

    def fault(self, exc: Exception) -> None:
        if self.faults is None:
            self.faults = []
        self.faults.append(exc)

    def name(self) -> str:
        """The service's name; class-specific codes need the request path (a lone reply has none)."""
        name = self._name
        if name is None:
            path = self.path
            name = self._name = (T.service_name(self.service, None, False) if path is None
                                 else T.service_name(self.service, path.class_id, bool(path.symbols)))
        return name


# A service-data decoder: the message, its nesting depth, and (for a reply) the request it answers.
Decoder = Callable[[Message, int, "Message | None"], None]


class _Hex(Detail):
    """Undecoded bytes as hex, capped at DATA_HEX_CAP, and whether there were more."""

    __slots__ = ("hex", "truncated")

    def __init__(self, data: bytes) -> None:
        self.hex = data[:DATA_HEX_CAP].hex()
        self.truncated = len(data) > DATA_HEX_CAP


class Data(_Hex):
    """Undecoded request data, or values of a type without a decoder."""

    __slots__ = ()
    COLUMNS: ClassVar[str] = "data:string data_truncated:bool"

    def fill_row(self, row: dict[str, Any]) -> None:
        row["data"] = self.hex
        if self.truncated:
            row["data_truncated"] = True


class ResponseData(_Hex):
    """Undecoded reply data."""

    __slots__ = ()
    COLUMNS: ClassVar[str] = "response_data:string response_data_truncated:bool"

    def fill_row(self, row: dict[str, Any]) -> None:
        row["response_data"] = self.hex
        if self.truncated:
            row["response_data_truncated"] = True


class TypedValues(Detail):
    """Values of an elementary type (Logix tags, PCCC data-table words), at most MAX_VALUES of them."""

    __slots__ = ("values", "truncated")
    COLUMNS: ClassVar[str] = "values:vector[double] values_truncated:count"

    def __init__(self, values: list[Any], truncated: int = 0) -> None:
        self.values = values          # ints or floats; a non-finite float is kept as its text
        self.truncated = truncated    # how many more the data held

    def fill_row(self, row: dict[str, Any]) -> None:
        row["values"] = self.values
        if self.truncated:
            row["values_truncated"] = self.truncated

