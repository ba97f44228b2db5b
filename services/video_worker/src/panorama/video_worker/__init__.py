"""Panorama video worker: Celery prefork worker running ffmpeg."""
