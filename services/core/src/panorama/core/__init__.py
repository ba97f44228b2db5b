"""Panorama's shared library: imported by every service, never run on its own.

Imports point one way: services import ``panorama.core``; nothing here imports a service.
"""
