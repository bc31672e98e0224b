"""Request bodies of the Pinecone-compatible routes, with Pinecone's camelCase field names as the
official SDK sends them (``topK``, ``includeMetadata``, ``deleteAll``, ``setMetadata``...); the
snake_case spellings are accepted too. Fields semkit has no use for (``scanFactor``,
``maxCandidates``) are accepted and ignored, as a Pinecone serverless index ignores them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

QUERY_TOP_K_MAX = 10_000
"""Pinecone's own cap on ``topK``; the server's ``max_k`` limit applies too."""


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    namespace: str = Field("", max_length=512, description="The namespace ('' or '__default__': the default one)")


class PineconeVector(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    id: str = Field(min_length=1, max_length=512)
    values: list[float] = Field(default_factory=list, description="The dense vector")
    sparse_values: dict[str, Any] | None = Field(None, description="Refused when non-empty: dense vectors only")
    metadata: dict[str, Any] | None = None


class UpsertBody(_Body):
    vectors: list[PineconeVector] = Field(min_length=1)


class QueryBody(_Body):
    top_k: int = Field(ge=1, le=QUERY_TOP_K_MAX)
    vector: list[float] | None = None
    id: str | None = Field(None, min_length=1, max_length=512, description="Query with this stored vector")
    filter: dict[str, Any] | None = None
    include_values: bool = False
    include_metadata: bool = False
    sparse_vector: dict[str, Any] | None = None


class DeleteBody(_Body):
    ids: list[str] | None = None
    delete_all: bool = False
    filter: dict[str, Any] | None = None


class UpdateBody(_Body):
    id: str | None = Field(None, min_length=1, max_length=512)
    values: list[float] | None = None
    sparse_values: dict[str, Any] | None = None
    set_metadata: dict[str, Any] | None = None
    filter: dict[str, Any] | None = None
    dry_run: bool = False


class StatsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    filter: dict[str, Any] | None = None
