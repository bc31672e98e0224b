"""Which catalogue models can be used on this machine right now, without a network."""

from __future__ import annotations

import os

from .catalog import ModelInfo
from .providers import PROVIDERS


def status(info: ModelInfo) -> tuple[bool, str]:
    """(usable now, why or why not) for one catalogue entry: its provider's own check (local
    models: the pip package or the HF cache), else whether one of its key variables is set."""
    descriptor = PROVIDERS.get(info.provider)
    if descriptor is None:
        return False, f"no provider {info.provider!r} is registered"
    if descriptor.availability is not None:
        return descriptor.availability(info)
    if not descriptor.key_variables:
        return True, "no key needed"
    found = next((v for v in descriptor.key_variables if os.environ.get(v)), None)
    if found is not None:
        return True, f"{found} is set"
    if not descriptor.key_required:
        return True, "no key needed"
    return False, f"needs {' or '.join(descriptor.key_variables)}"
