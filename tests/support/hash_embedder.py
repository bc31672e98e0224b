"""A small deterministic embedder for tests that need many cheap, repeatable vectors.

Not a mock of a model: a real (if crude) embedder — hashed bag of words — so texts sharing
words are near each other and a search for "pizza" finds the pizza text. It counts every text
it is asked to embed, which lets tests prove that unchanged texts are never re-embedded.
"""

from __future__ import annotations

import hashlib
import re
import threading

import numpy as np

from semkit.models.base import BaseEmbedder, EmbeddingResult
from semkit.types import Kind

_WORD = re.compile(r"\w+")


class HashEmbedder(BaseEmbedder):
    """Hashed bag-of-words vectors (unit length), ``dimensions`` wide."""

    max_tokens = 10_000

    def __init__(self, dimensions: int = 64, name: str = "hash") -> None:
        super().__init__()
        self.dimensions = dimensions
        self.id = f"test:{name}@{dimensions}"
        self.calls: list[tuple[Kind, list[str]]] = []
        self._lock = threading.Lock()

    @property
    def texts_embedded(self) -> int:
        return sum(len(texts) for _, texts in self.calls)

    def _embed_texts(self, texts: list[str], kind: Kind) -> EmbeddingResult:
        with self._lock:
            self.calls.append((kind, list(texts)))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                slot = int.from_bytes(digest[:4], "little") % self.dimensions
                out[row, slot] += 1.0 if digest[4] & 1 else -1.0
            # A constant component keeps every vector non-zero (texts of punctuation only).
            out[row, 0] += 0.01
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        self.meter.add(items=len(texts), requests=1)
        return EmbeddingResult(out)
