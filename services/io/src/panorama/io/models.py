"""The database tables, as SQLAlchemy 2 typed ORM classes (the migrations create them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    # Fetch server-generated columns (created_at) in the INSERT's RETURNING: with
    # expire_on_commit=False nothing would load them later, and lazy loads cannot happen in async.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Unique in the database, not only in the route: two concurrent POSTs cannot both win.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
