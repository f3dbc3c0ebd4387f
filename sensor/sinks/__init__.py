"""Where records and alerts go: files first; syslog and ClickHouse later."""
