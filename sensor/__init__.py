"""Capture, flows, pipeline, sinks and the otsensor command line."""
from otsensor.dissectors import _loader

_loader.install()   # before any other otsensor module: compiled or source build (see _loader)

__version__ = "0.1.0"
