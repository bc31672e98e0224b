"""``semkit eval retrieval|sts|classify``: models side by side on your own data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput
from . import output
from .commands import Group, argument
from .options import json_option

models_option = click.option(
    "--model", "-m", multiple=True, help="Model spec to evaluate; repeat for a side-by-side table (default: local)")


def register(app: Group) -> None:
    group = app.subgroup("eval", help="Measure models on your own data: retrieval, STS, classification.")

    @group.command()
    @click.option("--corpus", type=click.Path(path_type=Path), required=True,
        help="BEIR corpus.jsonl[.gz]: _id, title, text")
    @click.option("--queries", type=click.Path(path_type=Path), required=True, help="BEIR queries.jsonl: _id, text")
    @click.option("--qrels", type=click.Path(path_type=Path), required=True,
        help="qrels TSV: query-id, corpus-id, score")
    @models_option
    @click.option("--mode", multiple=True, help="vector | keyword | hybrid; repeat (default: all three)")
    @click.option("--fusion", default="convex",
        help="hybrid: convex (score-aware, the default search) | rrf (reciprocal rank)")
    @click.option("--rrf-k", type=click.IntRange(min=0), default=60,
        help="RRF constant (hybrid with --fusion rrf only)")
    @json_option
    def retrieval(
        corpus: Path, queries: Path, qrels: Path, model: list[str] | None, mode: list[str] | None, fusion: str,
        rrf_k: int, as_json: bool
    ) -> None:
        """nDCG@10, Recall@10/100, MAP@10 per model and search mode (pytrec_eval)."""
        from .. import apps as evaluate

        modes = mode or ["vector", "keyword", "hybrid"]
        bad = [m for m in modes if m not in ("vector", "keyword", "hybrid")]
        if bad:
            raise InvalidInput(f"--mode must be vector, keyword or hybrid, got {bad[0]!r}")
        if fusion not in ("convex", "rrf"):
            raise InvalidInput(f"--fusion must be convex or rrf, got {fusion!r}")
        data = evaluate.load_beir(corpus, queries, qrels)
        results = evaluate.evaluate_retrieval(data, model or ["local"], modes,  # type: ignore[arg-type]
                                              progress=_progress(as_json), fusion=fusion, rrf_k=rrf_k)
        if as_json:
            output.emit_json([r.as_dict() for r in results])
            return
        output.table(
            f"retrieval: {len(data.judged_queries):,} queries, {len(data.doc_ids):,} documents",
            ["model", "mode", "nDCG@10", "Recall@10", "Recall@100", "MAP@10"],
            [(r.model, r.mode, *(f"{100 * r.metrics[m]:.2f}" for m in ("ndcg@10", "recall@10", "recall@100", "map@10")))
             for r in results],
            justify_right=("nDCG@10", "Recall@10", "Recall@100", "MAP@10"),
        )

    @group.command()
    @argument("file", type=click.Path(path_type=Path), help="CSV/TSV of sentence pairs with a gold score")
    @click.option("--columns", default="sentence1,sentence2,score",
        help="sentence1,sentence2,score column names, or 0-based positions for a file without a header")
    @models_option
    @json_option
    def sts(file: Path, columns: str, model: list[str] | None, as_json: bool) -> None:
        """Spearman x100 of cosine similarity against gold scores, per model."""
        from .. import apps as evaluate

        names = [c.strip() for c in columns.split(",")]
        if len(names) != 3 or not all(names):
            raise InvalidInput(f"--columns takes three comma-separated columns, got {columns!r}")
        pairs = evaluate.load_pairs(file, names)
        results = evaluate.evaluate_sts(pairs, model or ["local"], progress=_progress(as_json))
        if as_json:
            output.emit_json([r.as_dict() for r in results])
            return
        output.table(f"STS: {len(pairs):,} pairs", ["model", "Spearman", "Pearson"],
                     [(r.model, f"{r.spearman:.2f}", f"{r.pearson:.2f}") for r in results],
                     justify_right=("Spearman", "Pearson"))

    @group.command()
    @click.option("--train", type=click.Path(path_type=Path), required=True, help="Training CSV/TSV with a header")
    @click.option("--test", type=click.Path(path_type=Path), required=True, help="Test CSV/TSV with the same columns")
    @click.option("--text-column", default="text", help="Column holding the text")
    @click.option("--label-column", default="label", help="Column holding the label")
    @models_option
    @click.option("--method", default="logistic", help="logistic | knn")
    @click.option("--per-label", type=click.IntRange(min=1),
        help="Few-shot: train on this many random examples per label")
    @click.option("--experiments", type=click.IntRange(min=1), default=1, help="Few-shot draws to average")
    @json_option
    def classify(
        train: Path, test: Path, text_column: str, label_column: str, model: list[str] | None, method: str,
        per_label: int | None, experiments: int, as_json: bool
    ) -> None:
        """Accuracy and macro-F1 of a classifier on each model's embeddings."""
        from .. import apps as evaluate

        if method not in ("logistic", "knn"):
            raise InvalidInput(f"--method must be logistic or knn, got {method!r}")
        train_set = evaluate.load_labelled(train, text_column, label_column)
        test_set = evaluate.load_labelled(test, text_column, label_column)
        results = evaluate.evaluate_classification(
            train_set, test_set, model or ["local"], method=method,  # type: ignore[arg-type]
            per_label=per_label, experiments=experiments, progress=_progress(as_json),
        )
        if as_json:
            output.emit_json([r.as_dict() for r in results])
            return
        shots = f"{per_label} per label x {experiments}" if per_label else f"{len(train_set):,} examples"
        output.table(f"classification ({method}, trained on {shots}; {len(test_set):,} test texts)",
                     ["model", "accuracy", "macro F1"],
                     [(r.model, f"{r.accuracy:.2f}", f"{r.macro_f1:.2f}") for r in results],
                     justify_right=("accuracy", "macro F1"))


def _progress(quiet: bool) -> Any:
    if quiet:
        return None
    return lambda message: output.note(message, "dim")
