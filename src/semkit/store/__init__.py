"""Where vectors live: the ``VectorStore`` protocol and its backends.

- ``base``: the protocol, ``CollectionSpec``/``Record``/``Neighbors``, and what every backend
  shares: ``prepare_rows`` (the one validation of writes, with a hook for backend rules) and the
  argument checks;
- ``registry``: which URI scheme opens which backend, and what each backend can do;
- ``filters``: the filter language, parsed once; ``sqlite_sql``/``pg_sql`` compile it to SQL;
- ``keyword``: tokenizer and BM25 for backends without a full-text engine;
- backends: ``embedded`` (default; ``ann_index`` is its derived HNSW file), ``pgvector``,
  ``qdrant``, ``memory`` (the reference); ``io``: export and import files.

A backend never imports another backend or the registry (``tests/unit/test_store_registry.py``).
"""

from .base import CollectionSpec, Neighbors, Record, VectorStore

__all__ = ["CollectionSpec", "Neighbors", "Record", "VectorStore"]
