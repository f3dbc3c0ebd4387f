"""Capture sources: pcap and pcapng files (gzip allowed)."""
from otsensor.sensor.capture.files import CaptureError, CaptureReader, open_capture, open_stream

__all__ = ["CaptureError", "CaptureReader", "open_capture", "open_stream"]
