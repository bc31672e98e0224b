"""Images as embedder inputs: which files are images, decoding them, and what embedding a batch
of them returns. Any model that embeds images (``"image" in modalities``) takes these inputs;
nothing here imports torch, and PIL loads only when an image is decoded.

An image is a ``pathlib.Path``, raw ``bytes`` (an encoded file) or a ``PIL.Image.Image``; a
``str`` is always text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..types import Matrix

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})


@dataclass(frozen=True)
class ImageFailure:
    index: int
    source: str
    """The path, or a short description of bytes / an in-memory image."""
    reason: str


@dataclass(frozen=True)
class ImageBatch:
    """Vectors of the readable images (``indices`` says which inputs), and the failures."""

    vectors: Matrix
    indices: list[int]
    failures: list[ImageFailure] = field(default_factory=list)


class UnreadableImage(InvalidInput):
    """One or more images in a batch could not be decoded; ``failures`` lists every one."""

    def __init__(self, failures: list[ImageFailure]) -> None:
        shown = "; ".join(f"item {f.index} ({f.source}): {f.reason}" for f in failures[:10])
        more = f"; and {len(failures) - 10} more" if len(failures) > 10 else ""
        super().__init__(
            f"{len(failures)} image(s) could not be read: {shown}{more}. Fix or drop them, or "
            "call embed_images(items, errors='skip') to embed the readable ones and get this "
            "list back"
        )
        self.failures = failures


def is_image_item(item: Any) -> bool:
    if isinstance(item, (Path, bytes, bytearray, memoryview)):
        return True
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(item, Image.Image)


def image_source(item: Any) -> str:
    """How a failure names an image: its path, or a short description of bytes / a PIL image."""
    if isinstance(item, Path):
        return str(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"{len(item)} bytes"
    return type(item).__name__


def load_image(item: Any) -> Any:
    """An RGB ``PIL.Image`` fully decoded (so a truncated file fails here, not in the model).

    Raises ``OSError``/``ValueError`` with the reason when the item is not a readable image.
    """
    from PIL import Image, ImageOps

    if isinstance(item, Image.Image):
        img = item
    else:
        if isinstance(item, Path):
            if not item.is_file():
                raise OSError("no such file")
            source: Any = item
        elif isinstance(item, (bytes, bytearray, memoryview)):
            source = io.BytesIO(bytes(item))
        else:
            raise ValueError(f"a {type(item).__name__} is not an image")
        try:
            img = Image.open(source)
            img.load()
        except Image.DecompressionBombError as exc:
            raise ValueError(f"image too large: {exc}") from exc
        except Image.UnidentifiedImageError as exc:
            raise ValueError("not an image file (or a format PIL cannot read)") from exc
        # Phone photos store rotation in EXIF; the model should see what a person sees.
        img = ImageOps.exif_transpose(img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def image_metadata(path: Path) -> dict[str, Any]:
    """What a collection row keeps for an image: its path and size, without decoding pixels."""
    from PIL import Image

    with Image.open(path) as img:
        width, height = img.size
        fmt = img.format
    return {"path": str(path), "width": width, "height": height, "format": fmt}
