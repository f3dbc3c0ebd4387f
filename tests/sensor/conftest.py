"""Fixtures of the sensor tests: a real rsyslogd and test certificates (see syslog_receiver.py); network
namespaces for the live-capture tests (see netlab.py); the web console's scenario plant analysed into a
directory and `otsensor serve` over it (see console_support.py); Debian's clickhouse-server (see
clickhouse_server.py)."""
from tests.sensor.clickhouse_server import clickhouse, clickhouse_tls  # noqa: F401
from tests.sensor.console_support import console_server, plant  # noqa: F401
from tests.sensor.syslog_receiver import certs, own_receiver, receiver  # noqa: F401
from tests.sensor.netlab import lab  # noqa: F401
