"""``index_paths(..., engine="ray")`` (alias ``index_paths_ray``) / ``semkit index --engine ray`` on
a local Ray instance (2 CPUs here), with the real bundled model: it writes what the single-process
engine writes, re-runs embed only what is new, and a run killed half-way finishes on the next run
without re-embedding the part that was done.

Each test gets its own embedding cache, so "the model embedded N chunks" is a measured count
(``embedded - cached``), never satisfied by an earlier test's cache.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import semkit
from semkit.errors import ConfigError, InvalidInput
from semkit.ingest import index_paths, index_paths_ray
from semkit.ingest.distributed import _RayRun
from tests.support.ingest_compare import assert_same_collection, scifact_files, stored_rows

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One local Ray instance for the module (starting one takes seconds). Its workers read the
    embedding cache from ``SEMKIT_CACHE_DIR`` as it is when Ray starts: a folder per module,
    under which each test picks its own cache (see ``fresh_cache``)."""
    cache_root = tmp_path_factory.mktemp("ray-cache")
    old = os.environ.get("SEMKIT_CACHE_DIR")
    os.environ["SEMKIT_CACHE_DIR"] = str(cache_root)
    run = _RayRun.connect(None, workers=1)
    try:
        yield cache_root
    finally:
        run.close()
        if old is None:
            os.environ.pop("SEMKIT_CACHE_DIR", None)
        else:
            os.environ["SEMKIT_CACHE_DIR"] = old


def _clear_cache(cache_root: Path) -> None:
    for path in cache_root.glob("embeddings.sqlite3*"):
        path.unlink()


