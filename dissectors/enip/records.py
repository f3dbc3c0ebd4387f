"""Records of the EtherNet/IP + CIP dissector: enip, cip, cip_identity and cip_io logs.

Field names follow Zeek ICSNPP-ENIP (scripts/icsnpp/enip/main.zeek) where it has one.
"""
from __future__ import annotations

from typing import Any, ClassVar, Final

from otsensor.dissectors.base import Category, Column, Direction, Op, Record, Tag, columns
from otsensor.dissectors.enip import cip, connmgr, logix, pccc, zeek
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.connections import IOConnection, io_space
from otsensor.dissectors.enip.encap import Header, ListedIdentity
from otsensor.dissectors.enip.identity import IdentityAttribute, IdentityAttributes
from otsensor.dissectors.enip.message import Data, Message, ResponseData, TypedValues
from otsensor.dissectors.enip.logix import ReadModifyWrite, WriteTag
from otsensor.dissectors.enip.opmap import cip_op, logix_items

_IDENTITY_READ: Final = frozenset({Tag.IDENTITY_READ})


def union(*specs: str) -> str:
    """Column declarations joined, each name once (where it first appears); one name, one type."""
    kinds: dict[str, str] = {}
    for spec in specs:
        for item in spec.split():
            name, _, kind = item.partition(":")
            if kinds.setdefault(name, kind) != kind:
                raise ValueError(f"column {name!r} declared as {kinds[name]} and {kind}")
    return " ".join(f"{name}:{kind}" for name, kind in kinds.items())


class EnipRecord(Record):
    """One encapsulation message (Vol. 2 2-3)."""

    __slots__ = ("is_orig", "header", "cpf_items", "connection_id", "list_items", "malformed")
    LOG: ClassVar[str] = "enip"
    ZEEK_SCRIPT: ClassVar[Any] = zeek.EnipScript
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "is_orig:bool enip_command_code:string enip_command:string length:count session_handle:string "
        "enip_status_code:string enip_status:string sender_context:string options:string cpf_items:vector[string] "
        "connection_id:string list_items:vector[string] malformed:bool")

    def __init__(self, ts: float, is_orig: bool, header: Header, cpf_items: list[str] | None = None,
                 connection_id: int | None = None, list_items: list[str] | None = None, malformed: bool = False
                 ) -> None:
        super().__init__(ts)
        self.is_orig = is_orig
        self.header = header
        self.cpf_items = cpf_items           # CPF item names, in order
        self.connection_id = connection_id   # from a connected address item
        self.list_items = list_items         # what a List Identity / List Services reply lists
        self.malformed = malformed

    @property
    def command(self) -> int:
        return self.header.command

    @property
    def command_name(self) -> str:
        return T.name_or_unknown(T.ENIP_COMMANDS, self.header.command, 4)

    def fill_row(self, row: dict[str, Any]) -> None:
        hdr = self.header
        row["is_orig"] = self.is_orig
        row["enip_command_code"] = T.hex2(hdr.command)
        row["enip_command"] = self.command_name
        row["length"] = hdr.length
        row["session_handle"] = T.hex8(hdr.session)
        row["enip_status_code"] = T.hex2(hdr.status)
        row["enip_status"] = T.name_or_unknown(T.ENIP_STATUSES, hdr.status)
        row["sender_context"] = "0x" + hdr.context.hex()
        row["options"] = T.hex8(hdr.options)
        if self.cpf_items:
            row["cpf_items"] = self.cpf_items
        if self.connection_id is not None:
            row["connection_id"] = T.hex8(self.connection_id)
        if self.list_items:
            row["list_items"] = self.list_items
        if self.malformed:
            row["malformed"] = True

    def zeek_events(self) -> tuple[Any, ...]:
        return zeek.enip_events(self)

    def op(self) -> Op | None:
        """Session and discovery commands; CIP-carrying commands are described by their cip records."""
        if not self.is_orig:
            return None
        command = self.header.command
        if command in (T.REGISTER_SESSION, T.UNREGISTER_SESSION):
            return Op("enip", self.command_name, Category.SESSION)
        if command == T.LIST_IDENTITY:
            return Op("enip", self.command_name, Category.RECON, tags=_IDENTITY_READ)
        if command in (T.LIST_SERVICES, T.LIST_INTERFACES):
            return Op("enip", self.command_name, Category.RECON)
        return None


