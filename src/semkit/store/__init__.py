"""Where vectors live: the ``VectorStore`` protocol and its backends."""

from .base import CollectionSpec, Neighbors, Record, VectorStore

__all__ = ["CollectionSpec", "Neighbors", "Record", "VectorStore"]
