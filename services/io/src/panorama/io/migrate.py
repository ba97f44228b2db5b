"""Apply the database migrations once and exit: ``python -m panorama.io.migrate [revision]``.

Run as a one-shot job before io starts (a Kubernetes Job or init container, a pre-step of
``make up``), never from the app's lifespan: several workers migrating at once would race.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from panorama.io.db import ensure_sqlite_dir
from panorama.io.settings import IoSettings

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(database_url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    # Percent signs in a URL (an escaped password) would be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` to ``revision``. Must not run inside an event loop."""
    ensure_sqlite_dir(database_url)
    command.upgrade(alembic_config(database_url), revision)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    settings = IoSettings.load()
    upgrade(settings.database_url, args[0] if args else "head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
