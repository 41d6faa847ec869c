"""The server's engine: one worker thread owns the model and runs what arrives together as one batch.

HTTP handlers never touch the model (it is not thread-safe): they submit `Job`s and await events.
The worker collects jobs for a short window (or until a batch is full), tokenizes and checks them,
groups them by sampling settings, makes one `generate` call per group and one `sequence_logprobs`
call for every job that asked for log-probabilities. Each job's own length limit, stop strings,
streaming and cancellation ride on `generate(..., on_token=)`, so jobs with different limits and
stop strings share a batch. Only the model interface is used (models/base.py)."""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nevermind.errors import NevermindError
from nevermind.models.base import require
from nevermind.models.requests import GenerateRequest, Generation, GenerationConfig, TokensPrompt

DEFAULT_MAX_BATCH = 16
"""Most jobs (prompts) run in one model call."""
DEFAULT_BATCH_WINDOW = 0.01
"""Seconds the worker waits after a request arrives for another to join its batch."""
WINDOW_CAP = 5
"""A batch stops waiting for more after this many windows, however steadily requests arrive."""


class APIError(Exception):
    """A request the server refuses, answered as an OpenAI error object."""

    def __init__(
        self, message: str, status: int = 400, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


@dataclass(frozen=True)
class Sampling:
    """The settings jobs must share to run in one `generate` call."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def group_key(self, job_id: int) -> tuple[Any, ...]:
        """Greedy jobs batch together whatever their top_p or seed (neither matters to greedy decoding);
        sampled jobs batch with the same temperature and top_p; a seeded sampled job runs alone, so its
        text depends on its seed only, never on what else arrived with it."""
        if self.temperature == 0:
            return ("greedy",)
        if self.seed is not None:
            return ("seeded", job_id)
        return ("sampled", self.temperature, self.top_p)


@dataclass
class TokenRow:
    """One token with its log-probability and the most likely alternatives at its position."""

    token_id: int
    text: str
    """The token's share of the decoded text (a character split over tokens lands on its last token)."""
    logprob: float | None
    top: list[tuple[str, float]]
    """(decoded text of an alternative, its log-probability), most likely first."""


@dataclass
class Job:
    """One prompt of one HTTP request, and what happened to it."""

    request: GenerateRequest
    """What the model continues (chat messages, raw text, or token ids)."""
    max_tokens: int
    """Tokens to generate; 0 means none (log-probabilities of the prompt only)."""
    stop: tuple[str, ...] = ()
    sampling: Sampling = field(default_factory=Sampling)
    logprobs: int | None = None
    """None: no log-probabilities; k ≥ 0: the chosen tokens' and k alternatives per position."""
    echo: bool = False
    """Log-probabilities of the prompt tokens too (after the first, which has none)."""
    stream: bool = False
    """Send ("delta", job, text) events as the text grows."""
    clamp_to_context: bool = False
    """Shorten max_tokens to the room left in the context instead of refusing a prompt that leaves less."""
    index: int = 0
    """Choice index in the HTTP answer."""
    sink: Callable[[tuple[Any, ...]], None] | None = None
    """Receives events: ("accepted", job) once for the jobs submitted together, then ("delta", job, text)
    while streaming, ("done", job) or ("error", job, APIError)."""

    id: int = field(default_factory=itertools.count().__next__)
    cancelled: bool = False
    prompt_ids: list[int] = field(default_factory=list)
    echo_text: str = ""
    """With echo: the prompt as sent back (the string itself, or the text of the token ids)."""
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    """"stop" (stop string), "eos" (the model ended), "length" (max_tokens), "cancelled"."""
    rows: list[TokenRow] | None = None
    """With logprobs: one row per echoed prompt token (if echo) and per generated token."""

    def emit(self, *event: Any) -> None:
        if self.sink is not None and not self.cancelled:
            self.sink(event)


def _api_error(error: Exception) -> APIError:
    """The HTTP error for a failure while preparing a request: the client's fault (400) when the
    model refused the input (a user error, a bad value, a chat template that rejects the
    messages), the server's (500) otherwise."""
    if isinstance(error, APIError):
        return error
    if isinstance(error, (NevermindError, ValueError)) or type(error).__module__.startswith("jinja2"):
        return APIError(str(error))
    return APIError(f"{type(error).__name__}: {error}", 500)


def async_sink(loop: asyncio.AbstractEventLoop, events: asyncio.Queue) -> Callable[[tuple[Any, ...]], None]:
    """A sink that hands events from the worker thread to an asyncio queue on `loop`."""

    def put(event: tuple[Any, ...]) -> None:
        try:
            loop.call_soon_threadsafe(events.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    return put


class Detokenizer:
    """Text of a growing token sequence, one piece per token, decoding only the tokens since the last
    piece (plus the one before, so a tokenizer that drops a leading space drops it on both sides of
    the subtraction). A character split over several tokens comes out whole with its last token."""

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self.decode = decode
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def push(self, token: int) -> str:
        """Add a token; return the text it completes ("" while a character is incomplete)."""
        self.ids.append(token)
        before = self.decode(self.ids[self.prefix_offset : self.read_offset])
        after = self.decode(self.ids[self.prefix_offset :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return after[len(before) :]
        return ""

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """One piece per token of `ids`, pushed in turn."""
        return [self.push(t) for t in ids]


class TextStream:
    """Follows one job's generated tokens: its text, stop strings, length limit and streamed deltas.

    Text that could be the start of a stop string is held back until the stop string is ruled out,
    so a streaming client never sees part of a stop string."""

    def __init__(
        self, job: Job, decode: Callable[[Sequence[int]], str], eos: frozenset[int], stream: bool
    ) -> None:
        self.job = job
        self.decode = decode
        self.eos = eos
        self.stream = stream
        self.detokenizer = Detokenizer(decode)
        self.text = ""
        self.sent = 0
        self.content: list[int] = []

    def push(self, token: int) -> bool:
        """Take the next generated token; False once the job is finished (or cancelled)."""
        job = self.job
        if job.finish_reason is not None:
            return False
        if job.cancelled:
            job.finish_reason = "cancelled"
            return False
        job.token_ids.append(token)
        if token in self.eos:
            self._finish("eos")
            return False
        self.content.append(token)
        piece = self.detokenizer.push(token)
        start = len(self.text)
        self.text += piece
        # a stop string can only newly appear where it overlaps the new piece; the earliest one wins
        hits = [self.text.find(stop, max(0, start - len(stop) + 1)) for stop in job.stop]
        hits = [at for at in hits if at >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self._finish("stop", cut=True)
            return False
        if len(job.token_ids) >= job.max_tokens:
            self._finish("length")
            return False
        self._send(len(self.text) - self._held())
        return True

    def _held(self) -> int:
        """Length of the longest end of the text that is a proper start of a stop string."""
        held = 0
        for stop in self.job.stop:
            for k in range(min(len(stop) - 1, len(self.text)), held, -1):
                if self.text.endswith(stop[:k]):
                    held = k
                    break
        return held

    def _send(self, end: int) -> None:
        if self.stream and end > self.sent:
            self.job.emit("delta", self.job, self.text[self.sent : end])
            self.sent = end

    def _finish(self, reason: str, *, cut: bool = False) -> None:
        """The final text: the whole content decoded at once (the pieces' sum, barring a character
        left incomplete), cut before a stop string."""
        whole = self.decode(self.content)
        if cut:
            whole = whole[: len(self.text)] if whole.startswith(self.text) else self.text
        self.text = whole
        self.job.finish_reason = reason
        self.job.text = whole
        self._send(len(whole))

    def close(self, generation: Generation | None) -> None:
        """After the model call: settle a job the callback did not finish (the backend ended it)."""
        job = self.job
        if job.finish_reason is not None:
            return
        if job.cancelled:
            job.finish_reason = "cancelled"
            return
        if generation is not None and not job.token_ids:  # a backend that streamed nothing
            job.token_ids = list(generation.token_ids)
            self.text, self.content = generation.text, []
            job.text, job.finish_reason = generation.text, generation.finish_reason
            self._send(len(self.text))
            return
        self._finish(generation.finish_reason if generation is not None else "length")


@dataclass
class EngineStats:
    """Counters of what the worker did (tests and the bench read them)."""

    jobs: int = 0
    generate_calls: int = 0
    logprob_calls: int = 0
    largest_batch: int = 0
    generated_tokens: int = 0
    cancelled: int = 0
    refused: int = 0


class Engine:
    """The worker thread that owns the model, and the queue that feeds it."""

    def __init__(
        self,
        model: Any,
        *,
        adapters: Sequence[Any] = (),
        max_batch: int = DEFAULT_MAX_BATCH,
        batch_window: float = DEFAULT_BATCH_WINDOW,
    ) -> None:
        require(model, "generate", "local_tokenizer", purpose="nevermind serve")
        if max_batch < 1:
            raise NevermindError(f"max_batch must be >= 1, got {max_batch}")
        self.model = model
        self.adapters = list(adapters)
        self.max_batch = max_batch
        self.batch_window = max(0.0, batch_window)
        self.context_length: int | None = model.info().get("context_length")
        self.vocab_size: int | None = model.info().get("vocab_size")
        self.streams_tokens = "stream" in model.capabilities and self._adapters_stream()
        self.stats = EngineStats()
        self._inbox: queue.Queue[list[Job] | Callable[[], None] | None] = queue.Queue()
        self._pending: list[Job] = []
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._token_text: dict[int, str] = {}

    def _adapters_stream(self) -> bool:
        from nevermind.adapters.base import is_decoding_adapter

        return not any(is_decoding_adapter(a) for a in self.adapters)

    # ------------------------------------------------------------------ submitting
    def submit(self, jobs: Sequence[Job]) -> None:
        """Queue the jobs of one request for the worker (started on first use). They are checked
        together: if one is refused, all are."""
        self._ensure_started()
        self._inbox.put(list(jobs))

    def call(self, fn: Callable[[Any], Any]) -> Any:
        """Run `fn(model)` on the worker thread between batches (tokenizer requests) and return its
        result; blocks the calling thread, so call it from a thread pool, not the event loop."""
        self._ensure_started()
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn(self.model)
            except BaseException as error:  # noqa: BLE001  (handed back to the caller's thread)
                box["error"] = error
            done.set()

        self._inbox.put(run)
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def close(self) -> None:
        """Stop the worker after the jobs already queued."""
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="nevermind-serve-engine", daemon=True)
                self._thread.start()

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        while True:
            if not self._pending:
                first = self._inbox.get()
                if first is None:
                    return
                if not self._take(first):
                    continue
                # Wait for others while they keep coming: each arrival gives the next one a full window
                # (clients answered together send their next requests a few ms apart), up to a cap.
                now = time.monotonic()
                cap, deadline = now + WINDOW_CAP * self.batch_window, now + self.batch_window
                while len(self._pending) < self.max_batch:
                    left = min(deadline, cap) - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        item = self._inbox.get(timeout=left)
                    except queue.Empty:
                        break
                    if item is None:
                        self._inbox.put(None)
                        break
                    self._take(item)
                    deadline = time.monotonic() + self.batch_window
            while True:  # whatever else is already waiting
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._fail_all(APIError("the server is shutting down", 503))
                    return
                self._take(item)
            batch = [j for j in self._pending[: self.max_batch] if not j.cancelled]
            self._pending = self._pending[self.max_batch :]
            if batch:
                self._run_batch(batch)

    def _take(self, item: list[Job] | Callable[[], None]) -> bool:
        """Check a request's jobs (or run a tokenizer call at once); True when jobs joined the pending list."""
        if not isinstance(item, list):
            item()
            return False
        jobs = [job for job in item if not job.cancelled]
        if not jobs:
            return False
        try:
            for job in jobs:
                self._prepare(job)
        except Exception as error:  # noqa: BLE001  (a request the model cannot take must not stop the worker)
            self.stats.refused += 1
            jobs[0].emit("error", jobs[0], _api_error(error))
            return False
        self._pending += jobs
        jobs[0].emit("accepted", jobs[0])
        return True

    def _prepare(self, job: Job) -> None:
        """Tokenize and check a job before any model work: empty prompts, unknown token ids, and a
        prompt plus max_tokens longer than the context are refused."""
        prompt = job.request.prompt
        if isinstance(prompt, TokensPrompt):
            ids = list(prompt.ids)
            if self.vocab_size is not None:
                bad = [t for t in ids if not 0 <= t < self.vocab_size]
                if bad:
                    raise APIError(
                        f"prompt holds token id {bad[0]}, outside the vocabulary (0..{self.vocab_size - 1})",
                        param="prompt",
                    )
        else:
            ids = self.model.encode(self.model.format_prompt(job.request))
        if not ids:
            raise APIError(
                "the prompt is empty: give at least one token of text or token ids", param="prompt"
            )
        job.prompt_ids = ids
        if job.echo:
            job.echo_text = prompt if isinstance(prompt, str) else self.model.decode(ids)
        if self.context_length is None:
            return
        room = self.context_length - len(ids)
        if job.clamp_to_context and job.max_tokens > room > 0:
            job.max_tokens = room
        if len(ids) + job.max_tokens > self.context_length:
            raise APIError(
                f"the prompt ({len(ids)} tokens) plus max_tokens ({job.max_tokens}) exceeds the model's context "
                f"of {self.context_length} tokens",
                code="context_length_exceeded", param="max_tokens",
            )  # fmt: skip

    def _fail_all(self, error: APIError) -> None:
        for job in self._pending:
            job.emit("error", job, error)
        self._pending = []

    def _run_batch(self, batch: list[Job]) -> None:
        self.stats.jobs += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        try:
            groups: dict[tuple[Any, ...], list[Job]] = {}
            for job in batch:
                if job.max_tokens > 0 and not self._next_token_only(job):
                    groups.setdefault(self._group_key(job), []).append(job)
            for group in groups.values():
                self._generate(group)
            wanting = [j for j in batch if j.logprobs is not None and not j.cancelled]
            if wanting:
                self._logprobs(wanting)
        except NevermindError as error:
            for job in batch:
                if job.finish_reason != "cancelled":
                    job.emit("error", job, APIError(str(error)))
            return
        except Exception as error:  # noqa: BLE001  (one failed batch must not kill the server)
            for job in batch:
                job.emit("error", job, APIError(f"{type(error).__name__}: {error}", 500))
            return
        for job in batch:
            if job.cancelled or job.finish_reason == "cancelled":
                self.stats.cancelled += 1
                continue
            if job.max_tokens == 0:
                job.finish_reason = "length"
            job.emit("done", job)

    def _group_key(self, job: Job) -> tuple[Any, ...]:
        key = job.sampling.group_key(job.id)
        if not self.streams_tokens:  # limits and stop strings go into the shared config instead
            key += (job.max_tokens, job.stop)
        return key

    def _generate(self, group: list[Job]) -> None:
        first = group[0]
        sampling = first.sampling
        config = GenerationConfig(
            max_new_tokens=max(j.max_tokens for j in group),
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            stop=() if self.streams_tokens else first.stop,
        )
        streams = [TextStream(j, self.model.decode, self.model.eos_token_ids, stream=j.stream) for j in group]

        def on_token(index: int, token: int) -> bool:
            return streams[index].push(token)

        requests = [j.request for j in group]
        self.stats.generate_calls += 1
        if self.adapters:
            from nevermind.adapters import generate_with_adapters

            generations = generate_with_adapters(
                self.model, requests, config, self.adapters, batch_size=len(group),
                on_token=on_token if self.streams_tokens else None,
            )  # fmt: skip
        else:
            generations = self.model.generate(
                requests, config, batch_size=len(group), on_token=on_token if self.streams_tokens else None
            )
        for stream, generation in zip(streams, generations):
            stream.close(generation)
            self.stats.generated_tokens += len(stream.job.token_ids)

    def _next_token_only(self, job: Job) -> bool:
        """A greedy one-token answer whose log-probabilities are asked for anyway (lm-eval's
        loglikelihood requests: echo, max_tokens=1, logprobs=1): its token is the argmax of the
        distribution the log-probability pass computes at the prompt's end, so it needs no
        generate call. Not with adapters, which reshape what is generated."""
        return (
            job.max_tokens == 1
            and job.logprobs is not None
            and job.sampling.temperature == 0
            and not self.adapters
            and "sequence_logprobs" in self.model.capabilities
        )

    def _logprobs(self, jobs: list[Job]) -> None:
        """Log-probabilities of each job's echoed prompt and generated tokens: the model's own
        distribution at each position, before any adapter reshaped it. One call for all jobs."""
        require(self.model, "sequence_logprobs", purpose="logprobs and echo")
        # a next-token-only job gets a placeholder last token: the position before it holds the
        # distribution its answer is picked from (causal attention: the placeholder changes nothing)
        picking = [self._next_token_only(j) and not j.token_ids for j in jobs]
        rows = [
            j.prompt_ids + j.token_ids + ([j.prompt_ids[-1]] if pick else [])
            for j, pick in zip(jobs, picking)
        ]
        starts = [1 if j.echo else len(j.prompt_ids) for j in jobs]
        wanted = range(min(starts), max(len(r) for r in rows))
        top_k = max([j.logprobs or 0 for j in jobs] + [1 if any(picking) else 0])
        self.stats.logprob_calls += 1
        scored = self.model.sequence_logprobs(rows, positions=list(wanted), top_k=top_k, batch_size=len(rows))
        for job, row, start, result, pick in zip(jobs, rows, starts, scored, picking):
            k = job.logprobs or 0
            if (k or pick) and result.top is None:
                raise NevermindError(
                    f"backend {self.model.backend} gives no top alternatives; ask for logprobs=0"
                )
            if pick:
                token, value = result.top[-1][0]
                row[-1] = token
                result.logprobs[-1] = value
                TextStream(job, self.model.decode, self.model.eos_token_ids, stream=False).push(token)
                self.stats.generated_tokens += 1
            first = 0 if job.echo else len(job.prompt_ids)
            pieces = Detokenizer(self.model.decode).pieces(row[first:])
            job.rows = [
                TokenRow(
                    token_id=row[j],
                    text=piece,
                    logprob=result.logprobs[j] if j >= start else None,
                    top=[(self._text_of(t), v) for t, v in (result.top[j][:k] if k and j >= start else [])],
                )
                for j, piece in zip(range(first, len(row)), pieces)
            ]

    def _text_of(self, token: int) -> str:
        """A token decoded on its own (cached: vocabularies are fixed)."""
        if token not in self._token_text:
            self._token_text[token] = self.model.decode([token])
        return self._token_text[token]
