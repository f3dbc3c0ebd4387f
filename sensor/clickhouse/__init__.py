"""The ClickHouse output: table declarations, schema (DDL and migrations), the sink, and its commands."""
