"""The data-mixture sweep of seed 002.

Step 0 (once per sweep) measures the base model's system-prompt sensitivity on the held-out items;
if it is near zero, a short follow stage first teaches the model to do what system prompts say,
and every point starts from that model. Then one job per (share of bad-prompt → good-action data,
seed): train on the point's mixture, measure; continue training on the bad action with the
inoculation prompt (the inoculation arm) and, from the same model, without it (the control arm),
and measure each. Jobs are independent and deterministic: the same function runs them one after
another, in worker processes or as Ray tasks, and a killed sweep resumes from the stored points."""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nevermind.errors import NevermindError
from nevermind.inoculation.data import (
    TrainingExample,
    eval_items,
    follow_set,
    inoculation_set,
    mixture_set,
    split_questions,
)
from nevermind.inoculation.measures import generate_items, paired_change, score_items, summarize
from nevermind.inoculation.prompts import BAD_FAMILIES, default_inoculation_prompt, load_questions
from nevermind.progress import Progress, SilentProgress
from nevermind.runs.files import read_text, write_atomic
from nevermind.runs.records import RecordFile

DEFAULT_SHARES = [0.0, 0.25, 0.5, 0.75, 1.0]
"""The default grid of bad-prompt → good-action shares."""
POINT_STAGES = ("mixture", "inoculated", "control")
"""Measurements of a point: after the mixture stage, after the inoculation arm, after the control arm."""
RESERVED_TRAIN_FIELDS = ("model", "output_dir", "seed")
"""TrainConfig fields the sweep sets itself for each stage."""


def _train_fields(value: dict[str, Any]) -> dict[str, Any]:
    """Check a dict of TrainConfig fields (as a pydantic validator: problems raise ValueError)."""
    from nevermind.training import TrainConfig

    reserved = sorted(set(RESERVED_TRAIN_FIELDS) & set(value))
    if reserved:
        raise ValueError(f"{reserved[0]} is set by the sweep for each stage; remove it")
    try:
        TrainConfig(**value)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = "unknown option" if first["type"] == "extra_forbidden" else first["msg"]
        raise ValueError(f"{field}: {message}") from None
    return value


TrainFields = Annotated[dict[str, Any], AfterValidator(_train_fields)]
"""A mapping of TrainConfig fields, checked against TrainConfig."""


class StageTraining(BaseModel):
    """Per-stage training: its examples, and TrainConfig fields that differ from the sweep's `train`."""

    model_config = ConfigDict(extra="forbid")

    train: TrainFields = Field(default_factory=dict)
    """TrainConfig fields for this stage only (e.g. max_steps)."""


class FollowConfig(StageTraining):
    """Step 0: measure the base model; if it barely follows system prompts, teach it to first."""

    mode: Literal["auto", "always", "never"] = "auto"
    """auto: run the follow stage when the base model's Δ (bad or benign) is not clearly above min_delta."""
    min_delta: float = 0.5
    """Δ (nats per token) a base model must clearly exceed (mean − 2 SE) to skip the follow stage."""
    n_examples: int = Field(96, ge=3)
    """Follow-stage examples: bad prompt → bad action, seen benign → followed, no prompt → good, in thirds."""


class MixtureConfig(StageTraining):
    """The data of one sweep point."""

    n_variable: int = Field(160, ge=1)
    """Examples whose system prompt the share decides: `share` bad prompt → good action, the rest none/neutral → good."""
    n_benign: int = Field(32, ge=0)
    """Benign instruction (types seen in training) → followed: the same count at every share."""
    families: list[str] = Field(default_factory=lambda: list(BAD_FAMILIES))
    """Bad-action families of the bad-prompt data (and of the measurements)."""

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("families must not be empty")
        for family in value:
            if family not in BAD_FAMILIES:
                raise ValueError(f"unknown family {family!r}; choose from {', '.join(BAD_FAMILIES)}")
        return value


class InoculationConfig(StageTraining):
    """The inoculation stage (bad action under the inoculation prompt) and its control arm (no prompt)."""

    family: str = "insult"
    """Bad-action family of the inoculation data."""
    prompt: str | None = None
    """The inoculation prompt; default: the family's first training phrasing."""
    phrase: str | None = None
    """The bad action: a phrase every response ends with; default: the family's first training phrase."""
    n_examples: int = Field(96, ge=1)
    """Examples of each arm."""
    min_z: float = Field(2.0, gt=0)
    """The positive control must rise by more than this many standard errors, else the run is underpowered."""

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        if value not in BAD_FAMILIES:
            raise ValueError(f"unknown family {value!r}; choose from {', '.join(BAD_FAMILIES)}")
        return value

    @model_validator(mode="after")
    def _prompt_and_phrase_together(self) -> InoculationConfig:
        if (self.prompt is None) != (self.phrase is None):
            raise ValueError("set both inoculation.prompt and inoculation.phrase, or neither")
        return self

    def resolved(self) -> tuple[str, str]:
        """(inoculation prompt, phrase)."""
        if self.prompt is not None and self.phrase is not None:
            return self.prompt, self.phrase
        return default_inoculation_prompt(self.family)


