"""Flow table and TCP stream reassembly."""