class CipRecord(Record):
    """One CIP request with its response (paired per flow), or either alone.

    The record keeps the parsed messages and builds its row from them; embedded MSP / Unconnected
    Send services get a record each, pointing at their carrier with ``embedded_in`` / ``msp_index``.
    Service data is the messages' typed details: the request's columns first, then the reply's (a
    column both carry keeps the request's place and the reply's value).
    """

    __slots__ = ("is_orig", "request", "response", "response_ts", "sequence_count", "connection_id", "embedded_in",
                 "msp_index", "route_path", "refused", "malformed", "service", "service_name", "wire_request")
    LOG: ClassVar[str] = "cip"
    ZEEK_SCRIPT: ClassVar[Any] = zeek.EnipScript
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(union(
        "is_orig:bool direction:string matched:bool cip_sequence_count:count cip_service_code:string "
        "cip_service:string cip_status_code:string cip_status:string cip_extended_status_code:string "
        "cip_extended_status:string class_id:string class_name:string instance_id:string attribute_id:string "
        "member_id:string symbol:string request_path:string route_path:string embedded_in:string msp_index:count "
        "connection_id:string response_ts:time response_service_code:string",
        *(d.COLUMNS for d in cip.DETAILS + connmgr.DETAILS + logix.DETAILS), pccc.PcccRequest.COLUMNS,
        TypedValues.COLUMNS, Data.COLUMNS, pccc.PcccReply.COLUMNS, IdentityAttribute.COLUMNS, ResponseData.COLUMNS,
        "msp_services:vector[string] enip_status_code:string enip_status:string malformed:bool"))

    def __init__(self, ts: float, is_orig: bool, request: Message | None, response: Message | None,
                 response_ts: float | None = None, sequence_count: int | None = None,
                 connection_id: int | None = None, embedded_in: str | None = None, msp_index: int | None = None,
                 route_path: str | None = None, refused: int | None = None, malformed: bool = False) -> None:
        super().__init__(ts)
        self.is_orig = is_orig
        self.request = request                # None: an orphan response
        self.response = response              # None: unanswered (or refused at the encapsulation layer)
        self.response_ts = response_ts        # the reply's capture time, rounded as the row shows it
        self.sequence_count = sequence_count
        self.connection_id = connection_id
        self.embedded_in = embedded_in        # "multiple_service_packet" or "unconnected_send"
        self.msp_index = msp_index
        self.route_path = route_path
        self.refused = refused                # the encapsulation status that refused the request
        self.malformed = malformed
        head = request if request is not None else response
        assert head is not None
        self.service = head.service
        self.service_name = head.name()
        self.wire_request = request           # the request as sent (an Unconnected Send, not its embedded one)

    @property
    def direction(self) -> str:
        """request_response, request (unanswered) or response (orphan)."""
        if self.request is not None:
            return "request_response" if self.response is not None else "request"
        return "response"

    @property
    def matched(self) -> bool:
        return self.request is not None and self.response is not None

    @property
    def status(self) -> int | None:
        return self.response.status if self.response is not None else None

    @property
    def symbol(self) -> str | None:
        path = self.request.path if self.request is not None else None
        return path.tag if path is not None else None

    def fill_row(self, row: dict[str, Any]) -> None:
        req, resp = self.request, self.response
        row["is_orig"] = self.is_orig
        row["direction"] = self.direction
        row["matched"] = req is not None and resp is not None
        row["cip_sequence_count"] = self.sequence_count
        row["cip_service_code"] = T.hex2(self.service)
        row["cip_service"] = self.service_name
        if resp is not None:
            _fill_status(row, resp)
        path = req.path if req is not None else None
        if path is not None:
            row.update(path.columns())
        self._fill_carriage(row)
        if req is not None and resp is not None:
            if self.response_ts is not None:
                row["response_ts"] = self.response_ts
            if resp.service != req.service:
                row["response_service_code"] = T.hex2(resp.service)
        if req is not None and req.detail is not None:
            req.detail.fill_row(row)
        if resp is not None and resp.detail is not None:
            resp.detail.fill_row(row)
        if req is not None and req.children:
            row["msp_services"] = [child.name() for child in req.children]
        if self.refused is not None:
            row["enip_status_code"] = f"0x{self.refused:02x}"
            row["enip_status"] = T.name_or_unknown(T.ENIP_STATUSES, self.refused)
        if self.malformed:
            row["malformed"] = True

    def _fill_carriage(self, row: dict[str, Any]) -> None:
        """How the service travelled: routed, embedded, on which connection."""
        if self.route_path is not None:
            row["route_path"] = self.route_path
        if self.embedded_in is not None:
            row["embedded_in"] = self.embedded_in
        if self.msp_index is not None:
            row["msp_index"] = self.msp_index
        if self.connection_id is not None:
            row["connection_id"] = T.hex8(self.connection_id)

    def zeek_events(self) -> tuple[Any, ...]:
        return zeek.cip_events(self)

    def op(self) -> Op | None:
        if self.request is None:
            return None          # an orphan response: its request (and so its meaning) was not seen
        return cip_op(self.request, self.response, self.service_name, self.refused is not None)

    def extra_ops(self) -> tuple[Op, ...]:
        """A Logix write's elements, one Op each (opmap.logix_items), whether sent alone, in a Multiple
        Service Packet or through Unconnected Send (each embedded service is a record of its own)."""
        req = self.request
        if req is None or not isinstance(req.detail, (WriteTag, ReadModifyWrite)):
            return ()
        op = self.op()
        return () if op is None or op.category != Category.WRITE else logix_items(op, req)


