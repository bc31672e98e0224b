"""How things become vectors: the ``Embedder`` protocol, the provider table, cache and catalogue.

Inside this package imports point one way: ``build`` → ``registry``/``tokens``/``availability``
→ ``providers`` (the table) → the provider modules (``local``, ``openai``, ``cohere``, ``clip``,
``remote``) → ``base``, ``catalog``, ``counters``, ``locate``, ``images``.
"""

from .base import BaseEmbedder, CostMeter, Embedder, EmbeddingResult, ImageEmbedder, Provider, supports_images
from .providers import register

__all__ = [
    "BaseEmbedder",
    "CostMeter",
    "Embedder",
    "EmbeddingResult",
    "ImageEmbedder",
    "Provider",
    "register",
    "supports_images",
]
