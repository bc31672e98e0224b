"""index_paths on a real embedded store: incremental runs, robustness, and the real model.

Incremental behaviour is proven with ``HashEmbedder``, a real (crude) embedder that records
every text it embeds, so "nothing was embedded" is a count, not a guess.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import semkit
from semkit.errors import InvalidInput
from semkit.ingest import IndexOptions, index_paths
from semkit.ingest.plan import ChunkPlan
from tests.support.hash_embedder import HashEmbedder

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"

LONG_MD = "# Notes on caching\n\n" + "\n\n".join(
    f"Paragraph {n} explains cache entry number {n}: keys, expiry times, invalidation rules, and how "
    f"stale values are refreshed in the background without blocking readers." for n in range(40)
)


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# Alpha\n\nThe alpha document talks about pizza ovens.\n", encoding="utf-8")
    (root / "b.txt").write_text("Beta notes\n\nThe beta document is about mountain bikes.\n", encoding="utf-8")
    (root / "sub" / "long.md").write_text(LONG_MD, encoding="utf-8")
    return root


def _open(tmp_path: Path, embedder: HashEmbedder, name: str = "docs"):
    db = semkit.connect(tmp_path / "kb")
    return db, db.collection(name, model=embedder)


def _records(col) -> dict[str, tuple[str | None, dict]]:
    return {r.id: (r.text, r.metadata) for batch in col.scan() for r in batch}


def test_first_run_writes_chunks_with_their_metadata(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    embedder = HashEmbedder()
    db, col = _open(tmp_path, embedder)
    with db:
        report = index_paths(col, [root], chunk_tokens=120, overlap=15)
        assert report.seen == 3 and sorted(report.indexed) == ["a.md", "b.txt", "sub/long.md"]
        assert not report.failed and report.chunks_written == len(col) == report.embedded
        records = _records(col)
        long_ids = sorted((k for k in records if k.startswith("sub/long.md#")), key=lambda k: int(k.split("#")[1]))
        assert len(long_ids) > 3 and long_ids[0] == "sub/long.md#0"
        text, meta = records["sub/long.md#0"]
        assert meta["source"] == "sub/long.md" and meta["path"] == str(root.resolve() / "sub" / "long.md")
        assert meta["root"] == str(root.resolve()) and meta["title"] == "Notes on caching"
        assert meta["format"] == "markdown" and meta["chunks"] == len(long_ids) and meta["chunk"] == 0
        assert len(meta["file_hash"]) == 64 and meta["size"] == len(LONG_MD.encode())
        assert LONG_MD[meta["start"]:meta["end"]] == text
        assert records["b.txt#0"][1]["title"] == "Beta notes"
        # The title is embedded with the chunk; the stored text is the plain chunk.
        embedded = [t for _, texts in embedder.calls for t in texts]
        assert any(t.startswith("Notes on caching\n\nParagraph 0") for t in embedded)
        assert records["sub/long.md#0"][0].startswith("Paragraph 0")
        hits = col.search("pizza ovens", k=1)
        assert hits[0].metadata["source"] == "a.md"


def test_progress_reports_every_file(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    calls: list[tuple[int, int, str]] = []
    db, col = _open(tmp_path, HashEmbedder())
    with db:
        index_paths(col, [root], progress=lambda done, total, current: calls.append((done, total, current)))
    assert calls == [(0, 3, ""), (1, 3, "a.md"), (2, 3, "b.txt"), (3, 3, "sub/long.md")]


def test_unchanged_folder_embeds_nothing_and_writes_nothing(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    embedder = HashEmbedder()
    db, col = _open(tmp_path, embedder)
    with db:
        index_paths(col, [root])
        before = _records(col)
        calls = len(embedder.calls)
        again = index_paths(col, [root])
        assert again.unchanged == 3 and again.indexed == [] and again.chunks_written == 0
        assert again.embedded == 0 and len(embedder.calls) == calls, "an unchanged run must not embed"
        assert _records(col) == before


def test_unchanged_run_never_builds_the_chunk_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The plan loads the collection's model (its context size and tokenizer): a re-run over
    # unchanged files needs neither.
    root = _tree(tmp_path / "docs")
    db, col = _open(tmp_path, HashEmbedder())
    with db:
        index_paths(col, [root])

        def no_model(*_args: object) -> ChunkPlan:
            raise AssertionError("the chunk plan was built for an unchanged run")

        monkeypatch.setattr(ChunkPlan, "for_collection", no_model)
        assert index_paths(col, [root]).unchanged == 3


def test_an_options_object_and_keywords_are_the_same_call(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    db = semkit.connect(tmp_path / "kb")
    with db:
        by_object = db.collection("object", model=HashEmbedder())
        by_keywords = db.collection("keywords", model=HashEmbedder())
        overridden = db.collection("overridden", model=HashEmbedder())
        options = IndexOptions(chunk_tokens=100, overlap=10, include=["*.md"])
        first = index_paths(by_object, [root], options)
        second = index_paths(by_keywords, [root], chunk_tokens=100, overlap=10, include=["*.md"])
        assert sorted(first.indexed) == sorted(second.indexed) == ["a.md", "sub/long.md"]
        assert _records(by_object) == _records(by_keywords)
        # Keywords override the object's fields: here the glob.
        third = index_paths(overridden, [root], options, include=["*.txt"])
        assert third.indexed == ["b.txt"] and _records(overridden)["b.txt#0"][1]["settings"] == "v1:100/10/auto"
        with pytest.raises(TypeError, match="unknown indexing option"):
            index_paths(by_object, [root], chunk_size=100)


def test_edited_file_replaces_only_its_own_chunks(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    embedder = HashEmbedder()
    db, col = _open(tmp_path, embedder)
    with db:
        index_paths(col, [root], chunk_tokens=100, overlap=10)
        before = _records(col)
        others = {k: v for k, v in before.items() if not k.startswith("sub/long.md#")}
        long_before = sorted(k for k in before if k.startswith("sub/long.md#"))
        vectors_before = {r.id: r.vector for r in col.get(long_before, include_vectors=True)}

        # Shorten the file and change its last paragraph: fewer chunks, most of them unchanged.
        shorter = LONG_MD.rsplit("\n\n", 10)[0] + "\n\nA brand new closing paragraph about cache warming."
        (root / "sub" / "long.md").write_text(shorter, encoding="utf-8")
        seen_before = len([t for _, texts in embedder.calls for t in texts])
        report = index_paths(col, [root], chunk_tokens=100, overlap=10)
        embedded_now = len([t for _, texts in embedder.calls for t in texts]) - seen_before

        assert report.indexed == ["sub/long.md"] and report.unchanged == 2
        after = _records(col)
        assert {k: v for k, v in after.items() if not k.startswith("sub/long.md#")} == others
        long_after = [k for k in after if k.startswith("sub/long.md#")]
        assert 0 < len(long_after) < len(long_before)
        assert report.chunks_deleted == len(long_before) - len(long_after)
        assert all(m["chunks"] == len(long_after) and m["file_hash"] == after[long_after[0]][1]["file_hash"]
                   for _, m in (after[k] for k in long_after))
        assert "brand new closing paragraph" in " ".join(after[k][0] for k in long_after)
        # Chunks whose text did not change kept their vectors instead of being embedded again.
        assert report.reused > 0 and embedded_now == report.embedded < len(long_after)
        kept = col.get(["sub/long.md#0"], include_vectors=True)[0]
        assert np.array_equal(kept.vector, vectors_before["sub/long.md#0"])


def test_deleted_file_loses_its_chunks_and_excluded_files_keep_theirs(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    db, col = _open(tmp_path, HashEmbedder())
    with db:
        index_paths(col, [root])
        (root / "a.md").unlink()
        report = index_paths(col, [root], exclude=["b.txt"])
        assert report.removed == ["a.md"] and report.ignored == 1
        sources = {m["source"] for _, m in _records(col).values()}
        assert sources == {"b.txt", "sub/long.md"}, "an excluded file that still exists keeps its chunks"
        assert col.count(where={"source": "a.md"}) == 0


def test_settings_change_rechunks_and_a_half_written_file_is_redone(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    db, col = _open(tmp_path, HashEmbedder())
    with db:
        index_paths(col, [root], chunk_tokens=200, overlap=0)
        n200 = col.count(where={"source": "sub/long.md"})
        report = index_paths(col, [root], chunk_tokens=60, overlap=0)
        assert len(report.indexed) == 3 and col.count(where={"source": "sub/long.md"}) > n200
        # A crash between writing a file's chunks and deleting its stale ones leaves a chunk
        # with another hash behind: the next run must see the file as changed.
        rec = col.get(["a.md#0"])[0]
        col.upsert(["a.md#7"], texts=["stale leftover"], metadata=[{**rec.metadata, "chunk": 7, "file_hash": "old"}])
        again = index_paths(col, [root], chunk_tokens=60, overlap=0)
        assert again.indexed == ["a.md"] and col.get(["a.md#7"]) == []


@pytest.fixture(params=["embedded", "memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "embedded":
        db = semkit.connect(tmp_path / "kb")
    elif request.param == "memory":
        db = semkit.connect("memory://")
    else:
        import uuid

        from tests.support.pgserver import drop_schema

        dsn = request.getfixturevalue("postgres_dsn")
        schema = f"t_{uuid.uuid4().hex[:10]}"
        request.addfinalizer(lambda: drop_schema(dsn, schema))
        db = semkit.connect(dsn, schema=schema)
    with db:
        yield db


def test_incremental_cycle_on_every_backend(database, tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    embedder = HashEmbedder()
    col = database.collection("docs", model=embedder)
    first = index_paths(col, [root], chunk_tokens=100, overlap=10)
    assert len(first.indexed) == 3 and len(col) == first.chunks_written
    calls = len(embedder.calls)
    assert index_paths(col, [root], chunk_tokens=100, overlap=10).unchanged == 3
    assert len(embedder.calls) == calls
    (root / "sub" / "long.md").write_text(LONG_MD.rsplit("\n\n", 20)[0], encoding="utf-8")
    (root / "a.md").unlink()
    third = index_paths(col, [root], chunk_tokens=100, overlap=10)
    assert third.indexed == ["sub/long.md"] and third.removed == ["a.md"] and third.chunks_deleted > 0
    sources = {r.metadata["source"] for batch in col.scan() for r in batch}
    assert sources == {"b.txt", "sub/long.md"}
    n = col.count(where={"source": "sub/long.md"})
    assert {r.metadata["chunks"] for batch in col.scan(where={"source": "sub/long.md"}) for r in batch} == {n}


def test_a_moved_folder_is_recognised_without_embedding(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    embedder = HashEmbedder()
    db, col = _open(tmp_path, embedder)
    with db:
        first = index_paths(col, [root])
        moved = root.rename(tmp_path / "moved")
        calls = len(embedder.calls)
        report = index_paths(col, [moved])
        assert report.unchanged == 3 and report.removed == [] and len(embedder.calls) == calls
        assert len(col) == first.chunks_written
        meta = col.get(["sub/long.md#0"])[0].metadata
        assert meta["root"] == str(moved.resolve()) and meta["path"] == str(moved.resolve() / "sub" / "long.md")


def test_bad_files_are_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3 broken beyond repair")
    (root / "photo.txt").write_bytes(bytes(range(256)) * 40)
    (root / "empty.md").write_text("", encoding="utf-8")
    (root / "latin.txt").write_bytes("Crème brûlée recipe\n\nCaramelise the sugar.".encode("latin-1"))
    (root / "big.md").write_text("# Big\n\n" + "word " * 5000, encoding="utf-8")
    (root / "loop1.md").symlink_to(root / "loop2.md")
    (root / "loop2.md").symlink_to(root / "loop1.md")
    (root / "dangling.txt").symlink_to(root / "nowhere.txt")
    (root / "sub" / "back").symlink_to(root)  # a folder link loop: not followed
    os.mkfifo(root / "pipe.txt")  # reading a FIFO would block forever
    (root / ".git").mkdir()
    (root / ".git" / "HEAD.md").write_text("# hidden\n\nnot indexed", encoding="utf-8")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "readme.md").write_text("# vendored\n\nnot indexed", encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG\r\n")

    db, col = _open(tmp_path, HashEmbedder())
    with db:
        report = index_paths(col, [root], max_file_bytes=20_000)
        failed = {p.source: p.reason for p in report.failed}
        assert set(failed) == {"corrupt.pdf", "photo.txt", "empty.md", "big.md", "loop1.md", "loop2.md",
                               "dangling.txt", "pipe.txt"}
        assert "PDF" in failed["corrupt.pdf"] and "binary" in failed["photo.txt"]
        assert "empty" in failed["empty.md"] and "limit" in failed["big.md"]
        assert "symlink" in failed["dangling.txt"] and "regular file" in failed["pipe.txt"]
        assert sorted(report.indexed) == ["a.md", "b.txt", "latin.txt", "sub/long.md"]
        assert [w.source for w in report.warnings] == ["latin.txt"]
        assert report.ignored == 1  # image.png; hidden and vendored folders are not even walked
        assert "Crème brûlée" in col.get(["latin.txt#0"])[0].text


def test_a_file_that_turns_unreadable_keeps_its_chunks(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    db, col = _open(tmp_path, HashEmbedder())
    with db:
        index_paths(col, [root])
        before = col.count(where={"source": "b.txt"})
        (root / "b.txt").write_bytes(b"\x00\x01\x02" * 100)
        report = index_paths(col, [root])
        assert [p.source for p in report.failed] == ["b.txt"]
        assert col.count(where={"source": "b.txt"}) == before


def test_include_globs_and_single_files(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    db, col = _open(tmp_path, HashEmbedder())
    with db:
        report = index_paths(col, [root], include=["*.md"])
        assert sorted(report.indexed) == ["a.md", "sub/long.md"] and report.ignored == 1
        single = index_paths(col, [root / "b.txt"])
        assert single.indexed == ["b.txt"] and single.removed == []
        assert col.get(["b.txt#0"])[0].metadata["root"] == str(root.resolve())


def test_same_relative_path_from_two_folders_is_refused(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one")
    two = _tree(tmp_path / "two")
    (two / "a.md").write_text("# Other alpha\n\nA different file with the same name.", encoding="utf-8")
    db, col = _open(tmp_path, HashEmbedder())
    with db:
        index_paths(col, [one])
        report = index_paths(col, [two])
        assert "a.md" in {p.source for p in report.failed}
        assert "pizza" in col.get(["a.md#0"])[0].text, "the first folder's file was not overwritten"


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    db, col = _open(tmp_path, HashEmbedder())
    with db:
        with pytest.raises(InvalidInput, match="no such file"):
            index_paths(col, [tmp_path / "missing"])
        with pytest.raises(InvalidInput, match="overlap"):
            index_paths(col, [root], chunk_tokens=100, overlap=80)
        with pytest.raises(InvalidInput, match="apply to the Ray engine"):
            index_paths(col, [root], workers=2)
        with pytest.raises(InvalidInput, match="engine must be one of"):
            index_paths(col, [root], engine="spark")  # type: ignore[arg-type]
        own = db.collection("vectors", model=None, dimensions=8)
        with pytest.raises(InvalidInput, match="own vectors"):
            index_paths(own, [root])
        assert len(col) == 0, "a refused run wrote nothing"


@pytest.mark.slow
def test_sample_documents_with_the_real_model(tmp_path: Path) -> None:
    docs = shutil.copytree(EXAMPLES, tmp_path / "docs")
    model = semkit.model("local", cache=False)
    with semkit.connect(tmp_path / "kb") as db:
        col = db.collection("docs", model=model)
        report = index_paths(col, [docs])
        assert report.seen == len(list(EXAMPLES.iterdir())) and not report.failed and not report.warnings
        formats = {r.metadata["format"] for batch in col.scan() for r in batch}
        assert formats == {"markdown", "text", "html", "pdf", "docx", "csv", "jsonl"}
        for batch in col.scan():
            for r in batch:
                assert r.metadata["tokens"] <= 205, "default chunks fit MiniLM's context with room for the title"
        pdf_pages = {r.metadata.get("page") for batch in col.scan(where={"format": "pdf"}) for r in batch}
        assert pdf_pages == {1, 2}

        hits = col.search("how to fix a slow website", k=3)
        assert hits[0].metadata["source"] == "web-performance.md"
        assert col.search("what to see in Kyoto", k=1)[0].metadata["source"] == "kyoto-travel.html"
        assert col.search("my bread starter smells sour", k=1)[0].metadata["source"] == "sourdough-bread.md"

        items = model.meter.items
        again = index_paths(col, [docs])
        assert again.unchanged == report.seen and model.meter.items == items, "re-run embedded nothing"


def test_compressed_files_in_a_folder_are_read_as_the_file_inside(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    (root / "faq.jsonl.gz").write_bytes(gzip.compress(
        b'{"title": "Password", "text": "Use the reset link on the sign-in page."}\n'
        b'{"title": "Invoices", "text": "Invoices are under billing."}\n'))
    (root / "notes.md.gz").write_bytes(gzip.compress(b"# Gzipped notes\n\nCompressed markdown is read too.\n"))
    (root / "backup.tar.gz").write_bytes(gzip.compress(b"not a document"))
    (root / "truncated.txt.gz").write_bytes(gzip.compress(b"cut short " * 200)[:40])
    db, col = _open(tmp_path, HashEmbedder())
    with db:
        report = index_paths(col, [root])
        assert sorted(report.indexed) == ["a.md", "b.txt", "faq.jsonl.gz", "notes.md.gz", "sub/long.md"]
        assert report.ignored == 1  # backup.tar.gz: a .tar inside is no document
        assert [(p.source, "gz" in p.reason) for p in report.failed] == [("truncated.txt.gz", True)]
        assert col.count(where={"source": "faq.jsonl.gz"}) >= 1
        assert "Compressed markdown" in col.get(["notes.md.gz#0"])[0].text


def test_a_chunker_error_fails_only_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection: no real file is known to break the chunker, which is the point of the guard.
    rows = ChunkPlan.rows

    def failing_on_b(self, f, *args):  # type: ignore[no-untyped-def]
        if f.source == "b.txt":
            raise RecursionError("maximum recursion depth exceeded")
        return rows(self, f, *args)

    monkeypatch.setattr(ChunkPlan, "rows", failing_on_b)
    root = _tree(tmp_path / "docs")
    db, col = _open(tmp_path, HashEmbedder())
    with db:
        report = index_paths(col, [root])
        assert sorted(report.indexed) == ["a.md", "sub/long.md"]
        assert [(p.source, p.reason) for p in report.failed] == [
            ("b.txt", "unexpected RecursionError while chunking: maximum recursion depth exceeded")]
        monkeypatch.setattr(ChunkPlan, "rows", rows)
        again = index_paths(col, [root])
        assert again.indexed == ["b.txt"] and again.unchanged == 2


def test_allowed_roots_stop_symlinks_that_lead_out(tmp_path: Path) -> None:
    root = _tree(tmp_path / "served")
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("The launch code is 0000 and nobody outside may read it.\n", encoding="utf-8")
    (root / "sub" / "innocent.txt").symlink_to(secret)
    (root / "linked-dir").symlink_to(secret.parent, target_is_directory=True)  # folders links are not walked
    (root / "inner.md").symlink_to(root / "a.md")  # a link that stays inside is fine (same file as a.md)
    embedder = HashEmbedder()
    db, col = _open(tmp_path, embedder)
    with db:
        report = index_paths(col, [root / "sub", root / "sub" / "innocent.txt", root / "inner.md"],
                             allowed_roots=[root])
        failed = {p.source: p.reason for p in report.failed}
        assert "innocent.txt" in failed and "outside the folders" in failed["innocent.txt"]
        assert str(secret) not in " ".join(failed.values())  # the target is not revealed
        texts = " ".join(text or "" for text, _ in _records(col).values())
        assert "launch code" not in texts and "cache entry" in texts and "alpha document" in texts

        # The same run without the confinement reads the linked file: the option is what stops it.
        free = index_paths(db.collection("free", model=embedder), [root / "sub"])
        assert "innocent.txt" in free.indexed


def test_allowed_roots_recheck_a_link_swapped_after_discovery(tmp_path: Path) -> None:
    from semkit.ingest.sources import discover, read_source

    root = tmp_path / "served"
    root.mkdir()
    (root / "note.txt").write_text("A harmless note.\n", encoding="utf-8")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret\n", encoding="utf-8")
    found = discover([root], allowed_roots=[root.resolve()])
    [source] = found.files
    (root / "note.txt").unlink()
    (root / "note.txt").symlink_to(outside)  # swapped between discovery and reading
    read = read_source(source, None, None, 1_000_000, [root.resolve()])
    assert read.doc is None and read.problem is not None and "outside" in read.problem
