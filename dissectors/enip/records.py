"""Records of the EtherNet/IP + CIP dissector: enip, cip, cip_identity and cip_io logs.

Field names follow Zeek ICSNPP-ENIP (scripts/icsnpp/enip/main.zeek) where it has one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from otsensor.dissectors.base import Category, Direction, Op, Record, Tag
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.identity import identity_facts, identity_fields


def _dir_text(is_orig: bool) -> str:
    return "orig" if is_orig else "resp"


@dataclass(frozen=True, slots=True)
class EnipRecord(Record):
    """One encapsulation message (Vol. 2 2-3)."""

    LOG: ClassVar[str] = "enip"

    ts: float
    is_orig: bool
    command: int
    length: int
    session: int
    status: int
    context: bytes
    options: int
    cpf_items: tuple[str, ...] = ()
    connection_id: int | None = None
    list_items: tuple[str, ...] = ()
    malformed: bool = False

    @property
    def command_name(self) -> str:
        return T.name_or_unknown(T.ENIP_COMMANDS, self.command, 4)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "is_orig": self.is_orig, "enip_command_code": f"0x{self.command:02x}", "enip_command": self.command_name,
            "length": self.length, "session_handle": f"0x{self.session:08x}",
            "enip_status_code": f"0x{self.status:02x}",
            "enip_status": T.name_or_unknown(T.ENIP_STATUSES, self.status),
            "sender_context": "0x" + self.context.hex(), "options": f"0x{self.options:08x}",
        }
        if self.cpf_items:
            out["cpf_items"] = list(self.cpf_items)
        if self.connection_id is not None:
            out["connection_id"] = f"0x{self.connection_id:08x}"
        if self.list_items:
            out["list_items"] = list(self.list_items)
        if self.malformed:
            out["malformed"] = True
        return out

    def op(self) -> Op | None:
        """Session and discovery commands; CIP-carrying commands are described by their cip records."""
        if not self.is_orig:
            return None
        if self.command in (T.REGISTER_SESSION, T.UNREGISTER_SESSION):
            return Op("enip", self.command_name, Category.SESSION)
        if self.command == T.LIST_IDENTITY:
            return Op("enip", self.command_name, Category.RECON, tags=frozenset({Tag.IDENTITY_READ}))
        if self.command in (T.LIST_SERVICES, T.LIST_INTERFACES):
            return Op("enip", self.command_name, Category.RECON)
        return None


@dataclass(frozen=True, slots=True)
class CipRecord(Record):
    """One CIP request with its response (paired per flow); embedded MSP / Unconnected Send
    services get a record each, pointing at their carrier with ``embedded_in`` / ``msp_index``."""

    LOG: ClassVar[str] = "cip"

    ts: float
    is_orig: bool
    direction: str                   # request_response, request (unanswered) or response (orphan)
    service: int
    service_name: str
    status: int | None = None
    ext_status: int | None = None
    class_id: int | None = None
    instance_id: int | None = None
    attribute_id: int | None = None
    member_id: int | None = None
    symbol: str | None = None
    request_path: str | None = None
    route_path: str | None = None
    sequence_count: int | None = None
    connection_id: int | None = None
    embedded_in: str | None = None
    msp_index: int | None = None
    response_ts: float | None = None
    response_service: int | None = None   # set when the reply's service differs (failed Unconnected Send)
    info: tuple[tuple[str, Any], ...] = ()
    malformed: bool = False

    @property
    def matched(self) -> bool:
        return self.direction == "request_response"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "is_orig": self.is_orig, "direction": self.direction, "matched": self.matched,
            "cip_sequence_count": self.sequence_count,
            "cip_service_code": f"0x{self.service:02x}", "cip_service": self.service_name,
        }
        if self.status is not None:
            out["cip_status_code"] = f"0x{self.status:02x}"
            out["cip_status"] = T.name_or_unknown(T.CIP_STATUSES, self.status)
        if self.ext_status is not None:
            out["cip_extended_status_code"] = f"0x{self.ext_status:04x}"
            out["cip_extended_status"] = T.extended_status_name(self.status or 0, self.ext_status)
        if self.class_id is not None:
            out["class_id"] = f"0x{self.class_id:02x}"
            out["class_name"] = T.name_or_unknown(T.CIP_CLASSES, self.class_id)
        for key, value in (("instance_id", self.instance_id), ("attribute_id", self.attribute_id),
                           ("member_id", self.member_id)):
            if value is not None:
                out[key] = f"0x{value:02x}"
        for key, value in (("symbol", self.symbol), ("request_path", self.request_path),
                           ("route_path", self.route_path), ("embedded_in", self.embedded_in),
                           ("msp_index", self.msp_index)):
            if value is not None:
                out[key] = value
        if self.connection_id is not None:
            out["connection_id"] = f"0x{self.connection_id:08x}"
        if self.response_ts is not None:
            out["response_ts"] = round(self.response_ts, 6)
        if self.response_service is not None:
            out["response_service_code"] = f"0x{self.response_service:02x}"
        out.update(self.info)
        if self.malformed:
            out["malformed"] = True
        return out

    @property
    def space(self) -> str | None:
        """Address space for analyzers: the tag's base name, or the class."""
        if self.symbol:
            return self.symbol.split("[", 1)[0]
        if self.class_id is not None:
            return f"class 0x{self.class_id:02x}"
        return None

    def op(self) -> Op | None:
        from otsensor.dissectors.enip.opmap import cip_op
        return cip_op(self)


