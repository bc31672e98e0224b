"""Tokenisation for local models with the ``tokenizers`` library alone (no torch, no transformers).

Two traps this module exists to avoid:

- A model's ``tokenizer.json`` may carry its own padding and truncation settings (the bundled
  all-MiniLM-L6-v2 pads and truncates every input to 128 tokens). sentence-transformers
  overrides them with the model's ``max_seq_length`` (256 for MiniLM), so we do the same: exact
  truncation at ``max_tokens`` and no fixed-length padding. Padding happens per batch, to the
  longest row, after the caller has sorted rows by length.
- A huge input (a 1 MB document) must not cost a tokenizer pass over all of it: only a prefix
  long enough to fill the context is tokenised, and the result is proven identical to what the
  whole text would give (see ``_tokenize_long``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# A token covers at most a few dozen characters in real text; a prefix of this many characters
# per token of context almost always overflows the context, so long inputs are cut to it first.
CHARS_PER_TOKEN_BOUND = 32


@dataclass(frozen=True)
class Tokenized:
    """Token ids of a batch of texts, unpadded, in input order."""

    ids: list[list[int]]
    type_ids: list[list[int]]
    lengths: np.ndarray
    """Real tokens per text (special tokens included, padding never)."""
    truncated: np.ndarray
    """True where the text was longer than the context and was cut."""


class LocalTokenizer:
    """A model's fast tokenizer, set up as sentence-transformers would use it."""

    def __init__(self, tokenizer: Any, max_tokens: int, *, lowercase: bool = False) -> None:
        self._tok = tokenizer
        self.max_tokens = max_tokens
        self.lowercase = lowercase
        self.pad_id = _pad_id(tokenizer)
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_tokens)
        self._char_cap = max_tokens * CHARS_PER_TOKEN_BOUND

    @classmethod
    def from_folder(cls, folder: Path, max_tokens: int, *, lowercase: bool = False) -> LocalTokenizer:
        """Load ``tokenizer.json`` from ``folder``; folders that only have the slow tokenizer's
        files (``vocab.txt``...) are converted through transformers, which is slower to import."""
        path = folder / "tokenizer.json"
        if path.is_file():
            from tokenizers import Tokenizer

            return cls(Tokenizer.from_file(str(path)), max_tokens, lowercase=lowercase)
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
        if not getattr(hf, "is_fast", False):
            raise ValueError(f"{folder} has no tokenizer.json and no fast tokenizer could be built")
        return cls(hf.backend_tokenizer, max_tokens, lowercase=lowercase)

    def tokenize(self, texts: Sequence[str]) -> Tokenized:
        texts = [t.lower() for t in texts] if self.lowercase else list(texts)
        long_rows = [i for i, t in enumerate(texts) if len(t) > self._char_cap]
        encodings = self._tok.encode_batch([t[: self._char_cap] for t in texts])
        truncated = np.fromiter((bool(e.overflowing) for e in encodings), dtype=bool, count=len(texts))
        for i in long_rows:
            encodings[i], truncated[i] = self._tokenize_long(texts[i], encodings[i])
        ids = [e.ids for e in encodings]
        return Tokenized(
            ids=ids,
            type_ids=[e.type_ids for e in encodings],
            lengths=np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids)),
            truncated=truncated,
        )

    def _tokenize_long(self, text: str, head: Any) -> tuple[Any, bool]:
        """``head`` is the encoding of the text's first ``_char_cap`` characters. It equals the
        whole text's encoding when the prefix overflowed the context and every kept token ends
        before the last whitespace of the prefix: the word cut in half at the end of the prefix
        then lies wholly in the dropped part. Otherwise (no whitespace, e.g. unsegmented
        scripts; or a text of very long tokens) the whole text is tokenised."""
        if head.overflowing:
            cut = text[: self._char_cap]
            # ASCII whitespace only: a subset of what pre-tokenizers split at, so still safe.
            last_space = max(cut.rfind(c) for c in " \n\t\r")
            kept_end = max((end for _, end in head.offsets), default=0)
            if 0 <= kept_end <= last_space:
                return head, True
        full = self._tok.encode(text)
        return full, bool(full.overflowing)

    def pad(self, tokens: Tokenized, rows: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Model inputs for ``rows`` of ``tokens``, padded to the longest of them."""
        width = int(tokens.lengths[rows].max())
        n = len(rows)
        input_ids = np.full((n, width), self.pad_id, dtype=np.int64)
        type_ids = np.zeros((n, width), dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        for r, i in enumerate(rows):
            length = int(tokens.lengths[i])
            input_ids[r, :length] = tokens.ids[i]
            type_ids[r, :length] = tokens.type_ids[i]
            mask[r, :length] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": type_ids}


def _pad_id(tokenizer: Any) -> int:
    padding = tokenizer.padding
    if padding and padding.get("pad_id") is not None:
        return int(padding["pad_id"])
    for token in ("[PAD]", "<pad>", "<|padding|>", "<|endoftext|>"):
        pid = tokenizer.token_to_id(token)
        if pid is not None:
            return int(pid)
    # Padded positions are masked out of attention and pooling, so any id is correct here.
    return 0
