"""API key parsing and verification (the key file on disk, no server)."""

from __future__ import annotations

from pathlib import Path

from semkit.server.auth import KeyStore, split_key


def test_split_key_keeps_dashes_inside_the_secret() -> None:
    assert split_key("sk-semkit-0a1b2c-abc-def-") == ("0a1b2c", "abc-def-")
    assert split_key("sk-semkit-0a1b2c-") is None
    assert split_key("sk-semkit-0a1b2c") is None
    assert split_key("sk-other-0a1b2c-secret") is None


def test_only_the_exact_key_verifies(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, record = store.create()
    key_id, secret = split_key(key) or ("", "")
    assert key_id == record.id and secret not in (tmp_path / "keys.json").read_text()
    assert store.verify(key) == record
    assert store.verify(key[:-1]) is None
    assert store.verify(f"sk-semkit-{key_id}-{secret}-") is None
    store.revoke(record.id)
    assert store.verify(key) is None
