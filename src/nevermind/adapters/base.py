"""Adapters: decode-time interventions with a name and a typed config, built from a spec string
(`NAME` or `NAME:key=value,key=value`) and applied by `generate_with_adapters`.

Two kinds: a logits processor (`processor(input_ids, scores) -> scores`, optional
`start_batch(prompt_length)`), passed to the model's own `generate`; and a decoding adapter
(has `generate_with(model, requests, config, processors, ...)`), which runs its own loop —
thought inhibition drafts, judges and rolls back, so it cannot be a plain logits processor."""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, get_args, get_origin, runtime_checkable

from pydantic import BaseModel, ValidationError

from nevermind.errors import NevermindError
from nevermind.models.requests import GenerateRequest, Generation, GenerationConfig

ENTRY_POINT_GROUP = "nevermind.adapters"
"""Packages may register adapters under this entry-point group (value: a module to import)."""


class AdapterConfig(BaseModel):
    """Base of every adapter's config: unknown keys are an error, values are type-checked."""

    model_config = {"extra": "forbid"}


@runtime_checkable
class DecodingAdapter(Protocol):
    """An adapter that runs its own decoding loop (logits processors are applied inside it)."""

    name: str

    def generate_with(
        self,
        model: Any,
        requests: Sequence[GenerateRequest | str],
        config: GenerationConfig,
        processors: Sequence[Any],
        *,
        batch_size: int = 16,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> list[Generation]:
        """One Generation per request, in request order."""
        ...


AdapterFactory = Callable[[Any, Any], Any]
"""`factory(model, config) -> adapter`: a logits processor or a DecodingAdapter."""


@dataclass(frozen=True)
class AdapterEntry:
    """A registered adapter: its config class and the factory that builds it for a model."""

    name: str
    config_class: type[AdapterConfig]
    factory: AdapterFactory
    summary: str


ADAPTERS: dict[str, AdapterEntry] = {}
"""Registered adapters by name."""

_BUILT: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
"""Adapters built from spec strings, per model: a runner calling once per batch reuses them
(a model moderator is loaded once, not per batch)."""


def register_adapter(name: str, config_class: type[AdapterConfig]) -> Callable[[AdapterFactory], AdapterFactory]:
    """Decorator registering `factory(model, config) -> adapter` under `name` with its config class."""

    def decorate(factory: AdapterFactory) -> AdapterFactory:
        summary = (factory.__doc__ or "").strip().splitlines()[0] if factory.__doc__ else ""
        ADAPTERS[name] = AdapterEntry(name, config_class, factory, summary)
        return factory

    return decorate


def _load_plugins() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as error:  # noqa: BLE001  (any plugin failure becomes one clear line)
            raise NevermindError(f"adapter plugin {entry.name!r} failed to load: {error}") from None


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets or quotes (so JSON values may hold commas)."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """`NAME:key=value,key=value` → (NAME, {key: value}); values stay strings until validated."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise NevermindError(f"empty adapter name in spec {spec!r}: use NAME or NAME:key=value,...")
    options: dict[str, str] = {}
    for part in _split_top_level(rest):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise NevermindError(f"bad adapter option {part!r} in {spec!r}: expected key=value")
        options[key.strip()] = value.strip()
    return name, options


def _coerce(config_class: type[AdapterConfig], options: dict[str, str]) -> dict[str, Any]:
    """Turn option strings into what pydantic validates: JSON for [..]/{..}, `a;b` for list fields."""
    values: dict[str, Any] = {}
    for key, value in options.items():
        field = config_class.model_fields.get(key)
        if value[:1] in "[{":
            try:
                values[key] = json.loads(value)
            except json.JSONDecodeError as error:
                raise NevermindError(f"option {key}={value!r} is not valid JSON: {error.msg}") from None
        elif field is not None and get_origin(field.annotation) in (list, tuple) or (
            field is not None and any(get_origin(a) in (list, tuple) for a in get_args(field.annotation))
        ):
            values[key] = [v for v in value.split(";") if v]
        else:
            values[key] = value
    return values


def adapter_config(name: str, options: dict[str, Any] | None = None) -> AdapterConfig:
    """Validate `options` against the config class of adapter `name`."""
    entry = adapter_entry(name)
    raw = _coerce(entry.config_class, {k: v for k, v in (options or {}).items() if isinstance(v, str)})
    raw.update({k: v for k, v in (options or {}).items() if not isinstance(v, str)})
    try:
        return entry.config_class.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        known = ", ".join(entry.config_class.model_fields)
        raise NevermindError(f"adapter {name!r}: {where}: {first['msg']} (options: {known})") from None


def adapter_entry(name: str) -> AdapterEntry:
    """The registered adapter `name` (built-ins and entry-point plugins)."""
    import nevermind.adapters  # noqa: F401  (registers the built-in adapters)

    if name not in ADAPTERS:
        _load_plugins()
    if name not in ADAPTERS:
        raise NevermindError(f"unknown adapter {name!r}: choose one of {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name]


def build_adapter(spec: str | Any, model: Any, **options: Any) -> Any:
    """Build an adapter for `model` from a spec string (`NAME[:key=value,...]`); extra keyword
    options override the spec's. An already-built adapter object is returned unchanged."""
    if not isinstance(spec, str):
        return spec
    name, spec_options = parse_spec(spec)
    config = adapter_config(name, {**spec_options, **options})
    return adapter_entry(name).factory(model, config)


def _cached_adapter(spec: str | Any, model: Any) -> Any:
    if not isinstance(spec, str):
        return spec
    try:
        built = _BUILT.setdefault(model, {})
    except TypeError:  # a model that cannot be weakly referenced: build every time
        return build_adapter(spec, model)
    if spec not in built:
        built[spec] = build_adapter(spec, model)
    return built[spec]


def is_decoding_adapter(adapter: Any) -> bool:
    """Whether `adapter` runs its own decoding loop rather than being a logits processor."""
    return callable(getattr(adapter, "generate_with", None))


def generate_with_adapters(
    model: Any,
    requests: Sequence[GenerateRequest | str],
    config: GenerationConfig,
    adapter_specs: Sequence[str | Any],
    *,
    batch_size: int = 16,
    on_batch: Callable[[int, int], None] | None = None,
    on_token: Callable[[int, int], bool | None] | None = None,
) -> list[Generation]:
    """Generate with the adapters named by `adapter_specs` (spec strings or built adapters).

    Logits processors go to the model's `generate`; at most one decoding adapter (inhibition)
    may be given, and it applies the processors inside its own loop. `on_token` (streaming and
    cancellation, see the model interface) works with logits processors only: a decoding adapter
    commits tokens in drafts it may roll back."""
    adapters = [_cached_adapter(spec, model) for spec in adapter_specs]
    decoders = [a for a in adapters if is_decoding_adapter(a)]
    processors = [a for a in adapters if not is_decoding_adapter(a)]
    if len(decoders) > 1:
        names = ", ".join(getattr(d, "name", type(d).__name__) for d in decoders)
        raise NevermindError(f"at most one decoding adapter per run, got {names}")
    if decoders:
        if on_token is not None:
            raise NevermindError(f"adapter {getattr(decoders[0], 'name', '?')!r} cannot stream tokens (on_token)")
        return decoders[0].generate_with(
            model, requests, config, processors, batch_size=batch_size, on_batch=on_batch
        )
    return model.generate(
        requests, config, logits_processors=processors, batch_size=batch_size, on_batch=on_batch, on_token=on_token
    )
