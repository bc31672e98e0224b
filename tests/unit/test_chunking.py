"""The chunker's invariants, counted with the real tokenizers (MiniLM's tokenizer.json, cl100k)."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from semkit.errors import InvalidInput
from semkit.ingest.chunking import (
    Chunker,
    counter_for_model,
    default_chunk_tokens,
    default_overlap,
    truncate_to_tokens,
)

MINILM = "local:all-MiniLM-L6-v2@384"
WORDS = (
    "embedding", "vector", "search", "model", "token", "chunk", "paragraph", "sentence", "the", "a", "of",
    "and", "to", "with", "latency", "cache", "browser", "image", "server", "query", "index", "neural",
    "network", "gradient", "backpropagation", "sourdough", "starter", "Kyoto", "temple",
)


@pytest.fixture(scope="module")
def minilm():
    return counter_for_model(MINILM)


def _sentence(rng: random.Random, low: int = 4, high: int = 30) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + rng.choice([".", ".", "!", "?"])


def _document(seed: int) -> str:
    rng = random.Random(seed)
    paragraphs = []
    for _ in range(rng.randint(3, 12)):
        if rng.random() < 0.15:  # a list: lines without sentence punctuation
            items = rng.randint(2, 30)
            paragraphs.append("\n".join(f"- {rng.choice(WORDS)} {rng.choice(WORDS)}" for _ in range(items)))
        else:
            paragraphs.append(" ".join(_sentence(rng) for _ in range(rng.randint(1, 14))))
    return "\n\n".join(paragraphs)


def _check_invariants(text: str, chunks, chunker: Chunker) -> None:
    assert chunks, "a text with words gives at least one chunk"
    covered = bytearray(len(text))
    for chunk in chunks:
        assert chunk.text == text[chunk.start:chunk.end]
        assert chunk.text == chunk.text.strip()
        assert chunk.tokens == chunker.count(chunk.text) <= chunker.chunk_tokens
        # Never mid-word: a chunk starts and ends at whitespace or at the ends of the text.
        assert chunk.start == 0 or text[chunk.start - 1].isspace()
        assert chunk.end == len(text) or text[chunk.end].isspace()
        covered[chunk.start:chunk.end] = b"\x01" * (chunk.end - chunk.start)
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missing, f"characters not in any chunk, first at {missing[0]}"
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), "chunks move forward"
    for before, after in itertools.pairwise(chunks):
        assert after.end > before.end, "overlap never swallows a whole chunk"


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("size", "overlap"), [(205, 30), (64, 10), (32, 0)])
def test_chunks_fit_cover_the_text_and_never_cut_words(minilm, seed: int, size: int, overlap: int) -> None:
    chunker = Chunker(minilm, size, overlap)
    text = _document(seed)
    _check_invariants(text, chunker.split(text), chunker)


def test_neighbours_overlap_by_at_most_the_overlap(minilm) -> None:
    chunker = Chunker(minilm, 64, 12)
    text = " ".join(_sentence(random.Random(n)) for n in range(40))  # one long paragraph
    chunks = chunker.split(text)
    assert len(chunks) > 5
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end, "consecutive chunks share text"
        shared = text[after.start:before.end]
        assert 0 < chunker.count(shared) - 2 <= 12


def test_no_overlap_means_chunks_tile_the_text(minilm) -> None:
    chunker = Chunker(minilm, 48, 0)
    text = _document(3)
    chunks = chunker.split(text)
    for before, after in itertools.pairwise(chunks):
        assert after.start >= before.end
        assert not text[before.end:after.start].strip()


def test_paragraphs_that_fit_are_never_split(minilm) -> None:
    rng = random.Random(7)
    paragraphs = [" ".join(_sentence(rng, 3, 8) for _ in range(rng.randint(1, 3))) for _ in range(30)]
    text = "\n\n".join(paragraphs)
    chunker = Chunker(minilm, 120, 0)
    assert all(chunker.count(p) <= 120 for p in paragraphs)
    bounds = {m.start() for m in re.finditer(r"\n\n", text)} | {len(text)}
    for chunk in chunker.split(text):
        assert chunk.end in bounds, "a chunk ends where a paragraph ends"


def test_a_long_paragraph_is_split_at_sentence_ends(minilm) -> None:
    rng = random.Random(11)
    text = " ".join(_sentence(rng, 6, 12) for _ in range(30))
    chunks = Chunker(minilm, 60, 0).split(text)
    assert len(chunks) > 3
    for chunk in chunks[:-1]:
        assert chunk.text[-1] in ".!?", f"chunk ends mid-sentence: ...{chunk.text[-30:]!r}"


def test_a_word_longer_than_a_chunk_is_cut_to_fit(minilm) -> None:
    blob = ".".join(f"part{n}" for n in range(400))  # no whitespace, hundreds of tokens
    text = f"Before the blob. {blob} after the blob."
    chunker = Chunker(minilm, 40, 0)
    chunks = chunker.split(text)
    assert len(chunks) > 5
    assert all(c.tokens <= 40 for c in chunks)
    assert "".join(c.text for c in chunks if "part" in c.text).count("part") >= 400


def test_exact_bpe_counts_hold_the_limit() -> None:
    counter = counter_for_model("openai:text-embedding-3-small@1536")
    assert counter.special_tokens == 0 and "cl100k" in counter.name
    chunker = Chunker(counter, 50, 8)
    text = _document(5) + "\n\nDon't split emoji 🙂🙂🙂 or CJK 日本語のテキスト。" * 3
    _check_invariants(text, chunker.split(text), chunker)


def test_unknown_providers_are_counted_with_the_cautious_estimate() -> None:
    counter = counter_for_model("test:hash@64")
    assert counter.name == "estimate" and counter.special_tokens == 0
    text = "word " * 300
    assert counter.count([text])[0] >= 300  # errs high: at least one token per word here


def test_minilm_counts_include_its_special_tokens(minilm) -> None:
    assert minilm.special_tokens == 2
    assert Chunker(minilm, 205, 30).count("hello world") == 4  # [CLS] hello world [SEP]


def test_defaults_sit_under_the_context() -> None:
    assert default_chunk_tokens(256) == 205
    assert default_overlap(205) == 30
    assert default_chunk_tokens(8191) == 512
    assert default_chunk_tokens(128) < 128


def test_empty_and_whitespace_texts_give_no_chunks(minilm) -> None:
    chunker = Chunker(minilm, 64, 8)
    assert chunker.split("") == []
    assert chunker.split(" \n\n\t ") == []


@pytest.mark.parametrize(("size", "overlap"), [(5, 0), (64, 40), (64, -1), (True, 0), (64, 1.5)])
def test_bad_sizes_are_clear_errors(minilm, size, overlap) -> None:
    with pytest.raises(InvalidInput, match=r"chunk_tokens|overlap"):
        Chunker(minilm, size, overlap)


def test_truncate_to_tokens_keeps_whole_words(minilm) -> None:
    header = "A rather long document title > Some section > A subsection with words"
    cut = truncate_to_tokens(minilm, header, 6)
    assert header.startswith(cut) and minilm.count([cut])[0] <= 6
    assert cut == "" or header[len(cut)] == " "
    assert truncate_to_tokens(minilm, header, 1000) == header
    assert truncate_to_tokens(minilm, header, 0) == ""


def test_windows_line_ends_still_separate_paragraphs(minilm) -> None:
    rng = random.Random(5)
    paragraphs = [" ".join(_sentence(rng, 3, 20) for _ in range(rng.randint(1, 4))) for _ in range(30)]
    text = "\r\n\r\n".join(paragraphs)
    ends = {text.index(p) + len(p) for p in paragraphs}
    chunker = Chunker(minilm, 120, 0)
    assert all(chunker.count(p) <= 120 for p in paragraphs)
    assert all(c.end in ends for c in chunker.split(text))


@pytest.mark.timeout(60)  # a hang guard: the old line separator (\s*\n\s*) was quadratic in a blank run
def test_a_megabyte_of_blanks_splits_in_linear_time() -> None:
    from semkit.models.tokens import EstimateCounter

    text = "first words " * 10 + " " * 1_000_000 + "last" + "\n \n" + "tail"
    chunks = Chunker(EstimateCounter(), 50, 10).split(text)
    assert chunks[0].text.startswith("first words") and chunks[-1].text.endswith("tail")
