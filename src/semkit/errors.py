"""The one exception tree of semkit.

Every failure a user can act on is a ``SemkitError``; foreign exceptions (HTTP, SQLite,
psycopg, onnxruntime) are translated at the boundary where they happen. Each error says what
to do next, and ``retryable`` tells callers whether trying again can help.
"""

from __future__ import annotations


class SemkitError(Exception):
    """Base of every error semkit raises on purpose."""

    retryable: bool = False


class ConfigError(SemkitError):
    """A setting, argument or environment variable has an unusable value."""


class InvalidInput(SemkitError, ValueError):
    """Input texts, vectors or options are malformed (empty, wrong type, too large...)."""


class TableNotAttached(ConfigError):
    """A PostgreSQL table of that name exists but is not a semkit collection: attach it
    (``Database.attach``) or choose another name, rather than get an empty collection beside it."""


class CannotAttach(InvalidInput):
    """A table cannot be served as a collection (no such column, no vector column, no unique
    id...); the message says what to change."""


class ClusterLost(SemkitError):
    """The Ray engine lost the workers it needed (nodes died or left) and could not finish: the
    message names the lost nodes. Everything written before stays; add nodes (or fix them) and
    run the same command again, finished files are skipped."""


class MissingDependency(SemkitError, ImportError):
    """A package this feature needs is not installed: the message names the extra (or, with
    ``extra=""``, the base-install package) to install."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the Python package '{package}', which is not installed. "
            + (f"Install it with: pip install 'semkit[{extra}]'" if extra
               else f"It is part of semkit's base install: pip install {package}")
        )
        self.package = package
        self.extra = extra


class ModelNotAvailable(SemkitError):
    """The requested model is unknown or has no local copy (nothing is downloaded)."""


class DimensionMismatch(SemkitError, ValueError):
    """Vectors do not have the dimensions the model or collection expects."""

    def __init__(self, expected: int, got: int, where: str = "") -> None:
        place = f" for {where}" if where else ""
        super().__init__(
            f"expected vectors of {expected} dimensions{place}, got {got}. "
            "Embed with the collection's model, or create a new collection for these vectors."
        )
        self.expected = expected
        self.got = got


class ModelMismatch(SemkitError):
    """A collection was opened or written with a different embedder than it records."""


class InvalidFilter(SemkitError, ValueError):
    """A metadata filter is malformed; the message names the offending part."""


class StoreError(SemkitError):
    """A vector store failed (I/O, database, corrupt files)."""


class StoreLocked(StoreError):
    """Another process holds the store's write lock and did not release it in time."""

    retryable = True


class CollectionNotFound(StoreError, KeyError):
    """No collection of that name exists."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class CollectionExists(StoreError):
    """A collection of that name exists already (another process may have just created it)."""


class StoreCorrupt(StoreError):
    """A store's files are damaged beyond what semkit repairs by itself; the message says what
    to do (restore a backup, or export what is readable)."""


class ProviderError(SemkitError):
    """A remote embedding provider failed."""

    def __init__(self, message: str, *, status: int | None = None, provider: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.provider = provider


class RateLimited(ProviderError):
    """The provider asked us to slow down (HTTP 429)."""

    retryable = True

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = 429,
        provider: str = "",
    ) -> None:
        super().__init__(message, status=status, provider=provider)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """A transient provider failure: 5xx, timeout, dropped connection, malformed reply."""

    retryable = True


class AuthError(ProviderError):
    """The provider rejected the credentials (HTTP 401/403)."""


class BadRequest(ProviderError):
    """The provider rejected the request itself (HTTP 400/404/413/422); retrying cannot help."""


__all__ = [
    "AuthError",
    "BadRequest",
    "CannotAttach",
    "ClusterLost",
    "CollectionExists",
    "CollectionNotFound",
    "ConfigError",
    "DimensionMismatch",
    "InvalidFilter",
    "InvalidInput",
    "MissingDependency",
    "ModelMismatch",
    "ModelNotAvailable",
    "ProviderError",
    "ProviderUnavailable",
    "RateLimited",
    "SemkitError",
    "StoreCorrupt",
    "StoreError",
    "StoreLocked",
    "TableNotAttached",
]
