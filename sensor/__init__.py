"""Capture, flows, pipeline, sinks and the otsensor command line."""
__version__ = "0.1.0"
