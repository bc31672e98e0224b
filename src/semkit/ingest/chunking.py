"""Token-aware chunking: section text → pieces that fit the embedding model, with overlap.

Sizes are counted with the model's own tokenizer (``counter_for_model``, which is
``embed.tokens.counter_for_model(..., bias="high")``): a local model's Hugging Face
``tokenizer.json`` with no padding or truncation, plus the special tokens the model adds
(``[CLS]``/``[SEP]``); OpenAI's ``cl100k_base`` for OpenAI models; a cautious estimate (it errs
high) for others. ``chunk_tokens`` includes the special tokens, so a chunk
of ``chunk_tokens`` is exactly what the model sees.

How a text is cut: the text is split at blank lines (paragraphs); a paragraph over the limit
at sentence ends; a sentence over it at line breaks; a line over it at spaces. Only a single
"word" longer than the whole limit (a URL, a hash, base64) is ever cut inside, at the longest
prefix that fits. The pieces are then packed greedily into chunks, so a chunk ends at the
strongest boundary that keeps it under the limit. Each chunk after the first starts with the
last ``overlap`` tokens (or fewer) of the previous chunk, cut at a sentence start when one
gives at least half the overlap, else at a word start; overlap never swallows a whole chunk.
Every chunk's size is checked with one exact count at the end (BPE counts are not quite
additive), so the limit holds exactly.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidInput
from ..models import tokens
from ..models.tokens import TokenCounter

MAX_DEFAULT_CHUNK = 512
"""Large-context models (8k tokens) still get chunks of at most this many tokens by default:
retrieval precision drops when one vector stands for pages of text."""

DEFAULT_OVERLAP_FRACTION = 0.15


def counter_for_model(embedder_id: str) -> TokenCounter:
    """The token counter for a collection's embedder id (``local:all-MiniLM-L6-v2@384``):
    exact with the model's own tokenizer when it is available offline, else the high-side
    estimate (``bias="high"``), because a chunk must never exceed the model's context."""
    return tokens.counter_for_model(embedder_id, bias="high")


