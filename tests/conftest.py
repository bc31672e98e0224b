"""Shared fixtures. Services (PostgreSQL, HTTP servers) are real and started here."""

from __future__ import annotations

import os

# Nothing is fetched at run time: a test that tries to reach a model hub must fail loudly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["tests.support.fixtures"]
