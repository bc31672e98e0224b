"""How things become vectors: the ``Embedder`` protocol, providers, cache and catalogue."""

from .base import BaseEmbedder, CostMeter, Embedder, EmbeddingResult
from .registry import register

__all__ = ["BaseEmbedder", "CostMeter", "Embedder", "EmbeddingResult", "register"]
