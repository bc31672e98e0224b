"""Run Python code in a child process where some installed packages look absent, and learn who
tried to import them: the fast stand-in for a venv without torch (the slow test
``test_light_install.py`` builds a real one).

Before anything else runs, the child's path finder is made to answer "not found" for the blocked
top-level packages, exactly as it does for a package that is not installed (so ``import torch``
raises ``ModuleNotFoundError`` and ``importlib.util.find_spec("torch")`` is None); each such
question is recorded, with the asking stack, in a log file the test reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "sentence_transformers", "scipy", "sklearn")
"""What the base install must run without."""

_HOOK = '''
import importlib.machinery, traceback
_BLOCKED = set({blocked!r})
_find_spec = importlib.machinery.PathFinder.find_spec
def _absent_find_spec(cls, name, path=None, target=None):
    if name.split(".")[0] in _BLOCKED:
        with open({log!r}, "a") as fh:
            fh.write("import of " + name + "\\n" + "".join(traceback.format_stack(limit=8)))
        return None  # what the path finder says of a package that is not installed
    return _find_spec(name, path, target)
importlib.machinery.PathFinder.find_spec = classmethod(_absent_find_spec)
'''


def run_without(code: str, log: Path, blocked: tuple[str, ...] = HEAVY, env: dict[str, str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``blocked`` cannot be imported; attempted
    imports are appended to ``log``."""
    program = _HOOK.format(blocked=tuple(blocked), log=str(log)) + code
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def cli_without(args: list[str], log: Path, blocked: tuple[str, ...] = HEAVY,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``semkit ARGS`` (the console script's entry point) with ``blocked`` absent."""
    code = f"import sys\nsys.argv = ['semkit', *{list(args)!r}]\nfrom semkit.cli import main\nsys.exit(main())\n"
    return run_without(code, log, blocked, env)
