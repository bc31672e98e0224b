"""How much embedding a corpus will cost, and how much its vectors will weigh, before any
money is spent. Plain functions returning dataclasses; the CLI does the formatting.

The input is read exactly as ``semkit index`` reads it (``ingest.pipeline.discover`` and
``read_source``: the same formats, including PDF and DOCX, the same ``text_field`` choice, the
same files skipped, for the same reasons); one text per section a document is split into (a
record, a page, a heading's section, a whole plain-text file). Two inputs ``semkit index`` does
not take are counted too: standard input (``-``, one text per non-blank line) and a
gzip-compressed file named on the command line (``corpus.jsonl.gz``).

Token counts come from ``models.tokens.counter_for_model(model, bias="central")``: each model's
own tokenizer where one is available offline (OpenAI: ``cl100k_base``, counted the way OpenAI
bills, without special tokens; local models: the model's ``tokenizer.json``, counting what the
model processes: the text's tokens plus ``[CLS]``/``[SEP]``, capped at its context, because
longer inputs are cut there; for all-MiniLM-L6-v2 "hello world" is 4 tokens). Anything else
(Cohere, unknown ``http:`` models, local models without a tokenizer on disk) gets a central
estimate of one token per 4 characters, flagged ``estimated=True``: for budgeting, unlike the
deliberately high estimate (``bias="high"``) the remote batching layer and the chunker use to
stay under limits.

Storage is raw vector bytes (``vectors.bytes_per_vector``) at float32, float16, int8 and binary:
no ids, texts, metadata or index structures. The measured size on disk per backend, with all of
those, is ``semkit.capacity.estimate`` (``semkit cost`` prints both).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import InvalidInput, ModelNotAvailable
from .ingest.readers import Document, read_lines
from .ingest.sources import DEFAULT_MAX_FILE_BYTES, FileProblem, SourceFile, discover, read_source
from .models import catalog
from .models.catalog import ModelInfo
from .models.registry import describe
from .models.tokens import CHARS_PER_TOKEN as CHARS_PER_TOKEN  # the central estimate's ratio
from .models.tokens import TokenCounter, counter_for_model, model_tokens
from .types import StorageDtype
from .vectors import bytes_per_vector

DEFAULT_PRICE_PER_GB_MONTH = 0.25
"""USD per GB-month (GB = 10^9 bytes) of vector storage. A round figure between cloud block
SSD (about 0.08-0.125, e.g. AWS gp3/gp2 list prices) and managed vector databases (about 0.33
for Pinecone serverless storage, list price 2025); pass the price you actually pay."""

DTYPES: tuple[StorageDtype, ...] = ("float32", "float16", "int8", "binary")

_BATCH_TEXTS = 256
_BATCH_CHARS = 4_000_000


# --- tokens ---------------------------------------------------------------------------------


def tokenizer_for(model: ModelInfo | str) -> TokenCounter:
    """The counter for ``model``'s tokens (a catalogue entry or a model spec): exact where its
    tokenizer is available offline, else the central chars/4 estimate (``exact`` is False)."""
    return counter_for_model(model, bias="central")


def count_tokens(texts: Sequence[str] | str, model: ModelInfo | str) -> int:
    """Tokens ``model`` processes (and bills, for paid APIs) for ``texts``, one request each.

    Each text counts its own tokens plus the model's special tokens, capped at the model's
    context length (longer texts are truncated there). Whether the number is exact or an
    estimate: ``tokenizer_for(model).exact``.
    """
    if isinstance(texts, str):
        texts = [texts]
    info = _resolve(model) if isinstance(model, str) else model
    counter = tokenizer_for(model)
    return sum(model_tokens(counter.count(list(texts)), counter, info.max_tokens))


# --- model specs ------------------------------------------------------------------------------


def _resolve(spec: str) -> ModelInfo:
    """The catalogue entry of ``spec``, or what its provider can tell about a model outside it
    (``models.registry.describe``: a local folder's size and context); an unknown context is
    ``sys.maxsize`` (nothing is cut), unknown dimensions stay 0."""
    described = describe(spec)
    info = described.info
    if info.local and described.folder is None and catalog.find(info.provider, info.name) is None:
        raise ModelNotAvailable(
            f"{spec!r} is neither a catalogue model nor a model folder; `semkit models` "
            "lists the catalogue, or pass local:/path/to/model"
        )
    return info if info.max_tokens else replace(info, max_tokens=sys.maxsize)


# --- reading files ---------------------------------------------------------------------------


def iter_texts(paths: Sequence[str | os.PathLike[str]], problems: list[FileProblem] | None = None,
               *, text_field: str | None = None, caveats: list[FileProblem] | None = None,
               max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Iterator[tuple[str, str]]:
    """``(label, text)`` for every text ``semkit index`` would index in files and folders
    (recursive), plus ``'-'`` (stdin, one text per non-blank line) and ``.gz`` files named
    directly: one text per section of each document (see ``ingest.readers``).

    Labels are the file's path, plus ``:row`` for records (CSV, JSON, JSON lines), ``#page=N``
    for PDF pages and ``#N`` for the N-th section of a document with several. Files skipped,
    with the reason ``semkit index`` would give, go to ``problems``; files read with a caveat
    (a guessed encoding, skipped records or pages) to ``caveats``. A path that does not exist
    is an ``InvalidInput`` error before anything is read.
    """
    for _, label, text in _iter_sources(paths, [] if problems is None else problems,
                                        [] if caveats is None else caveats, text_field, max_file_bytes):
        yield label, text


def _iter_sources(paths: Sequence[str | os.PathLike[str]], problems: list[FileProblem],
                  caveats: list[FileProblem], text_field: str | None,
                  max_file_bytes: int) -> Iterator[tuple[str, str, str]]:
    """``(file, label, text)``: iter_texts with the file each text came from."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    missing = [str(p) for p in paths if str(p) != "-" and not os.path.lexists(p)]
    if missing:
        raise InvalidInput(f"no such file or folder: {', '.join(missing)}; check the path(s)")
    files: list[SourceFile] = []
    named = [p for p in paths if str(p) != "-"]
    if named:
        found = discover(named)
        problems.extend(found.problems)
        files = found.files
    for f in files:
        label = str(f.path)
        read = read_source(f, None, text_field, max_file_bytes)
        if read.problem is not None:
            problems.append(FileProblem(label, label, read.problem))
            continue
        caveats.extend(FileProblem(label, label, w) for w in read.warnings)
        if read.empty is not None:
            problems.append(FileProblem(label, label, f"nothing to index: {read.empty}"))
            continue
        assert read.doc is not None
        for section_label, text in _sections(label, read.doc):
            yield label, section_label, text
    if any(str(p) == "-" for p in paths):
        warnings: list[str] = []
        for number, line in read_lines(sys.stdin.buffer, warnings):
            yield "<stdin>", f"<stdin>:{number}", line
        caveats.extend(FileProblem("<stdin>", "-", w) for w in warnings)


def _sections(label: str, doc: Document) -> Iterator[tuple[str, str]]:
    several = len(doc.sections) > 1
    for number, section in enumerate(doc.sections, 1):
        if "row" in section.extra:
            yield f"{label}:{section.extra['row']}", section.text
        elif section.page is not None:
            yield f"{label}#page={section.page}", section.text
        else:
            yield (f"{label}#{number}" if several else label), section.text


# --- the estimate -----------------------------------------------------------------------------


@dataclass
class ModelCost:
    model: str
    """The spec as given (``local``, ``openai:text-embedding-3-small``...)."""
    provider: str
    dimensions: int
    tokens: int
    """Tokens the model processes; for paid APIs, the tokens billed."""
    estimated: bool
    """True when ``tokens`` is a chars/4 estimate rather than a tokenizer's count."""
    tokenizer: str
    price_per_million: float | None
    """USD per million tokens from the catalogue; None when the model is not in it."""
    embedding_dollars: float
    vectors: int
    over_context: int
    """Texts (or chunks) longer than the model's context: truncated, or refused by the API."""
    storage_bytes: dict[str, int]
    storage_dollars_per_month: dict[str, float]


@dataclass
class CostReport:
    models: list[ModelCost]
    files: int
    """Files read (standard input counts as one); 0 when texts were passed directly."""
    texts: int
    text_bytes: int
    """UTF-8 bytes of the texts as they would be embedded (after HTML/PDF/DOCX/JSON/CSV
    extraction)."""
    chunk_tokens: int | None
    price_per_gb_month: float
    problems: list[FileProblem] = field(default_factory=list)
    """Files skipped: nothing of them was counted (``semkit index`` would skip them too)."""
    notes: list[str] = field(default_factory=list)
    caveats: list[FileProblem] = field(default_factory=list)
    """Files counted with a caveat: a guessed encoding, skipped records or pages."""

    @property
    def warnings(self) -> list[str]:
        """One line per file skipped, per file read with a caveat, and per caveat about a
        model's numbers."""
        return [str(p) for p in self.problems] + [str(p) for p in self.caveats] + list(self.notes)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["warnings"] = self.warnings
        return out


@dataclass
class _Tally:
    spec: str
    info: ModelInfo
    tokenizer: TokenCounter
    dimensions: int
    tokens: int = 0
    vectors: int = 0
    over_context: int = 0


def estimate(paths: Sequence[str | os.PathLike[str]] | None, models: Sequence[str], *,
             dimensions: dict[str, int] | None = None,
             price_per_gb_month: float = DEFAULT_PRICE_PER_GB_MONTH,
             chunk_tokens: int | None = None, texts: Iterable[str] | None = None,
             text_field: str | None = None, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> CostReport:
    """Tokens, embedding dollars and vector storage for embedding ``paths`` (files, folders,
    ``'-'``) or ``texts`` with each of ``models``.

    ``dimensions`` maps a model spec to the dimensions you will store (Matryoshka / API
    truncation); otherwise each model's native size. With ``chunk_tokens`` every text is split
    into pieces of at most that many of the model's tokens, one vector per piece; otherwise one
    vector per text. ``text_field`` and ``max_file_bytes`` mean what they mean for
    ``semkit index`` (files over the limit are skipped). Reads the input once, one file at a
    time, so memory is bounded by the largest file, not the corpus.
    """
    if not models:
        raise InvalidInput("no models to estimate: pass at least one model spec, e.g. 'local'")
    if chunk_tokens is not None and chunk_tokens < 1:
        raise InvalidInput(f"chunk_tokens must be a positive number of tokens, got {chunk_tokens}")
    if price_per_gb_month < 0:
        raise InvalidInput(f"price_per_gb_month cannot be negative, got {price_per_gb_month}")
    if (paths is None) == (texts is None):
        raise InvalidInput("pass either paths (files, folders, '-') or texts, not both or neither")
    dimensions = dict(dimensions or {})
    unknown = set(dimensions) - set(models)
    if unknown:
        raise InvalidInput(f"dimensions given for {sorted(unknown)}, which are not among the models "
                           f"{list(models)}")
    tallies = [_tally(spec, dimensions.get(spec)) for spec in models]

    problems: list[FileProblem] = []
    caveats: list[FileProblem] = []
    files: set[str] = set()
    if texts is not None:
        if isinstance(texts, str):
            texts = [texts]
        source: Iterable[tuple[str, str, str]] = (("", "", t) for t in texts)
    else:
        assert paths is not None
        source = _iter_sources(paths, problems, caveats, text_field, max_file_bytes)
    count = text_bytes = 0
    batch: list[str] = []
    chars = 0
    for file, _, text in source:
        if not isinstance(text, str):
            raise InvalidInput(f"text {count} is a {type(text).__name__}, not a string; "
                               "convert it with str() or drop it")
        if file:
            files.add(file)
        count += 1
        text_bytes += len(text.encode("utf-8", "surrogatepass"))
        batch.append(text)
        chars += len(text)
        if len(batch) >= _BATCH_TEXTS or chars >= _BATCH_CHARS:
            _count_batch(batch, tallies, chunk_tokens)
            batch, chars = [], 0
    if batch:
        _count_batch(batch, tallies, chunk_tokens)

    notes: list[str] = []
    results = [_model_cost(t, price_per_gb_month, notes, chunk_tokens) for t in tallies]
    return CostReport(models=results, files=len(files), texts=count, text_bytes=text_bytes,
                      chunk_tokens=chunk_tokens, price_per_gb_month=price_per_gb_month,
                      problems=problems, notes=notes, caveats=caveats)


def _tally(spec: str, dims: int | None) -> _Tally:
    info = _resolve(spec)
    tokenizer = tokenizer_for(spec)
    if dims is not None:
        if dims < 1 or (info.dimensions and not info.accepts_dimensions(dims)):
            allowed = (f"1..{info.dimensions}" if info.any_dimensions
                       else ", ".join(map(str, info.allowed_dimensions())))
            raise InvalidInput(f"{spec} cannot output {dims} dimensions; choose one of {allowed}")
    else:
        dims = info.dimensions
    if not dims:
        raise InvalidInput(f"the dimensions of {spec!r} are unknown; pass dimensions={{{spec!r}: N}}")
    return _Tally(spec, info, tokenizer, dims)


def _count_batch(batch: list[str], tallies: list[_Tally], chunk_tokens: int | None) -> None:
    counts: dict[str, list[int]] = {}  # one tokenizer run per distinct tokenizer, not per model
    for t in tallies:
        content = counts.get(t.tokenizer.name)
        if content is None:
            content = counts[t.tokenizer.name] = t.tokenizer.count(batch)
        specials, limit = t.tokenizer.special_tokens, t.info.max_tokens
        for n in content:
            if chunk_tokens is None:
                pieces = [n]
            else:
                full, rest = divmod(n, chunk_tokens)
                pieces = [chunk_tokens] * full + ([rest] if rest or not full else [])
            for piece in pieces:
                t.vectors += 1
                t.tokens += min(piece + specials, limit)
                t.over_context += piece + specials > limit


def _model_cost(t: _Tally, price_per_gb_month: float, notes: list[str],
                chunk_tokens: int | None) -> ModelCost:
    known = catalog.find(t.info.provider, t.info.name) is not None
    price = t.info.price_per_million if known else None
    if not known and t.info.provider != "local":
        notes.append(f"{t.spec} is not in the catalogue: its price is unknown, embedding $ shown as 0")
    if t.over_context:
        what = "chunks" if chunk_tokens else "texts"
        hint = "" if chunk_tokens else " (pass chunk_tokens to split them)"
        notes.append(f"{t.over_context:,} {what} exceed the {t.info.max_tokens}-token context of "
                     f"{t.spec} and would be truncated{hint}")
    storage: dict[str, int] = {d: t.vectors * bytes_per_vector(t.dimensions, d) for d in DTYPES}
    return ModelCost(
        model=t.spec, provider=t.info.provider, dimensions=t.dimensions, tokens=t.tokens,
        estimated=not t.tokenizer.exact, tokenizer=t.tokenizer.name, price_per_million=price,
        embedding_dollars=t.tokens * (price or 0.0) / 1_000_000, vectors=t.vectors,
        over_context=t.over_context, storage_bytes=storage,
        storage_dollars_per_month={d: b / 1e9 * price_per_gb_month for d, b in storage.items()},
    )
