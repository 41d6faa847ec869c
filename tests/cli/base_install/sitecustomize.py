"""Makes the optional extras look uninstalled, as on a base install (`pip install -e .[dev]`).

Put this folder first on PYTHONPATH: Python imports `sitecustomize` at start-up, and every import
finder is wrapped so that a blocked top-level package (and its submodules) is not found, exactly
as when it is absent: `import fastapi` raises ModuleNotFoundError and importlib.util.find_spec
returns None. The list comes from $NEVERMIND_BLOCK (comma-separated)."""

import os
import sys

BLOCKED = frozenset(filter(None, os.environ.get("NEVERMIND_BLOCK", "").split(",")))


class _Hidden:
    """One import finder that no longer finds the blocked packages."""

    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            return None
        find = getattr(self.inner, "find_spec", None)
        return find(name, path, target) if find else None

    def __getattr__(self, attribute):
        return getattr(self.inner, attribute)


if BLOCKED:
    sys.meta_path[:] = [_Hidden(finder) for finder in sys.meta_path]
