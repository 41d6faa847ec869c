"""The llama.cpp backend ("llamacpp"): GGUF files run as they are (quantized weights, no conversion),
on CPU, one sequence at a time, through llama-cpp-python.

Prompts are formatted and tokenized by the transformers backend's own methods (with a transformers
tokenizer read from the same GGUF once and cached), so both backends see the same token ids. nevermind
runs the decoding loop itself (llama.cpp evaluates, nevermind picks the token), so logits processors
are called exactly as the transformers backend calls them, and streaming, stop strings and
cancellation behave the same. Scoring reads the logits of every position from a second llama.cpp
context made with `logits_all` (memory: score_n_ctx × vocabulary × 4 bytes), created on first use."""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from nevermind.errors import ModelNotFoundError, NevermindError
from nevermind.models.backends import register_backend
from nevermind.models.base import BatchCallback
from nevermind.models.hf import HFModel, load_tokenizer
from nevermind.models.registry import BUNDLED, CACHE_MARKER, _file_fingerprint, cache_root, check_gguf
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
from nevermind.runs.files import file_lock

CAPABILITIES = frozenset(
    {"generate", "score", "next_token", "sequence_logprobs", "token_ids", "logits_processors", "stream",
     "local_tokenizer"}
)
"""No "rope": RoPE scaling options are not passed to llama.cpp (use --backend hf or vllm)."""


