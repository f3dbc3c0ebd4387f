"""The closed set of anomaly names this package emits, with what each means.

Names are public and stable: analyzers and tests refer to them.  They describe traffic; a bug in the
decoders is not traffic and has no name here: the dissector reports it as a DissectorFault
(``s7comm.dissector_error``, dissectors/base.py) and goes on with the rest of the stream.
"""
from __future__ import annotations

ANOMALIES: dict[str, str] = {
    # TPKT / COTP (RFC 1006, ISO 8073)
    "cotp.bad_tpkt_version": "TPKT header version is not 3: framing lost, bytes skipped to the next plausible header",
    "cotp.bad_tpkt_length": "TPKT length field below the 7-byte minimum",
    "cotp.truncated": "COTP TPDU shorter than its fixed header",
    "cotp.bad_length_indicator": "COTP length indicator does not fit the TPDU",
    "cotp.unknown_pdu_type": "COTP TPDU code not defined by ISO 8073",
    "cotp.bad_parameter": "COTP variable-part parameter overruns the header",
    "cotp.reassembly_overflow": "DT TPDUs without EOT exceeded the reassembly cap; the partial TSDU was dropped",
    "cotp.gap": "bytes of the stream were lost; the partial frame was dropped and the stream resynchronised",
    "cotp.unknown_payload": "COTP user data that is neither S7comm (0x32) nor S7comm-plus (0x72)",
    "cotp.truncated_stream": "the stream ended inside a TPKT frame",
    # S7comm (protocol id 0x32)
    "s7comm.truncated_pdu": "S7comm header or parameter/data part shorter than declared",
    "s7comm.bad_length": "S7comm parameter and data lengths disagree with the TPDU length",
    "s7comm.unknown_rosctr": "S7comm ROSCTR not Job/Ack/Ack_Data/Userdata",
    "s7comm.unknown_function": "S7comm function code not in the table",
    "s7comm.bad_item": "a Read/Write Var item (address or data) is malformed or truncated",
    "s7comm.item_count_mismatch": "item count differs between request and response, or from the items present",
    "s7comm.bad_userdata": "User-Data parameter head or data header malformed",
    "s7comm.bad_block_transfer": "block transfer (upload/download) parameter malformed",
    "s7comm.bad_pi_service": "PI-Service parameter block malformed",
    "s7comm.bad_szl": "SZL data malformed (record length/count do not fit)",
    "s7comm.fragment_overflow": "fragmented User-Data response exceeded the reassembly cap",
    "s7comm.too_many_pending": "more outstanding requests than the per-flow cap; the oldest was emitted unanswered",
    "s7comm.unmatched_response": "a response whose PDU reference matches no outstanding request",
    # S7comm-plus (protocol id 0x72)
    "s7comm_plus.truncated_pdu": "S7comm-plus header or fixed data part shorter than declared",
    "s7comm_plus.bad_trailer": "S7comm-plus trailer missing or not 0x72/version",
    "s7comm_plus.unknown_version": "S7comm-plus protocol version not 1, 2, 3, 0xfe or 0xff",
    "s7comm_plus.unknown_opcode": "S7comm-plus opcode not request/response/notification",
    "s7comm_plus.too_many_pending": "more outstanding S7comm-plus requests than the cap; the oldest was emitted unanswered",
    "s7comm_plus.unmatched_response": "an S7comm-plus response whose sequence number matches no request",
}
