"""RoPE scaling as a model option: change a model's rotary position embedding so it can read
past the context length it was trained on (static NTK alpha, dynamic NTK, linear interpolation).

The option edits the model's config before the weights load, so transformers builds the
rotary embedding itself; nothing is patched at run time. Gemma 3 keeps separate rope
parameters for its local (sliding-window) and global layers: by default only the global ones
are scaled (a sliding window never sees the long distances scaling is for); `:all` and
`:local` choose otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nevermind.errors import NevermindError

if TYPE_CHECKING:
    import torch

RopeKind = Literal["ntk", "dynamic", "linear"]
"""ntk: static NTK-aware base change; dynamic: NTK base grown with the sequence; linear: position interpolation."""
RopeLayers = Literal["auto", "all", "global", "local"]
"""Which attention layers to scale on models with per-layer rope (Gemma 3); others have one group.
auto: the global layers where the model separates them, its one group otherwise."""

KINDS: tuple[str, ...] = ("ntk", "dynamic", "linear")
"""The scaling kinds, in the order the CLI lists them."""
LAYER_GROUPS: dict[str, str] = {"global": "full_attention", "local": "sliding_attention"}
"""Friendly layer-group names → transformers' layer types."""


@dataclass(frozen=True)
class RopeScaling:
    """How to scale a model's rotary position embedding."""

    kind: RopeKind
    """ntk (static base × alpha^(d/(d−2))), dynamic (transformers' dynamic NTK) or linear."""
    alpha: float
    """Scaling factor ≥ 1; alpha 1 leaves the model unchanged for every kind."""
    layers: RopeLayers = "auto"
    """On models with per-layer rope (Gemma 3): auto (= global), all, only global or only local layers."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise NevermindError(f"unknown rope scaling {self.kind!r}: choose one of {', '.join(KINDS)}")
        if not self.alpha >= 1.0 or self.alpha != self.alpha or self.alpha == float("inf"):
            raise NevermindError(f"rope alpha must be a finite number ≥ 1, got {self.alpha}")
        if self.layers not in ("auto", "all", *LAYER_GROUPS):
            raise NevermindError(f"unknown rope layer group {self.layers!r}: choose auto, all, global or local")

    @classmethod
    def parse(cls, spec: str) -> RopeScaling:
        """Parse "KIND:ALPHA[:LAYERS]", e.g. "ntk:4", "dynamic:2", "linear:4:all"."""
        parts = spec.strip().split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise NevermindError(
                f"bad rope option {spec!r}: write KIND:ALPHA[:LAYERS], e.g. ntk:4, dynamic:2 or linear:4:all"
            )
        try:
            alpha = float(parts[1])
        except ValueError:
            raise NevermindError(f"bad rope option {spec!r}: alpha {parts[1]!r} is not a number") from None
        return cls(parts[0], alpha, parts[2] if len(parts) == 3 else "auto")  # type: ignore[arg-type]

    @property
    def is_identity(self) -> bool:
        """Whether this scaling leaves the model as it was trained (alpha 1)."""
        return self.alpha == 1.0

    def __str__(self) -> str:
        alpha = f"{self.alpha:g}"
        return f"{self.kind}:{alpha}" + ("" if self.layers == "auto" else f":{self.layers}")


def ntk_base(base: float, alpha: float, dim: int) -> float:
    """Static NTK-aware rope base: base × alpha^(d/(d−2)), d the rotary dimension."""
    return base * alpha ** (dim / (dim - 2))


def head_dim(config: Any) -> int:
    """The rotary dimension of a config (head_dim, else hidden_size / heads), partial rotary included."""
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    factor = 1.0
    for params in _rope_groups(config).values():
        factor = params.get("partial_rotary_factor", 1.0)
    return int(dim * factor)


def _rope_groups(config: Any) -> dict[str, dict[str, Any]]:
    """The config's rope parameter dicts by layer type ("" for models with one shared dict)."""
    params = getattr(config, "rope_parameters", None)
    if not isinstance(params, dict) or not params:
        raise NevermindError(f"model type {getattr(config, 'model_type', '?')!r} has no rope parameters to scale")
    nested = {k: v for k, v in params.items() if isinstance(v, dict)}
    return nested if nested else {"": params}


def trained_positions(config: Any) -> int:
    """The context length the config declares (max_position_embeddings)."""
    return int(config.max_position_embeddings)


