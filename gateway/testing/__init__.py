"""Test kits that third-party plugins and backends import: `gateway.testing.contract` (the backend contract suite) and `gateway.testing.conformance` (the vendor-API conformance kit)."""
