"""Decode-time adapters: rules (seed 001), keyword filter and thought inhibition (seed 000).

Build one from a spec (`build_adapter("rules:used_weight=-1", model)`) or generate with several
(`generate_with_adapters(model, requests, config, ["rules", "keywords:banned=foo;bar"])`); add your
own with `@register_adapter(name, ConfigClass)`."""

from nevermind.adapters.base import (
    ADAPTERS,
    AdapterConfig,
    DecodingAdapter,
    adapter_config,
    build_adapter,
    generate_with_adapters,
    is_decoding_adapter,
    parse_spec,
    register_adapter,
)
from nevermind.adapters.inhibition import InhibitionConfig, InhibitionStats, ThoughtInhibition
from nevermind.adapters.keywords import KeywordFilter, KeywordsConfig
from nevermind.adapters.moderators import (
    MODERATORS,
    KeywordModerator,
    ModelModerator,
    Moderator,
    RegexModerator,
    SystemTermsModerator,
    register_moderator,
)
from nevermind.adapters.rules import REFERENCE_TOKEN_WEIGHTS, TOKEN_PRESETS, RulesAdapter, RulesConfig
from nevermind.adapters.vocab import TokenSurfaces, token_surfaces

__all__ = [
    "ADAPTERS",
    "MODERATORS",
    "REFERENCE_TOKEN_WEIGHTS",
    "AdapterConfig",
    "DecodingAdapter",
    "InhibitionConfig",
    "InhibitionStats",
    "KeywordFilter",
    "KeywordModerator",
    "KeywordsConfig",
    "ModelModerator",
    "Moderator",
    "RegexModerator",
    "RulesAdapter",
    "RulesConfig",
    "SystemTermsModerator",
    "TOKEN_PRESETS",
    "ThoughtInhibition",
    "TokenSurfaces",
    "adapter_config",
    "build_adapter",
    "generate_with_adapters",
    "is_decoding_adapter",
    "parse_spec",
    "register_adapter",
    "register_moderator",
    "token_surfaces",
]
