"""Measure embedding models on your own data: retrieval, semantic similarity, classification.

Choosing a model should be a measurement. Each function takes a list of models and returns
one result row per model (and per search mode, for retrieval), so they compare side by side.

- ``evaluate_retrieval``: BEIR-format data (``load_beir``). Per model, the corpus goes into a
  temporary embedded collection (so keyword search is SQLite FTS5's BM25, exactly what users
  get); every query runs through ``semkit.apps.search`` in each mode with exact vector search.
  Metrics come from ``pytrec_eval`` (the Python binding of trec_eval, what BEIR and MTEB use):
  nDCG@10, Recall@10, MAP@10 of a ``k=10`` search (what a user asking for ten results gets)
  and Recall@100 of a ``k=100`` one, averaged over every query that has a relevant document
  (a query that retrieved nothing scores 0). Ranks are passed to trec_eval as
  strictly decreasing scores, so its own tie-breaking (by document id) never reorders a list.
- ``evaluate_sts``: Spearman correlation (x100, scipy) between cosine similarity and gold
  scores of sentence pairs, as MTEB scores STS.
- ``evaluate_classification``: accuracy and macro-F1 of ``apps.Classifier`` trained
  on the train split (all of it, or ``per_label`` examples per label averaged over
  ``experiments`` random draws, MTEB's few-shot protocol) and scored on the test split.

Models are spec strings (``local``, ``openai:text-embedding-3-small``) or ``Embedder`` objects;
spec strings use semkit's embedding cache, so a second run re-embeds nothing.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInput, MissingDependency
from ._search import MODES, Mode, search

log = logging.getLogger(__name__)

RETRIEVAL_MEASURES = {"ndcg_cut.10": "ndcg@10", "recall.10": "recall@10",
                      "recall.100": "recall@100", "map_cut.10": "map@10"}
"""trec_eval measure → the name used in results."""

Progress = Callable[[str], None]


# --- data ---------------------------------------------------------------------------------


@dataclass
class RetrievalData:
    """A retrieval test collection: documents, queries and relevance judgements (qrels)."""

    doc_ids: list[str]
    doc_texts: list[str]
    """``(title + " " + text).strip()`` per document, as BEIR/MTEB embed them."""
    doc_titles: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def __post_init__(self) -> None:
        known = set(self.doc_ids)
        unknown_docs = {d for rel in self.qrels.values() for d in rel if d not in known}
        if unknown_docs:
            log.warning("%d judged documents are not in the corpus (e.g. %r): they count as "
                        "relevant but can never be retrieved", len(unknown_docs), sorted(unknown_docs)[0])
        missing = [q for q in self.qrels if q not in self.queries]
        if missing:
            raise InvalidInput(
                f"{len(missing)} query ids in the qrels have no text in the queries file "
                f"(e.g. {missing[0]!r}); check that the files belong together"
            )

    @property
    def judged_queries(self) -> dict[str, str]:
        """The queries that have at least one relevant document: the ones that are scored."""
        return {q: self.queries[q] for q, rel in self.qrels.items() if any(v > 0 for v in rel.values())}


def load_beir(corpus: str | Path, queries: str | Path, qrels: str | Path) -> RetrievalData:
    """Read BEIR files: ``corpus.jsonl[.gz]`` (``_id``, ``title``, ``text``),
    ``queries.jsonl[.gz]`` (``_id``, ``text``) and a qrels TSV (``query-id corpus-id score``,
    header optional). Only queries that appear in the qrels are kept."""
    doc_ids: list[str] = []
    doc_texts: list[str] = []
    titles: list[str] = []
    seen: set[str] = set()
    for where, row in _jsonl(corpus):
        doc_id = _field(row, "_id", where)
        if doc_id in seen:
            raise InvalidInput(f"{where}: document id {doc_id!r} appears twice; ids must be unique")
        seen.add(doc_id)
        title = str(row.get("title") or "")
        text = row.get("text")
        if not isinstance(text, str):
            raise InvalidInput(f"{where}: document {doc_id!r} has no \"text\" string")
        doc_ids.append(doc_id)
        titles.append(title)
        doc_texts.append((title + " " + text).strip())
    if not doc_ids:
        raise InvalidInput(f"{corpus}: no documents found")
    judgements = read_qrels(qrels)
    texts: dict[str, str] = {}
    for where, row in _jsonl(queries):
        qid = _field(row, "_id", where)
        if qid in judgements:
            texts[qid] = _field(row, "text", where)
    return RetrievalData(doc_ids, doc_texts, titles, texts, judgements)


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """A qrels file: TSV ``query-id<TAB>corpus-id<TAB>score`` (BEIR, header optional) or TREC
    ``qid 0 docid score`` (whitespace separated)."""
    out: dict[str, dict[str, int]] = {}
    for n, line in enumerate(_open_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) == 4:  # TREC: qid iteration docid relevance
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise InvalidInput(f"{path}:{n}: expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}")
        try:
            score = int(float(parts[2]))
        except ValueError:
            if n == 1:
                continue  # the header line
            raise InvalidInput(f"{path}:{n}: the relevance score {parts[2]!r} is not a number") from None
        out.setdefault(parts[0].strip(), {})[parts[1].strip()] = score
    if not out:
        raise InvalidInput(f"{path}: no relevance judgements found")
    return out


# --- metrics ------------------------------------------------------------------------------


def retrieval_metrics(qrels: Mapping[str, Mapping[str, int]],
                      run: Mapping[str, Sequence[str] | Mapping[str, float]]) -> dict[str, float]:
    """nDCG@10, Recall@10, Recall@100 and MAP@10 (fractions in [0, 1]) of ``run`` against
    ``qrels``, averaged over the queries with at least one relevant document.

    ``run`` maps a query id to its ranked document ids (best first) or to ``{doc: score}``.
    """
    try:
        import pytrec_eval
    except ImportError:
        raise MissingDependency("pytrec-eval-terrier", "eval", "retrieval metrics") from None
    judged = {q: {d: int(s) for d, s in rel.items()} for q, rel in qrels.items()
              if any(s > 0 for s in rel.values())}
    if not judged:
        raise InvalidInput("the qrels hold no relevant document (every score is 0); nothing to measure")
    scored: dict[str, dict[str, float]] = {}
    for qid, ranking in run.items():
        if qid not in judged:
            continue
        if isinstance(ranking, Mapping):
            scored[qid] = {str(d): float(s) for d, s in ranking.items()}
        else:
            ids = list(dict.fromkeys(str(d) for d in ranking))
            scored[qid] = {d: float(len(ids) - r) for r, d in enumerate(ids)}
    evaluator = pytrec_eval.RelevanceEvaluator(judged, set(RETRIEVAL_MEASURES))
    per_query = evaluator.evaluate({q: r for q, r in scored.items() if r})
    totals = dict.fromkeys(RETRIEVAL_MEASURES.values(), 0.0)
    for values in per_query.values():
        for measure, name in RETRIEVAL_MEASURES.items():
            totals[name] += values[measure.replace(".", "_")]
    return {name: total / len(judged) for name, total in totals.items()}


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (ties get average ranks), as ``scipy.stats.spearmanr``."""
    try:
        from scipy.stats import spearmanr
    except ImportError:
        raise MissingDependency("scipy", "eval", "STS evaluation") from None
    return float(spearmanr(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).statistic)


