"""Asset inventory, communication graph, zones, baseline learning and detection."""