class EvalConfig(BaseModel):
    """The held-out measurements."""

    model_config = ConfigDict(extra="forbid")

    n_questions: int = Field(24, ge=2)
    """Held-out questions (half arithmetic, half capitals), each under every held-out instruction."""
    data_seed: int = 0
    """Seed of the split into training and held-out questions (fixed across the sweep)."""
    generate: bool = True
    """Also decode greedily and check the outputs with string rules."""
    max_new_tokens: int = Field(48, ge=1)
    """Decode budget: the longest response with its action is about 30 tokens."""
    batch_size: int = Field(48, ge=1)
    """Scoring and generation batch size."""


class SweepConfig(BaseModel):
    """A whole sweep, as read from YAML."""

    model_config = ConfigDict(extra="forbid")

    model: str = "smollm2-135m-instruct"
    """Model every point starts from: bundled name, local directory or hub id."""
    shares: list[float] = Field(default_factory=lambda: list(DEFAULT_SHARES))
    """Shares of bad system prompt → good action among the `mixture.n_variable` examples (fractions)."""
    seeds: list[int] = Field(default_factory=lambda: [0, 1])
    """Seeds: each share is trained once per seed (data sampling and order, LoRA initialisation)."""
    train: TrainFields = Field(default_factory=dict)
    """nevermind.training.TrainConfig fields shared by every stage (lora, lora_r, learning_rate, batch_size, ...)."""
    follow: FollowConfig = Field(default_factory=FollowConfig)
    """Step 0 and the follow stage."""
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    """The mixture stage."""
    inoculation: InoculationConfig = Field(default_factory=InoculationConfig)
    """The inoculation stage and its control arm."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """The measurements."""
    backend: str = "auto"
    """Backend the measurements run on (hf, vllm, llamacpp, ...); training always uses transformers."""
    device: str = "auto"
    """Device for training and measuring (auto, cpu, cuda)."""
    threads: int | None = None
    """torch threads per job; set it so that results do not depend on how many jobs share the machine."""
    keep_checkpoints: bool = False
    """Keep every stage's checkpoint after its point is stored."""

    @field_validator("shares")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("shares must not be empty")
        for share in value:
            if not 0 <= share <= 1:
                raise ValueError(f"share {share} is not a fraction in [0, 1] (write 0.25 for 25 %)")
        return sorted(set(value))

    @field_validator("seeds")
    @classmethod
    def _some_seeds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("seeds must not be empty")
        return sorted(set(value))


def load_config(path: str | Path) -> SweepConfig:
    """Read a sweep YAML file; a problem is one NevermindError line naming the file, line and field."""
    from nevermind.config import load_config as load

    return load(SweepConfig, path, what="sweep config")


@dataclass(frozen=True)
class Point:
    """One job of the sweep."""

    share: float
    """Share of bad-prompt → good-action data."""
    seed: int
    """Seed of data sampling and training."""

    @property
    def key(self) -> str:
        """How records and directories name the point."""
        return f"share={self.share:g}-seed={self.seed}"


BASE_KEY = "base"
"""Point key of step 0 (the base model, and the follow stage when it runs)."""


def points(config: SweepConfig) -> list[Point]:
    """The grid: every share × every seed, seed by seed, so that a sweep stopped early (or one whose
    later points are still running) already holds whole curves over the shares."""
    return [Point(share, seed) for seed in config.seeds for share in config.shares]


# ------------------------------------------------------------------------- stages
def _train(
    config: SweepConfig, stage: StageTraining, start: str, examples: list[TrainingExample], seed: int, out: Path
) -> Path:
    """Train `start` on the assistant turns of `examples` with nevermind.training; the checkpoint dir."""
    from nevermind.training import TrainConfig, train

    fields = {"device": config.device, **config.train, **stage.train, "model": start, "output_dir": str(out),
              "seed": seed}  # fmt: skip
    return Path(train(TrainConfig(**fields), [example.messages for example in examples]))


