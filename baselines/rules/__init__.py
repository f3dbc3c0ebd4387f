"""Detection rule catalogue."""
