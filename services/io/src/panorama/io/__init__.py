"""Panorama I/O service: async Postgres, Redis and outbound HTTP, with the `def` contrast."""