# --- retrieval ----------------------------------------------------------------------------


def ranked_metrics(qrels: Mapping[str, Mapping[str, int]],
                   rank: Callable[[str, int, int], Sequence[str]],
                   queries: Mapping[str, str]) -> dict[str, float]:
    """Metrics of a search function ``rank(query_text, query_number, k) -> ids``.

    The @10 measures come from a ``k=10`` search — what a user asking for ten results gets
    (hybrid fusion depth and MMR pools depend on ``k``) — and Recall@100 from a ``k=100`` one.
    """
    qids = list(queries)
    top10 = {q: rank(queries[q], n, 10) for n, q in enumerate(qids)}
    top100 = {q: rank(queries[q], n, 100) for n, q in enumerate(qids)}
    metrics = retrieval_metrics(qrels, top10)
    metrics["recall@100"] = retrieval_metrics(qrels, top100)["recall@100"]
    return metrics



@dataclass(frozen=True)
class RetrievalResult:
    model: str
    """Embedder id (``-`` for keyword search, which uses no model)."""
    mode: Mode
    metrics: dict[str, float]
    """``ndcg@10``, ``recall@10``, ``recall@100``, ``map@10`` as fractions."""
    queries: int
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_retrieval(
    data: RetrievalData,
    models: Sequence[Any] = ("local",),
    modes: Sequence[Mode] = ("vector", "keyword", "hybrid"),
    *,
    progress: Progress | None = None,
    work_dir: str | Path | None = None,
    **search_options: Any,
) -> list[RetrievalResult]:
    """One row per (model, mode); the keyword row (model-free) appears once.

    ``search_options`` go to ``apps.search`` (``fusion``, ``alpha``, ``rrf_k``, ``candidates``...).
    ``work_dir``: where the temporary collection folder is made (default: the system temp).
    """
    import time

    from ..database import connect
    from ..models.build import build_model

    if not models:
        raise InvalidInput("give at least one model to evaluate (e.g. models=['local'])")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise InvalidInput(f"modes must be some of {', '.join(MODES)}, got {list(modes)!r}")
    queries = data.judged_queries
    qids = list(queries)
    results: list[RetrievalResult] = []
    keyword_done = False
    for spec in models:
        model = build_model(spec) if isinstance(spec, str) else spec
        with tempfile.TemporaryDirectory(prefix="semkit-eval-", dir=work_dir) as tmp, \
                connect(str(Path(tmp) / "kb")) as db:
            col = db.collection("eval", model=model)
            _say(progress, f"embedding {len(data.doc_ids):,} documents with {model.id}")
            col.upsert(ids=data.doc_ids, texts=data.doc_texts,
                       metadata=[{"title": t} if t else {} for t in data.doc_titles])
            _say(progress, f"embedding {len(qids):,} queries with {model.id}")
            qvecs = model.embed([queries[q] for q in qids], "query") if qids else None
            for mode in modes:
                if mode == "keyword" and keyword_done:
                    continue
                started = time.perf_counter()
                metrics = ranked_metrics(data.qrels, _searcher(col, mode, qvecs, search_options), queries)
                elapsed = time.perf_counter() - started
                results.append(RetrievalResult(
                    "-" if mode == "keyword" else model.id, mode, metrics, len(qids), round(elapsed, 3),
                ))
                _say(progress, f"{mode} ({model.id}): done")
                keyword_done = keyword_done or mode == "keyword"
    return results


