"""The error every network sink raises when it cannot work as configured.

Apart from the sinks themselves so that a run without a network sink need not import them (the syslog
sink brings ssl, sockets and the message formats): the command line catches this error on every run.
"""


class SinkError(Exception):
    """A sink cannot work as configured; the message names the sink."""