class LlamaCppOptions(BaseModel):
    """Settings of the llamacpp backend: `--backend llamacpp:KEY=VALUE,...` or keywords of `load_model`."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int | None = Field(
        None, ge=16, description="Context of the generating context, in tokens (default: the model's, at most 4096)."
    )
    score_n_ctx: int = Field(
        2048, ge=16, description="Context of the scoring context, which keeps logits of every position (n × vocab floats)."
    )
    n_threads: int | None = Field(None, ge=1, description="CPU threads (default: every core this process may use).")
    n_batch: int = Field(512, ge=1, description="Prompt tokens llama.cpp evaluates per call.")


class LlamaCppModel:
    """A GGUF model run by llama.cpp behind the model interface."""

    backend = "llamacpp"
    capabilities = CAPABILITIES

    format_prompt = HFModel.format_prompt
    encode = HFModel.encode
    decode = HFModel.decode
    single_token = HFModel.single_token
    _prompt_ids = HFModel._prompt_ids
    _finish = HFModel._finish
    _score_ids = HFModel._score_ids

    def __init__(self, name: str, gguf: Path, tokenizer: Any, settings: LlamaCppOptions) -> None:
        self.name = name
        self.gguf = gguf
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._threads = settings.n_threads or len(os.sched_getaffinity(0))
        self._settings = settings
        self._trained = trained_context(gguf)
        self._n_ctx = settings.n_ctx or min(self._trained, 4096)
        self._contexts: list[Any] = []
        # llama-cpp-python frees a context in __del__, which fails once the interpreter is tearing its
        # modules down: close them first (a finalizer runs at exit, before that teardown).
        weakref.finalize(self, _close, self._contexts)
        self._generator = self._context(self._n_ctx, logits_all=False)
        self._scorer: Any = None
        eos = {tokenizer.eos_token_id, self._generator.token_eos()}
        self.eos_token_ids: frozenset[int] = frozenset(int(t) for t in eos if t is not None and t >= 0)
        self._quantization = str(self._generator.metadata.get("general.file_type", "?"))

    def _context(self, n_ctx: int, *, logits_all: bool) -> Any:
        from llama_cpp import Llama

        context = Llama(
            str(self.gguf), n_ctx=n_ctx, n_batch=min(self._settings.n_batch, n_ctx), n_threads=self._threads,
            n_threads_batch=self._threads, logits_all=logits_all, verbose=False,
        )  # fmt: skip
        self._contexts.append(context)
        return context

    def _scoring_context(self) -> Any:
        if self._scorer is None:
            self._scorer = self._context(self._settings.score_n_ctx, logits_all=True)
        return self._scorer

    def info(self) -> dict[str, Any]:
        """Context length (n_ctx), trained positions, the GGUF's quantization, threads."""
        return {
            "backend": self.backend,
            "context_length": self._n_ctx,
            "score_context_length": self._settings.score_n_ctx,
            "trained_positions": self._trained,
            "rope_bases": {},
            "dtype": f"gguf file type {self._quantization}",
            "device": "cpu",
            "vocab_size": int(self._generator.n_vocab()),
            "threads": self._threads,
        }

    # ------------------------------------------------------------------------------------------ evaluation
    @staticmethod
    def _evaluate(llm: Any, ids: Sequence[int], *, limit: int, what: str, reuse: bool = True) -> None:
        """Bring `llm` to having evaluated exactly `ids`, reusing the longest prefix it already holds
        (its key/value cache is cut back there; not with `reuse=False`); the last token is always
        evaluated again so its logits are fresh."""
        from llama_cpp import llama_get_memory, llama_memory_seq_rm

        if len(ids) > limit:
            raise NevermindError(f"{what} of {len(ids)} tokens does not fit the llama.cpp context of {limit} tokens "
                                 "(raise it: --backend llamacpp:n_ctx=N or score_n_ctx=N)")  # fmt: skip
        common = 0
        if reuse:
            for a, b in zip(llm.input_ids[: llm.n_tokens], ids):
                if a != b:
                    break
                common += 1
            common = min(common, len(ids) - 1)
        if common > 0 and not llama_memory_seq_rm(llama_get_memory(llm.ctx), -1, common, -1):
            common = 0  # this cache cannot be cut back (e.g. a sliding-window one): start over
        if common == 0:
            llm.reset()
        else:
            llm.n_tokens = common
        llm.eval(list(ids[common:]))

    @staticmethod
    def _last_logits(llm: Any) -> torch.Tensor:
        """Logits of the last evaluated token (a copy: llama.cpp reuses its buffer)."""
        from llama_cpp import llama_get_logits_ith

        row = np.ctypeslib.as_array(llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        return torch.from_numpy(row.copy())

    # ------------------------------------------------------------------------------------------ generate
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
        """Generate a continuation for every request, one sequence at a time (llama-cpp-python has no
        multi-sequence batching, so `batch_size` is not used).

        Logits processors are called as the transformers backend calls them: `start_batch(prompt
        length)` and `start_rows([request index])` before each sequence, then `processor(input_ids [1, n],
        scores [1, vocab])` at every step. Greedy decoding takes the argmax; sampling draws from a torch generator seeded with
        `config.seed` (the same seed and requests give the same text)."""
        config = config or GenerationConfig()
        generator = torch.Generator()
        generator.manual_seed(config.seed if config.seed is not None else 0)
        out = []
        for index, request in enumerate(requests):
            prompt = self._prompt_ids(request)
            generation = self._generate_one(index, prompt, config, logits_processors, on_token, generator)
            generation.prompt_tokens = len(prompt)
            out.append(generation)
            if on_batch:
                on_batch(1, len(generation.token_ids))
        return out

    def _generate_one(
        self,
        index: int,
        prompt: list[int],
        config: GenerationConfig,
        processors: Sequence[Any],
        on_token: TokenCallback | None,
        generator: torch.Generator,
    ) -> Generation:
        llm = self._generator
        # From scratch: llama.cpp's logits depend slightly on how tokens were batched (a prompt tail
        # evaluated after a reused prefix differs from the whole prompt at once), enough to flip a
        # near-tie, and a greedy text must not depend on what was generated before it.
        self._evaluate(llm, prompt, limit=self._n_ctx - 1, what="a prompt", reuse=False)
        for processor in processors:
            if hasattr(processor, "start_batch"):
                processor.start_batch(len(prompt))
            if hasattr(processor, "start_rows"):  # a batch of one row: request `index`
                processor.start_rows([index])
        room = min(config.max_new_tokens, self._n_ctx - len(prompt))
        tokens: list[int] = []
        cancelled = False
        while len(tokens) < room:
            scores = self._last_logits(llm)[None]
            if processors:
                input_ids = torch.tensor([prompt + tokens], dtype=torch.long)
                for processor in processors:
                    scores = processor(input_ids, scores)
            token = self._pick(scores[0], config, generator)
            tokens.append(token)
            if on_token is not None and on_token(index, token) is False:
                cancelled = True
                break
            if token in self.eos_token_ids:
                break
            if config.stop and any(s in self.decode(tokens) for s in config.stop if s):
                break
            if len(tokens) < room:
                llm.eval([token])
        generation = self._finish(tokens, config.stop)
        if cancelled and generation.finish_reason == "length":
            generation.finish_reason = "stop"
        return generation

    @staticmethod
    def _pick(scores: torch.Tensor, config: GenerationConfig, generator: torch.Generator) -> int:
        """Argmax (greedy), or a draw at `temperature` from the top-p nucleus."""
        if config.temperature <= 0:
            return int(scores.argmax())
        probs = torch.softmax(scores.float() / config.temperature, dim=-1)
        if config.top_p < 1.0:
            ordered, order = probs.sort(descending=True)
            outside = ordered.cumsum(-1) - ordered > config.top_p  # keep the smallest set reaching top_p
            ordered[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, ordered)
        return int(torch.multinomial(probs, 1, generator=generator))

    # ------------------------------------------------------------------------------------------ score
    def score(
        self,
        requests: Sequence[ScoreRequest],
        *,
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
    ) -> list[ScoreResult]:
        """Log-probability of each continuation given its context. Requests are taken in an order that
        puts shared contexts together, and each is evaluated after the longest prefix it shares with the
        one before (so a shared context is computed once)."""
        llm = self._scoring_context()
        pairs = [self._score_ids(r) for r in requests]
        results: list[ScoreResult | None] = [None] * len(pairs)
        for i in sorted(range(len(pairs)), key=lambda i: (pairs[i][0], pairs[i][1])):
            context, continuation = pairs[i]
            self._evaluate(llm, context + continuation, limit=self._settings.score_n_ctx, what="a scoring request")
            rows = torch.from_numpy(llm.scores[len(context) - 1 : len(context) + len(continuation) - 1])
            logp = torch.log_softmax(rows.float(), dim=-1)
            target = torch.tensor(continuation)
            values = logp.gather(-1, target[:, None])[:, 0].tolist()
            greedy = bool((logp.argmax(-1) == target).all())
            results[i] = ScoreResult(float(sum(values)), values, list(continuation), greedy)
            if on_batch:
                on_batch(1, len(continuation))
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------------------------------ token-level
    def next_token_logprobs(
        self,
        requests: Sequence[NextTokenRequest],
        *,
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
    ) -> list[list[float]]:
        """Log-probability of each candidate as the next token (the last position's logits)."""
        out = []
        for request in requests:
            ids = list(request.prompt.ids) if isinstance(request.prompt, TokensPrompt) else self.encode(request.prompt)
            candidates = [self.single_token(c) for c in request.candidates]
            self._evaluate(self._generator, ids, limit=self._n_ctx, what="a prompt")
            logp = torch.log_softmax(self._last_logits(self._generator).float(), dim=-1)
            out.append(logp[candidates].tolist())
            if on_batch:
                on_batch(1, len(ids))
        return out

    def sequence_logprobs(
        self,
        sequences: Sequence[Sequence[int]],
        *,
        positions: Sequence[int] | None = None,
        top_k: int = 0,
        batch_size: int = 1,
        on_batch: BatchCallback | None = None,
    ) -> list[TokenLogprobs]:
        """log p(token j | tokens < j) for each sequence (at most score_n_ctx tokens long)."""
        llm = self._scoring_context()
        out = []
        for sequence in sequences:
            seq = list(sequence)
            if not seq:
                raise NevermindError("cannot score an empty token sequence")
            self._evaluate(llm, seq, limit=self._settings.score_n_ctx, what="a sequence")
            wanted = sorted({j for j in (positions if positions is not None else range(1, len(seq))) if 1 <= j < len(seq)})
            logprobs: list[float | None] = [None] * len(seq)
            top: list[list[tuple[int, float]]] | None = [[] for _ in seq] if top_k else None
            if wanted:
                rows = torch.from_numpy(llm.scores[[j - 1 for j in wanted]])
                logp = torch.log_softmax(rows.float(), dim=-1)
                picked = logp.gather(-1, torch.tensor([seq[j] for j in wanted])[:, None])[:, 0].tolist()
                for j, value in zip(wanted, picked):
                    logprobs[j] = value
                if top is not None:
                    values, indices = logp.topk(top_k, dim=-1)
                    for j, ids, vals in zip(wanted, indices.tolist(), values.tolist()):
                        top[j] = list(zip(ids, vals))
            out.append(TokenLogprobs(seq, logprobs, top))
            if on_batch:
                on_batch(1, len(seq))
        return out


def _close(contexts: list[Any]) -> None:
    for context in contexts:
        context.close()
    contexts.clear()


# ---------------------------------------------------------------------------------------------- loading
def locate_gguf(name: str) -> Path:
    """The GGUF file behind a bundled name or a .gguf path; anything else is one line."""
    if name in BUNDLED:
        bundled = BUNDLED[name]
        if not bundled.carrier_installed:
            raise ModelNotFoundError(f"bundled model {name!r} needs its weights package: {bundled.install}")
        return bundled.locate_gguf()
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file not found: {path}")
        return path
    raise NevermindError(
        f"the llamacpp backend runs GGUF files: give a .gguf path or a bundled name ({', '.join(BUNDLED)}), "
        f"not {name!r}"
    )


def trained_context(gguf: Path) -> int:
    """The context length a GGUF declares (`<architecture>.context_length`; 2048 if it has none)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf)).fields

    def value(key: str) -> Any:
        field = fields[key]
        return field.parts[field.data[0]]

    try:
        architecture = bytes(value("general.architecture")).decode()
        return int(value(f"{architecture}.context_length")[0])
    except KeyError:
        return 2048


def gguf_tokenizer(gguf: Path, on_status: Callable[[str], None] | None = None) -> Any:
    """The transformers tokenizer stored in a GGUF (chat template included), read once by transformers
    and cached under the nevermind cache (tokenizer files only, no weights)."""
    target = cache_root() / "tokenizers" / f"{gguf.stem}-{_file_fingerprint(gguf)}"
    if not (target / CACHE_MARKER).exists():
        with file_lock(target.parent / f".{target.name}.lock"):
            if not (target / CACHE_MARKER).exists():
                from transformers import AutoTokenizer

                if on_status:
                    on_status(f"reading the tokenizer of {gguf.name} (first use only)")
                check_gguf(gguf)
                staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-partial-"))
                try:
                    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(staging)
                    (staging / CACHE_MARKER).write_text(f'{{"gguf": "{gguf}", "tokenizer_only": true}}')
                    if target.exists():
                        shutil.rmtree(target)
                    os.replace(staging, target)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
    return load_tokenizer(str(target))


def _prepare(name: str, on_status: Callable[[str], None] | None) -> None:
    gguf_tokenizer(locate_gguf(name), on_status)


@register_backend("llamacpp", extra="llamacpp", description="llama.cpp on GGUF files (CPU)", prepare=_prepare,
                  options=LlamaCppOptions)  # fmt: skip
def load_llamacpp(
    name: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    on_status: Callable[[str], None] | None = None,
    rope: Any = None,
    max_positions: int | None = None,
    **options: Any,
) -> LlamaCppModel:
    """Load a GGUF (bundled name or path) into llama.cpp. `options` are LlamaCppOptions fields; the
    weights run as stored (dtype "auto" only), on CPU."""
    import llama_cpp  # noqa: F401  (a missing library fails here, before anything is read)

    settings = LlamaCppOptions(**options)
    if device not in ("auto", "cpu"):
        raise NevermindError(f"the llamacpp backend runs on cpu, not on {device}")
    if dtype != "auto":
        raise NevermindError(f"the llamacpp backend runs the GGUF's own weights: dtype {dtype} is not possible")
    if rope is not None or max_positions is not None:
        raise NevermindError("the llamacpp backend does not scale RoPE: use --backend hf or vllm for rope options")
    gguf = locate_gguf(name)
    tokenizer = gguf_tokenizer(gguf, on_status)
    if on_status:
        on_status(f"loading {gguf.name} into llama.cpp")
    return LlamaCppModel(name, gguf, tokenizer, settings)