def _corpus(root: Path) -> Path:
    """The repository's example documents (md, txt, html, pdf, docx, csv, jsonl) plus a long
    Markdown file and a few problem files."""
    import shutil

    shutil.copytree(EXAMPLES, root)
    (root / "notes").mkdir()
    (root / "notes" / "long.md").write_text("# Cache notes\n\n" + "\n\n".join(
        f"## Part {n}\n\nParagraph {n} explains cache entry number {n}: keys, expiry times, invalidation "
        "rules, and how stale values are refreshed in the background without blocking readers." for n in range(30)
    ), encoding="utf-8")
    (root / "notes" / "empty.txt").write_text("", encoding="utf-8")
    (root / "notes" / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    return root


def test_ray_engine_writes_what_the_single_process_engine_writes(ray_instance: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = _corpus(tmp_path / "docs")
    db = semkit.connect(tmp_path / "kb")
    _clear_cache(ray_instance)
    distributed = index_paths_ray(db.collection("ray", model="local"), [corpus], batch_size=16)
    # The driver embeds with its own, empty, cache, so both engines really run the model.
    monkeypatch.setenv("SEMKIT_CACHE_DIR", str(tmp_path / "single-cache"))
    single = index_paths(db.collection("single", model="local"), [corpus], batch_size=16)

    assert_same_collection(db.collection("single"), db.collection("ray"))
    assert distributed.chunks_written == single.chunks_written == len(db.collection("ray"))
    assert distributed.embedded == distributed.chunks_written and distributed.cached == 0
    assert sorted(distributed.indexed) == sorted(single.indexed)
    problems = sorted((p.source, p.reason) for p in distributed.failed)
    assert problems == sorted((p.source, p.reason) for p in single.failed)
    assert {p.source for p in distributed.failed} == {"notes/empty.txt", "notes/broken.pdf"}
    # One node (this machine's local instance), its workers each loaded the model once; the
    # local engine reports no nodes.
    [node] = distributed.nodes.values()
    assert node["chunks"] == distributed.chunks_written and node["batches"] >= 1
    assert node["model_loads"] == node["workers"] >= 1
    assert distributed.batches_resent == 0 and distributed.workers_lost == []
    assert single.nodes == {} and single.batches_resent == 0

    again = index_paths_ray(db.collection("ray"), [corpus])
    assert again.unchanged == single.seen - 2 and again.embedded == 0 and again.indexed == []


def test_ray_engine_updates_like_the_single_process_engine(ray_instance: Path, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "docs")
    db = semkit.connect(tmp_path / "kb")
    _clear_cache(ray_instance)
    index_paths(db.collection("ray", model="local"), [corpus], engine="ray")
    index_paths(db.collection("single", model="local"), [corpus])

    long_md = corpus / "notes" / "long.md"
    long_md.write_text(long_md.read_text(encoding="utf-8")[:600] + "\n\nA new closing line.\n", encoding="utf-8")
    (corpus / "notes" / "extra.md").write_text("# Extra\n\nA file added later about sourdough bread.\n",
                                                encoding="utf-8")
    (corpus / "indoor-plants.md").unlink()
    reopened = db.collection("ray")  # the recorded model, loaded only if something needs it
    seen: list[tuple[int, int, str]] = []
    update = index_paths(reopened, [corpus], engine="ray", progress=lambda *a: seen.append(a))
    index_paths(db.collection("single"), [corpus])

    # The driver never needed the model: the workers made the chunk plan and embedded.
    assert reopened._model is None
    # Progress names the nodes that returned chunks, and the batches resent.
    assert re.fullmatch(r"nodes \S+/\w{8}: \d+; resent 0", seen[-1][2]), seen

    assert sorted(update.indexed) == ["notes/extra.md", "notes/long.md"]
    assert update.removed == ["indoor-plants.md"]
    assert update.chunks_deleted > 0  # long.md shrank: its tail chunks are gone
    # Only the changed chunks cost model time: the unchanged head of long.md came from the cache.
    assert update.cached >= 1 and update.embedded - update.cached < update.chunks_written
    assert_same_collection(db.collection("single"), db.collection("ray"))


def onnx_sessions() -> int:
    """onnxruntime sessions alive in this process (a loaded local model holds one)."""
    import gc

    import onnxruntime

    gc.collect()
    return sum(isinstance(o, onnxruntime.InferenceSession) for o in gc.get_objects())


def test_creating_a_collection_does_not_load_the_local_model(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The id and dimensions come from the model folder; the model loads on the first text."""
    monkeypatch.setenv("SEMKIT_CACHE_DIR", str(tmp_path / "cache"))
    before = onnx_sessions()
    db = semkit.connect(tmp_path / "kb")
    col = db.collection("docs", model="local")
    assert col.spec.embedder == "local:all-MiniLM-L6-v2@384" and col.dimensions == 384
    assert col._model is None and onnx_sessions() == before
    col.upsert(ids=["cats", "tax"], texts=["Cats sleep most of the day.", "How to file a tax return."])
    assert onnx_sessions() == before + 1  # loaded now, once, for the texts
    assert col.model is not None and col.model.id == col.spec.embedder  # the id recorded is the model's
    assert col.search("sleeping kittens", k=1)[0].id == "cats"


def test_ray_engine_into_a_new_collection_does_not_load_the_model_on_the_driver(
        ray_instance: Path, tmp_path: Path) -> None:
    _clear_cache(ray_instance)
    before = onnx_sessions()
    db = semkit.connect(tmp_path / "kb")
    col = db.collection("fresh", model="local")  # what `semkit index --engine ray` does for a new one
    report = index_paths(col, [EXAMPLES], engine="ray")
    assert report.chunks_written > 0 and report.embedded == report.chunks_written
    [node] = report.nodes.values()
    assert node["model_loads"] >= 1  # the workers loaded it
    assert col._model is None and onnx_sessions() == before  # the driver never did
    assert len(db.collection("fresh")) == report.chunks_written


def test_bad_ray_options_are_clear_errors(ray_instance: Path, tmp_path: Path) -> None:
    db = semkit.connect(tmp_path / "kb")
    col = db.collection("docs", model="local")
    with pytest.raises(InvalidInput, match="workers"):
        index_paths_ray(col, [EXAMPLES], workers=0)
    with pytest.raises(InvalidInput, match="own vectors"):
        index_paths_ray(db.collection("vectors", model=None, dimensions=4), [EXAMPLES])
    # Checked by the workers, which hold the model: an error on the driver, not a lost worker.
    with pytest.raises(InvalidInput, match=r"exceeds the \d+-token context"):
        index_paths_ray(db.collection("docs"), [EXAMPLES], chunk_tokens=5000)
    assert len(col) == 0


def test_unreachable_cluster_is_a_config_error(tmp_path: Path) -> None:
    code = (
        "import semkit, sys\n"
        "from semkit.ingest import index_paths_ray\n"
        "from semkit.errors import ConfigError\n"
        f"col = semkit.connect({str(tmp_path / 'kb')!r}).collection('docs', model='local')\n"
        "try:\n"
        f"    index_paths_ray(col, [{str(EXAMPLES)!r}], address='ray://127.0.0.1:9')\n"
        "except ConfigError as exc:\n"
        "    print('ConfigError:', exc); sys.exit(3)\n"
    )
    # Ray's client retries 3 times from 5 s up (35 s); 1 s up is enough to find nobody listening.
    env = {**os.environ, "SEMKIT_CACHE_DIR": str(tmp_path / "cache"), "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 3, out.stderr[-2000:]
    assert "cannot start or reach Ray at ray://127.0.0.1:9" in out.stdout
    assert ConfigError.__name__ in out.stdout


def test_missing_ray_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra
    col = semkit.connect(tmp_path / "kb").collection("docs", model="local")
    with pytest.raises(ConfigError, match=r"pip install 'semkit\[ray\]'"):
        index_paths_ray(col, [EXAMPLES])
    assert len(col) == 0


def test_killed_run_resumes_without_re_embedding_the_finished_part(tmp_path: Path) -> None:
    corpus = scifact_files(tmp_path / "scifact", 120)  # ~260 chunks: a few batches after the first
    kb = tmp_path / "kb"
    env = {**os.environ, "SEMKIT_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "semkit", "index", str(corpus), "--db", str(kb), "--engine", "ray",
               "--json"]
    # A session of its own, so the kill takes the run's whole local Ray instance down with it,
    # as a crash of the machine or the job would.
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    deadline = time.monotonic() + 240
    written = 0
    while time.monotonic() < deadline and first.poll() is None:
        written = stored_rows(kb)
        if written >= 64:  # the first batch of chunks is in, most are not
            break
        time.sleep(0.05)
    assert first.poll() is None, f"finished before it could be killed ({written} rows): {first.stderr.read()!r}"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    written_before = stored_rows(kb)
    assert written_before > 0

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    report = json.loads(second.stdout)
    total = report["count"]
    assert written_before < total
    assert report["unchanged"] > 0  # files completed before the kill are skipped outright
    model_work = report["embedded"] - report["cached"]
    assert model_work <= total - written_before  # what was written before the kill is not embedded again

    # And the result is what one clean single-process run writes.
    reference = semkit.connect(tmp_path / "reference").collection("docs", model="local")
    index_paths(reference, [corpus])
    assert_same_collection(reference, semkit.connect(kb).collection("docs"))
