"""The transformers backend ("hf"): batched generation, scoring with shared-prefix reuse, next-token
and sequence log-probabilities, on CPU or GPU. The only module that touches a transformers model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nevermind.errors import ModelNotFoundError, NevermindError
from nevermind.models.backends import register_backend
from nevermind.models.base import BatchCallback
from nevermind.models.chat import prompt_text
from nevermind.models.registry import CACHE_MARKER, ResolvedModel, resolve_model
from nevermind.models.requests import (
    GenerateRequest,
    Generation,
    GenerationConfig,
    NextTokenRequest,
    ScoreRequest,
    ScoreResult,
    TokenCallback,
    TokenLogprobs,
    TokensPrompt,
)

if TYPE_CHECKING:
    from nevermind.models.rope import RopeScaling

LOGIT_CHUNK_BYTES = 256 * 2**20
"""Scoring computes output-layer logits in chunks of at most this many bytes."""
SHARED_PREFIX_MIN_TOKENS = 8
"""Score requests sharing a context of at least this many tokens reuse its key/value cache."""
CAPABILITIES = frozenset(
    {"generate", "score", "next_token", "sequence_logprobs", "token_ids", "logits_processors", "stream", "rope",
     "local_tokenizer"}
)


def pick_device(device: str) -> torch.device:
    """"auto" → cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """"auto" → float32 on CPU (bf16 is several times slower there), bfloat16 on GPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise NevermindError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16") from None


@dataclass
class _Encoded:
    index: int
    ids: list[int]


class HFModel:
    """A causal language model and its tokenizer, loaded through transformers."""

    backend = "hf"
    capabilities = CAPABILITIES

    def __init__(self, model: Any, tokenizer: Any, name: str = "model") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_token_ids: frozenset[int] = frozenset(eos if isinstance(eos, list) else [eos])
        self._trained_positions: int | None = None

    @classmethod
    def load(
        cls,
        name: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        on_status: Callable[[str], None] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        rope: RopeScaling | str | None = None,
        max_positions: int | None = None,
    ) -> HFModel:
        """Load a bundled name, GGUF file, local directory or hub id.

        `on_status` receives short messages for slow steps (conversion, loading). `rope`
        scales the rotary position embedding ("ntk:4", "dynamic:2", "linear:4" or a
        RopeScaling); `max_positions` overrides the config's max_position_embeddings."""
        from transformers import AutoConfig, AutoModelForCausalLM

        from nevermind.models.rope import RopeScaling, apply_rope_scaling

        scaling = RopeScaling.parse(rope) if isinstance(rope, str) else rope

        resolved = resolve_model(name, on_convert=on_status)
        target = pick_device(device)
        if on_status:
            on_status(f"loading {name} on {target}")
        try:
            tokenizer = load_tokenizer(resolved.source)
            kwargs = dict(model_kwargs or {})
            shipped = kwargs.pop("config", None) or AutoConfig.from_pretrained(resolved.source)
            trained = getattr(shipped, "max_position_embeddings", None)
            if scaling is not None or max_positions is not None:
                kwargs["config"] = apply_rope_scaling(shipped, scaling, max_positions=max_positions)
            model = AutoModelForCausalLM.from_pretrained(
                resolved.source, dtype=pick_dtype(dtype, target), **kwargs
            )
        except OSError as error:
            raise _load_error(resolved, error) from None
        loaded = cls(model.to(target), tokenizer, name)
        loaded._trained_positions = trained
        return loaded

    @property
    def device(self) -> torch.device:
        """Device holding the model's parameters."""
        return next(self.model.parameters()).device

    def info(self) -> dict[str, Any]:
        """Context length (as configured), trained positions, effective rope bases, dtype, device."""
        from nevermind.models.rope import rope_bases

        config = self.model.config
        context = getattr(config, "max_position_embeddings", None)
        try:
            bases = rope_bases(self.model)
        except NevermindError:
            bases = {}
        return {
            "backend": self.backend,
            "context_length": context,
            "trained_positions": self._trained_positions or context,
            "rope_bases": bases,
            "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
            "device": str(self.device),
            "vocab_size": getattr(config, "vocab_size", None),
        }

    # ---------------------------------------------------------------- tokenizing
    def format_prompt(self, request: GenerateRequest | str) -> str:
        """The text a request asks the model to continue (chat template applied unless chat=False)."""
        if isinstance(request, str):
            request = GenerateRequest(request)
        return prompt_text(self.tokenizer, request)

    def encode(self, text: str, *, prefix: bool = True) -> list[int]:
        """Token ids of `text`; with `prefix`, the tokenizer's BOS is added unless the text has it."""
        bos = self.tokenizer.bos_token
        add_special = prefix and not (bos and text.startswith(bos))
        return self.tokenizer(text, add_special_tokens=add_special).input_ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids, special tokens skipped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def _prompt_ids(self, request: GenerateRequest | str) -> list[int]:
        if isinstance(request, GenerateRequest) and isinstance(request.prompt, TokensPrompt):
            return list(request.prompt.ids)
        return self.encode(self.format_prompt(request))

    def _left_pad(self, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    def _right_pad(self, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows padded at the end to the longest, with their attention mask (1 = a real token)."""
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
        return ids, mask

    def _log_probs(self, hidden: torch.Tensor) -> Iterator[torch.Tensor]:
        """Log-softmax of the output layer over rows of hidden states, in memory-bounded chunks."""
        head = self.model.get_output_embeddings()
        softcap = getattr(self.model.config, "final_logit_softcapping", None)
        chunk = max(1, LOGIT_CHUNK_BYTES // (4 * head.weight.shape[0]))
        for c in range(0, hidden.shape[0], chunk):
            logits = head(hidden[c : c + chunk]).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            yield torch.log_softmax(logits, dim=-1)

    # ---------------------------------------------------------------- generate
    @torch.inference_mode()
    def generate(
        self,
        requests: Sequence[GenerateRequest | str],
        config: GenerationConfig | None = None,
        *,
        logits_processors: Sequence[Any] = (),
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Generation]:
        """Generate a continuation for every request, in batches of similar prompt length.

        Logits processors are called as `processor(input_ids, scores) -> scores` at every
        step (the transformers convention). A processor with a `start_batch(prompt_length)`
        method is told, before each batch, the padded prompt width: generated tokens of the
        batch are `input_ids[:, prompt_length:]`; one with `start_rows(request_indices)` is told
        which request each row of the batch is (rows are grouped by prompt length, not in
        request order). `on_token(request_index, token_id)` sees every generated token as it is
        chosen; returning False stops that request there. The rotary state is reset before
        every batch, so dynamic NTK never carries the base of an earlier, longer batch."""
        from transformers import GenerationConfig as HFGenerationConfig
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from nevermind.models.rope import reset_rope_state

        config = config or GenerationConfig()
        encoded = [_Encoded(i, self._prompt_ids(r)) for i, r in enumerate(requests)]
        encoded.sort(key=lambda e: -len(e.ids))
        sampling = config.temperature > 0
        hf_config = HFGenerationConfig(
            max_new_tokens=config.max_new_tokens,
            do_sample=sampling,
            temperature=config.temperature if sampling else None,
            top_p=config.top_p if sampling else None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_token_ids),
            stop_strings=list(config.stop) or None,
        )
        if config.seed is not None:
            torch.manual_seed(config.seed)
        results: list[Generation | None] = [None] * len(encoded)
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start : start + batch_size]
            ids, mask, _ = self._left_pad([e.ids for e in batch])
            for processor in logits_processors:
                if hasattr(processor, "start_batch"):
                    processor.start_batch(ids.shape[1])
                if hasattr(processor, "start_rows"):
                    processor.start_rows([e.index for e in batch])
            reset_rope_state(self.model, missing_ok=True)
            watcher = _TokenWatcher([e.index for e in batch], on_token, self.eos_token_ids) if on_token else None
            output = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=hf_config,
                logits_processor=LogitsProcessorList(logits_processors),
                stopping_criteria=StoppingCriteriaList([watcher]) if watcher else None,
                streamer=watcher,
                tokenizer=self.tokenizer if config.stop else None,
            )
            new_tokens = 0
            for b, (row, item) in enumerate(zip(output[:, ids.shape[1] :].tolist(), batch)):
                if watcher is not None and watcher.stopped_at[b] is not None:
                    row = row[: watcher.stopped_at[b]]
                generation = self._finish(row, config.stop)
                if watcher is not None and watcher.stopped_at[b] is not None and generation.finish_reason == "length":
                    generation.finish_reason = "stop"
                generation.prompt_tokens = len(item.ids)
                new_tokens += len(generation.token_ids)
                results[item.index] = generation
            if on_batch:
                on_batch(len(batch), new_tokens)
        return [r for r in results if r is not None]

    def _finish(self, row: list[int], stop: Sequence[str]) -> Generation:
        """Cut a generated row at eos / a stop string and say why it ended."""
        eos_at = next((i for i, t in enumerate(row) if t in self.eos_token_ids), None)
        content = row if eos_at is None else row[:eos_at]
        pad = self.tokenizer.pad_token_id
        while content and content[-1] == pad and pad not in self.eos_token_ids:
            content = content[:-1]
        text = self.tokenizer.decode(content, skip_special_tokens=True)
        hits = [(text.find(s), s) for s in stop if s and s in text]
        if hits:
            cut, stop_string = min(hits)
            for k in range(1, len(content) + 1):  # shortest token prefix that holds the stop string
                if stop_string in self.tokenizer.decode(content[:k], skip_special_tokens=True):
                    break
            return Generation(text[:cut], content[:k], "stop")
        if eos_at is not None:
            return Generation(text, row[: eos_at + 1], "eos")
        return Generation(text, content, "length")

    # ---------------------------------------------------------------- score
    def _score_ids(self, request: ScoreRequest) -> tuple[list[int], list[int]]:
        context, continuation = request.context, request.continuation
        # A trailing space belongs to the next word in most tokenizers (lm-eval does the same).
        stripped = context.rstrip(" ")
        continuation = context[len(stripped) :] + continuation
        context_ids = self.encode(stripped)
        if not context_ids:  # nothing to condition on: start from BOS (or EOS)
            context_ids = [self.tokenizer.bos_token_id or self.tokenizer.eos_token_id]
        continuation_ids = self.tokenizer(continuation, add_special_tokens=False).input_ids
        if not continuation_ids:
            raise NevermindError(f"empty continuation to score after context {context[-40:]!r}")
        return context_ids, continuation_ids

    @torch.inference_mode()
    def score(
        self,
        requests: Sequence[ScoreRequest],
        *,
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
    ) -> list[ScoreResult]:
        """Log-probability of each continuation given its context, per token and in total.

        Requests that share a context (one instruction and several responses, several questions
        over one document) run the context once and reuse its key/value cache for all of its
        continuations. Only continuation positions go through the output layer, in chunks, so
        memory stays small even with a 262k-token vocabulary."""
        pairs = [self._score_ids(r) for r in requests]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (context, _) in enumerate(pairs):
            groups.setdefault(tuple(context), []).append(i)
        shared = [g for c, g in groups.items() if len(g) > 1 and len(c) >= SHARED_PREFIX_MIN_TOKENS]
        in_shared = {i for g in shared for i in g}
        results: list[ScoreResult | None] = [None] * len(pairs)
        for pack in _pack_groups(sorted(shared, key=lambda g: len(pairs[g[0]][0])), batch_size):
            scored = self._score_shared([(pairs[g[0]][0], [pairs[i][1] for i in g]) for g in pack])
            flat_indices = [i for g in pack for i in g]
            for i, result in zip(flat_indices, scored):
                results[i] = result
            if on_batch:
                on_batch(len(flat_indices), sum(len(r.tokens) for r in scored))
        rest = sorted(
            (i for i in range(len(pairs)) if i not in in_shared),
            key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])),
        )
        for start in range(0, len(rest), batch_size):
            batch = rest[start : start + batch_size]
            scored = self._score_batch([pairs[i] for i in batch])
            for i, result in zip(batch, scored):
                results[i] = result
            if on_batch:
                on_batch(len(batch), sum(len(r.tokens) for r in scored))
        return [r for r in results if r is not None]

    def _gather(self, hidden: torch.Tensor, targets: list[int]) -> tuple[list[float], list[bool]]:
        """Log-probabilities of `targets` (one per row of `hidden`) and whether each was the argmax."""
        target = torch.tensor(targets, device=hidden.device)
        logprobs, greedy, offset = [], [], 0
        for logp in self._log_probs(hidden):
            part = target[offset : offset + logp.shape[0]]
            chosen = logp.gather(-1, part[:, None])[:, 0]
            logprobs.append(chosen)
            # "Is the target a most likely token": amax is several times cheaper than argmax on a
            # large vocabulary; an exact tie (never seen in practice) counts as greedy.
            greedy.append(chosen >= logp.amax(-1))
            offset += logp.shape[0]
        return torch.cat(logprobs).tolist(), torch.cat(greedy).tolist()

    @staticmethod
    def _results(continuations: Sequence[list[int]], flat: list[float], greedy: list[bool]) -> list[ScoreResult]:
        out, offset = [], 0
        for tokens in continuations:
            n = len(tokens)
            values = flat[offset : offset + n]
            out.append(ScoreResult(float(sum(values)), values, list(tokens), all(greedy[offset : offset + n])))
            offset += n
        return out

    def _score_batch(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[ScoreResult]:
        """Context + continuation per row, right-padded, one forward pass. A causal model's position
        never sees the positions after it, so right padding needs no attention mask: attention keeps
        its plain causal fast path and the pad positions' states are simply never read."""
        decoder = self.model.get_decoder()
        ids, _ = self._right_pad([c + t[:-1] for c, t in pairs])  # a last token's state predicts nothing we score
        hidden = decoder(input_ids=ids).last_hidden_state
        rows, cols, targets = [], [], []
        for b, (context, continuation) in enumerate(pairs):
            rows += [b] * len(continuation)
            cols += range(len(context) - 1, len(context) + len(continuation) - 1)
            targets += continuation
        flat, greedy = self._gather(hidden[torch.tensor(rows), torch.tensor(cols)], targets)
        return self._results([t for _, t in pairs], flat, greedy)

    def _score_shared(self, groups: Sequence[tuple[list[int], Sequence[list[int]]]]) -> list[ScoreResult]:
        """Several contexts, each with several continuations. The contexts run once, together
        (left-padded); each continuation row then gets its context's key/value cache, and all
        continuations run together (right-padded), so the matrix products stay large."""
        decoder = self.model.get_decoder()
        device = self.device
        prefix_ids, prefix_mask, prefix_positions = self._left_pad([context for context, _ in groups])
        prefix = decoder(
            input_ids=prefix_ids, attention_mask=prefix_mask, position_ids=prefix_positions, use_cache=True
        )
        owner = [k for k, (_, continuations) in enumerate(groups) for _ in continuations]
        continuations = [row for _, rows in groups for row in rows]
        # A context's last state predicts each continuation's first token; continuation position k
        # predicts token k + 1, so a continuation's last token is never run.
        states = prefix.last_hidden_state[:, -1][owner][:, None]
        width = max(len(r) for r in continuations) - 1
        if width:
            cache = prefix.past_key_values
            cache.batch_select_indices(torch.tensor(owner, device=device))
            ids, row_mask = self._right_pad([r[:-1] for r in continuations])
            mask = torch.cat([prefix_mask[owner], row_mask], dim=1)
            starts = torch.tensor([len(groups[k][0]) for k in owner], device=device)
            positions = starts[:, None] + torch.arange(width, device=device)
            hidden = decoder(
                input_ids=ids, attention_mask=mask, position_ids=positions, **{_cache_argument(decoder): cache}
            ).last_hidden_state
            states = torch.cat([states, hidden], dim=1)
        rows = [b for b, row in enumerate(continuations) for _ in row]
        cols = [k for row in continuations for k in range(len(row))]
        targets = [t for row in continuations for t in row]
        flat, greedy = self._gather(states[torch.tensor(rows), torch.tensor(cols)], targets)
        return self._results(continuations, flat, greedy)

    # ---------------------------------------------------------------- token-level requests
    @torch.inference_mode()
    def next_token_logprobs(
        self,
        requests: Sequence[NextTokenRequest],
        *,
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
    ) -> list[list[float]]:
        """Log-probability of each candidate as the next token, one forward pass per batch that
        runs the output layer at the last position only."""
        rows = [list(r.prompt.ids) if isinstance(r.prompt, TokensPrompt) else self.encode(r.prompt) for r in requests]
        candidate_ids = [[self.single_token(c) for c in r.candidates] for r in requests]
        out: list[list[float]] = []
        for start in range(0, len(rows), batch_size):
            ids, mask, positions = self._left_pad(rows[start : start + batch_size])
            hidden = self.model.get_decoder()(
                input_ids=ids, attention_mask=mask, position_ids=positions
            ).last_hidden_state[:, -1]
            logp = torch.cat(list(self._log_probs(hidden)))
            for b in range(logp.shape[0]):
                out.append(logp[b, candidate_ids[start + b]].tolist())
            if on_batch:
                on_batch(logp.shape[0], int(mask.sum()))
        return out

    def single_token(self, text: str) -> int:
        """The id of `text` as one token (no special tokens); NevermindError if it is several."""
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise NevermindError(f"{self.name}: {text!r} is not a single token (it is {len(ids)})")
        return ids[0]

    @torch.inference_mode()
    def sequence_logprobs(
        self,
        sequences: Sequence[Sequence[int]],
        *,
        positions: Sequence[int] | None = None,
        top_k: int = 0,
        batch_size: int = 1,
        on_batch: BatchCallback | None = None,
    ) -> list[TokenLogprobs]:
        """log p(token j | tokens < j) of each sequence, for every j ≥ 1 or only j in `positions`.

        Sequences are right-padded (causal attention never looks at the padding); the output layer
        runs only at the positions asked for, in chunks. The rotary state is reset before every
        batch, so dynamic NTK scaling never carries the base of a longer earlier sequence."""
        from nevermind.models.rope import reset_rope_state

        decoder = self.model.get_decoder()
        out: list[TokenLogprobs] = []
        for start in range(0, len(sequences), batch_size):
            batch = [list(s) for s in sequences[start : start + batch_size]]
            if any(len(s) == 0 for s in batch):
                raise NevermindError("cannot score an empty token sequence")
            ids, mask = self._right_pad(batch)
            reset_rope_state(self.model, missing_ok=True)
            hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
            wanted = [
                sorted({j for j in (positions if positions is not None else range(1, len(s))) if 1 <= j < len(s)})
                for s in batch
            ]
            rows = [b for b, js in enumerate(wanted) for _ in js]
            cols = [j - 1 for js in wanted for j in js]  # the state before token j predicts it
            targets = [batch[b][j] for b, js in enumerate(wanted) for j in js]
            flat: list[float] = []
            tops: list[list[tuple[int, float]]] = []
            if targets:
                selected = hidden[torch.tensor(rows), torch.tensor(cols)]
                target = torch.tensor(targets, device=selected.device)
                offset = 0
                for logp in self._log_probs(selected):
                    part = target[offset : offset + logp.shape[0]]
                    flat += logp.gather(-1, part[:, None])[:, 0].tolist()
                    if top_k:
                        values, indices = logp.topk(top_k, dim=-1)
                        tops += [list(zip(i, v)) for i, v in zip(indices.tolist(), values.tolist())]
                    offset += logp.shape[0]
            offset = 0
            for b, seq in enumerate(batch):
                logprobs: list[float | None] = [None] * len(seq)
                top: list[list[tuple[int, float]]] | None = [[] for _ in seq] if top_k else None
                for j in wanted[b]:
                    logprobs[j] = flat[offset]
                    if top is not None:
                        top[j] = tops[offset]
                    offset += 1
                out.append(TokenLogprobs(seq, logprobs, top))
            reset_rope_state(self.model, missing_ok=True)
            if on_batch:
                on_batch(len(batch), sum(len(s) for s in batch))
        return out


def _pack_groups(groups: Sequence[list[int]], batch_size: int) -> Iterator[list[list[int]]]:
    """Groups of requests that share a context, packed into batches of at most `batch_size` requests
    (a larger group is split); packing several contexts keeps the matrix products large."""
    pack: list[list[int]] = []
    for group in groups:
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            if pack and sum(map(len, pack)) + len(chunk) > batch_size:
                yield pack
                pack = []
            pack.append(chunk)
    if pack:
        yield pack


def _cache_argument(decoder: Any) -> str:
    """The name a decoder's forward takes a key/value cache by (`cache` from transformers 5.2x on)."""
    import inspect

    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


class _TokenWatcher:
    """Streams each generated token to `on_token` (transformers' streamer hook) and stops the rows
    whose callback returned False (a stopping criterion that answers per row)."""

    def __init__(self, indices: list[int], on_token: TokenCallback, eos: frozenset[int]) -> None:
        self.indices = indices
        self.on_token = on_token
        self.eos = eos
        self.prompt_seen = False
        self.steps = 0
        self.done = [False] * len(indices)
        self.stopped_at: list[int | None] = [None] * len(indices)

    def put(self, value: torch.Tensor) -> None:
        """Called by generate with the prompt first, then the batch's next token at every step."""
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.steps += 1
        for b, token in enumerate(value.reshape(-1).tolist()):
            if self.done[b]:
                continue
            if self.on_token(self.indices[b], token) is False:
                self.done[b] = True
                self.stopped_at[b] = self.steps
            elif token in self.eos:
                self.done[b] = True

    def end(self) -> None:
        """Called once generation ends."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: Any) -> torch.Tensor:
        stopped = [at is not None for at in self.stopped_at]
        return torch.tensor(stopped, dtype=torch.bool, device=input_ids.device)


def _prepare(name: str, on_status: Callable[[str], None] | None) -> None:
    resolve_model(name, on_convert=on_status)


@register_backend("hf", description="transformers on CPU or GPU (the default)", prepare=_prepare)
def load_hf(name: str, **options: Any) -> HFModel:
    """The transformers backend's loader (see `HFModel.load` for the options)."""
    return HFModel.load(name, **options)


def load_pretrained(name: str, *, device: str = "auto", dtype: str = "auto", **options: Any) -> tuple[Any, Any]:
    """The transformers module and tokenizer behind a model name, for code that trains weights
    (training is transformers-specific by nature: TRL and PEFT need the module itself)."""
    loaded = HFModel.load(name, device=device, dtype=dtype, **options)
    return loaded.model, loaded.tokenizer


SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token", "sep_token", "cls_token")


def load_tokenizer(source: str) -> Any:
    """The tokenizer of a model directory or hub id.

    A directory nevermind converted itself (it holds the cache marker) is read straight from
    its tokenizer.json: transformers' generic path parses that file several times in Python,
    which for Gemma's 262k-token vocabulary costs more than two seconds of every load. The
    result tokenizes and decodes identically (tests/models/test_bundled.py checks both bundled
    models). Any other source goes through AutoTokenizer."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    directory = Path(source)
    if not ((directory / CACHE_MARKER).is_file() and (directory / "tokenizer.json").is_file()):
        return AutoTokenizer.from_pretrained(source)
    settings = json.loads((directory / "tokenizer_config.json").read_text())
    kwargs = {key: settings[key] for key in SPECIAL_TOKEN_KEYS if isinstance(settings.get(key), str)}
    template_file = directory / "chat_template.jinja"
    template = template_file.read_text() if template_file.is_file() else settings.get("chat_template")
    if template:
        kwargs["chat_template"] = template
    return PreTrainedTokenizerFast(
        tokenizer_file=str(directory / "tokenizer.json"),
        model_max_length=settings.get("model_max_length", int(1e30)),
        **kwargs,
    )


def _load_error(resolved: ResolvedModel, error: OSError) -> NevermindError:
    if resolved.origin == "hub":
        return ModelNotFoundError(
            f"cannot load {resolved.name!r} from the Hugging Face hub ({str(error).splitlines()[0]}); "
            "check the id and your network, or pass a local path"
        )
    return NevermindError(f"cannot load {resolved.name!r} from {resolved.source}: {str(error).splitlines()[0]}")