def default_chunk_tokens(max_tokens: int) -> int:
    """A bit under the model's context (room for the title/section line that is embedded with
    each chunk), at most ``MAX_DEFAULT_CHUNK``: 205 for all-MiniLM-L6-v2 (256)."""
    return max(16, min(MAX_DEFAULT_CHUNK, max_tokens - max(16, max_tokens // 5)))


def default_overlap(chunk_tokens: int) -> int:
    return int(chunk_tokens * DEFAULT_OVERLAP_FRACTION)


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int
    """Character offset of ``text`` in the chunked text (``end`` exclusive)."""
    end: int
    tokens: int
    """Tokens the model processes for ``text`` alone, special tokens included."""


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    tokens: int


_PARAGRAPH = re.compile(r"\n[ \t\r]*\n\s*")  # \r: files with Windows line ends
_SENTENCE = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")
_LINE = re.compile(r"\n\s*")  # no leading \s*: spans are trimmed anyway, and it made long blank runs quadratic
_WORD = re.compile(r"\s+")
_LEVELS = (_PARAGRAPH, _SENTENCE, _LINE, _WORD)
_NON_SPACE = re.compile(r"\S")


class _SpanCounts:
    """Token counts of spans of one text. With token offsets (local models), the text is
    tokenised once and a span's count is the number of tokens starting inside it; otherwise
    every span is tokenised on its own. Chunk sizes are exact: from the offsets where the
    tokenizer makes them exact (``span``), else from a tokenisation of the chunk."""

    def __init__(self, counter: TokenCounter, text: str) -> None:
        self.counter = counter
        self.text = text
        token_starts = getattr(counter, "token_starts", None)
        self.starts: list[int] | None = token_starts(text) if token_starts is not None and text else None
        self.additive = self.starts is not None and bool(getattr(counter, "additive", False))

    def many(self, spans: Sequence[tuple[int, int]]) -> list[int]:
        if self.starts is None:
            return self.counter.count([self.text[a:b] for a, b in spans])
        starts = self.starts
        return [bisect.bisect_left(starts, b) - bisect.bisect_left(starts, a) for a, b in spans]

    def one(self, start: int, end: int) -> int:
        return self.many([(start, end)])[0]

    def exact(self, start: int, end: int) -> int:
        return self.counter.count([self.text[start:end]])[0]

    def span(self, start: int, end: int) -> int:
        """The exact count of ``text[start:end]``, from the offsets when that is exact (an
        additive tokenizer and a span cut at whitespace), else by tokenising it."""
        text = self.text
        at_spaces = (start == 0 or text[start - 1].isspace()) and (end == len(text) or text[end].isspace())
        if self.additive and at_spaces:
            return self.one(start, end)
        return self.exact(start, end)


class Chunker:
    """Splits texts into chunks of at most ``chunk_tokens`` model tokens (special tokens
    included) with about ``overlap`` tokens shared by neighbours."""

    def __init__(self, counter: TokenCounter, chunk_tokens: int, overlap: int) -> None:
        specials = counter.special_tokens
        if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int) or chunk_tokens < specials + 8:
            raise InvalidInput(f"chunk_tokens must be an integer of at least {specials + 8} (the model adds "
                               f"{specials} special tokens), got {chunk_tokens!r}")
        most = (chunk_tokens - specials) // 2
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= most:
            raise InvalidInput(f"overlap must be an integer from 0 to {most} (half a "
                               f"chunk) for chunks of {chunk_tokens} tokens, got {overlap!r}")
        self.counter = counter
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap
        self._budget = chunk_tokens - specials

    def count(self, text: str) -> int:
        """Tokens the model processes for ``text``, special tokens included."""
        return self.counter.count([text])[0] + self.counter.special_tokens

    def split(self, text: str) -> list[Chunk]:
        counts = _SpanCounts(self.counter, text)
        pieces = self._pieces(counts, 0, len(text), 0, self._budget - self.overlap)
        chunks: list[Chunk] = []
        i = 0
        lead_start: int | None = None  # where the overlap taken from the previous chunk starts
        lead_tokens = 0
        while i < len(pieces):
            start = pieces[i].start if lead_start is None else lead_start
            used, j = lead_tokens, i
            while j < len(pieces) and used + pieces[j].tokens <= self._budget:
                used += pieces[j].tokens
                j += 1
            j = max(j, i + 1)
            tokens = counts.span(start, pieces[j - 1].end)
            while tokens > self._budget and j - 1 > i:
                j -= 1  # the sum of piece counts was optimistic: give the last piece back
                tokens = counts.span(start, pieces[j - 1].end)
            if tokens > self._budget and lead_start is not None:
                start = pieces[i].start  # one piece plus the overlap is too much: drop the overlap
                tokens = counts.span(start, pieces[j - 1].end)
            end = pieces[j - 1].end
            chunks.append(Chunk(text[start:end], start, end, tokens + self.counter.special_tokens))
            i = j
            lead_start, lead_tokens = None, 0
            if i < len(pieces) and self.overlap:
                lead = self._overlap(counts, start, end)
                if lead is not None:
                    lead_start, lead_tokens = lead
        return chunks

    # --- internals ----------------------------------------------------------------------------

    def _pieces(self, counts: _SpanCounts, start: int, end: int, level: int, limit: int) -> list[_Piece]:
        """Spans of ``text[start:end]`` (whitespace trimmed) of at most ``limit`` tokens each,
        cut at this level's separator, finer levels only where a span is still too long."""
        spans = _split_spans(counts.text, start, end, _LEVELS[level])
        if not spans:
            return []
        out: list[_Piece] = []
        for (a, b), n in zip(spans, counts.many(spans), strict=True):
            if n <= limit:
                out.append(_Piece(a, b, n))
            elif level + 1 < len(_LEVELS):
                out.extend(self._pieces(counts, a, b, level + 1, limit))
            else:
                out.extend(self._hard_cut(counts, a, b, limit))
        return out

    def _hard_cut(self, counts: _SpanCounts, start: int, end: int, limit: int) -> list[_Piece]:
        """A single unbroken word over the limit: the longest prefixes that fit, in turn
        (counted exactly: a word cut in two tokenises differently)."""
        out: list[_Piece] = []
        while start < end:
            lo, hi = 1, min(end - start, max(limit, 1) * 32)
            if counts.exact(start, start + hi) <= limit:
                lo = hi
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if counts.exact(start, start + mid) <= limit:
                    lo = mid
                else:
                    hi = mid - 1
            out.append(_Piece(start, start + lo, counts.exact(start, start + lo)))
            start += lo
        return out

    def _overlap(self, counts: _SpanCounts, start: int, end: int) -> tuple[int, int] | None:
        """Start and size of the tail of ``text[start:end]`` to repeat at the head of the next
        chunk: at most ``overlap`` tokens, beginning at a word (preferably sentence) start."""
        text = counts.text
        words = [m.end() for m in _WORD.finditer(text, start, end) if m.end() < end]
        if not words:
            return None
        lo, hi = 0, len(words)  # first word start whose tail fits; counts shrink as starts move right
        while lo < hi:
            mid = (lo + hi) // 2
            if counts.one(words[mid], end) <= self.overlap:
                hi = mid
            else:
                lo = mid + 1
        # finditer from the chunk start: a separator ending exactly at a word start counts too.
        sentence_starts = {m.end() for m in _SENTENCE.finditer(text, start, end)}
        for k in range(lo, len(words)):
            begin = words[k]
            tokens = counts.span(begin, end)
            if tokens > self.overlap:
                continue  # span counts were optimistic here: move one word right
            sentence = next((w for w in words[k:] if w in sentence_starts), None)
            if sentence is not None and sentence != begin:
                sentence_tokens = counts.span(sentence, end)
                if sentence_tokens * 2 >= self.overlap:
                    return sentence, sentence_tokens
            return begin, tokens
        return None


def _split_spans(text: str, start: int, end: int, separator: re.Pattern[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in separator.finditer(text, start, end):
        spans.append((cursor, match.start()))
        cursor = match.end()
    spans.append((cursor, end))
    out = []
    for a, b in spans:
        first = _NON_SPACE.search(text, a, b)
        if first is None:
            continue
        a = first.start()
        while b > a and text[b - 1].isspace():
            b -= 1
        out.append((a, b))
    return out


def truncate_to_tokens(counter: TokenCounter, text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` ending at a word end with at most ``max_tokens`` of its
    own tokens (special tokens not counted); ``""`` when not even one word fits."""
    if max_tokens <= 0:
        return ""
    if counter.count([text])[0] <= max_tokens:
        return text
    ends = [m.start() for m in _WORD.finditer(text) if m.start() > 0]
    lo, hi = 0, len(ends)
    best = ""
    while lo < hi:
        mid = (lo + hi) // 2
        candidate = text[:ends[mid]]
        if counter.count([candidate])[0] <= max_tokens:
            best, lo = candidate, mid + 1
        else:
            hi = mid
    return best


__all__ = [
    "Chunk",
    "Chunker",
    "TokenCounter",
    "counter_for_model",
    "default_chunk_tokens",
    "default_overlap",
    "truncate_to_tokens",
]
