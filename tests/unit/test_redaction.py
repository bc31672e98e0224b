"""Secrets never printed: URIs and messages through one redaction helper."""

from __future__ import annotations

import pytest

from semkit.redaction import redact, redact_uri


@pytest.mark.parametrize(("uri", "shown"), [
    ("postgresql://me:s3cret@db.example:5432/kb", "postgresql://me:***@db.example:5432/kb"),
    ("postgresql://me:p%40ss@localhost/kb?sslmode=require", "postgresql://me:***@localhost/kb?sslmode=require"),
    ("postgresql://:onlypass@[::1]:5433/kb", "postgresql://:***@[::1]:5433/kb"),
    ("postgresql://me@localhost/kb", "postgresql://me@localhost/kb"),
    ("postgresql://localhost/kb?password=hunter22&user=me", "postgresql://localhost/kb?password=***&user=me"),
    ("host=localhost user=me password='a b c' dbname=kb", "host=localhost user=me password=*** dbname=kb"),
    ("qdrant+https://cluster.example:6333?api_key=abcdef123", "qdrant+https://cluster.example:6333?api_key=***"),
    ("./kb", "./kb"),
    ("/data/my:folder/kb", "/data/my:folder/kb"),
    ("memory://", "memory://"),
])
def test_uris_lose_their_passwords_and_keep_everything_else(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown
    assert "s3cret" not in redact_uri(uri) and "hunter22" not in redact_uri(uri)


def test_messages_lose_keys_but_keep_hints() -> None:
    text = ("connect to postgresql://u:pw123456@h/db failed; key sk-abcdefghijklmnop was refused; "
            "header Authorization: Bearer AbCdEf0123456789")
    out = redact(text)
    assert "pw123456" not in out and "abcdefghijklmnop" not in out and "AbCdEf0123456789" not in out
    assert "postgresql://u:***@h/db" in out and "sk-***" in out and "Bearer ***" in out
    hint = "send the key as 'Authorization: Bearer <key>' (create one with: semkit keys create)"
    assert redact(hint) == hint


def test_a_database_repr_hides_its_password() -> None:
    from semkit.database import Database
    from semkit.store.memory import MemoryStore

    db = Database(MemoryStore(), uri="postgresql://me:s3cret@db.example/kb")
    assert "s3cret" not in repr(db) and "me:***@db.example" in repr(db)
