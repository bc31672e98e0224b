"""Small shared types: the vocabulary every layer speaks."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

Kind = Literal["document", "query"]
"""Which side of a retrieval pair a text is on; some models embed the two differently."""

Metric = Literal["cosine", "dot", "l2"]

StorageDtype = Literal["float32", "float16", "int8", "binary"]

Matrix = npt.NDArray[np.float32]
"""A 2-D float32 array, one row per item."""

KINDS: tuple[Kind, ...] = ("document", "query")
METRICS: tuple[Metric, ...] = ("cosine", "dot", "l2")
STORAGE_DTYPES: tuple[StorageDtype, ...] = ("float32", "float16", "int8", "binary")
