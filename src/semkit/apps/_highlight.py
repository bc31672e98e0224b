"""Snippets: the part of a text that best shows why it matched, with the query's words marked.

A search hit can be a long document; the reader needs the two lines where the query's words
sit. ``snippet`` slides a window of about ``width`` characters over the text and keeps the one
holding the most *distinct* query terms (a repeated term counts a little, a new term a lot),
then widens it to word (or sentence) boundaries. Terms match after lower-casing and a light
suffix stripping (``learning`` marks ``learn``, ``websites`` marks ``website``), never inside a
word. Stop words are not highlighted. When nothing matches (a purely semantic hit) the snippet
is the beginning of the text.

Offsets in a ``Snippet`` refer to its own ``text``; whitespace runs in the source are collapsed
to single spaces first, so a snippet is always one line.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import InvalidInput

_WORD = re.compile(r"\w+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SENTENCE_END = re.compile(r"[.!?]\s")
ELLIPSIS = "…"

STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not of off on once only or other our ours ourselves out over own same she should
so some such than that the their theirs them themselves then there these they this those through
to too under until up very was we were what when where which while who whom why will with would
you your yours yourself yourselves
""".split())  # noqa: SIM905 - a word list reads better as text
"""English function words: never highlighted, and left out of keyword queries by ``search``
(they match almost every document and carry next to no BM25 weight)."""


STEMS_CACHED = 1 << 16
"""Word forms whose stems ``stem`` keeps (about 200 bytes each, so at most ~13 MB): a hybrid
search stems every word of its snippets and of its keyword candidates, query after query, and
uncached stemming was the largest Python cost left in a served search (~0.4 ms a query)."""


@lru_cache(maxsize=STEMS_CACHED)
def stem(word: str) -> str:
    """A deliberately light English suffix stripper, used only to *match* words for display:
    ``learning``/``learned``/``learns`` → ``learn``, ``websites``/``website`` → ``websit``."""
    w = word.lower()
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith(("sses", "xes", "ches", "shes", "zes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    elif w.endswith("ing") and len(w) >= 6:
        w = w[:-3]
    elif w.endswith(("ed", "ly")) and len(w) >= 5:
        w = w[:-2]
    if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "aeiouslz":
        w = w[:-1]  # "running" -> "runn" -> "run"
    if w.endswith("e") and len(w) >= 4:
        w = w[:-1]  # "make" and "making" meet at "mak"
    return w


def _printable(text: str) -> str:
    return _CONTROL.sub("", text)


def query_terms(query: str) -> list[str]:
    """The query's content words: lower-cased ``\\w+`` tokens, stop words removed, in order,
    without repeats. If every word is a stop word (``"who are you"``) they are all kept."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    content = [w for w in words if w not in STOP_WORDS]
    return content or words


@dataclass(frozen=True)
class Snippet:
    """An excerpt of a text with the query's words located in it."""

    text: str
    """The excerpt, one line, with ``…`` where it was cut from a longer text."""
    spans: tuple[tuple[int, int], ...] = ()
    """``(start, end)`` character ranges of ``text`` to highlight, in order, not overlapping."""

    def __str__(self) -> str:
        return self.text

    @property
    def matched(self) -> bool:
        return bool(self.spans)

    def marked(self, open: str = "**", close: str = "**") -> str:
        """Plain text with each highlighted word wrapped in ``open``/``close`` markers."""
        out, last = [], 0
        for start, end in self.spans:
            out += [self.text[last:start], open, self.text[start:end], close]
            last = end
        out.append(self.text[last:])
        return "".join(out)

    def html(self, tag: str = "mark") -> str:
        """HTML-escaped text with highlights in ``<mark>`` (or ``tag``) elements."""
        out, last = [], 0
        for start, end in self.spans:
            out += [html.escape(self.text[last:start]), f"<{tag}>",
                    html.escape(self.text[start:end]), f"</{tag}>"]
            last = end
        out.append(html.escape(self.text[last:]))
        return "".join(out)

    def ansi(self, style: str = "bold yellow") -> str:
        """The text for a terminal: highlights in ``style`` (``semkit.terminal`` style names,
        e.g. ``"bold yellow"``) as ANSI escape sequences. Control characters of the text are
        dropped, so a document cannot move the cursor or change colours itself."""
        from ..terminal import RESET, sgr

        on = sgr(style)
        out, last = [], 0
        for start, end in self.spans:
            out += [_printable(self.text[last:start]), on, _printable(self.text[start:end]), RESET]
            last = end
        out.append(_printable(self.text[last:]))
        return "".join(out)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "highlights": [list(s) for s in self.spans]}


def snippet(text: str | None, query: str | list[str], width: int = 200) -> Snippet:
    """The ``width``-character excerpt of ``text`` that best covers ``query``'s terms.

    ``query`` is the query string or an already computed ``query_terms`` list. A text no
    longer than ``width`` is returned whole (with its matches marked).
    """
    if width < 20:
        raise InvalidInput(f"snippet width must be at least 20 characters, got {width}")
    if not text:
        return Snippet("")
    flat = " ".join(text.split())
    terms = query_terms(query) if isinstance(query, str) else list(query)
    wanted = {stem(t) for t in terms if t not in STOP_WORDS} or {stem(t) for t in terms}
    hits = _hits(flat, wanted)
    if len(flat) <= width:
        return Snippet(flat, tuple((s, e) for s, e, _ in hits))
    if not hits:
        start, end = 0, _cut_end(flat, width)
    else:
        start, end = _best_window(flat, hits, width)
    body = flat[start:end]
    prefix = ELLIPSIS + " " if start > 0 else ""
    suffix = " " + ELLIPSIS if end < len(flat) else ""
    shift = len(prefix) - start
    spans = tuple((s + shift, e + shift) for s, e, _ in hits if s >= start and e <= end)
    return Snippet(prefix + body + suffix, spans)


def _hits(flat: str, wanted: set[str]) -> list[tuple[int, int, str]]:
    """``(start, end, stem)`` of each word of ``flat`` whose stem is in ``wanted``.

    Only words that can stem into ``wanted`` are stemmed: a stem keeps its word's first two
    lower-cased characters (``stem`` only cuts endings, never below two), so a pattern finds the
    words starting with one of the wanted stems' first two characters, case-insensitively, and
    only those are stemmed. Stemming every word of every hit was the largest Python cost of a
    served search's snippets. For a stem with a non-ASCII character (whose lower-casing can
    change length) every word is stemmed, as before."""
    if not wanted:
        return []
    ascii_only = all(w.isascii() for w in wanted)
    finder = _words_starting(frozenset(w[:2] for w in wanted)) if ascii_only else _WORD
    return [(m.start(), m.end(), key) for m in finder.finditer(flat) if (key := stem(m.group())) in wanted]


@lru_cache(maxsize=256)
def _words_starting(prefixes: frozenset[str]) -> re.Pattern[str]:
    """Whole ``\\w+`` words of a text that start with one of ``prefixes``, in any case."""
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=lambda p: (-len(p), p)))
    return re.compile(rf"(?<!\w)(?:{alternatives})\w*", re.IGNORECASE)