def _fill_status(row: dict[str, Any], resp: Message) -> None:
    status = resp.status
    if status is not None:
        row["cip_status_code"] = T.HEX2[status]
        row["cip_status"] = T.CIP_STATUS_NAMES[status]
    if resp.ext_status is not None:
        row["cip_extended_status_code"] = f"0x{resp.ext_status:04x}"
        row["cip_extended_status"] = T.extended_status_name(status or 0, resp.ext_status)


class CipIdentity(Record):
    """A device identity from a ListIdentity item or a Get Attributes All reply on the identity object."""

    __slots__ = ("sender", "source", "ident", "listed", "route_path")
    LOG: ClassVar[str] = "cip_identity"
    ZEEK_SCRIPT: ClassVar[Any] = zeek.EnipScript
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "is_orig:bool source:string encapsulation_version:count socket_address:addr socket_port:port "
        + IdentityAttributes.COLUMNS + " route_path:string")

    def __init__(self, ts: float, sender: Direction, source: str, ident: IdentityAttributes,
                 route_path: str | None = None, listed: ListedIdentity | None = None) -> None:
        super().__init__(ts)
        self.sender = sender            # the side that sent the reply: the device described
        self.source = source            # "list_identity" or "get_attributes_all"
        self.ident = ident
        self.route_path = route_path    # set when the request was routed (Unconnected Send) to another module
        self.listed = listed            # the ListIdentity item, with the socket the device listens on

    def fill_row(self, row: dict[str, Any]) -> None:
        row["is_orig"] = self.sender == Direction.ORIG
        row["source"] = self.source
        listed = self.listed
        if listed is not None:
            row["encapsulation_version"] = listed.version
            row["socket_address"] = listed.socket_address
            row["socket_port"] = listed.socket_port
        self.ident.fill_row(row)
        if self.route_path is not None:
            row["route_path"] = self.route_path

    def zeek_events(self) -> tuple[Any, ...]:
        return zeek.identity_events(self)

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        """The responder's identity; a reply routed through it (e.g. an ENBT answering for the
        controller in slot 0) describes a module behind it, kept under its own ``module[...]`` key."""
        facts = self.ident.facts()
        if self.route_path is None:
            return self.sender, facts
        summary = f"{facts['vendor']} {facts['product_name']} rev {facts['revision']} serial {facts['serial_number']}"
        return self.sender, {f"module[{self.route_path}]": summary}


class CipIO(Record):
    """One implicit I/O datagram (UDP 2222), tied to the Forward Open that created it when seen."""

    __slots__ = ("is_orig", "connection_id", "sequence_number", "data", "connection")
    LOG: ClassVar[str] = "cip_io"
    ZEEK_SCRIPT: ClassVar[Any] = zeek.EnipScript
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "is_orig:bool connection_id:string sequence_number:count data_length:count io_data:string "
        "io_data_truncated:bool " + IOConnection.COLUMNS)
    IO_HEX_CAP: Final = 128

    def __init__(self, ts: float, is_orig: bool, connection_id: int, sequence_number: int, data: bytes,
                 connection: IOConnection | None = None) -> None:
        super().__init__(ts)
        self.is_orig = is_orig
        self.connection_id = connection_id
        self.sequence_number = sequence_number
        self.data = data
        self.connection = connection

    def fill_row(self, row: dict[str, Any]) -> None:
        row["is_orig"] = self.is_orig
        row["connection_id"] = T.hex8(self.connection_id)
        row["sequence_number"] = self.sequence_number
        row["data_length"] = len(self.data)
        row["io_data"] = self.data[:CipIO.IO_HEX_CAP].hex()
        if len(self.data) > CipIO.IO_HEX_CAP:
            row["io_data_truncated"] = True
        if self.connection is not None:
            self.connection.fill_row(row)

    def zeek_events(self) -> tuple[Any, ...]:
        return zeek.io_events(self)

    def op(self) -> Op | None:
        """Cyclic I/O on a connection; ``detail`` carries the Forward Open's RPI and transport when known."""
        if self.connection is not None:
            return self.connection.io_op(self.connection_id)
        return Op("cip", "I/O Data", Category.OTHER, space=io_space(self.connection_id), ok=True)
