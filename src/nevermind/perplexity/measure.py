"""Perplexity of long real text versus context length, for a list of RoPE scaling factors.

Perplexity at length L is measured on the last `window` tokens of an L-token excerpt,
with everything before them as context: it answers "how well does the model predict text
at position L?", which is where a position the model never trained on shows first (a
mean over the whole excerpt would dilute it with the easy early positions).

With static rope (none, ntk, linear) a token's loss depends only on the tokens before it,
so one pass over the longest excerpt gives every length at once. Dynamic NTK changes its
base with the length of the pass, so it needs one pass per length, from a reset state."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from nevermind.errors import NevermindError
from nevermind.models.rope import KINDS, RopeLayers, RopeScaling, reset_rope_state
from nevermind.perplexity.cliff import find_cliff

LOGIT_CHUNK_BYTES = 256 * 2**20
"""Output-layer logits are computed in chunks of at most this many bytes (gemma's vocabulary is 262k)."""

PassCallback = Callable[[str], None]
"""Called before each forward pass with a short description of it."""


@dataclass(frozen=True)
class PerplexityConfig:
    """What `nevermind perplexity` measures."""

    model: str
    """Bundled name, hub id, local directory or .gguf file."""
    alphas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    """RoPE scaling factors; 1 is the model as trained."""
    lengths: tuple[int, ...] = (512, 1024, 2048, 4096)
    """Context lengths in tokens, ascending; the first is the short-context reference."""
    scaling: str = "ntk"
    """ntk (static NTK base change), dynamic (dynamic NTK) or linear (position interpolation)."""
    layers: RopeLayers = "all"
    """Gemma 3 only: scale all, only global or only local attention layers."""
    max_positions: int | None = None
    """Override the model's declared context length (where dynamic NTK starts scaling)."""
    window: int = 256
    """Tokens scored at the end of each length (fewer when a length is shorter)."""
    samples: int = 1
    """Text excerpts (from evenly spaced offsets in the haystack) averaged per point."""
    cliff_multiple: float = 2.0
    """The cliff is the first length whose perplexity exceeds this multiple of the first length's."""
    device: str = "auto"
    """auto, cpu, cuda, ..."""
    dtype: str = "auto"
    """auto (fp32 on CPU), float32, bfloat16, float16."""

    def __post_init__(self) -> None:
        if not self.alphas:
            raise NevermindError("give at least one alpha")
        for alpha in self.alphas:
            RopeScaling("ntk" if self.scaling not in KINDS else self.scaling, alpha, self.layers)  # type: ignore[arg-type]
        if self.scaling not in KINDS:
            raise NevermindError(f"unknown scaling {self.scaling!r}: choose one of {', '.join(KINDS)}")
        if not self.lengths:
            raise NevermindError("give at least one length")
        if any(n < 2 for n in self.lengths):
            raise NevermindError(f"lengths must be at least 2 tokens, got {min(self.lengths)}")
        if list(self.lengths) != sorted(set(self.lengths)):
            raise NevermindError("lengths must be distinct and ascending, e.g. 512,1024,2048")
        if self.window < 1 or self.samples < 1:
            raise NevermindError("window and samples must be at least 1")
        if not self.cliff_multiple > 1.0:
            raise NevermindError(f"cliff multiple must be above 1, got {self.cliff_multiple}")
        if self.max_positions is not None and self.max_positions < 2:
            raise NevermindError(f"max positions must be at least 2, got {self.max_positions}")

    def rope(self, alpha: float) -> RopeScaling:
        """The rope option for one alpha."""
        return RopeScaling(self.scaling, alpha, self.layers)  # type: ignore[arg-type]


@dataclass
class AlphaCurve:
    """Perplexity against context length for one alpha."""

    alpha: float
    """The scaling factor."""
    rope: str
    """The rope option as a string (e.g. "ntk:4")."""
    perplexity: list[float]
    """Perplexity at each length of the config, in order."""
    cliff: int | None
    """First length whose perplexity exceeds cliff_multiple × the first length's; None if none."""
    rope_bases: dict[str, float] = field(default_factory=dict)
    """Effective rope base by layer type after loading (dynamic NTK: as loaded, before growing)."""


@dataclass
class PerplexityResult:
    """Everything one `nevermind perplexity` run measured."""

    config: PerplexityConfig
    """What was asked."""
    trained_positions: int
    """max_position_embeddings of the model as shipped."""
    declared_positions: int
    """max_position_embeddings the measured model was loaded with (max_positions if given)."""
    curves: list[AlphaCurve]
    """One curve per alpha, in the config's order."""
    text_tokens: int
    """Tokens in the whole haystack text the excerpts were taken from."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerplexityResult:
        """Read back what `to_dict` wrote."""
        raw = dict(data["config"])
        for key in ("alphas", "lengths"):
            raw[key] = tuple(raw[key])
        return cls(
            config=PerplexityConfig(**raw),
            trained_positions=data["trained_positions"],
            declared_positions=data["declared_positions"],
            curves=[AlphaCurve(**curve) for curve in data["curves"]],
            text_tokens=data["text_tokens"],
        )

    def rows(self) -> list[dict[str, Any]]:
        """One row per (alpha, length): the CSV form."""
        return [
            {
                "alpha": curve.alpha,
                "rope": curve.rope,
                "length": length,
                "perplexity": ppl,
                "ratio_to_short": ppl / curve.perplexity[0],
                "beyond_cliff": curve.cliff is not None and length >= curve.cliff,
            }
            for curve in self.curves
            for length, ppl in zip(self.config.lengths, curve.perplexity)
        ]


def token_nll(model: Any, input_ids: Any, positions: Sequence[int] | None = None) -> Any:
    """Negative log-likelihood of each next token: shape (batch, length − 1).

    Only the decoder runs on the whole sequence; the output layer runs in chunks so that
    full logits (length × vocabulary floats) are never held at once. With `positions`,
    only those predictions (index j predicts token j + 1) go through the output layer —
    gemma's is 168M of its 268M parameters — and the other entries are NaN."""
    import torch

    decoder = model.get_decoder()
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    with torch.inference_mode():
        hidden = decoder(input_ids=input_ids).last_hidden_state[:, :-1]
        targets = input_ids[:, 1:]
        index = torch.arange(targets.shape[1], device=targets.device)
        if positions is not None:
            index = torch.tensor(sorted(set(positions)), dtype=torch.long, device=targets.device)
        flat_hidden = hidden[:, index].reshape(-1, hidden.shape[-1])
        flat_targets = targets[:, index].reshape(-1)
        chunk = max(1, LOGIT_CHUNK_BYTES // (4 * head.weight.shape[0]))
        parts = []
        for start in range(0, flat_targets.shape[0], chunk):
            logits = head(flat_hidden[start : start + chunk]).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            logp = torch.log_softmax(logits, dim=-1)
            parts.append(-logp.gather(-1, flat_targets[start : start + chunk, None])[:, 0])
        nll = torch.full(targets.shape, float("nan"), dtype=torch.float32, device=targets.device)
        nll[:, index] = torch.cat(parts).reshape(targets.shape[0], -1)
        return nll


def window_positions(lengths: Sequence[int], window: int) -> list[int]:
    """The predictions `window_mean` reads for these lengths."""
    return sorted({j for n in lengths for j in range(n - 1 - min(window, n - 1), n - 1)})


def window_mean(nll: Any, length: int, window: int) -> float:
    """Mean NLL of the last `window` tokens of the first `length` tokens (nll[j] predicts token j+1)."""
    size = min(window, length - 1)
    return float(nll[..., length - 1 - size : length - 1].mean())


def excerpts(tokens: Sequence[int], prefix: Sequence[int], length: int, samples: int) -> list[list[int]]:
    """`samples` excerpts of `length` tokens (prefix included) from evenly spaced offsets."""
    body = length - len(prefix)
    spare = len(tokens) - body
    if spare < 0:
        raise NevermindError(
            f"the text has {len(tokens)} tokens, fewer than the longest length {length}: use shorter lengths"
        )
    starts = [round(i * spare / max(1, samples - 1)) if samples > 1 else 0 for i in range(samples)]
    return [list(prefix) + list(tokens[s : s + body]) for s in starts]


def measure_curve(
    model: Any,
    rows: Sequence[Sequence[int]],
    lengths: Sequence[int],
    window: int,
    *,
    dynamic: bool,
    on_pass: PassCallback | None = None,
) -> list[float]:
    """Perplexity at each length for one loaded model, averaged in NLL over the excerpt rows."""
    import torch

    device = next(model.parameters()).device
    sums = [0.0] * len(lengths)
    for r, row in enumerate(rows):
        if dynamic:
            for i, length in enumerate(lengths):
                reset_rope_state(model)  # dynamic NTK would otherwise keep the base of a longer pass
                if on_pass:
                    on_pass(f"excerpt {r + 1}/{len(rows)}, {length} tokens")
                ids = torch.tensor([row[:length]], device=device)
                sums[i] += window_mean(token_nll(model, ids, window_positions([length], window))[0], length, window)
            reset_rope_state(model)
        else:
            if on_pass:
                on_pass(f"excerpt {r + 1}/{len(rows)}, {lengths[-1]} tokens (all lengths in one pass)")
            ids = torch.tensor([row[: lengths[-1]]], device=device)
            nll = token_nll(model, ids, window_positions(lengths, window))[0]
            for i, length in enumerate(lengths):
                sums[i] += window_mean(nll, length, window)
    return [math.exp(total / len(rows)) for total in sums]


def rope_bases(model: Any) -> dict[str, float]:
    """Effective rope base of each layer type, read back from the rotary embedding's inv_freq."""
    from nevermind.models.rope import head_dim, inv_freqs

    dim = head_dim(model.config)
    # inv_freq[i] = c · base^(-2i/dim), c = 1/factor for linear scaling: the ratio gives the base.
    return {(k or "all"): float((v[1].double() / v[0].double()) ** (-dim / 2)) for k, v in inv_freqs(model).items()}


def run_perplexity(
    config: PerplexityConfig,
    text: str,
    *,
    on_status: Callable[[str], None] | None = None,
    on_pass: PassCallback | None = None,
    on_alpha_done: Callable[[AlphaCurve], None] | None = None,
) -> PerplexityResult:
    """Measure perplexity against length for every alpha, loading the model fresh for each."""
    from transformers import AutoConfig

    from nevermind.models.hf import HFModel
    from nevermind.models.registry import resolve_model

    shipped = AutoConfig.from_pretrained(resolve_model(config.model, on_convert=on_status).source)
    curves: list[AlphaCurve] = []
    tokens: list[int] = []
    prefix: list[int] = []
    rows: list[list[int]] = []
    declared = shipped.max_position_embeddings
    for alpha in config.alphas:
        rope = config.rope(alpha)
        lm = HFModel.load(
            config.model,
            device=config.device,
            dtype=config.dtype,
            on_status=on_status,
            rope=rope,
            max_positions=config.max_positions,
        )
        declared = lm.model.config.max_position_embeddings
        if not rows:
            tokens = lm.tokenizer(text, add_special_tokens=False).input_ids
            prefix = lm.encode("")  # the BOS the model expects at the start, if any
            rows = excerpts(tokens, prefix, config.lengths[-1], config.samples)
        bases = rope_bases(lm.model)
        perplexity = measure_curve(
            lm.model,
            rows,
            config.lengths,
            config.window,
            dynamic=config.scaling == "dynamic" and not rope.is_identity,
            on_pass=(lambda m, a=alpha: on_pass(f"alpha {a:g}: {m}")) if on_pass else None,
        )
        curve = AlphaCurve(
            alpha=alpha,
            rope=str(rope) if not rope.is_identity else "none",
            perplexity=perplexity,
            cliff=find_cliff(config.lengths, perplexity, config.cliff_multiple),
            rope_bases=bases,
        )
        curves.append(curve)
        if on_alpha_done:
            on_alpha_done(curve)
        del lm
    return PerplexityResult(
        config=config,
        trained_positions=shipped.max_position_embeddings,
        declared_positions=declared,
        curves=curves,
        text_tokens=len(tokens),
    )
