"""A minimal service built with the core factory, for tests that run real gunicorn processes."""

from panorama.core.service import create_service_app
from panorama.core.settings import PanoramaSettings


def create_app():
    return create_service_app(service="sample", settings=PanoramaSettings.load())
