"""A real rsyslogd for the syslog sink tests and the benchmark, and certificates made with certtool.

The receiver runs in the foreground (``rsyslogd -n``) with its own work
directory and loopback ports chosen free at start.  Each input writes one JSON
object per received message to its own file: the raw message (``rawmsg``,
with control characters kept, so what arrives is exactly what was sent) and
rsyslog's own parse of the header (pri, hostname, app-name, procid, msgid,
structured data, msg), which checks that our RFC 5424 header is well formed.

Inputs: ``udp`` (imudp), ``tcp`` (imtcp, octet-counted or LF framing),
``tls`` (imtcp with the gtls driver, server certificate only) and ``mtls``
(gtls requiring a client certificate signed by the test CA).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sensor.ports import free_ports

INPUTS = ("udp", "tcp", "tls", "mtls")


def missing_tools() -> str | None:
    """Why the real-receiver tests cannot run here, or None."""
    for tool in ("rsyslogd", "certtool"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (apt-get install rsyslog rsyslog-gnutls gnutls-bin)"
    if not any(Path(d, "lmnsd_gtls.so").exists() for d in ("/usr/lib/x86_64-linux-gnu/rsyslog",
                                                              "/usr/lib/aarch64-linux-gnu/rsyslog",
                                                              "/usr/lib/rsyslog", "/usr/lib64/rsyslog")):
        return "rsyslog's TLS driver is not installed (apt-get install rsyslog-gnutls)"
    return None


def rsyslogd_path() -> str:
    return shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


@dataclass
class Certs:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str          # a CA that signed nothing here: verification against it must fail


def _certtool(*args: str) -> None:
    subprocess.run(["certtool", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certs(directory: Path) -> Certs:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate, and an unrelated CA."""
    directory.mkdir(parents=True, exist_ok=True)
    d = str(directory)

    def key(name: str) -> str:
        path = f"{d}/{name}-key.pem"
        _certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", path)
        return path

    def template(name: str, lines: list[str]) -> str:
        path = f"{d}/{name}.tmpl"
        Path(path).write_text("\n".join(lines + ["expiration_days = 2"]) + "\n")
        return path

    def ca(name: str) -> tuple[str, str]:
        k = key(name)
        cert = f"{d}/{name}.pem"
        _certtool("--generate-self-signed", "--load-privkey", k, "--outfile", cert,
                  "--template", template(name, [f'cn = "otsensor test {name}"', "ca", "cert_signing_key"]))
        return cert, k

    def leaf(name: str, ca_cert: str, ca_key: str, lines: list[str]) -> tuple[str, str]:
        k = key(name)
        cert = f"{d}/{name}.pem"
        _certtool("--generate-certificate", "--load-privkey", k, "--load-ca-certificate", ca_cert,
                  "--load-ca-privkey", ca_key, "--outfile", cert, "--template", template(name, lines))
        return cert, k

    ca_cert, ca_key = ca("ca")
    other, _ = ca("other-ca")
    server = leaf("server", ca_cert, ca_key, ['cn = "localhost"', 'dns_name = "localhost"',
                                              'ip_address = "127.0.0.1"', "tls_www_server", "signing_key",
                                              "encryption_key"])
    client = leaf("client", ca_cert, ca_key, ['cn = "otsensor-client"', 'dns_name = "otsensor-client"',
                                              "tls_www_client", "signing_key"])
    return Certs(ca_cert, server[0], server[1], client[0], client[1], other)


_TEMPLATE = """
template(name="capture" type="list" option.jsonf="on") {
  property(outname="raw" name="rawmsg" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="parsed" name="$!" format="jsonf")
}
"""
# rsyslog's own readers as independent oracles: mmpstrucdata parses RFC 5424 structured data, and
# liblognorm's "cef" field type (via mmnormalize) parses CEF, BOM-prefixed (RFC 5424) or not (RFC 3164).
_CEF_RULEBASE = "version=2\nrule=:\ufeff%cef:cef%\nrule=: %cef:cef%\nrule=:%cef:cef%\n"
# ... and what receivers configure: a rule routing on the payload's start ($msg startswith "CEF:", which a
# BOM before it defeats), and mmjsonparse reading a JSON payload (into $!json; a non-JSON one lands there
# as {"msg": ...}).
_RECEIVER_RULES = ('if $msg startswith "CEF:" then { set $!starts_with = "CEF:"; } '
                   'else if $msg startswith "LEEF:" then { set $!starts_with = "LEEF:"; } '
                   'action(type="mmjsonparse" cookie="" container="!json") ')


