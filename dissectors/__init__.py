"""Sans-I/O protocol dissectors: bytes and a direction in, typed records out."""