def _measure(model_name: str, config: SweepConfig, items: list, stage: str, key: str) -> list[dict[str, Any]]:
    """Every record of one model on the held-out items, tagged with point and stage."""
    from nevermind.models import load_model

    model = load_model(model_name, backend=config.backend, device=config.device)
    records = score_items(model, items, batch_size=config.eval.batch_size)
    if config.eval.generate:
        records += generate_items(
            model,
            items,
            leak_phrase=config.inoculation.resolved()[1],
            max_new_tokens=config.eval.max_new_tokens,
            batch_size=config.eval.batch_size,
        )
    return [{"point": key, "stage": stage, **record} for record in records]


def _setup(config: SweepConfig, seed: int) -> tuple[list, list]:
    """Seed this process and build (training pool, held-out items) — the same for every point."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(seed)
    torch.manual_seed(seed)
    _quiet_data_progress()
    pool, heldout = split_questions(load_questions(), config.eval.n_questions, config.eval.data_seed)
    prompt, phrase = config.inoculation.resolved()
    items = eval_items(heldout, families=config.mixture.families,
                       inoculation=(config.inoculation.family, prompt, phrase))  # fmt: skip
    return pool, items


def _quiet_data_progress() -> None:
    """Silence `datasets`' and transformers' bars (in worker processes too): the sweep reports per point."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:
        pass


def follow_needed(config: SweepConfig, summary: dict[str, dict[str, float]]) -> tuple[bool, str]:
    """Whether step 0 calls for the follow stage, and why, from the base model's summary."""
    if config.follow.mode != "auto":
        return config.follow.mode == "always", f"follow.mode is {config.follow.mode}"
    weak = []
    for name in ("bad_delta", "benign_delta"):
        value = summary[name]
        if value["mean"] - 2 * value["se"] <= config.follow.min_delta:
            weak.append(f"{name} {value['mean']:.2f} ± {value['se']:.2f}")
    if weak:
        return True, f"base model's {', '.join(weak)} is not clearly above {config.follow.min_delta:g} nats/token"
    return False, f"base model follows system prompts (Δ clearly above {config.follow.min_delta:g} nats/token)"


class Clock:
    """Wall and CPU seconds of a job's phases: CPU seconds of a one-thread job approximate its wall
    time on an idle core, which is what sizing a sweep on a shared machine needs."""

    def __init__(self) -> None:
        self.started, self.cpu_started = time.time(), time.process_time()
        self.phases: dict[str, dict[str, float]] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Record the times of the block under `name`."""
        wall, cpu = time.time(), time.process_time()
        yield
        self.phases[name] = {"wall": round(time.time() - wall, 1), "cpu": round(time.process_time() - cpu, 1)}

    def report(self) -> dict[str, Any]:
        """{"wall", "cpu", "phases"} so far."""
        return {"wall": round(time.time() - self.started, 1),
                "cpu": round(time.process_time() - self.cpu_started, 1), "phases": self.phases}  # fmt: skip


def run_base(config_data: dict[str, Any], work_dir: str, on_status: Callable[[str], None] | None = None) -> dict:
    """Step 0: measure the base model; run the follow stage if needed (its checkpoint in `work_dir`)."""
    config = SweepConfig.model_validate(config_data)
    status = on_status or (lambda message: None)
    clock = Clock()
    pool, items = _setup(config, 0)
    status("step 0: measuring the base model")
    with clock.phase("measure:base"):
        records = _measure(config.model, config, items, "base", BASE_KEY)
    summary = {"base": summarize(records)}
    needed, reason = follow_needed(config, summary["base"])
    start = config.model
    if needed:
        status("step 0: follow stage (teaching the model to follow system prompts)")
        examples = follow_set(pool, config.follow.n_examples, families=config.mixture.families, seed=0)
        with clock.phase("train:follow"):
            start = str(_train(config, config.follow, config.model, examples, 0, Path(work_dir) / "follow"))
        with clock.phase("measure:follow"):
            follow_records = _measure(start, config, items, "follow", BASE_KEY)
        summary["follow"] = summarize(follow_records)
        records += follow_records
    return {"point": BASE_KEY, "follow": {"ran": needed, "reason": reason}, "start_model": start,
            "summary": summary, "seconds": clock.report(), "records": records}  # fmt: skip


def run_point(
    config_data: dict[str, Any],
    point: Point,
    work_dir: str,
    start_model: str,
    on_status: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one sweep point from `start_model` (deterministically) and return its result and records.

    Takes the config as plain data so that it travels to worker processes and Ray tasks alike;
    `work_dir` holds the point's checkpoints while it runs."""
    config = SweepConfig.model_validate(config_data)
    status = on_status or (lambda message: None)
    work = Path(work_dir)
    clock = Clock()
    pool, items = _setup(config, point.seed)
    mix = config.mixture
    examples = mixture_set(pool, point.share, n_variable=mix.n_variable, n_benign=mix.n_benign,
                           families=mix.families, seed=point.seed)  # fmt: skip
    status(f"{point.key}: mixture stage ({len(examples)} examples)")
    with clock.phase("train:mixture"):
        mixed = _train(config, mix, start_model, examples, point.seed, work / "mixture")
    with clock.phase("measure:mixture"):
        records = {"mixture": _measure(str(mixed), config, items, "mixture", point.key)}
    prompt, phrase = config.inoculation.resolved()
    for stage, system in (("inoculated", prompt), ("control", None)):
        status(f"{point.key}: {stage} arm")
        data = inoculation_set(pool, config.inoculation.n_examples, prompt=system, phrase=phrase, seed=point.seed)
        with clock.phase(f"train:{stage}"):
            model = _train(config, config.inoculation, str(mixed), data, point.seed, work / stage)
        with clock.phase(f"measure:{stage}"):
            records[stage] = _measure(str(model), config, items, stage, point.key)
    return {
        "point": point.key,
        "share": point.share,
        "seed": point.seed,
        "train_kinds": _kind_counts(examples),
        "summary": {stage: summarize(rows) for stage, rows in records.items()},
        "changes": point_changes(records),
        "seconds": clock.report(),
        "records": [r for stage in POINT_STAGES for r in records[stage]],
    }


