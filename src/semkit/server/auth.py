"""API keys: created once, shown once, stored only as a hash.

A key looks like ``sk-semkit-<key id>-<secret>``. The key file (JSON) holds, per key, its id,
a SHA-256 of the whole key, the collections it may touch (``None`` = all), whether it is
read-only, an optional rate limit, and when it was created/revoked. SHA-256 without salt or
stretching is enough here because the secret is 32 random bytes, not a password: there is
nothing to guess. The id lets the server find the one candidate record, and the hash is then
compared in constant time (``hmac.compare_digest``).

Where the file lives (decided here, documented in ``semkit serve --help``): ``--keys PATH``
if given; otherwise ``keys.json`` inside an embedded database folder (the keys travel with
the data they guard); otherwise, for server databases (``postgresql://``),
``<cache dir>/server-keys/<hash of the URI>.json``, so no password from the URI ends up in a
file name. The file is written atomically with mode 0600; the server re-reads it when it
changes, so ``semkit keys create`` / ``revoke`` take effect without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InvalidInput

PREFIX = "sk-semkit-"
FILE_FORMAT = "semkit-keys"


@dataclass(frozen=True)
class ApiKey:
    """What the server knows about one key (never the key itself)."""

    id: str
    hash: str
    name: str = ""
    collections: tuple[str, ...] | None = None
    """Collections the key may use; ``None`` means every collection."""
    read_only: bool = False
    rate_limit: float | None = None
    """Requests per second for this key; ``None`` uses the server's default."""
    created: str = ""
    revoked: str | None = None

    def may_use(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def public(self) -> dict[str, Any]:
        """Everything but the hash: safe to print or return."""
        out = asdict(self)
        del out["hash"]
        out["collections"] = list(self.collections) if self.collections is not None else None
        return out


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key, or the owner of a ``--no-auth`` loopback server."""

    key: ApiKey | None
    client: str = ""
    """Where the request came from (used as the rate-limit bucket without keys)."""

    @property
    def id(self) -> str:
        return self.key.id if self.key is not None else f"anonymous@{self.client}"

    @property
    def read_only(self) -> bool:
        return self.key is not None and self.key.read_only

    def may_use(self, collection: str) -> bool:
        return self.key is None or self.key.may_use(collection)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def default_keys_path(db_uri: str) -> Path:
    """Where the keys of ``db_uri`` live when ``--keys`` is not given (see the module doc)."""
    from ..config import cache_dir
    from ..store.registry import find

    backend, target = find(db_uri)
    if backend.name == "embedded":  # the keys travel with the folder
        return Path(target) / "keys.json"

    digest = hashlib.sha256(db_uri.encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "server-keys" / f"{digest}.json"


@dataclass
class KeyStore:
    """The key file; thread-safe, re-read whenever it changes on disk."""

    path: Path
    _keys: dict[str, ApiKey] = field(default_factory=dict, repr=False)
    _stamp: tuple[int, int] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    # --- reading ---------------------------------------------------------------------------

    def all(self) -> list[ApiKey]:
        self._refresh()
        return sorted(self._keys.values(), key=lambda k: k.created)

    def active(self) -> list[ApiKey]:
        return [k for k in self.all() if k.revoked is None]

    def verify(self, presented: str) -> ApiKey | None:
        """The active key ``presented`` is, or ``None``. Constant time in the secret."""
        self._refresh()
        key_id = _key_id(presented)
        record = self._keys.get(key_id) if key_id else None
        # Compare against something even when the id is unknown, so timing tells nothing.
        expected = record.hash if record is not None else "0" * 64
        ok = hmac.compare_digest(hash_key(presented), expected)
        if not ok or record is None or record.revoked is not None:
            return None
        return record

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            with self._lock:
                self._keys, self._stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        with self._lock:
            self._keys = _read(self.path)
            self._stamp = stamp

    # --- writing ---------------------------------------------------------------------------

    def create(self, *, name: str = "", collections: Sequence[str] | None = None,
               read_only: bool = False, rate_limit: float | None = None) -> tuple[str, ApiKey]:
        """A new key: returns ``(the key, its record)``. The key is not stored anywhere."""
        if collections is not None:
            collections = [c.strip() for c in collections if c.strip()]
            if not collections:
                raise InvalidInput("--collections names no collection; leave it out to allow all of them")
        if rate_limit is not None and rate_limit <= 0:
            raise InvalidInput(f"rate limit must be a positive number of requests per second, got {rate_limit}")
        key_id = secrets.token_hex(6)
        key = f"{PREFIX}{key_id}-{secrets.token_urlsafe(32)}"
        record = ApiKey(
            id=key_id, hash=hash_key(key), name=name,
            collections=tuple(collections) if collections is not None else None,
            read_only=read_only, rate_limit=rate_limit, created=_now(),
        )
        with self._lock:
            keys = _read(self.path)
            keys[key_id] = record
            _write(self.path, keys)
        return key, record

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke by id (or by the full key); revoked keys stay listed, marked."""
        key_id = _key_id(key_id) or key_id
        with self._lock:
            keys = _read(self.path)
            if key_id not in keys:
                raise InvalidInput(f"no key with id {key_id!r} in {self.path}; `semkit keys list` shows the ids")
            record = keys[key_id]
            if record.revoked is None:
                record = ApiKey(**{**asdict(record), "revoked": _now()})
                keys[key_id] = record
                _write(self.path, keys)
        return record


def split_key(presented: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a presented key; the id is hex, so the first '-' ends it (the
    url-safe secret may itself hold '-')."""
    if not presented.startswith(PREFIX):
        return None
    key_id, sep, secret = presented[len(PREFIX):].partition("-")
    return (key_id, secret) if sep and key_id and secret else None


def _key_id(presented: str) -> str | None:
    parts = split_key(presented)
    return parts[0] if parts else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read(path: Path) -> dict[str, ApiKey]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc}; fix or delete it") from None
    if not isinstance(raw, dict) or raw.get("format") != FILE_FORMAT:
        raise ConfigError(f"{path} is not a semkit key file; point --keys at another path")
    out = {}
    for item in raw.get("keys", []):
        cols = item.get("collections")
        out[item["id"]] = ApiKey(**{**item, "collections": tuple(cols) if cols is not None else None})
    return out


def _write(path: Path, keys: dict[str, ApiKey]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FILE_FORMAT, "version": 1,
            "keys": [{**asdict(k), "collections": list(k.collections) if k.collections is not None else None}
                     for k in keys.values()]}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