def _searcher(col: Any, mode: Mode, qvecs: Any, options: Mapping[str, Any]
              ) -> Callable[[str, int, int], list[str]]:
    def rank(query: str, n: int, depth: int) -> list[str]:
        vector = None if mode == "keyword" or qvecs is None else qvecs[n]
        hits = search(col, query, k=depth, mode=mode, exact=True, snippets=False, vector=vector, **options)
        return [h.id for h in hits]

    return rank


# --- STS ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StsResult:
    model: str
    spearman: float
    """Spearman x100 between cosine similarity and the gold scores."""
    pearson: float
    pairs: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Pairs:
    """Sentence pairs with a gold similarity score each."""

    first: list[str]
    second: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def load_pairs(path: str | Path, columns: Sequence[str | int] = ("sentence1", "sentence2", "score"),
               delimiter: str | None = None) -> Pairs:
    """Sentence pairs from a CSV/TSV file. ``columns`` names the two sentence columns and the
    score column of the header, or gives their 0-based positions (then the file has no header,
    and nothing is unquoted: STS Benchmark's layout). The delimiter defaults to tab for
    ``.tsv``, else whatever the first line uses most (tabs or commas)."""
    if len(columns) != 3:
        raise InvalidInput(f"columns must name 3 columns (sentence 1, sentence 2, score), got {list(columns)!r}")
    text = _open_text(path)
    sep = delimiter or _delimiter(path, text)
    positional = all(isinstance(c, int) or (isinstance(c, str) and c.isdigit()) for c in columns)
    first: list[str] = []
    second: list[str] = []
    scores: list[float] = []
    if positional:
        i1, i2, i3 = (int(c) for c in columns)
        rows: Iterable[tuple[int, list[str]]] = (
            (n, line.split(sep)) for n, line in enumerate(text.splitlines(), 1) if line.strip()
        )
    else:
        reader = csv.reader(io.StringIO(text), delimiter=sep)
        header = next(reader, None) or []
        names = [h.strip() for h in header]
        absent = [c for c in columns if c not in names]
        if absent:
            raise InvalidInput(f"{path}: no column named {absent[0]!r}; the header has {names}. "
                               "Pass --columns with the right names (or 0-based positions)")
        i1, i2, i3 = (names.index(str(c)) for c in columns)
        rows = ((n, row) for n, row in enumerate(reader, 2) if row)
    for n, row in rows:
        if max(i1, i2, i3) >= len(row):
            raise InvalidInput(f"{path}:{n}: the line has {len(row)} fields, column {max(i1, i2, i3)} is missing")
        try:
            scores.append(float(row[i3]))
        except ValueError:
            raise InvalidInput(f"{path}:{n}: score {row[i3]!r} is not a number") from None
        first.append(row[i1])
        second.append(row[i2])
    if len(scores) < 3:
        raise InvalidInput(f"{path}: found {len(scores)} pairs; a correlation needs at least 3")
    return Pairs(first, second, np.asarray(scores, dtype=np.float64))


