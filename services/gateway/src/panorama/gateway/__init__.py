"""Panorama gateway: the public API, pure async, one pooled upstream client per downstream."""
