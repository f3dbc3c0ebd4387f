"""The sink's block compression by where the server is (``compression = "auto"``, the default): none to a
server on loopback, where compressing costs CPU on both ends and saves no network; LZ4 to any other; an
explicit setting wins.  What goes on the wire is read by a relay between the sink and Debian's 18.16."""
from __future__ import annotations

import dataclasses
import socket
import threading

import pytest
from otsensor.sensor.clickhouse.connection import Target, compression, is_loopback
from otsensor.sensor.config import ClickHouseConfig

from tests.sensor.test_clickhouse_json import modbus_rows, run_sink, sink_config


class Relay:
    """Forwards one loopback port to another and keeps what the client sent (the sink's HTTP requests)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = bytearray()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for source, sink, keep in ((client, server, True), (server, client, False)):
                thread = threading.Thread(target=self._pump, args=(source, sink, keep), daemon=True)
                thread.start()
                self.threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, keep: bool) -> None:
        while data := source.recv(1 << 16):
            if keep:
                self.sent += data
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def inserts_sent(clickhouse, tmp_path, **settings) -> bytes:
    """The sink's requests, through the relay, of one run of three Modbus rows (all delivered)."""
    relay = Relay(clickhouse.http_port)
    try:
        cfg = dataclasses.replace(sink_config(clickhouse, "compression"), http_port=relay.port, **settings)
        report = run_sink(cfg, tmp_path, {"modbus": modbus_rows()})
    finally:
        relay.close()
    assert report["tables"]["modbus"]["delivered"] == 3
    requests = bytes(relay.sent)
    assert b"INSERT+INTO" in requests
    return requests


def test_by_default_rows_go_uncompressed_to_a_server_on_loopback(clickhouse, tmp_path):
    assert ClickHouseConfig(url="clickhouse://db/otsensor").compression == "auto"
    requests = inserts_sent(clickhouse, tmp_path)
    assert b"decompress=1" not in requests and b'"uid":"Cawkward"' in requests


def test_a_compression_set_in_the_configuration_is_used_on_loopback_too(clickhouse, tmp_path):
    requests = inserts_sent(clickhouse, tmp_path, compression="lz4")
    assert b"decompress=1" in requests and b'"uid":"Cawkward"' not in requests


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST.", True), ("db.localhost", True), ("10.0.0.5", False), ("fe80::1", False),
    ("clickhouse.plant.example", False), ("localhost.example", False)])
def test_auto_is_none_on_loopback_and_lz4_elsewhere(host, loopback):
    target = Target(host, 9000, "otsensor", "default", "", False)
    assert is_loopback(host) is loopback
    assert compression(ClickHouseConfig(url="clickhouse://db/otsensor"), target) == ("none" if loopback else "lz4")
    for explicit in ("lz4", "zstd", "none"):
        assert compression(ClickHouseConfig(url="clickhouse://db/otsensor", compression=explicit), target) == explicit
