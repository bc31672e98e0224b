"""CLI commands for the analysis apps: dedup, cluster, recommend, classify, outliers."""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput
from . import output
from .commands import Group, argument
from .inputs import gather_texts
from .options import collection_option, db_option, json_option, parse_where


def _open(db: str, collection: str) -> tuple[Any, Any]:
    import semkit

    database = semkit.connect(db)
    return database, database.collection(collection, create=False)


def _clip(text: str | None, width: int = 70) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _representative(cluster: Any, width: int = 60) -> str:
    """A cluster's most central text; for an image (no text) its id's end: the file name."""
    if not cluster.representatives:
        return ""
    if cluster.representative_texts[0]:
        return _clip(cluster.representative_texts[0], width)
    rid = str(cluster.representatives[0])
    return rid if len(rid) <= width else "…" + rid[-(width - 1):]


def register(app: Group) -> None:
    from .. import apps

    classify_app = app.subgroup("classify", help="Zero-shot and trained classification on embeddings.")

    @app.command()
    @db_option
    @collection_option
    @click.option("--threshold", type=float, default=0.9, help="Cosine similarity that makes two items duplicates")
    @click.option("-k", type=int, default=10, help="Neighbours examined per item")
    @click.option("--keep", default="longest", help="Keeper: longest, first or central")
    @click.option("--out", "-o", type=click.Path(path_type=Path), help="Write the groups to .json or .csv")
    @json_option
    def dedup(db: str, collection: str, threshold: float, k: int, keep: str, out: Path | None, as_json: bool) -> None:
        """Groups of exact and near-duplicates, each with a suggested keeper."""
        database, col = _open(db, collection)
        with database:
            report = apps.duplicates(col, threshold=threshold, k=k, keep=keep)  # type: ignore[arg-type]
        if out is not None:
            if out.suffix.lower() == ".csv":
                report.write_csv(out)
            elif out.suffix.lower() == ".json":
                report.write_json(out)
            else:
                raise InvalidInput(f"--out must end in .json or .csv, got {out.name}")
        if as_json:
            output.emit_json(report.to_dict())
            return
        output.echo(
            f"{report.items:,} items: {len(report.groups):,} duplicate group(s), "
            f"{len(report.removable()):,} removable ({report.exact_duplicates:,} exact)"
        )
        for n, group in enumerate(report.groups[:20], 1):
            output.table(
                f"group {n}: keep {group.keeper}", ["role", "id", "score", "text"],
                [("keep", group.keeper, "", _clip(group.keeper_text))]
                + [("exact dup" if m.exact else "near dup", m.id, f"{m.score:.3f}", _clip(m.text))
                   for m in group.members],
                justify_right=("score",),
            )
        if len(report.groups) > 20:
            output.echo(f"... and {len(report.groups) - 20} more group(s); use --out or --json for all")

    @app.command("cluster")
    @db_option
    @collection_option
    @click.option("--method", default="kmeans", help="kmeans or hdbscan")
    @click.option("-k", type=int, help="k-means clusters (default: chosen by silhouette)")
    @click.option("--min-cluster-size", type=int, help="HDBSCAN: smallest cluster")
    @click.option("--map", "map_path", type=click.Path(path_type=Path), help="Write a self-contained HTML map")
    @json_option
    def cluster_cmd(
        db: str, collection: str, method: str, k: int | None, min_cluster_size: int | None, map_path: Path | None,
        as_json: bool
    ) -> None:
        """Clusters with keyword labels, sizes and representative items."""
        database, col = _open(db, collection)
        with database:
            report = apps.cluster(col, method=method, k=k, min_cluster_size=min_cluster_size)  # type: ignore[arg-type]
        if map_path is not None:
            apps.write_cluster_map(report, map_path, title=f"{collection}: {report.method} clusters")
        if as_json:
            output.emit_json(report.to_dict(items=True))
            return
        extra = f", silhouette {report.silhouette:.3f}" if report.silhouette is not None else ""
        noise = f", {report.noise:,} noise" if report.noise else ""
        output.echo(f"{len(report.ids):,} items → {report.k} clusters ({report.method}{extra}{noise})")
        output.table(None, ["cluster", "size", "keywords", "representative"],
                     [(c.id, c.size, ", ".join(c.keywords[:5]), _representative(c)) for c in report.clusters],
                     justify_right=("cluster", "size"))
        if map_path is not None:
            output.echo(f"map written to {map_path}")

    @app.command("recommend")
    @argument("liked", nargs=-1, help="Ids the user liked")
    @db_option
    @collection_option
    @click.option("--disliked", multiple=True, help="An id the user disliked (repeat)")
    @click.option("-k", type=int, default=10, help="How many recommendations")
    @click.option("--diversity", type=float, default=0.0, help="0 = pure relevance … 1 = most varied (MMR)")
    @click.option("--where", help="Metadata filter as JSON")
    @click.option("--liked-text", multiple=True, help="A text the user liked, embedded as a query (repeat)")
    @json_option
    def recommend_cmd(
        liked: list[str] | None, db: str, collection: str, disliked: list[str] | None, k: int, diversity: float,
        where: str | None, liked_text: list[str] | None, as_json: bool
    ) -> None:
        """More like these: items near the liked ones, away from the disliked, seen ones excluded."""
        database, col = _open(db, collection)
        with database:
            recs = apps.recommend(col, liked=liked or [], disliked=disliked or [], k=k, diversity=diversity,
                                  where=parse_where(where), liked_texts=liked_text or [])
        if as_json:
            output.emit_json([asdict(r) for r in recs])
            return
        asked = ", ".join([*(liked or []), *(liked_text or [])])
        output.table(f"recommended for {asked}", ["#", "score", "id", "title", "text"],
                     [(r.rank, f"{r.score:.3f}", r.id, (r.metadata or {}).get("title", ""), _clip(r.text, 60))
                      for r in recs], justify_right=("#", "score"))

    @app.command("outliers")
    @db_option
    @collection_option
    @click.option("-k", type=int, default=10, help="Neighbours per item")
    @click.option("--method", default="knn", help="knn (mean distance to neighbours) or lof")
    @click.option("--top", type=int, default=20, help="How many to show")
    @json_option
    def outliers_cmd(db: str, collection: str, k: int, method: str, top: int, as_json: bool) -> None:
        """The items least like the rest (anomalies), with their nearest neighbour for context."""
        database, col = _open(db, collection)
        with database:
            found = apps.outliers(col, k=k, method=method, top=top)  # type: ignore[arg-type]
        if as_json:
            output.emit_json([asdict(o) for o in found])
            return
        output.table(f"outliers in {collection} ({method}, k={k})", ["#", "score", "id", "text", "nearest"],
                     [(o.rank, f"{o.score:.3f}", o.id, _clip(o.text, 50),
                       f"{o.nearest} ({o.nearest_score:.2f})" if o.nearest else "") for o in found],
                     justify_right=("#", "score"))

    @classify_app.command("zero-shot")
    @argument("texts", nargs=-1, help="Texts ('-' or none: stdin)")
    @click.option("--labels", default="", help="Comma-separated label names or descriptions")
    @click.option("--file", "-f", help="One text per line")
    @click.option("--model", "-m", default="local")
    @json_option
    def classify_zero_shot(texts: list[str] | None, labels: str, file: str | None, model: str, as_json: bool) -> None:
        """Classify texts into labels with no training data (labels embedded as queries)."""
        import semkit

        names = [x.strip() for x in labels.split(",") if x.strip()]
        if len(names) < 2:
            raise InvalidInput('give at least two labels: --labels "sports,politics,technology"')
        items = gather_texts(texts, file)
        preds = apps.zero_shot(items, names, embedder=semkit.model(model))
        _print_predictions(items, preds, as_json)

    @classify_app.command("train")
    @argument("data", type=click.Path(path_type=Path), help="CSV with text and label columns")
    @click.option("--out", "-o", type=click.Path(path_type=Path), required=True,
        help="Folder to save the classifier in")
    @click.option("--text-column", default="text", help="Text column")
    @click.option("--label-column", default="label", help="Label column")
    @click.option("--method", default="logistic", help="logistic or knn")
    @click.option("--model", "-m", default="local")
    @json_option
    def classify_train(
        data: Path, out: Path, text_column: str, label_column: str, method: str, model: str, as_json: bool
    ) -> None:
        """Train a classifier on labelled examples and save it (JSON + .npy, no pickle)."""
        import semkit

        texts, labels = _read_labelled(data, text_column, label_column)
        clf = apps.Classifier(method, embedder=semkit.model(model)).fit(texts, labels)  # type: ignore[arg-type]
        path = clf.save(out)
        label_names = sorted(set(labels))
        summary = {"saved": str(path), "examples": len(texts), "labels": label_names, "method": method}
        if as_json:
            output.emit_json(summary)
        else:
            output.echo(f"trained a {method} classifier on {len(texts):,} examples, "
                                f"{len(label_names)} labels → {path}")

    @classify_app.command("predict")
    @click.option("--classifier", type=click.Path(path_type=Path), required=True,
        help="Folder written by `classify train`")
    @argument("texts", nargs=-1, help="Texts ('-' or none: stdin)")
    @click.option("--file", "-f", help="One text per line")
    @json_option
    def classify_predict(classifier: Path, texts: list[str] | None, file: str | None, as_json: bool) -> None:
        """Label texts with a saved classifier."""
        import json

        from ..collection import model_from_id

        items = gather_texts(texts, file)
        meta_path = classifier / "classifier.json"
        recorded = json.loads(meta_path.read_text(encoding="utf-8")).get("embedder") if meta_path.is_file() else None
        clf = apps.Classifier.load(classifier, embedder=model_from_id(recorded) if recorded else None)
        _print_predictions(items, clf.classify(items, top=3), as_json)


def _print_predictions(items: list[str], preds: list[Any], as_json: bool) -> None:
    if as_json:
        for text, p in zip(items, preds, strict=True):
            output.emit_json({"text": text, "label": p.label, "score": p.score,
                              "probabilities": dict(p.probabilities)})
        return
    output.table(None, ["text", "label", "probability"],
                 [(_clip(t, 60), p.label, f"{p.score:.3f}") for t, p in zip(items, preds, strict=True)],
                 justify_right=("probability",))


def _read_labelled(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {text_column, label_column} - set(reader.fieldnames or [])
        if missing:
            raise InvalidInput(f"{path} has no column(s) {sorted(missing)}; columns are {reader.fieldnames}")
        rows = [(r[text_column], r[label_column]) for r in reader if (r[text_column] or "").strip()]
    if len({label for _, label in rows}) < 2:
        raise InvalidInput(f"{path} needs examples of at least two labels")
    texts, labels = zip(*rows, strict=True)
    return list(texts), list(labels)
