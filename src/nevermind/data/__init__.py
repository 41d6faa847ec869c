"""Real data sets read offline from the PyPI packages that carry them (SPEC §4), and the user's files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nevermind.errors import NevermindError


class MissingCarrierError(NevermindError):
    """An optional data package is not installed."""


def carrier_dir(module: str, install: str) -> Path:
    """Directory of an installed data-carrier package, found without importing it.

    Carriers are installed with --no-deps, so importing them may fail; their files are
    read by path. Raises MissingCarrierError naming `install` when the package is absent."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingCarrierError(f"data package {module!r} is not installed: run `{install}`")
    return Path(list(spec.submodule_search_locations)[0])
