"""Perplexity of long real text versus context length under RoPE scaling, against a position-matched
baseline, through the model interface only (`sequence_logprobs`, `info`, `encode`).

At length L the target is an excerpt's last `window` tokens before L. The same loaded model scores
it twice: with its full preceding context (the targets sit at positions L − window … L − 1), and
with only its preceding `baseline_context` tokens after the BOS the model expects (positions the
model reads well). The targets are the same text in both, so the ratio
perplexity(full) / perplexity(baseline) isolates what length and position do: about 1 (or below:
more context helps) while the model reads its long context well, far above 1 past its cliff. The
text's own difficulty, which moves raw perplexity by 2× between windows, cancels. The ratio is
averaged (in log) over `samples` excerpts from evenly spaced offsets, with its standard error.

With static rope (none, ntk, linear) a token's log-probability depends only on the tokens before
it, so one pass over an excerpt's longest length gives every length's full-context window.
Dynamic NTK changes its base with the length of the pass, so it needs one pass per length (the
backend resets the rotary state before every pass)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nevermind.errors import NevermindError
from nevermind.models.base import require
from nevermind.models.rope import KINDS, RopeLayers, RopeScaling
from nevermind.perplexity.cliff import find_cliff, ratio_over_excerpts
from nevermind.progress import Progress, SilentProgress

MEASUREMENT_FIELDS = ("model", "backend", "scaling", "layers", "max_positions", "window", "baseline_context",
                      "lengths", "samples", "dtype")  # fmt: skip
"""Config fields that change what a stored measurement holds (alphas are stored one by one; the
cliff threshold and the device do not change a log-probability)."""


class PerplexityConfig(BaseModel):
    """What `nevermind perplexity` measures (YAML keys and CLI flags alike)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="Bundled name, hub id, local directory or .gguf file.")
    backend: str = Field("auto", description="Model backend (it must give sequence log-probabilities): auto, hf, ...")
    alphas: tuple[float, ...] = Field((1.0, 2.0, 4.0, 8.0), description="RoPE scaling factors; 1 = the model as trained.")
    lengths: tuple[int, ...] = Field(
        (512, 1024, 2048, 4096), description="Context lengths in tokens, ascending (each scores its last `window` tokens)."
    )
    scaling: str = Field("ntk", description="ntk (static NTK base change), dynamic (dynamic NTK) or linear.")
    layers: RopeLayers = Field("auto", description="Gemma 3: auto (= global layers), all, global or local layers.")
    max_positions: int | None = Field(
        None, description="Restrict the model to N positions (rope bases compressed; see docs/context-scaling.md)."
    )
    window: int = Field(256, ge=1, description="Tokens scored at the end of each length.")
    baseline_context: int = Field(
        512, ge=1, description="Context of the position-matched baseline: the tokens just before the window "
        "(lowered so that baseline + window fit the model's positions)."
    )
    samples: int = Field(4, ge=1, description="Text excerpts (evenly spaced offsets) the ratio is averaged over.")
    cliff_ratio: float = Field(
        1.5, description="The cliff is the first length whose perplexity exceeds this multiple of its baseline's."
    )
    device: str = Field("auto", description="auto, cpu, cuda, ...")
    dtype: str = Field("auto", description="auto (fp32 on CPU), float32, bfloat16, float16.")

    @field_validator("alphas")
    @classmethod
    def _alphas(cls, alphas: tuple[float, ...]) -> tuple[float, ...]:
        if not alphas:
            raise ValueError("give at least one alpha")
        for alpha in alphas:
            try:
                RopeScaling("ntk", alpha)
            except NevermindError as error:
                raise ValueError(str(error)) from None
        if len(set(alphas)) != len(alphas):
            raise ValueError("alphas must be distinct")
        return alphas

    @field_validator("lengths")
    @classmethod
    def _lengths(cls, lengths: tuple[int, ...]) -> tuple[int, ...]:
        if not lengths:
            raise ValueError("give at least one length")
        if any(n < 2 for n in lengths):
            raise ValueError(f"lengths must be at least 2 tokens, got {min(lengths)}")
        if list(lengths) != sorted(set(lengths)):
            raise ValueError("lengths must be distinct and ascending, e.g. 512,1024,2048")
        return lengths

    @field_validator("scaling")
    @classmethod
    def _scaling(cls, scaling: str) -> str:
        if scaling not in KINDS:
            raise ValueError(f"unknown scaling {scaling!r}: choose one of {', '.join(KINDS)}")
        return scaling

    @field_validator("max_positions")
    @classmethod
    def _max_positions(cls, value: int | None) -> int | None:
        if value is not None and value < 2:
            raise ValueError(f"max positions must be at least 2, got {value}")
        return value

    @field_validator("cliff_ratio")
    @classmethod
    def _cliff_ratio(cls, value: float) -> float:
        if not value > 1.0 or not math.isfinite(value):
            raise ValueError(f"the cliff ratio must be a finite number above 1, got {value}")
        return value

    def rope(self, alpha: float) -> RopeScaling:
        """The rope option for one alpha."""
        return RopeScaling(self.scaling, alpha, self.layers)  # type: ignore[arg-type]

    def measurement(self, text: str) -> dict[str, Any]:
        """What identifies a stored measurement: the fields that change it, and the text's digest."""
        values = {name: getattr(self, name) for name in MEASUREMENT_FIELDS}
        values["lengths"] = list(self.lengths)
        values["text_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return values


@dataclass
class AlphaCurve:
    """Perplexity and its ratio to the position-matched baseline against context length, for one alpha.
    Lists follow the config's lengths."""

    alpha: float
    """The scaling factor."""
    rope: str
    """The rope option as a string (e.g. "ntk:4"; "none" for alpha 1)."""
    perplexity: list[float]
    """Perplexity of each length's window with its full context (geometric mean over excerpts)."""
    baseline: list[float]
    """Perplexity of the same windows with only the baseline context before them."""
    ratio: list[float]
    """perplexity / baseline: exp of the mean over excerpts of the per-excerpt log ratio."""
    ratio_log_se: list[float]
    """Standard error over excerpts of that mean log ratio (NaN with one excerpt)."""
    same_context: list[bool]
    """Where the full context is no longer than the baseline's: the ratio is 1 by construction."""
    cliff: int | None
    """First length whose ratio exceeds the config's cliff_ratio; None if none."""
    rope_bases: dict[str, float] = field(default_factory=dict)
    """Effective rope base by layer type after loading (dynamic NTK: as loaded, before growing)."""


@dataclass
class PerplexityResult:
    """Everything one `nevermind perplexity` run measured."""

    config: PerplexityConfig
    """What was asked."""
    trained_positions: int | None
    """Positions the model was trained on (its shipped max_position_embeddings)."""
    declared_positions: int | None
    """Positions the measured model was loaded with (max_positions if given)."""
    baseline_context: int
    """The baseline context actually used (the config's, lowered to fit the model's positions)."""
    curves: list[AlphaCurve]
    """One curve per alpha, in the config's order."""
    text_tokens: int
    """Tokens in the whole text the excerpts were taken from."""
    excerpt_starts: list[int] = field(default_factory=list)
    """Token offset of each excerpt in the text."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["config"] = self.config.model_dump(mode="json")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerplexityResult:
        """Read back what `to_dict` wrote."""
        values = dict(data)
        values["config"] = PerplexityConfig.model_validate(values["config"])
        values["curves"] = [AlphaCurve(**curve) for curve in values["curves"]]
        return cls(**values)

    def rows(self) -> list[dict[str, Any]]:
        """One row per (alpha, length): the CSV form."""
        rows = []
        for curve in self.curves:
            for i, length in enumerate(self.config.lengths):
                se = curve.ratio_log_se[i]
                rows.append({
                    "alpha": curve.alpha, "rope": curve.rope, "length": length,
                    "perplexity": curve.perplexity[i], "baseline_perplexity": curve.baseline[i],
                    "ratio": curve.ratio[i], "log_ratio_se": se,
                    "ratio_low": curve.ratio[i] * math.exp(-se), "ratio_high": curve.ratio[i] * math.exp(se),
                    "same_context": curve.same_context[i],
                    "beyond_cliff": curve.cliff is not None and length >= curve.cliff,
                })  # fmt: skip
        return rows


def window_size(length: int, window: int) -> int:
    """Tokens scored at the end of a `length`-token sequence: the window, or all but the first token."""
    return min(window, length - 1)


def excerpt_starts(n_tokens: int, body: int, samples: int) -> list[int]:
    """Offsets of `samples` excerpts of `body` tokens, evenly spaced over a text of `n_tokens`."""
    spare = n_tokens - body
    if spare < 0:
        raise NevermindError(
            f"the text has {n_tokens} tokens, fewer than the longest length {body}: use shorter lengths"
        )
    if samples > 1 and spare < samples - 1:
        raise NevermindError(f"the text is too short for {samples} distinct excerpts of {body} tokens")
    return [round(i * spare / (samples - 1)) if samples > 1 else 0 for i in range(samples)]


def baseline_row(row: Sequence[int], prefix: Sequence[int], length: int, window: int, context: int) -> list[int] | None:
    """The position-matched baseline of length `length`'s window: the BOS prefix, then the `context`
    tokens before the window, then the window. None when the full context is no longer than that."""
    size = window_size(length, window)
    start = length - size - context
    if start <= len(prefix):
        return None
    return list(prefix) + list(row[start:length])


def _mean_nll(scored: Any, positions: Sequence[int]) -> float:
    values = [scored.logprobs[j] for j in positions]
    if any(v is None for v in values):
        raise NevermindError("the backend left some asked-for positions without a log-probability")
    return -math.fsum(values) / len(values)


def measure_excerpt(
    model: Any,
    row: Sequence[int],
    prefix: Sequence[int],
    lengths: Sequence[int],
    window: int,
    baseline_context: int,
    *,
    dynamic: bool,
) -> tuple[list[float], list[float], int]:
    """Mean NLL of each length's window with its full context and with its baseline context, and
    the tokens the model read to get them."""
    full: list[float] = []
    read = 0
    if dynamic:  # the base depends on the pass length: one pass per length
        for length in lengths:
            targets = range(length - window_size(length, window), length)
            [scored] = model.sequence_logprobs([row[:length]], positions=list(targets))
            full.append(_mean_nll(scored, targets))
            read += length
    else:
        longest = lengths[-1]
        wanted = sorted({j for n in lengths for j in range(n - window_size(n, window), n)})
        [scored] = model.sequence_logprobs([row[:longest]], positions=wanted)
        full = [_mean_nll(scored, range(n - window_size(n, window), n)) for n in lengths]
        read += longest
    baselines = {i: baseline_row(row, prefix, n, window, baseline_context) for i, n in enumerate(lengths)}
    todo = {i: b for i, b in baselines.items() if b is not None}
    baseline = list(full)  # where the full context is the baseline's, the ratio is 1 exactly
    if todo:
        # every baseline row has the same length, so they share one batch (and one dynamic NTK base)
        scored_rows = model.sequence_logprobs(list(todo.values()), positions=None, batch_size=len(todo))
        for (i, b), scored in zip(todo.items(), scored_rows):
            n = window_size(lengths[i], window)
            baseline[i] = _mean_nll(scored, range(len(b) - n, len(b)))
        read += sum(len(b) for b in todo.values())
    return full, baseline, read


def usable_baseline_context(config: PerplexityConfig, info: Mapping[str, Any], prefix_tokens: int) -> int:
    """The config's baseline context, lowered so that prefix + context + window fit the positions the
    model reads well (the smaller of its trained and declared positions)."""
    limits = [n for n in (info.get("trained_positions"), info.get("context_length")) if n]
    if not limits:
        return config.baseline_context
    room = min(limits) - prefix_tokens - config.window
    if room < 1:
        raise NevermindError(
            f"a window of {config.window} tokens leaves no room for a baseline context within the model's "
            f"{min(limits)} positions: use a smaller --window"
        )
    return min(config.baseline_context, room)


def curve_from_records(config: PerplexityConfig, alpha: float, records: Sequence[Mapping[str, Any]]) -> AlphaCurve:
    """One alpha's curve from its per-excerpt records (mean in NLL, ratio paired by excerpt)."""
    lengths = config.lengths
    perplexity, baseline, ratio, log_se, same = [], [], [], [], []
    for i in range(len(lengths)):
        full_nll = [r["full"][i] for r in records]
        base_nll = [r["baseline"][i] for r in records]
        perplexity.append(_exp_mean(full_nll))
        baseline.append(_exp_mean(base_nll))
        stats = ratio_over_excerpts(full_nll, base_nll)
        ratio.append(stats.ratio)
        log_se.append(stats.log_se)
        same.append(all(r["same_context"][i] for r in records))
    first = records[0]
    return AlphaCurve(
        alpha=alpha, rope=first["rope"], perplexity=perplexity, baseline=baseline, ratio=ratio,
        ratio_log_se=log_se, same_context=same, cliff=find_cliff(lengths, ratio, config.cliff_ratio),
        rope_bases=dict(first.get("rope_bases") or {}),
    )  # fmt: skip


def _exp_mean(values: Sequence[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.exp(mean) if mean < 700 else math.inf


def load_for_alpha(config: PerplexityConfig, alpha: float, on_status: Any = None) -> Any:
    """The model with one alpha's rope scaling, through the backend registry."""
    from nevermind.models import load_model

    rope = config.rope(alpha)
    model = load_model(
        config.model, backend=config.backend, device=config.device, dtype=config.dtype, on_status=on_status,
        rope=None if rope.is_identity else rope, max_positions=config.max_positions,
    )  # fmt: skip
    require(model, "sequence_logprobs", "local_tokenizer", purpose="perplexity")
    if not rope.is_identity or config.max_positions is not None:
        require(model, "rope", purpose="RoPE scaling")
    return model


def run_perplexity(
    config: PerplexityConfig,
    text: str | None = None,
    *,
    done: Mapping[tuple[float, int], Mapping[str, Any]] | None = None,
    on_record: Any = None,
    progress: Progress | None = None,
) -> PerplexityResult:
    """Measure every (alpha, excerpt) not in `done` (records of an earlier attempt, keyed by
    (alpha, excerpt)), hand each new record to `on_record` as soon as it is measured, and return the
    result built from all of them. Models are loaded per alpha, only where work is left."""
    from nevermind.data.haystack import haystack_text

    text = haystack_text() if text is None else text
    progress = progress or SilentProgress()
    measurement = config.measurement(text)
    records: dict[tuple[float, int], Mapping[str, Any]] = {}
    for key, record in (done or {}).items():
        if record.get("measurement") != measurement:
            raise NevermindError(_mismatch(record.get("measurement") or {}, measurement))
        records[key] = record
    wanted = [(alpha, e) for alpha in config.alphas for e in range(config.samples)]
    progress.begin("perplexity", len(wanted), sum(k in records for k in wanted))
    facts: dict[str, Any] = dict(next(iter(records.values()), {}).get("facts") or {})
    tokens: list[int] | None = None
    for alpha in config.alphas:
        missing = [e for e in range(config.samples) if (alpha, e) not in records]
        if not missing:
            continue
        progress.status(f"loading {config.model} (alpha {alpha:g})")
        model = load_for_alpha(config, alpha, on_status=progress.status)
        info = model.info()
        prefix = model.encode("", prefix=True)
        if tokens is None:
            tokens = model.encode(text, prefix=False)
        body = config.lengths[-1] - len(prefix)
        starts = excerpt_starts(len(tokens), body, config.samples)
        facts = {
            "trained_positions": info.get("trained_positions"),
            "declared_positions": info.get("context_length"),
            "baseline_context": usable_baseline_context(config, info, len(prefix)),
            "text_tokens": len(tokens),
            "excerpt_starts": starts,
        }
        rope = config.rope(alpha)
        dynamic = config.scaling == "dynamic" and not rope.is_identity
        for e in missing:
            progress.status(f"alpha {alpha:g}: excerpt {e + 1}/{config.samples}")
            row = list(prefix) + list(tokens[starts[e] : starts[e] + body])
            full, baseline, read = measure_excerpt(
                model, row, prefix, config.lengths, config.window, facts["baseline_context"], dynamic=dynamic
            )
            same = [baseline_row(row, prefix, n, config.window, facts["baseline_context"]) is None
                    for n in config.lengths]  # fmt: skip
            record = {
                "alpha": alpha, "excerpt": e, "measurement": measurement, "facts": facts,
                "rope": str(rope) if not rope.is_identity else "none",
                "rope_bases": info.get("rope_bases") or {}, "start": starts[e],
                "full": full, "baseline": baseline, "same_context": same,
            }  # fmt: skip
            records[(alpha, e)] = record
            if on_record:
                on_record(record)
            progress.advance(1, read)
        del model
    progress.end()
    curves = [curve_from_records(config, a, [records[(a, e)] for e in range(config.samples)]) for a in config.alphas]
    return PerplexityResult(
        config=config,
        trained_positions=facts.get("trained_positions"),
        declared_positions=facts.get("declared_positions"),
        baseline_context=facts["baseline_context"],
        curves=curves,
        text_tokens=facts["text_tokens"],
        excerpt_starts=list(facts["excerpt_starts"]),
    )


def _mismatch(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    changed = [k for k in wanted if stored.get(k) != wanted[k]]
    key = changed[0] if changed else "config"
    return (
        f"the stored perplexity measurements were made with {key}={stored.get(key)!r}, not {wanted.get(key)!r}: "
        "use another output directory (or remove that one)"
    )