class Rsyslog:
    """One rsyslogd with the four inputs; ``stop()`` and ``start()`` keep the same ports and files."""

    def __init__(self, workdir: Path, certs: Certs) -> None:
        self.dir = workdir
        self.certs = certs
        self.ports = dict(zip(INPUTS,
                              free_ports(socket.SOCK_DGRAM, socket.SOCK_STREAM, socket.SOCK_STREAM, socket.SOCK_STREAM)))
        self.proc: subprocess.Popen | None = None
        (workdir / "work").mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "rsyslog.conf"
        (workdir / "cef.rb").write_text(_CEF_RULEBASE, encoding="utf-8")
        self.conf.write_text(self._config())

    def url(self, kind: str) -> str:
        scheme = "tls" if kind == "mtls" else kind
        return f"{scheme}://127.0.0.1:{self.ports[kind]}"

    def output(self, kind: str) -> Path:
        return self.dir / f"{kind}.jsonl"

    def _config(self) -> str:
        c = self.certs
        lines = [
            f'global(workDirectory="{self.dir / "work"}" maxMessageSize="256k"',
            '       parser.escapeControlCharactersOnReceive="off"',
            f'       defaultNetstreamDriverCAFile="{c.ca}" defaultNetstreamDriverCertFile="{c.server_cert}"',
            f'       defaultNetstreamDriverKeyFile="{c.server_key}")',
            'module(load="imudp")',
            'module(load="imtcp" maxSessions="200")',
            'module(load="mmpstrucdata")',
            'module(load="mmnormalize")',
            'module(load="mmjsonparse")',
            _TEMPLATE,
        ]
        for kind in INPUTS:
            lines.append(f'ruleset(name="{kind}") {{ {_RECEIVER_RULES}action(type="mmpstrucdata") '
                         f'action(type="mmnormalize" rulebase="{self.dir / "cef.rb"}") '
                         f'action(type="omfile" file="{self.output(kind)}" template="capture") }}')
        # a large receive buffer: on a loaded CI machine a burst must wait in the kernel, not be dropped there
        lines.append(f'input(type="imudp" address="127.0.0.1" port="{self.ports["udp"]}" ruleset="udp" '
                     'rcvbufSize="8m")')
        lines.append(f'input(type="imtcp" address="127.0.0.1" port="{self.ports["tcp"]}" ruleset="tcp")')
        lines.append(f'input(type="imtcp" address="127.0.0.1" port="{self.ports["tls"]}" ruleset="tls" '
                     'streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")')
        lines.append(f'input(type="imtcp" address="127.0.0.1" port="{self.ports["mtls"]}" ruleset="mtls" '
                     'streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")')
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> None:
        with open(self.dir / "rsyslogd.out", "ab") as log:
            self.proc = subprocess.Popen([rsyslogd_path(), "-n", "-f", str(self.conf), "-i", str(self.dir / "pid")],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rsyslogd exited: {(self.dir / 'rsyslogd.out').read_text()[-2000:]}")
            if all(_listening(self.ports[k]) for k in ("tcp", "tls", "mtls")):
                return
            time.sleep(0.05)
        raise RuntimeError("rsyslogd did not start listening in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def freeze(self) -> None:
        """Stop reading without closing anything (a hung receiver): what is sent now sits in its buffers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def crash(self) -> None:
        """Die at once: data in its socket buffers and in-memory queue is lost, connections are reset."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def messages(self, kind: str, app: str | None = None) -> list[dict]:
        path = self.output(kind)
        if not path.exists():
            return []
        out = []
        data = path.read_bytes()
        # rsyslog may be in the middle of writing the last line (even of a UTF-8 sequence): read it next poll
        complete = data[:data.rfind(b"\n") + 1]
        for line in complete.decode("utf-8").split("\n"):
            if line.strip():
                row = json.loads(line)
                row["parsed"] = json.loads(row["parsed"]) if row.get("parsed") else {}
                if app is None or row.get("app") == app:
                    out.append(row)
        return out

    def wait_for(self, kind: str, app: str, count: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.messages(kind, app)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# -- pytest fixtures (import them into a test module to use them) ---------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def receiver(tmp_path_factory, certs):
    """One rsyslogd shared by a module's tests (each test tells its messages apart by app-name)."""
    rs = Rsyslog(tmp_path_factory.mktemp("rsyslog"), certs)
    rs.start()
    yield rs
    rs.stop()


@pytest.fixture
def own_receiver(tmp_path, certs):
    """An rsyslogd this test may stop, freeze, crash and start."""
    rs = Rsyslog(tmp_path / "rsyslog", certs)
    rs.start()
    yield rs
    rs.stop()
