"""The HTTP layer: aiohttp application, exporter endpoints and the JSON shims."""
