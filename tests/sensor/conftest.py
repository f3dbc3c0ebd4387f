"""Fixtures of the sensor tests: a real rsyslogd and test certificates (see syslog_receiver.py); network
namespaces for the live-capture tests (see netlab.py)."""
from tests.sensor.syslog_receiver import certs, own_receiver, receiver  # noqa: F401
from tests.sensor.netlab import lab  # noqa: F401