def evaluate_sts(pairs: Pairs, models: Sequence[Any] = ("local",),
                 progress: Progress | None = None) -> list[StsResult]:
    """Spearman (and Pearson) x100 of cosine similarity against the gold scores, per model."""
    from ..models.build import build_model
    from ..vectors import normalize

    out = []
    for spec in models:
        model = build_model(spec) if isinstance(spec, str) else spec
        _say(progress, f"embedding {2 * len(pairs):,} sentences with {model.id}")
        a = normalize(model.embed(pairs.first, "document"))
        b = normalize(model.embed(pairs.second, "document"))
        cos = np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64))
        pearson = float(np.corrcoef(cos, pairs.scores)[0, 1])
        out.append(StsResult(model.id, round(100 * spearman(cos, pairs.scores), 4),
                             round(100 * pearson, 4), len(pairs)))
    return out


# --- classification -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifyResult:
    model: str
    method: str
    accuracy: float
    """Accuracy x100 on the test split (mean over experiments)."""
    macro_f1: float
    train_examples: int
    """Training examples per experiment."""
    experiments: int
    test_examples: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Labelled:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def load_labelled(path: str | Path, text_column: str = "text", label_column: str = "label",
                  delimiter: str | None = None) -> Labelled:
    """Texts with labels from a CSV/TSV file with a header."""
    text = _open_text(path)
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter or _delimiter(path, text))
    names = [str(f).strip() for f in (reader.fieldnames or [])]
    for col in (text_column, label_column):
        if col not in names:
            raise InvalidInput(f"{path}: no column named {col!r}; the header has {names}. "
                               "Pass --text-column / --label-column")
    texts: list[str] = []
    labels: list[str] = []
    for n, row in enumerate(reader, 2):
        value, label = row.get(text_column), row.get(label_column)
        if not value or not value.strip() or label is None or not label.strip():
            raise InvalidInput(f"{path}:{n}: empty text or label; fill it in or remove the line")
        texts.append(value.strip())
        labels.append(label.strip())
    if not texts:
        raise InvalidInput(f"{path}: no rows")
    return Labelled(texts, labels)