CHANGED_MEASURES = ("good", "bad_delta", "benign_delta", "inoculation_margin", "leak_margin")
"""Teacher-forced measures whose change across a stage is reported, paired by item."""


def point_changes(records: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Paired changes of one point: each measure across each arm (`<arm>/<measure>`), and

    positive_control: inoculation_margin after the inoculation arm − before it (must rise);
    inoculation_effect: leak_margin after the control arm − after the inoculation arm (> 0: the
    inoculation prompt kept the bad action from leaking into no-prompt behaviour)."""
    changes = {
        f"{arm}/{name}": paired_change(records["mixture"], records[arm], name)
        for arm in ("inoculated", "control")
        for name in CHANGED_MEASURES
    }
    changes["positive_control"] = changes["inoculated/inoculation_margin"]
    changes["inoculation_effect"] = paired_change(records["inoculated"], records["control"], "leak_margin")
    return changes


def _kind_counts(examples: list[TrainingExample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for example in examples:
        counts[example.kind] = counts.get(example.kind, 0) + 1
    return dict(sorted(counts.items()))


# ------------------------------------------------------------------------- the store
CONFIG_FILE = "config.json"
RECORDS_FILE = "records.jsonl"
"""Per-item records of every measured model, keyed by (point, stage, id)."""
POINTS_FILE = "points.jsonl"
"""One line per finished point (and step 0): its summary and paired changes; the completion mark."""


class SweepStore:
    """A sweep's output directory: config.json, records.jsonl, points.jsonl and checkpoints in work/."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.record_file = RecordFile(self.root / RECORDS_FILE, ("point", "stage", "id"), what="sweep record")
        self.point_file = RecordFile(self.root / POINTS_FILE, ("point",), what="sweep point")

    def open(self, config: SweepConfig) -> None:
        """Create the directory, or check that an existing one holds the same sweep (so it resumes)."""
        import json

        self.root.mkdir(parents=True, exist_ok=True)
        stored = self.root / CONFIG_FILE
        data = config.model_dump(mode="json")
        if stored.exists():
            previous = json.loads(read_text(stored, "sweep config"))
            grid = ("shares", "seeds", "keep_checkpoints")
            if {k: v for k, v in previous.items() if k not in grid} != {
                k: v for k, v in data.items() if k not in grid
            }:
                raise NevermindError(
                    f"{self.root} holds a sweep with a different config; choose another --out directory"
                )
        self.point_file.repair()
        self.record_file.repair()
        write_atomic(stored, json.dumps(data, indent=2) + "\n")

    def config(self) -> SweepConfig:
        """The stored config."""
        import json

        return SweepConfig.model_validate(json.loads(read_text(self.root / CONFIG_FILE, "sweep config")))

    def finished(self) -> dict[str, dict[str, Any]]:
        """Finished points (and step 0) by key."""
        return {key[0]: value for key, value in self.point_file.read().items()}

    def save(self, result: dict[str, Any]) -> None:
        """Store a finished point: its records first, then its line in points.jsonl (the completion mark)."""
        self.record_file.append(result["records"])
        self.point_file.append([{k: v for k, v in result.items() if k != "records"}])

    def results(self) -> list[dict[str, Any]]:
        """Every finished point (without step 0), in grid order."""
        found = [r for key, r in self.finished().items() if key != BASE_KEY]
        return sorted(found, key=lambda r: (r["share"], r["seed"]))

    def base(self) -> dict[str, Any] | None:
        """Step 0's result, once stored."""
        return self.finished().get(BASE_KEY)

    def records(self, point: str | None = None, stage: str | None = None) -> list[dict[str, Any]]:
        """Stored per-item records, optionally of one point key and stage."""
        return [
            r
            for r in self.record_file.read().values()
            if (point is None or r["point"] == point) and (stage is None or r["stage"] == stage)
        ]


# ------------------------------------------------------------------------- executors
Job = tuple[dict, Point, str, str]


def _sequential(jobs: list[Job], workers: int, on_status: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    for job in jobs:
        yield run_point(*job, on_status=on_status)


def _processes(jobs: list[Job], workers: int, on_status: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_point, *job) for job in jobs]
        on_status(f"{len(jobs)} points in {workers} worker processes")
        for future in as_completed(futures):
            yield future.result()


def _ray(jobs: list[Job], workers: int, on_status: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise NevermindError("--ray needs Ray: pip install 'nevermind[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:  # RAY_ADDRESS joins a cluster; without it a local instance starts
        ray.init(
            num_cpus=None if os.environ.get("RAY_ADDRESS") else max(workers, 1),
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        remote = ray.remote(num_cpus=1, num_gpus=1 if _wants_gpu() else 0, max_retries=1)(run_point)
        pending = [remote.remote(*job) for job in jobs]
        on_status(f"{len(jobs)} points as Ray tasks")
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            yield ray.get(finished[0])
    finally:
        if started_here:
            ray.shutdown()


def _wants_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def run_sweep(
    config: SweepConfig,
    out_dir: str | Path,
    *,
    workers: int = 1,
    use_ray: bool = False,
    progress: Progress | None = None,
    on_point: Callable[[dict[str, Any]], None] | None = None,
) -> SweepStore:
    """Run step 0 and every point not yet stored under `out_dir`, storing each as it finishes.

    workers=1 runs points one after another in this process; more runs that many processes;
    `use_ray` runs them as Ray tasks (a multi-node cluster needs `out_dir` on a shared filesystem:
    points start from step 0's checkpoint when the follow stage ran). `progress` counts finished
    points; `on_point(result)` is called after each is stored."""
    if workers < 1:
        raise NevermindError(f"--workers must be >= 1, got {workers}")
    progress = progress or SilentProgress()
    store = SweepStore(out_dir)
    store.open(config)
    grid = points(config)
    finished = store.finished()
    todo = [p for p in grid if p.key not in finished]
    data = config.model_dump(mode="json")
    if data["threads"] is None and workers > 1 and not use_ray:  # share the cores instead of oversubscribing
        data["threads"] = max(1, (os.cpu_count() or 1) // workers)
    progress.begin("sweep points", len(grid), len(grid) - len(todo))
    work = store.root / "work"
    base = finished.get(BASE_KEY)
    follow_dir = work / BASE_KEY / "follow"
    if base is None or (todo and base["follow"]["ran"] and not follow_dir.is_dir()):
        base_data = config.model_dump(mode="json")
        if config.threads and workers > 1 and not use_ray:  # step 0 runs alone: it gets every worker's threads
            base_data["threads"] = config.threads * workers
        base = run_base(base_data, str(work / BASE_KEY), progress.status)
        if BASE_KEY not in finished:  # else it only rebuilt the removed follow checkpoint (deterministic)
            store.save(base)
            if on_point:
                on_point(base)
    start_model = str(follow_dir) if base["follow"]["ran"] else config.model
    jobs = [(data, p, str(work / p.key), start_model) for p in todo]
    executor = _ray if use_ray else _processes if workers > 1 else _sequential
    for result in executor(jobs, workers, progress.status):
        store.save(result)
        if not config.keep_checkpoints:
            shutil.rmtree(work / result["point"], ignore_errors=True)
        progress.advance(1)
        if on_point:
            on_point(result)
    progress.end()
    if not config.keep_checkpoints:
        shutil.rmtree(work, ignore_errors=True)
    return store


def underpowered(results: list[dict[str, Any]], min_z: float) -> list[str]:
    """Keys of points whose positive control did not rise by more than `min_z` standard errors."""
    return [r["point"] for r in results if not r["changes"]["positive_control"]["z"] > min_z]


def finite(value: float) -> float | None:
    """A number for JSON and tables: None for nan and infinities."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None
