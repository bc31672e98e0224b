"""``clip:`` provider: one CLIP model embeds texts and images into the same normalised space.

Inputs: a ``str`` is always TEXT. An image is a ``pathlib.Path``, raw ``bytes`` (an encoded
file) or a ``PIL.Image.Image`` (``models.images``). A batch may mix both; vectors come back in
input order. ``embed_images`` is the image-only entry point of the ``ImageEmbedder`` protocol;
with ``errors="skip"`` it returns the vectors of every readable image plus a report of the
unreadable ones.

Nothing is downloaded: the model is a local folder (a Hugging Face ``CLIPModel`` folder or
sentence-transformers' ``clip-ViT-B-32`` layout), named in the spec or by ``SEMKIT_CLIP_MODEL``.
torch, transformers and PIL are imported only when a model is loaded. The provider's
descriptor (``CLIP``) is at the end of this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput, MissingDependency, ModelNotAvailable, SemkitError
from ..types import Kind, Matrix
from .base import (
    BaseEmbedder,
    EmbeddingResult,
    ImageErrors,
    ModelDescription,
    Provider,
    check_kind,
    empty_matrix,
)
from .catalog import ModelInfo
from .images import ImageBatch, ImageFailure, UnreadableImage, image_source, is_image_item, load_image
from .locate import find_in_hf_cache

ENV_VAR = "SEMKIT_CLIP_MODEL"

HOW_TO_GET = (
    "No CLIP weights ship with semkit and nothing is downloaded at run time. On a machine with "
    "internet run `huggingface-cli download openai/clip-vit-base-patch32 --local-dir "
    "./models/clip` (or save sentence-transformers' 'clip-ViT-B-32'), copy the folder here, then "
    f"`export {ENV_VAR}=./models/clip` or use semkit.model('clip:/path/to/folder')."
)


def find_clip_dir(root: Path) -> Path | None:
    """The folder holding a CLIP ``config.json``: ``root`` itself or one level below
    (sentence-transformers keeps it in ``0_CLIPModel/``)."""
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    for folder in candidates:
        cfg = folder / "config.json"
        if not cfg.is_file():
            continue
        try:
            data = json.loads(cfg.read_text())
        except (OSError, ValueError):
            continue
        if data.get("model_type") == "clip":
            return folder
    return None


def resolve_folder(name: str) -> Path:
    raw = name.strip() or os.environ.get(ENV_VAR, "").strip()
    if not raw:
        raise ModelNotAvailable(f"no CLIP model given and {ENV_VAR} is not set. {HOW_TO_GET}")
    path = Path(raw).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    if not path.is_dir() and env and Path(env).expanduser().resolve().name == raw:
        # A collection records 'clip:<folder name>'; reopening it finds the folder through the
        # environment, wherever the model lives on this machine.
        path = Path(env).expanduser()
    if not path.is_dir():
        cached = find_in_hf_cache(raw) if "/" in raw and not path.is_absolute() else None
        if cached is None:
            raise ModelNotAvailable(
                f"CLIP model folder {raw!r} does not exist (a collection's recorded 'clip:NAME' is "
                f"found through {ENV_VAR} pointing to a folder called NAME). {HOW_TO_GET}")
        path = cached
    clip_dir = find_clip_dir(path)
    if clip_dir is None:
        raise ModelNotAvailable(
            f"{path} holds no CLIP model (no config.json with model_type 'clip' in it or in a "
            f"subfolder). {HOW_TO_GET}"
        )
    return clip_dir


class ClipEmbedder(BaseEmbedder):
    modalities = frozenset({"text", "image"})
    normalized = True

    def __init__(self, folder: Path, *, name: str, digest: str | None, batch_size: int = 32) -> None:
        super().__init__()
        try:
            import torch
            from transformers import CLIPModel, CLIPProcessor
        except ImportError as exc:
            raise MissingDependency(exc.name or "transformers", "clip", "clip: embeddings") from exc
        try:
            import PIL  # noqa: F401
        except ImportError as exc:
            raise MissingDependency("pillow", "clip", "clip: embeddings") from exc
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, got {batch_size}")
        self._torch = torch
        self.folder = folder
        try:
            self.model = CLIPModel.from_pretrained(str(folder)).eval()
            self.processor = CLIPProcessor.from_pretrained(str(folder))
        except (OSError, ValueError) as exc:
            raise ModelNotAvailable(f"cannot load the CLIP model in {folder}: {exc}. {HOW_TO_GET}") from exc
        self.dimensions = int(self.model.config.projection_dim)
        self.max_tokens = int(self.model.config.text_config.max_position_embeddings)
        self.batch_size = batch_size
        self.id = f"clip:{name}@{self.dimensions}"
        self._fingerprint = self.id + "|torch|fp32" + (f"|sha={digest[:12]}" if digest else "")

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    # -- public -----------------------------------------------------------------------------

    def embed_result(self, items: Sequence[Any], kind: Kind = "document") -> EmbeddingResult:
        """Texts (``str``) and images (``Path``/``bytes``/PIL) in one batch, in input order.
        CLIP has no query/document asymmetry: ``kind`` is checked and otherwise ignored."""
        check_kind(kind)
        if isinstance(items, (str, bytes)) or is_image_item(items):
            items = [items]
        if not isinstance(items, Sequence) or not items:
            raise InvalidInput("nothing to embed: pass a list of texts and/or images")
        text_at = [i for i, it in enumerate(items) if isinstance(it, str)]
        image_at = [i for i, it in enumerate(items) if not isinstance(it, str)]
        for i in text_at:
            if not items[i].strip():
                raise InvalidInput(f"item {i} is an empty or blank string; drop it before embedding")
        out = np.empty((len(items), self.dimensions), dtype=np.float32)
        tokens = truncated = 0
        if image_at:
            batch = self.embed_images([items[i] for i in image_at], errors="raise", _positions=image_at)
            out[image_at] = batch.vectors
        if text_at:
            vecs, tokens, truncated = self._texts([items[i] for i in text_at])
            out[text_at] = vecs
        return EmbeddingResult(vectors=out, tokens=tokens, truncated=truncated)

    def embed_images(self, items: Sequence[Any], *, errors: ImageErrors = "raise",
                     _positions: Sequence[int] | None = None) -> ImageBatch:
        """Embed images. Every item is decoded first; with ``errors="raise"`` any failure raises
        ``UnreadableImage`` listing all of them (nothing is embedded), with ``errors="skip"`` the
        readable ones are embedded and the failures are returned beside them."""
        if errors not in ("raise", "skip"):
            raise InvalidInput(f"errors must be 'raise' or 'skip', got {errors!r}")
        if isinstance(items, (bytes, Path)) or is_image_item(items):
            items = [items]
        positions = list(_positions) if _positions is not None else list(range(len(items)))
        images: list[Any] = []
        indices: list[int] = []
        failures: list[ImageFailure] = []
        for pos, item in zip(positions, items, strict=True):
            if isinstance(item, str):
                failures.append(ImageFailure(pos, repr(item[:60]), "a str is text; pass image paths "
                                             "as pathlib.Path"))
                continue
            try:
                images.append(load_image(item))
            except (OSError, ValueError, SyntaxError) as exc:
                failures.append(ImageFailure(pos, image_source(item), str(exc) or type(exc).__name__))
                continue
            indices.append(pos)
        if failures and errors == "raise":
            raise UnreadableImage(failures)
        vectors = self._images(images) if images else empty_matrix(self.dimensions)
        return ImageBatch(vectors=vectors, indices=indices, failures=failures)

    def embed_texts(self, texts: Sequence[str]) -> Matrix:
        return self.embed(list(texts))

    # -- model calls ----------------------------------------------------------------------------

    def _features(self, out: Any) -> Any:
        # transformers 5 returns a model output whose pooler_output is the projected embedding;
        # 4.x returned the tensor itself.
        tensor = out if isinstance(out, self._torch.Tensor) else out.pooler_output
        return self._torch.nn.functional.normalize(tensor.float(), dim=-1)

    def _images(self, images: list[Any]) -> Matrix:
        torch = self._torch
        parts = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                pixels = self.processor(images=chunk, return_tensors="pt")["pixel_values"]
                parts.append(self._features(self.model.get_image_features(pixel_values=pixels)).numpy())
                self.meter.add(items=len(chunk), requests=1)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def _texts(self, texts: list[str]) -> tuple[Matrix, int, int]:
        torch = self._torch
        tok = self.processor.tokenizer
        parts = []
        tokens = truncated = 0
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start:start + self.batch_size]
                full = tok(chunk)["input_ids"]
                truncated += sum(len(ids) > self.max_tokens for ids in full)
                enc = tok(chunk, padding=True, truncation=True, max_length=self.max_tokens,
                          return_tensors="pt")
                tokens += int(enc["attention_mask"].sum())
                feats = self.model.get_text_features(input_ids=enc["input_ids"],
                                                     attention_mask=enc["attention_mask"])
                parts.append(self._features(feats).numpy())
        self.meter.add(items=len(texts), tokens=tokens, requests=1)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32), tokens, truncated


def load_clip(name: str = "", *, batch_size: int = 32, dimensions: int | None = None) -> ClipEmbedder:
    """``clip:/path`` (or ``clip`` with ``SEMKIT_CLIP_MODEL``) to a loaded ``ClipEmbedder``.
    ``dimensions`` (passed when a collection reopens its model) must match the model's."""
    clip_dir = resolve_folder(name)
    raw = name.strip() or os.environ.get(ENV_VAR, "").strip()
    root = Path(raw).expanduser()
    if not root.is_dir() and "/" not in raw:
        root = Path(os.environ.get(ENV_VAR, "")).expanduser()
    # The folder the user named (not 0_CLIPModel/ or an HF snapshot hash) names the space.
    label = root.resolve().name if root.is_dir() else raw.rstrip("/").rsplit("/", 1)[-1]
    model = ClipEmbedder(clip_dir, name=label, digest=_digest(clip_dir), batch_size=batch_size)
    if dimensions is not None and dimensions != model.dimensions:
        raise InvalidInput(f"{model.id} makes {model.dimensions}-dimensional vectors; CLIP cannot "
                           f"truncate them to {dimensions}")
    return model


def _digest(folder: Path) -> str | None:
    from .onnx_export import ExportFailed, content_digest

    try:
        return content_digest(folder)
    except (ExportFailed, OSError):
        return None


def describe(name: str) -> ModelDescription:
    """``clip:NAME`` without loading it: its folder (which carries the ``tokenizer.json`` that
    keeps chunks within CLIP's 77 tokens) and, from its config, its size and context."""
    try:
        folder: Path | None = resolve_folder(name)
    except SemkitError:
        folder = None
    dimensions = max_tokens = 0
    if folder is not None:
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            dimensions = int(config.get("projection_dim") or 0)
            max_tokens = int((config.get("text_config") or {}).get("max_position_embeddings") or 0)
        except (OSError, ValueError, TypeError, AttributeError):
            pass
    info = ModelInfo(name=name, provider="clip", dimensions=dimensions, max_tokens=max_tokens, local=True)
    return ModelDescription(info, folder)


CLIP = Provider(
    scheme="clip",
    factory=load_clip,
    variables=(ENV_VAR,),
    tokenizer="hf",
    default_name="",  # a bare 'clip' is the folder SEMKIT_CLIP_MODEL names
    describe=describe,
)
