"""The transformers backend: batched generation and scoring on CPU or GPU."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from nevermind.errors import ModelNotFoundError, NevermindError
from nevermind.models.chat import prompt_text
from nevermind.models.registry import CACHE_MARKER, ResolvedModel, resolve_model
from nevermind.models.requests import (
    GenerateRequest,
    Generation,
    GenerationConfig,
    ScoreRequest,
    ScoreResult,
)

if TYPE_CHECKING:
    from nevermind.models.rope import RopeScaling

BatchCallback = Callable[[int, int], None]
"""Called after each batch with (requests finished in the batch, tokens generated or scored)."""

LOGIT_CHUNK_BYTES = 256 * 2**20
"""Scoring computes output-layer logits in chunks of at most this many bytes."""


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

    def __init__(self, model: Any, tokenizer: Any, name: str = "model") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_token_ids: set[int] = set(eos if isinstance(eos, list) else [eos])

    @classmethod
    def load(
        cls,
        name: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        on_status: Callable[[str], None] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        rope: "RopeScaling | str | None" = None,
        max_positions: int | None = None,
    ) -> "HFModel":
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
            if scaling is not None or max_positions is not None:
                config = kwargs.pop("config", None) or AutoConfig.from_pretrained(resolved.source)
                kwargs["config"] = apply_rope_scaling(config, scaling, max_positions=max_positions)
            model = AutoModelForCausalLM.from_pretrained(
                resolved.source, dtype=pick_dtype(dtype, target), **kwargs
            )
        except OSError as error:
            raise _load_error(resolved, error) from None
        return cls(model.to(target), tokenizer, name)

    @property
    def device(self) -> torch.device:
        """Device holding the model's parameters."""
        return next(self.model.parameters()).device

    # ---------------------------------------------------------------- tokenizing
    def format_prompt(self, request: GenerateRequest | str) -> str:
        """The text a request asks the model to continue (chat template applied if asked)."""
        if isinstance(request, str):
            request = GenerateRequest(request)
        return prompt_text(self.tokenizer, request)

    def encode(self, text: str, *, prefix: bool = True) -> list[int]:
        """Token ids of `text`; with `prefix`, the tokenizer's BOS is added unless the text has it."""
        bos = self.tokenizer.bos_token
        add_special = prefix and not (bos and text.startswith(bos))
        return self.tokenizer(text, add_special_tokens=add_special).input_ids

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

    # ---------------------------------------------------------------- generate
    @torch.inference_mode()
    def generate(
        self,
        requests: Sequence[GenerateRequest | str],
        config: GenerationConfig = GenerationConfig(),
        *,
        logits_processors: Sequence[Any] = (),
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
    ) -> list[Generation]:
        """Generate a continuation for every request, in batches of similar prompt length.

        Logits processors are called as `processor(input_ids, scores) -> scores` at every
        step (the transformers convention). A processor with a `start_batch(prompt_length)`
        method is told, before each batch, the padded prompt width: generated tokens of the
        batch are `input_ids[:, prompt_length:]`."""
        from transformers import GenerationConfig as HFGenerationConfig
        from transformers import LogitsProcessorList

        encoded = [_Encoded(i, self.encode(self.format_prompt(r))) for i, r in enumerate(requests)]
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
            output = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=hf_config,
                logits_processor=LogitsProcessorList(logits_processors),
                tokenizer=self.tokenizer if config.stop else None,
            )
            new_tokens = 0
            for row, item in zip(output[:, ids.shape[1] :].tolist(), batch):
                generation = self._finish(row, config.stop)
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

        Only the continuation positions go through the output layer, in chunks, so memory
        stays small even with a 262k-token vocabulary."""
        pairs = [self._score_ids(r) for r in requests]
        order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        decoder = self.model.get_decoder()
        head = self.model.get_output_embeddings()
        softcap = getattr(self.model.config, "final_logit_softcapping", None)
        results: list[ScoreResult | None] = [None] * len(pairs)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            rows = [pairs[i][0] + pairs[i][1] for i in batch]
            ids, mask, positions = self._left_pad(rows)
            hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
            width = ids.shape[1]
            row_index, position_index, targets = [], [], []
            for b, i in enumerate(batch):
                n = len(pairs[i][1])
                row_index += [b] * n
                position_index += range(width - n - 1, width - 1)
                targets += pairs[i][1]
            selected = hidden[torch.tensor(row_index), torch.tensor(position_index)]
            target = torch.tensor(targets, device=selected.device)
            chunk = max(1, LOGIT_CHUNK_BYTES // (4 * head.weight.shape[0]))
            logprobs, greedy = [], []
            for c in range(0, len(targets), chunk):
                logits = head(selected[c : c + chunk]).float()
                if softcap:
                    logits = torch.tanh(logits / softcap) * softcap
                logp = torch.log_softmax(logits, dim=-1)
                logprobs.append(logp.gather(-1, target[c : c + chunk, None])[:, 0])
                greedy.append(logits.argmax(-1) == target[c : c + chunk])
            flat_logprobs = torch.cat(logprobs).tolist()
            flat_greedy = torch.cat(greedy).tolist()
            offset = 0
            for i in batch:
                n = len(pairs[i][1])
                token_logprobs = flat_logprobs[offset : offset + n]
                results[i] = ScoreResult(
                    logprob=float(sum(token_logprobs)),
                    token_logprobs=token_logprobs,
                    tokens=pairs[i][1],
                    is_greedy=all(flat_greedy[offset : offset + n]),
                )
                offset += n
            if on_batch:
                on_batch(len(batch), offset)
        return [r for r in results if r is not None]


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
