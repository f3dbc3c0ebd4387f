"""Sans-I/O protocol dissectors: bytes and a direction in, typed records out."""
from otsensor.dissectors import _loader

_loader.install()   # before any other otsensor module: compiled or source build (see _loader)
