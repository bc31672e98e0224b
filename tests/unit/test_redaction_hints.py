"""Hints that show where a key goes keep their placeholder; real credentials never survive."""

from __future__ import annotations

import pytest

from semkit.redaction import redact


@pytest.mark.parametrize("hint", [
    "missing API key: send 'Authorization: Bearer <key>' (create one with `semkit keys create`)",
    "send 'Authorization: Bearer YOUR_API_KEY' (create one with `semkit keys create`)",
    "curl -H 'Authorization: Bearer $SEMKIT_KEY' http://localhost:8000/v1/models",
    "Authorization: Bearer your-api-key (create one with `semkit keys create`)",
])
def test_placeholders_in_hints_are_kept(hint: str) -> None:
    assert redact(hint) == hint


@pytest.mark.parametrize("secret", [
    "AbCdEf0123456789", "abcdefghijklmnopqrstuvwx", "ABCDEFGHIJKLMNOPQRST", "abc-defghij-klm1",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "sk-semkit-0a1b2c3d4e5f-Zm9vYmFyYmF6cXV4",
])
def test_credentials_after_bearer_are_hidden(secret: str) -> None:
    out = redact(f"request failed: Authorization: Bearer {secret} (create one with `semkit keys create`)")
    assert secret not in out and "(create one with `semkit keys create`)" in out
