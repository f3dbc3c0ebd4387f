"""Fixtures of the syslog sink tests: a real rsyslogd and test certificates (see syslog_receiver.py)."""
from tests.sensor.syslog_receiver import certs, own_receiver, receiver  # noqa: F401
