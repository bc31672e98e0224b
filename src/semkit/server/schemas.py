"""Request and response bodies (pydantic), which are also the published OpenAPI schema.

Field constraints here give 422 answers with the field's path; what only the library can
judge (a filter's grammar, a vector's size for a collection) is checked by the library and
answered with its own message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, WithJsonSchema
from pydantic.functional_validators import AfterValidator

from .openai_fidelity import check_embeddings_input

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                            description="Collection name: letters, digits, '_', '.', '-'")]
Id = Annotated[str, Field(min_length=1, max_length=1024)]
Text = Annotated[str, Field(min_length=1, max_length=1_000_000, description="At most 1,000,000 characters")]
Query = Annotated[str, Field(min_length=1, max_length=8192, description=(
    "At most 8,192 characters (models read a few hundred tokens of it)"))]
Pattern = Annotated[str, Field(min_length=1, max_length=1000)]
MAX_TEXTS = 2048
"""Texts in one classify request (the same as /v1/embeddings' inputs)."""
Where = Annotated[dict[str, Any] | None, Field(
    description='Metadata filter, e.g. {"year": {"$gte": 2020}} ($eq $ne $gt $gte $lt $lte $in $nin $and $or)')]
Vector = Annotated[list[StrictFloat | StrictInt], Field(min_length=1, max_length=65536)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- OpenAI-compatible embeddings ------------------------------------------------------------

_TOKEN_IDS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
# Checked by one function: one short message instead of pydantic's dump of every union member.
EmbeddingsInput = Annotated[Any, AfterValidator(check_embeddings_input), WithJsonSchema({"anyOf": [
    {"type": "string", "minLength": 1, "maxLength": 1_000_000},
    {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1, "maxLength": 1_000_000}},
    _TOKEN_IDS,
    {"type": "array", "minItems": 1, "items": _TOKEN_IDS},
]}), Field(description="A text, a list of texts, a cl100k_base token array or a list of them")]


class EmbeddingsRequest(BaseModel):
    """OpenAI's ``POST /v1/embeddings`` body. Token arrays are decoded with ``cl100k_base``,
    the tokenizer OpenAI clients (LangChain's ``OpenAIEmbeddings``) encode with."""

    model_config = ConfigDict(extra="allow")  # OpenAI clients may send fields we ignore

    input: EmbeddingsInput
    model: Annotated[str, Field(min_length=1, max_length=300)]
    dimensions: Annotated[int | None, Field(ge=1, le=65536)] = None
    encoding_format: Literal["float", "base64"] = "float"
    user: Annotated[str | None, Field(max_length=256)] = None
    truncate: bool = Field(False, description=(
        "semkit extension: cut inputs longer than the model's context instead of answering 400 "
        "(the header X-Semkit-Truncate: true does the same); the response's `truncated` counts them"))


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage
    truncated: int = Field(0, description=(
        "semkit extension: inputs cut to the model's context (only with truncate: true; else such inputs are a 400)"))


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "semkit"
    dimensions: int | None = None
    context_length: int | None = Field(None, description="Tokens the model reads of one input")
    root: str | None = Field(None, description="The served model an alias (--served-model-name) stands for")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- collections -------------------------------------------------------------------------------

class CreateCollection(Strict):
    name: Name
    model: Annotated[str | None, Field(max_length=300, description=(
        "A model the server serves (see GET /v1/models); null with dimensions for your own vectors"))] = "local"
    dimensions: Annotated[int | None, Field(ge=1, le=65536)] = None
    metric: Literal["cosine", "dot", "l2"] | None = None
    dtype: Literal["float32", "float16", "int8", "binary"] | None = None


class CollectionInfo(BaseModel):
    name: str
    dimensions: int
    metric: str
    embedder: str | None
    dtype: str
    count: int


class RecordIn(Strict):
    id: Id
    text: Text | None = None
    vector: Vector | None = None
    metadata: dict[str, Any] | None = None


class UpsertRequest(Strict):
    records: Annotated[list[RecordIn], Field(min_length=1)]
    background: bool = Field(False, description="Run as a background job; poll GET /v1/jobs/{id}")


class UpsertResponse(BaseModel):
    count: int
    embedded: int
    unchanged: int


class RecordOut(BaseModel):
    id: str
    text: str | None
    metadata: dict[str, Any]
    vector: list[float] | None = None


class GetRequest(Strict):
    ids: Annotated[list[Id], Field(min_length=1)]
    include_vectors: bool = False


class DeleteRequest(Strict):
    ids: list[Id] | None = None
    where: Where = None


class CountRequest(Strict):
    where: Where = None


class SearchRequest(Strict):
    query: Query | None = Field(None, description="Text to search for (or give vector or image)")
    vector: Vector | None = None
    image: str | None = Field(None, min_length=1, description=(
        "An image to search by, base64-encoded (JPEG, PNG, WebP, GIF); the collection's model must "
        "embed images (clip:...). Image search is vector search"))
    mode: Literal["vector", "keyword", "hybrid"] = Field("hybrid", description=(
        "hybrid (default, as in the library, CLI and UI) | vector | keyword; a search by vector or image "
        "without a mode is a vector search"))
    k: Annotated[int, Field(ge=1)] = 10
    where: Where = None
    diversity: Annotated[float, Field(ge=0.0, le=1.0, description="MMR: 0 = relevance only")] = 0.0
    min_score: Annotated[float, Field(ge=0.0, le=1.0, description=(
        "Leave out hits scoring below this (scores are in [0, 1]); 0 keeps all"))] = 0.0
    fusion: Literal["convex", "rrf"] = Field("convex", description=(
        "hybrid only: convex (score-aware, default) or rrf (reciprocal rank fusion)"))
    rerank: Annotated[bool, Field(description=(
        "Re-score the best max(k, 20) hits with the reranker the server was started with "
        "(semkit serve --rerank windows|FOLDER; GET /healthz says which kind, null for none); "
        "text queries only"))] = False
    exact: bool = False
    include_vectors: bool = False


class Hit(BaseModel):
    id: str
    score: float = Field(description=(
        "Relevance in [0, 1], higher is better: the cosine clipped at 0 (vector), BM25 relative to the "
        "best hit times the best hit's share of the query words (keyword), the fused relevance (hybrid); "
        "with rerank, the reranker's relevance"))
    text: str | None
    metadata: dict[str, Any]
    snippet: str | None = None
    ranks: dict[str, int] = Field(default_factory=dict, description="Rank in each list (vector, keyword)")
    scores: dict[str, float] = Field(default_factory=dict, description="Raw score in each list (cosine, BM25)")
    vector: list[float] | None = None


class SearchResponse(BaseModel):
    mode: str
    hits: list[Hit]
    warnings: list[str] = Field(default_factory=list, description=(
        "Things worth telling the person who searched, e.g. a query in a language the collection's model "
        "does not cover (with a model that does)"))
    reranker: str | None = Field(None, description=(
        "The reranker that scored the hits (rerank: true), e.g. cross-encoder:NAME#sha=... or "
        "sentence-windows(...); null when not reranked. Reranked hits keep their own score in scores.fused"))


# --- apps --------------------------------------------------------------------------------------

class Background(Strict):
    background: bool = Field(False, description="Run as a background job; poll GET /v1/jobs/{id}")


class DedupRequest(Background):
    threshold: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.9
    k: Annotated[int, Field(ge=1, le=200)] = 10
    keep: Literal["longest", "first", "central"] = "longest"
    linkage: Literal["keeper", "complete"] = "keeper"


class RecommendRequest(Strict):
    liked: list[Id] = []
    disliked: list[Id] = []
    liked_texts: Annotated[list[Text], Field(max_length=MAX_TEXTS,
                                             description="Texts the user liked, embedded as queries")] = []
    profile: list[float] | None = Field(None, description="A raw user vector, counted as one liked item")
    k: Annotated[int, Field(ge=1)] = 10
    diversity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    where: Where = None


class ClusterRequest(Background):
    method: Literal["kmeans", "hdbscan"] = "kmeans"
    k: Annotated[int | None, Field(ge=2, le=1000)] = None
    min_cluster_size: Annotated[int | None, Field(ge=2)] = None
    projection: Literal["auto", "pca", "umap"] = "auto"
    items: bool = Field(True, description="Include every item's map position")
    hover_chars: Annotated[int, Field(ge=0, le=2000)] = 200


class ClassifyRequest(Background):
    labels: (Annotated[list[Annotated[str, Field(min_length=1, max_length=1000)]], Field(min_length=2, max_length=1000)]
             | Annotated[dict[str, Annotated[str, Field(max_length=10_000)]], Field(max_length=1000)] | None) = Field(
        None, description="Zero-shot: label names, or label -> description (at most 1,000 labels)")
    examples: Annotated[dict[str, Annotated[list[Text], Field(min_length=1, max_length=MAX_TEXTS)]],
                        Field(max_length=1000)] | None = Field(
        None, description="Few-shot: label -> example texts")
    texts: Annotated[list[Text], Field(min_length=1, max_length=MAX_TEXTS)] | None = Field(
        None, description="Classify these texts (embedded with the collection's model) instead of the collection; "
                          f"at most {MAX_TEXTS}")
    top: Annotated[int | None, Field(ge=1, le=1000)] = None


class OutliersRequest(Background):
    k: Annotated[int, Field(ge=1, le=200)] = 10
    method: Literal["knn", "lof"] = "knn"
    top: Annotated[int, Field(ge=1, le=100_000)] = 20


class ContextRequest(Strict):
    query: Query
    k: Annotated[int, Field(ge=1)] = 10
    min_score: Annotated[float, Field(ge=0.0, le=1.0, description=(
        "Leave out passages whose search score is below this (in [0, 1]); 0 keeps all"))] = 0.0
    max_tokens: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    where: Where = None


class IndexRequest(Strict):
    paths: Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]], Field(
        min_length=1, max_length=100,
        description="Files or folders on the server, inside one of its --index-root folders")]
    chunk_tokens: Annotated[int | None, Field(ge=8, le=8192)] = None
    overlap: Annotated[int | None, Field(ge=0, le=4096)] = None
    include: Annotated[list[Pattern], Field(max_length=100)] = []
    exclude: Annotated[list[Pattern], Field(max_length=100)] = []
    remove_missing: bool = True


class CostRequest(Strict):
    models: Annotated[list[Annotated[str, Field(min_length=1, max_length=300)]], Field(min_length=1, max_length=50)] = [
        "local"]
    dimensions: dict[str, Annotated[int, Field(ge=1)]] | None = None
    chunk_tokens: Annotated[int | None, Field(ge=1)] = None
    price_per_gb_month: Annotated[float | None, Field(ge=0)] = None


# --- jobs --------------------------------------------------------------------------------------

class JobProgress(BaseModel):
    done: int
    total: int | None
    fraction: float | None


class JobOut(BaseModel):
    id: str
    kind: str
    collection: str | None
    state: str
    progress: JobProgress
    error: dict[str, Any] | None
    created: float
    started: float | None
    finished: float | None
    result: Any = None


class ErrorBody(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
