"""Built-in storage backends (memory, SQLite, Elasticsearch); each registers through `storage_backends`."""
