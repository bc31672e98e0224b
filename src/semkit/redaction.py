"""Secrets never printed: the one place that knows what a secret looks like in a URI or a message.

Every door (CLI tables and prompts, the server's start-up line and error bodies, ``repr`` of a
database) shows a database URI through ``redact_uri`` and an error text through ``redact``.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

MASK = "***"

# What documentation writes where a key goes: upper-case words joined by '_' (YOUR_API_KEY) or
# lower-case words joined by '-'/'_' (your-api-key), as the whole token. ('<key>' and '$VAR' are
# never matched as a credential: '<' and '$' are not token characters.) Case-sensitive on purpose:
# a random secret is almost never one of these shapes.
_PLACEHOLDER = r"(?-i:[A-Z]+(?:_[A-Z]+)+|[a-z]+(?:[-_][a-z]+)+)(?![A-Za-z0-9._~+/=-])"

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user:password@ in any URI-shaped text (postgresql://, qdrant+https://...)
    (re.compile(r"(://[^:/@\s]*:)[^@\s]+@"), r"\1" + MASK + "@"),
    # libpq keyword DSNs and query strings: password=..., api_key=..., apikey=...
    (re.compile(r"\b((?:password|passwd|api[_-]?key|apikey|token)\s*=\s*)('[^']*'|[^\s&;]+)", re.IGNORECASE),
     r"\1" + MASK),
    # OpenAI-style keys
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), "sk-" + MASK),
    # Authorization headers; only the credential after the scheme is hidden, and a placeholder
    # in a hint ("Bearer <key>", "Bearer YOUR_API_KEY", "Bearer your-api-key") is no credential.
    (re.compile(r"\b(Bearer\s+)(?!" + _PLACEHOLDER + r")[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), r"\1" + MASK),
)


def redact(text: str) -> str:
    """``text`` with passwords, API keys and bearer tokens replaced by ``***``."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_uri(uri: object) -> str:
    """A database URI safe to print: ``postgresql://me:secret@db/x`` → ``postgresql://me:***@db/x``;
    folder paths and ``memory://`` are returned unchanged."""
    text = str(uri)
    try:
        parts = urlsplit(text)
    except ValueError:
        return redact(text)
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal keeps its brackets
            host = f"[{host}]"
        port = f":{parts.port}" if _has_valid_port(parts) else ""
        user = parts.username or ""
        text = SplitResult(parts.scheme, f"{user}:{MASK}@{host}{port}", parts.path, parts.query,
                           parts.fragment).geturl()
    return redact(text)


def _has_valid_port(parts: SplitResult) -> bool:
    try:
        return parts.port is not None
    except ValueError:
        return False
