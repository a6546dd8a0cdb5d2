"""Stores chosen by URI scheme, as MLflow chooses its tracking stores.

    open_store("./blindspots-data")                       embedded (SQLite + Parquet), the default
    open_store("file:///srv/blindspots")                  the same
    open_store("postgresql://u@db/blindspots", files="/mnt/shared/blindspots")   PostgreSQL + shared files

A backend registers a factory ``(location, files) -> Store`` under its
schemes; a scheme nobody registered is refused with the list of known ones.
"""
from __future__ import annotations

from typing import Callable, Optional

from .base import Store

StoreFactory = Callable[[str, Optional[str]], Store]
_FACTORIES: dict[str, StoreFactory] = {}


def register_store(schemes: list[str], factory: StoreFactory) -> None:
    for scheme in schemes:
        _FACTORIES[scheme] = factory


def store_schemes() -> list[str]:
    return sorted(_FACTORIES)


def open_store(location: str, files: Optional[str] = None) -> Store:
    """Open the store named by a path or URI; ``files`` is where a catalog-only store keeps row files."""
    scheme = location.split("://", 1)[0] if "://" in location else ""
    factory = _FACTORIES.get(scheme)
    if factory is None:
        raise ValueError(f"store: no backend for {scheme!r} URIs; known: a directory path, "
                         + ", ".join(f"{s}://" for s in store_schemes() if s))
    return factory(location, files)


def _embedded(location: str, files: Optional[str]) -> Store:
    from .embedded import EmbeddedStore
    if files:
        raise ValueError("files: the embedded store keeps its row files in its own directory; "
                         "--files goes with a postgresql:// store")
    return EmbeddedStore(location[len("file://"):] if location.startswith("file://") else location)


def _postgres(location: str, files: Optional[str]) -> Store:
    from .postgres import PostgresStore
    return PostgresStore(location, files or "")


register_store(["", "file"], _embedded)
register_store(["postgresql", "postgres"], _postgres)
