"""The logs Zeek with the ICSNPP packages writes (``--zeek-logs``): Zeek's view of connections, its formats, the sink."""
