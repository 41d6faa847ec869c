"""Optional dependencies: which extra of `pip install 'nevermind[EXTRA]'` brings which module, and
the one function every import of an optional module goes through.

The base install (`pip install nevermind`) runs `eval` and `report`; serving, training, Ray and
the other backends need an extra. Importing one of these modules at the top of a module that
the base CLI imports would break the base install, so they are imported inside the function
that needs them, through `require`, which turns a missing module into one line naming the
install command (tests/cli/test_base_install.py enforces both)."""

from __future__ import annotations

import importlib
from types import ModuleType

from nevermind.errors import NevermindError

EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "httpx", "tenacity", "openai"),
    "train": ("trl", "peft", "datasets"),
    "ray": ("ray",),
    "llamacpp": ("llama_cpp",),
    "vllm": ("vllm",),
    "vllm-gpu": ("vllm",),  # the same import, vLLM's CUDA build
    "clients": ("lm_eval",),
}
"""Top-level modules each extra installs (import names, not distribution names)."""

OPTIONAL_MODULES: frozenset[str] = frozenset(module for modules in EXTRAS.values() for module in modules)
"""Every module the base install lacks."""


class MissingExtraError(NevermindError):
    """An optional dependency that is not installed; the message names the pip command."""


def install_command(extra: str) -> str:
    """The command that installs an extra, quoted for a POSIX shell."""
    return f"pip install 'nevermind[{extra}]'"


def require(extra: str, module: str, *, purpose: str | None = None) -> ModuleType:
    """Import `module` (e.g. "fastapi" or "datasets.utils.logging") from the extra `extra`.

    A missing package raises MissingExtraError: one line with the install command. An import that
    fails for another reason (a broken install, a missing dependency of the package itself)
    keeps its original error, which is then the useful one."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}: one of {', '.join(EXTRAS)}")
    top = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.partition(".")[0] != top:
            raise
        who = purpose or f"the {extra!r} extra"
        raise MissingExtraError(f"{who} needs {top}, which is not installed: {install_command(extra)}") from None
