"""Asset inventory, communication graph, zones, baseline learning and detection."""
from otsensor.dissectors import _loader

_loader.install()   # before any other otsensor module: compiled or source build (see _loader)
