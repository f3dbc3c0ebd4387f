"""A real clickhouse-server for the tests: Debian's package, started unprivileged on a free loopback port with
its own configuration and data directory under a temporary directory, stopped (and restartable) by the test.

Skips cleanly when the server is not installed (.ci/run installs it: apt-get install clickhouse-server).
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sensor.ports import free_ports

SERVER = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{dir}/server.log</log><errorlog>{dir}/server.err.log</errorlog></logger>
  <tcp_port>{port}</tcp_port>
  <http_port>{http_port}</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <format_schema_path>{dir}/format_schemas/</format_schema_path>
  <users_config>{dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709120</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>{tls}
</yandex>
"""
# HTTPS on a port of its own, with the test CA's server certificate (tests/sensor/syslog_receiver.py's certs)
TLS = """
  <https_port>{https_port}</https_port>
  <openSSL><server><certificateFile>{dir}/server.pem</certificateFile><privateKeyFile>{dir}/server-key.pem</privateKeyFile>
    <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>
    <disableProtocols>sslv2,sslv3</disableProtocols></server></openSSL>"""
USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile>
      <quota>default</quota></default>
    <sensor><password>{password}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile>
      <quota>default</quota></sensor>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""
PASSWORD = "s3cret-sensor"


class ClickHouseServer:
    def __init__(self, directory: Path, certs: Any = None) -> None:
        self.dir = directory
        ports = free_ports(*[socket.SOCK_STREAM] * (2 if certs is None else 3))
        self.port = ports[0]
        self.http_port = ports[1]      # the sink's inserts (``http_port`` in [clickhouse])
        self.https_port = ports[2] if certs is not None else None
        self.proc: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        tls = ""
        if certs is not None:          # copied: the server, as nobody, reads only its own directory
            shutil.copy(certs.server_cert, directory / "server.pem")
            shutil.copy(certs.server_key, directory / "server-key.pem")
            tls = TLS.format(dir=directory, https_port=self.https_port)
        (directory / "config.xml").write_text(CONFIG.format(dir=directory, port=self.port, http_port=self.http_port,
                                                            tls=tls))
        (directory / "users.xml").write_text(USERS.format(password=PASSWORD))

    @property
    def url(self) -> str:
        return f"clickhouse://127.0.0.1:{self.port}/otsensor"

    def start(self) -> None:
        """Start (as nobody when run as root: the server needs no privilege) and wait until it answers."""
        command = [SERVER, f"--config-file={self.dir / 'config.xml'}"]
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            subprocess.run(["chown", "-R", f"{nobody.pw_uid}:{nobody.pw_gid}", str(self.dir)], check=True)
            command = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", *command]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                # the port first, with a plain socket: clickhouse-driver logs a traceback for every refused try
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                self.client().execute("SELECT 1")
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None:
                    raise RuntimeError(f"clickhouse-server exited: {self.log_tail()}") from None
                time.sleep(0.1)
        raise RuntimeError(f"clickhouse-server did not answer in 30 s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would (no clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def client(self, database: str = "default"):
        from clickhouse_driver import Client
        return Client("127.0.0.1", port=self.port, database=database, connect_timeout=2,
                      send_receive_timeout=30)

    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        conn = self.client()
        try:
            return conn.execute(sql, params) if params else conn.execute(sql)   # no %-formatting without
        finally:
            conn.disconnect()

    def log_tail(self) -> str:
        path = self.dir / "server.err.log"
        return path.read_text(errors="replace")[-500:] if path.exists() else "(no log)"


def available() -> str | None:
    """Why the server cannot run here, or None."""
    if not os.path.exists(SERVER):
        return "clickhouse-server is not installed (apt-get install clickhouse-server)"
    try:
        import clickhouse_driver  # noqa: F401
    except ImportError:
        return "clickhouse-driver is not installed (pip install 'otsensor[clickhouse]')"
    return None


def running_server(certs: Any = None):
    """A started server in a directory of its own (pytest's temporary tree is closed to 'nobody'), stopped and
    removed when the generator ends; the test is skipped when no server can run here.  With ``certs``, it
    serves HTTPS too (``https_port``)."""
    reason = available()
    if reason:
        pytest.skip(reason)
    directory = Path(tempfile.mkdtemp(prefix="otsensor-clickhouse-"))
    os.chmod(directory, 0o755)
    server = ClickHouseServer(directory, certs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def clickhouse():
    """A server for the module's tests."""
    yield from running_server()


@pytest.fixture(scope="module")
def clickhouse_tls(certs):
    """A server that serves HTTPS as well, with the test CA's certificate."""
    yield from running_server(certs)
