"""Every ``SEMKIT_*`` variable the code reads is documented in docs/configuration.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\bSEMKIT_[A-Z0-9_]*[A-Z0-9]\b")


def variables_in_source() -> set[str]:
    found: set[str] = set()
    # setup.py too: the wheel build reads SEMKIT_BUNDLED_MODEL_DIR
    for path in [*(ROOT / "src" / "semkit").rglob("*.py"), ROOT / "setup.py"]:
        found |= set(VARIABLE.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_semkit_variable_in_the_code_is_documented() -> None:
    in_code = variables_in_source()
    # The grep must find the variables we know are read, or it would pass on nothing.
    assert {"SEMKIT_DB", "SEMKIT_CACHE_DIR", "SEMKIT_HOST", "SEMKIT_PORT", "SEMKIT_KEYS"} <= in_code
    documented = set(VARIABLE.findall((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")))
    missing = sorted(in_code - documented)
    assert not missing, f"read in src/ or setup.py but not listed in docs/configuration.md: {', '.join(missing)}"
    stale = sorted(documented - in_code)
    assert not stale, f"listed in docs/configuration.md but read nowhere in src/ or setup.py: {', '.join(stale)}"
