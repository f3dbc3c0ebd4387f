"""What a Modbus PDU decodes to: the fields every function may have (:class:`Pdu`) and, for the functions
that carry more, one typed :class:`Detail` that writes its own columns (pdu.py holds the decoders)."""
from __future__ import annotations

from typing import Any, ClassVar

from otsensor.dissectors.modbus import tables as t

class Detail:
    """Function-specific fields of one PDU; each subclass writes its own columns."""

    __slots__ = ()
    # the columns a subclass may write, for the log's declaration (dissector.py)
    COLUMNS: ClassVar[str] = ""

    def fill_row(self, row: dict[str, Any]) -> None:
        raise NotImplementedError


class Pdu:
    """A decoded request or response body.

    ``body`` keeps the bytes after the function code: the Zeek logs show
    what Zeek's analyzer hands its scripts (diagnostic data, MEI data, the
    padding bits after the last coil read), which the decoded fields leave out.
    """

    __slots__ = ("address", "quantity", "values", "detail", "body")

    def __init__(self, address: int | None = None, quantity: int | None = None, values: list[int] | None = None,
                 detail: Detail | None = None) -> None:
        self.address = address
        self.quantity = quantity
        self.values = values
        self.detail = detail
        self.body = b""


class Diagnostic(Detail):
    __slots__ = ("sub_function",)
    COLUMNS: ClassVar[str] = "sub_function:count sub_function_name:string"

    def __init__(self, sub_function: int) -> None:
        self.sub_function = sub_function

    def fill_row(self, row: dict[str, Any]) -> None:
        row["sub_function"] = self.sub_function
        row["sub_function_name"] = t.diagnostic_name(self.sub_function)


class MaskWrite(Detail):
    __slots__ = ("and_mask", "or_mask")
    COLUMNS: ClassVar[str] = "and_mask:count or_mask:count"

    def __init__(self, and_mask: int, or_mask: int) -> None:
        self.and_mask = and_mask
        self.or_mask = or_mask

    def fill_row(self, row: dict[str, Any]) -> None:
        row["and_mask"] = self.and_mask
        row["or_mask"] = self.or_mask


class ReadWrite(Detail):
    """FC 23: the read half beside the write half (address/quantity/values are the write's)."""

    __slots__ = ("read_address", "read_quantity", "write_address", "write_quantity")
    COLUMNS: ClassVar[str] = "read_address:count read_quantity:count write_address:count write_quantity:count"

    def __init__(self, read_address: int, read_quantity: int, write_address: int, write_quantity: int) -> None:
        self.read_address = read_address
        self.read_quantity = read_quantity
        self.write_address = write_address
        self.write_quantity = write_quantity

    def fill_row(self, row: dict[str, Any]) -> None:
        row["read_address"] = self.read_address
        row["read_quantity"] = self.read_quantity
        row["write_address"] = self.write_address
        row["write_quantity"] = self.write_quantity


class FileRecords(Detail):
    """FC 20/21 sub-requests (or, in a response, the records read), as a list of objects."""

    __slots__ = ("records",)
    COLUMNS: ClassVar[str] = "file_records:json"

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def fill_row(self, row: dict[str, Any]) -> None:
        row["file_records"] = self.records


class CommEvents(Detail):
    """FC 11 (status and event count) and FC 12 (the event log as well)."""

    __slots__ = ("status", "event_count", "message_count", "events")
    COLUMNS: ClassVar[str] = "status:count event_count:count message_count:count events:vector[count]"

    def __init__(self, status: int, event_count: int, message_count: int | None = None,
                 events: list[int] | None = None) -> None:
        self.status = status
        self.event_count = event_count
        self.message_count = message_count
        self.events = events

    def fill_row(self, row: dict[str, Any]) -> None:
        row["status"] = self.status
        row["event_count"] = self.event_count
        if self.message_count is not None:
            row["message_count"] = self.message_count
            row["events"] = self.events


class ServerId(Detail):
    __slots__ = ("server_id", "text", "run_indicator")
    COLUMNS: ClassVar[str] = "server_id:string server_id_text:string run_indicator:string"

    def __init__(self, server_id: str, text: str, run_indicator: str) -> None:
        self.server_id = server_id
        self.text = text
        self.run_indicator = run_indicator

    def fill_row(self, row: dict[str, Any]) -> None:
        row["server_id"] = self.server_id
        row["server_id_text"] = self.text
        row["run_indicator"] = self.run_indicator


class Mei(Detail):
    """FC 43: MEI transport; Read Device Identification (MEI 14) decoded, other MEI types kept as hex."""

    __slots__ = ("mei_type", "read_device_id_code", "object_id", "conformity_level", "more_follows",
                 "next_object_id", "objects", "mei_data")
    COLUMNS: ClassVar[str] = ("mei_type:string mei_code:count read_device_id_code:string object_id:count "
                              "conformity_level:string more_follows:bool next_object_id:count "
                              "device_identification:json mei_data:string")

    def __init__(self, mei_type: int) -> None:
        self.mei_type = mei_type
        self.read_device_id_code: str | None = None
        self.object_id: int | None = None
        self.conformity_level: str | None = None
        self.more_follows: bool | None = None
        self.next_object_id: int | None = None
        self.objects: dict[str, str] | None = None
        self.mei_data: str | None = None

    def fill_row(self, row: dict[str, Any]) -> None:
        row["mei_type"] = t.mei_name(self.mei_type)   # ICSNPP's mei_type: the name
        row["mei_code"] = self.mei_type
        if self.mei_data is not None:
            row["mei_data"] = self.mei_data
            return
        row["read_device_id_code"] = self.read_device_id_code
        if self.object_id is not None:
            row["object_id"] = self.object_id
        if self.objects is not None:
            row["conformity_level"] = self.conformity_level
            row["more_follows"] = self.more_follows
            row["next_object_id"] = self.next_object_id
            row["device_identification"] = self.objects


class Opaque(Detail):
    """User-defined and reserved codes, and bodies too short to decode: the raw bytes, capped."""

    __slots__ = ("data",)
    COLUMNS: ClassVar[str] = "data:string"

    def __init__(self, data: str) -> None:
        self.data = data

    def fill_row(self, row: dict[str, Any]) -> None:
        row["data"] = self.data


DETAILS: tuple[type[Detail], ...] = (Diagnostic, MaskWrite, ReadWrite, FileRecords, CommEvents, ServerId, Mei,
                                     Opaque)
