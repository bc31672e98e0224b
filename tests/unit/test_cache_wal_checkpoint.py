"""Clearing the embedding cache empties its write-ahead log (a clear under a running server
once left a 214 MB -wal file behind)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from semkit.models.cache import EmbeddingCache


def _wal_bytes(cache: EmbeddingCache) -> int:
    wal = Path(f"{cache.path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_clear_checkpoints_the_write_ahead_log_while_another_connection_stays_open(tmp_path: Path) -> None:
    writer = EmbeddingCache.open(tmp_path)
    server = EmbeddingCache.open(tmp_path)  # a second user keeping the file open, as a server does
    texts = [f"text number {i}" for i in range(3000)]
    vectors = np.random.default_rng(0).standard_normal((len(texts), 384)).astype(np.float32)
    writer.put_many("fp-a", "document", texts, vectors)
    assert server.get_many("fp-a", "document", texts[:1])[0] is not None
    assert writer.clear() == len(texts)
    assert _wal_bytes(writer) == 0
    assert server.get_many("fp-a", "document", texts[:1]) == [None]
    writer.put_many("fp-b", "document", texts[:500], vectors[:500])
    writer.put_many("fp-c", "document", texts[:500], vectors[:500])
    assert writer.clear("fp-b") == 500
    assert _wal_bytes(writer) == 0
    assert server.get_many("fp-c", "document", texts[:1])[0] is not None
    writer.close()
    server.close()
    assert os.path.exists(writer.path)
