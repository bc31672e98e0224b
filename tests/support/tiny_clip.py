"""A tiny randomly initialised CLIP saved to a folder, for tests and benchmarks (no download).

2 layers, hidden 32, 32x32 images, a character-level BPE vocabulary written in code; it builds
in well under a second and loads through ``CLIPModel``/``CLIPProcessor.from_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path


def build_tiny_clip(folder: Path) -> Path:
    """A 2-layer, hidden-32 CLIP with random weights and a character-level BPE vocabulary."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab: dict[str, int] = {}
    for token in [*letters, *(c + "</w>" for c in letters), "<|startoftext|>", "<|endoftext|>"]:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    torch.manual_seed(0)
    end = vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 2, "num_attention_heads": 4,
                     "max_position_embeddings": 16, "bos_token_id": vocab["<|startoftext|>"],
                     "eos_token_id": end, "pad_token_id": end},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
        projection_dim=24,
    )
    CLIPModel(config).save_pretrained(folder)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                           crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(folder)
    return folder


PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
"""Real photos that ship with scikit-image: a cat, a cup of coffee, a rocket, an astronaut."""


def save_photos(folder: Path) -> dict[str, Path]:
    """The scikit-image photos as JPEG files in ``folder``, by name."""
    import skimage.data
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in PHOTOS:
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).save(path, quality=90)
        out[name] = path
    return out


def photo_collection(root: Path, photos: dict[str, Path], name: str = "photos") -> tuple[Path, Path]:
    """A tiny CLIP in ``root/tiny-clip`` and an embedded store ``root/kb`` whose collection
    ``name`` holds ``photos`` (indexed with thumbnails); returns ``(store path, CLIP folder)``.
    The collection records ``clip:tiny-clip``: set ``SEMKIT_CLIP_MODEL`` to the folder to reopen it."""
    import semkit
    from semkit.ingest.images import index_images

    clip_dir = build_tiny_clip(root / "tiny-clip")
    db_path = root / "kb"
    with semkit.connect(db_path) as db:
        clip = semkit.model(f"clip:{clip_dir}", cache=False)
        report = index_images(db.collection(name, model=clip), list(photos.values()), model=clip)
        assert len(report.indexed) == len(photos), report.failed
    return db_path, clip_dir