def apply_rope_scaling(config: Any, scaling: RopeScaling | None, *, max_positions: int | None = None) -> Any:
    """Edit a transformers config in place so the model it builds uses `scaling`; returns it.

    `max_positions` N restricts the model to N positions, below the T it was trained on,
    as far as its weights allow: the base of every layer that sees distances beyond N is
    compressed NTK-style, base × (N/T)^(d/(d−2)), so the slowest rotary frequency reaches
    at position N the angle it reached at T in training; max_position_embeddings becomes
    N (where dynamic NTK starts scaling). Sliding-window layers (window ≤ N) never see
    such distances and are left alone. An N above T only changes max_position_embeddings:
    declaring a longer context teaches the weights nothing. `scaling` then applies on top."""
    groups = _rope_groups(config)
    dim = head_dim(config)
    for params in groups.values():
        if params.get("rope_type", "default") != "default":
            raise NevermindError(
                f"model already uses {params['rope_type']!r} rope scaling; nevermind scales only default rope"
            )
    if max_positions is not None:
        if max_positions < 2:
            raise NevermindError(f"max positions must be at least 2, got {max_positions}")
        trained = int(config.max_position_embeddings)
        if max_positions < trained:
            window = getattr(config, "sliding_window", None) or 0
            for layer_type, params in groups.items():
                if layer_type == "sliding_attention" and window <= max_positions:
                    continue
                params["rope_theta"] = ntk_base(float(params["rope_theta"]), max_positions / trained, dim)
        config.max_position_embeddings = int(max_positions)
    if scaling is None or scaling.is_identity:
        return config
    if scaling.layers == "auto":
        # Per-layer rope (Gemma 3): the global layers only; one shared group: all layers.
        if LAYER_GROUPS["global"] in groups:
            groups = {LAYER_GROUPS["global"]: groups[LAYER_GROUPS["global"]]}
    elif scaling.layers != "all":
        wanted = LAYER_GROUPS[scaling.layers]
        if wanted not in groups:
            raise NevermindError(
                f"rope option {scaling}: this model has no separate {scaling.layers} layers "
                f"(its rope groups: {', '.join(g or 'one shared' for g in groups)})"
            )
        groups = {wanted: groups[wanted]}
    for params in groups.values():
        if scaling.kind == "ntk":
            params["rope_theta"] = ntk_base(float(params["rope_theta"]), scaling.alpha, dim)
        else:
            params["rope_type"] = scaling.kind
            params["factor"] = float(scaling.alpha)
    return config


def _rotary_modules(model: Any) -> Iterator[Any]:
    for module in model.modules():
        if hasattr(module, "original_max_seq_len") and hasattr(module, "rope_type"):
            yield module


def inv_freqs(model: Any) -> dict[str, torch.Tensor]:
    """The rotary inverse frequencies the model uses now, by layer type ("" when shared)."""
    found: dict[str, torch.Tensor] = {}
    for module in _rotary_modules(model):
        if isinstance(module.rope_type, dict):
            for layer_type in module.rope_type:
                found[layer_type] = getattr(module, f"{layer_type}_inv_freq").detach().clone()
        else:
            found[""] = module.inv_freq.detach().clone()
    if not found:
        raise NevermindError("model has no rotary embedding module")
    return found


def reset_rope_state(model: Any, *, missing_ok: bool = False) -> None:
    """Undo the state dynamic NTK keeps after a long sequence (its enlarged base), so the
    next measurement starts from the model as loaded. A no-op for static scaling; with
    `missing_ok`, rotary modules that keep no original frequencies are left alone."""
    for module in _rotary_modules(model):
        groups = module.rope_type if isinstance(module.rope_type, dict) else {"": module.rope_type}
        for layer_type in groups:
            prefix = f"{layer_type}_" if layer_type else ""
            original = getattr(module, f"{prefix}original_inv_freq", None)
            if original is None:
                if missing_ok:
                    continue
                raise NevermindError(f"rotary module {type(module).__name__} keeps no original frequencies")
            module.register_buffer(f"{prefix}inv_freq", original.clone(), persistent=False)
            setattr(module, f"{prefix}max_seq_len_cached", module.original_max_seq_len)
        module.max_seq_len_cached = module.original_max_seq_len


def rope_bases(model: Any) -> dict[str, float]:
    """Effective rope base of each layer type ("all" when shared), read back from inv_freq."""
    dim = head_dim(model.config)
    # inv_freq[i] = c · base^(-2i/dim), c = 1/factor for linear scaling: the ratio gives the base.
    return {(k or "all"): float((v[1].double() / v[0].double()) ** (-dim / 2)) for k, v in inv_freqs(model).items()}
