"""Panorama compute service: CPU work in a process pool, the event loop never blocked."""