@dataclass(frozen=True, slots=True)
class CipIdentity(Record):
    """A device identity from a ListIdentity item or a Get Attributes All reply on the identity object."""

    LOG: ClassVar[str] = "cip_identity"

    ts: float
    sender: Direction                 # the side that sent the reply: the device described
    source: str                       # "list_identity" or "get_attributes_all"
    ident: tuple[tuple[str, Any], ...]
    route_path: str | None = None     # set when the request was routed (Unconnected Send) to another module

    def to_dict(self) -> dict[str, Any]:
        ident = dict(self.ident)
        out: dict[str, Any] = {"is_orig": self.sender == Direction.ORIG, "source": self.source}
        for key in ("encapsulation_version", "socket_address", "socket_port"):
            if key in ident:
                out[key] = ident[key]
        out.update(identity_fields(ident))
        if self.route_path is not None:
            out["route_path"] = self.route_path
        return out

    def op(self) -> Op | None:
        return None

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        """The responder's identity; a reply routed through it (e.g. an ENBT answering for the
        controller in slot 0) describes a module behind it, kept under its own ``module[...]`` key."""
        facts = identity_facts(dict(self.ident))
        if self.route_path is None:
            return self.sender, facts
        summary = f"{facts['vendor']} {facts['product_name']} rev {facts['revision']} serial {facts['serial_number']}"
        return self.sender, {f"module[{self.route_path}]": summary}


@dataclass(frozen=True, slots=True)
class CipIO(Record):
    """One implicit I/O datagram (UDP 2222), tied to the Forward Open that created it when seen."""

    LOG: ClassVar[str] = "cip_io"

    ts: float
    is_orig: bool
    connection_id: int
    sequence_number: int
    data: bytes
    forward_open: tuple[tuple[str, Any], ...] = ()

    IO_HEX_CAP: ClassVar[int] = 128

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "is_orig": self.is_orig, "connection_id": f"0x{self.connection_id:08x}",
            "sequence_number": self.sequence_number, "data_length": len(self.data),
            "io_data": self.data[:self.IO_HEX_CAP].hex(),
        }
        if len(self.data) > self.IO_HEX_CAP:
            out["io_data_truncated"] = True
        out.update(("fo_" + key, value) for key, value in self.forward_open)
        return out

    def op(self) -> Op | None:
        """Cyclic I/O on a connection; ``detail`` carries the Forward Open's RPI and transport when known."""
        fo = dict(self.forward_open)
        detail = tuple((key, fo[key]) for key in ("direction", "rpi_us", "transport_class") if key in fo) or None
        return Op("cip", "I/O Data", Category.OTHER, space=f"connection 0x{self.connection_id:08x}",
                  ok=True, detail=detail)