def evaluate_classification(
    train: Labelled, test: Labelled, models: Sequence[Any] = ("local",), *,
    method: Literal["logistic", "knn"] = "logistic", per_label: int | None = None,
    experiments: int = 1, seed: int = 42, progress: Progress | None = None,
) -> list[ClassifyResult]:
    """Train on ``train`` (all of it, or ``per_label`` random examples of each label, drawn
    ``experiments`` times) and score on ``test``; one row per model."""
    from ..models.build import build_model
    from ._classify import Classifier

    if per_label is not None and per_label < 1:
        raise InvalidInput(f"per_label must be at least 1, got {per_label}")
    if experiments < 1:
        raise InvalidInput(f"experiments must be at least 1, got {experiments}")
    if per_label is None and experiments > 1:
        raise InvalidInput("experiments > 1 only makes sense with per_label (random few-shot draws)")
    unseen = sorted(set(test.labels) - set(train.labels))
    if unseen:
        log.warning("%d test labels never occur in training (e.g. %r): those examples are always wrong",
                    len(unseen), unseen[0])
    train_y = np.asarray(train.labels)
    test_y = np.asarray(test.labels)
    out = []
    for spec in models:
        model = build_model(spec) if isinstance(spec, str) else spec
        _say(progress, f"embedding {len(train) + len(test):,} texts with {model.id}")
        x_train = np.asarray(model.embed(train.texts, "document"), dtype=np.float32)
        x_test = np.asarray(model.embed(test.texts, "document"), dtype=np.float32)
        rng = np.random.default_rng(seed)
        accs, f1s, sizes = [], [], []
        for _ in range(experiments):
            rows = _few_shot_rows(train_y, per_label, rng) if per_label else np.arange(len(train_y))
            clf = Classifier(method, embedder=model).fit(x_train[rows], train_y[rows].tolist())
            pred = np.asarray(clf.predict(x_test))
            accs.append(float(np.mean(pred == test_y)))
            f1s.append(_macro_f1(test_y, pred))
            sizes.append(len(rows))
        out.append(ClassifyResult(model.id, method, round(100 * float(np.mean(accs)), 4),
                                  round(100 * float(np.mean(f1s)), 4), int(np.mean(sizes)),
                                  experiments, len(test)))
    return out


def _few_shot_rows(labels: np.ndarray, per_label: int, rng: np.random.Generator) -> np.ndarray:
    order = rng.permutation(len(labels))
    taken: dict[str, int] = {}
    rows = []
    for r in order:
        label = labels[r]
        if taken.get(label, 0) < per_label:
            taken[label] = taken.get(label, 0) + 1
            rows.append(r)
    return np.asarray(sorted(rows))


def _macro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    f1s = []
    for label in np.unique(gold):
        tp = float(np.sum((pred == label) & (gold == label)))
        fp = float(np.sum((pred == label) & (gold != label)))
        fn = float(np.sum((pred != label) & (gold == label)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(f1s))


# --- file helpers -------------------------------------------------------------------------


def _open_text(path: str | Path) -> str:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"file not found: {p}")
    try:
        raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        return raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{p}: cannot read it as UTF-8 text ({exc})") from None


def _jsonl(path: str | Path) -> Iterable[tuple[str, dict[str, Any]]]:
    for n, line in enumerate(_open_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"{path}:{n}: each line must be a JSON object")
        yield f"{path}:{n}", row


def _field(row: Mapping[str, Any], name: str, where: str) -> str:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"{where}: missing {name!r}")
    return str(value)


def _delimiter(path: str | Path, text: str) -> str:
    name = str(path).removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    # Sniffed, not taken from the suffix: STS Benchmark's "sts-test.csv" is tab-separated.
    first = text.split("\n", 1)[0]
    return "\t" if first.count("\t") > first.count(",") else ","


def _say(progress: Progress | None, message: str) -> None:
    log.info(message)
    if progress is not None:
        progress(message)


__all__ = [
    "ClassifyResult",
    "Labelled",
    "Pairs",
    "RetrievalData",
    "RetrievalResult",
    "StsResult",
    "evaluate_classification",
    "evaluate_retrieval",
    "evaluate_sts",
    "load_beir",
    "load_labelled",
    "load_pairs",
    "ranked_metrics",
    "read_qrels",
    "retrieval_metrics",
    "spearman",
]