def _best_window(flat: str, hits: list[tuple[int, int, str]], width: int) -> tuple[int, int]:
    """Character range around the densest run of matches, widened to word boundaries."""
    best = (-1.0, 0, 0)  # (score, first hit, last hit)
    counts: Counter[str] = Counter()
    lo = 0
    for hi, (_, end, key) in enumerate(hits):
        counts[key] += 1
        while end - hits[lo][0] > width * 0.8:
            counts[hits[lo][2]] -= 1
            if not counts[hits[lo][2]]:
                del counts[hits[lo][2]]
            lo += 1
        # A new distinct term is worth far more than another occurrence of one already in.
        score = len(counts) + 0.1 * (hi - lo + 1)
        if score > best[0]:
            best = (score, lo, hi)
    _, first, last = best
    match_start, match_end = hits[first][0], hits[last][1]
    slack = max(0, width - (match_end - match_start))
    # Some context before the first match: start of its sentence if that is close, else a
    # quarter of the slack, at a word boundary.
    start = max(0, match_start - slack // 4)
    sentence = _sentence_start(flat, match_start)
    start = sentence if match_start - sentence <= slack // 2 else _word_start(flat, start)
    end = _cut_end(flat, start + width) if start + width < len(flat) else len(flat)
    return start, max(end, match_end)


def _sentence_start(flat: str, pos: int) -> int:
    last = 0
    for m in _SENTENCE_END.finditer(flat, 0, pos):
        last = m.end()
    return last


def _word_start(flat: str, pos: int) -> int:
    if pos <= 0:
        return 0
    space = flat.find(" ", pos)
    return space + 1 if 0 <= space < pos + 30 else pos


def _cut_end(flat: str, pos: int) -> int:
    """``pos`` moved back to the end of a word (never inside one)."""
    if pos >= len(flat):
        return len(flat)
    space = flat.rfind(" ", 0, pos + 1)
    return space if space > pos - 30 and space > 0 else pos


__all__ = ["ELLIPSIS", "STOP_WORDS", "Snippet", "query_terms", "snippet", "stem"]
