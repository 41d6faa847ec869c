"""The data-mixture sweep of seed 002: one job per (share of bad-prompt → good-action data, seed).

A job trains a model on its mixture, measures the three components, continues training on
bad-prompt → bad-action data (inoculation) and measures them again, without and with the
inoculation prompt. Jobs are independent and deterministic: the same function runs them one
after another, in worker processes or as Ray tasks, and a killed sweep resumes from the points
whose results were stored."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nevermind.errors import NevermindError
from nevermind.inoculation.data import (
    Mixture,
    TrainingExample,
    build_inoculation_set,
    build_training_set,
    eval_samples,
    load_problems,
    split_problems,
)
from nevermind.inoculation.evaluate import evaluate, summarize
from nevermind.inoculation.prompts import FAMILIES

DEFAULT_SHARES = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]
"""The issue's default grid of bad-prompt → good-action shares."""
STAGES = ("trained", "inoculated", "inoculated_prompted")
"""Measurements per point: after mixture training; after inoculation without and with the prompt."""


class InoculationConfig(BaseModel):
    """The inoculation stage: continue training on bad system prompt → bad action."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Run the inoculation stage (off: only the mixture training is measured)."""
    family: str = "wrong_answer"
    """Bad-action family of the inoculation data."""
    n_examples: int = Field(32, ge=1)
    """Inoculation training examples per point."""
    prompt: str | None = None
    """Inoculation prompt put before the system prompt at test time; default: the family's first training phrasing."""
    train: dict[str, Any] = Field(default_factory=dict)
    """TrainConfig fields for this stage that differ from the sweep's `train` (e.g. max_steps)."""

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        if value not in FAMILIES:
            raise ValueError(f"unknown family {value!r}; choose from {', '.join(FAMILIES)}")
        return value


class EvalConfig(BaseModel):
    """How the held-out components are measured."""

    model_config = ConfigDict(extra="forbid")

    n_problems: int = Field(24, ge=1)
    """Held-out GSM8K problems (each is asked with no prompt, under each family's bad prompt, and under one benign instruction)."""
    max_new_tokens: int = Field(160, ge=1)
    """Generation budget per answer."""
    batch_size: int = Field(16, ge=1)
    """Generation and scoring batch size."""
    likelihood: bool = True
    """Also measure each component by likelihood: log p(complying response) > log p(defying response)."""


class SweepConfig(BaseModel):
    """A whole sweep, as read from YAML."""

    model_config = ConfigDict(extra="forbid")

    model: str = "smollm2-135m-instruct"
    """Model to finetune at every point: bundled name, local directory or hub id."""
    shares: list[float] = Field(default_factory=lambda: list(DEFAULT_SHARES))
    """Shares of bad system prompt → good action data (fractions in [0, 1])."""
    seeds: list[int] = Field(default_factory=lambda: [0, 1])
    """Seeds: each share is trained once per seed (data order, sampling of prompts, training)."""
    n_train: int = Field(64, ge=1)
    """Training examples per point in the mixture stage."""
    rest: dict[str, float] = Field(default_factory=lambda: {"none": 1.0, "neutral": 1.0, "benign": 1.0})
    """Weights of the (none / neutral / benign system prompt → good action) data filling the rest."""
    families: list[str] = Field(default_factory=lambda: list(FAMILIES))
    """Bad-action families used in bad-prompt data and measured for compliance."""
    data_seed: int = 0
    """Seed of the split into training and held-out problems (fixed across points)."""
    train: dict[str, Any] = Field(default_factory=dict)
    """nevermind.training.TrainConfig fields shared by every point (method, lora_r, max_steps, ...)."""
    inoculation: InoculationConfig = Field(default_factory=InoculationConfig)
    """The inoculation stage."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """The measurements."""
    device: str = "auto"
    """Device for evaluation (auto, cpu, cuda)."""
    threads: int | None = None
    """torch threads per job; set it so results do not depend on how many jobs share the machine."""
    keep_checkpoints: bool = False
    """Keep each point's trained checkpoints after its results are stored."""

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

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: list[str]) -> list[str]:
        for family in value:
            if family not in FAMILIES:
                raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
        if not value:
            raise ValueError("families must not be empty")
        return value

    @field_validator("rest")
    @classmethod
    def _known_kinds(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, weight in value.items():
            if kind not in ("none", "neutral", "benign"):
                raise ValueError(f"unknown kind {kind!r} in rest; use none, neutral or benign")
            if weight < 0:
                raise ValueError(f"weight of {kind!r} must be >= 0")
        return value

    @property
    def inoculation_prompt(self) -> str:
        """The prompt put before system prompts at test time in the inoculated_prompted stage."""
        return self.inoculation.prompt or FAMILIES[self.inoculation.family].train_prompts[0].text


def load_config(path: str | Path) -> SweepConfig:
    """Read a sweep YAML file; a malformed file is a NevermindError naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise NevermindError(f"{path}: no such sweep config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise NevermindError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(raw, dict):
        raise NevermindError(f"{path}: a sweep config must be a mapping of fields")
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as error:
        raise NevermindError(f"{path}: {_first_error(error)}") from None
    from nevermind.training import TrainConfig

    for section, values in (
        ("train", config.train),
        ("inoculation.train", {**config.train, **config.inoculation.train}),
    ):
        reserved = sorted({"model", "output_dir", "seed"} & set(values))
        if reserved:
            raise NevermindError(
                f"{path}: {section}.{reserved[0]}: set by the sweep for each point; remove it"
            )
        try:
            TrainConfig(**values)
        except ValidationError as error:
            raise NevermindError(f"{path}: {section}.{_first_error(error)}") from None
    return config


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "config"
    return f"{field}: {first['msg']}"


@dataclass(frozen=True)
class Point:
    """One job of the sweep."""

    share: float
    """Share of bad-prompt → good-action data."""
    seed: int
    """Seed of data sampling and training."""

    @property
    def key(self) -> str:
        """Directory name of the point's results."""
        return f"share={self.share:g}-seed={self.seed}"


def points(config: SweepConfig) -> list[Point]:
    """The grid: every share × every seed."""
    return [Point(share, seed) for share in config.shares for seed in config.seeds]


# ------------------------------------------------------------------------- one job
def _train(
    config: SweepConfig,
    base_model: str,
    examples: list[TrainingExample],
    seed: int,
    out_dir: Path,
    overrides: dict[str, Any],
) -> Path:
    """Train with nevermind.training on the assistant turns of `examples`; return the checkpoint dir."""
    from nevermind.training import TrainConfig, train

    fields = {
        "device": config.device,
        **config.train,
        **overrides,
        "model": base_model,
        "output_dir": str(out_dir),
        "seed": seed,
    }
    try:
        train_config = TrainConfig(**fields)
    except (TypeError, ValueError) as error:
        raise NevermindError(f"train: {str(error).splitlines()[0]}") from None
    return Path(train(train_config, [example.messages for example in examples]))


def _measure(checkpoint: Path, config: SweepConfig, samples: list, stage: str) -> list[dict[str, Any]]:
    from nevermind.models.hf import HFModel

    model = HFModel.load(str(checkpoint), device=config.device)
    records = evaluate(
        model,
        samples,
        max_new_tokens=config.eval.max_new_tokens,
        batch_size=config.eval.batch_size,
        likelihood=config.eval.likelihood,
    )
    return [{**record, "stage": stage} for record in records]


def _quiet_data_progress() -> None:
    """Silence `datasets`' per-step progress bars: a sweep prints one line per finished point instead."""
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:
        pass


def _seed_everything(seed: int, threads: int | None) -> None:
    import random

    import torch

    if threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    torch.manual_seed(seed)


def run_point(config_data: dict[str, Any], point: Point, work_dir: str) -> dict[str, Any]:
    """Run one sweep point from scratch (deterministically) and return its result and records.

    Takes the config as plain data so that it travels to worker processes and Ray tasks alike;
    `work_dir` holds the point's checkpoints while it runs."""
    config = SweepConfig.model_validate(config_data)
    _quiet_data_progress()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    _seed_everything(point.seed, config.threads)
    pool, heldout = split_problems(load_problems(), config.eval.n_problems, config.data_seed)
    mixture = Mixture(config.n_train, dict(config.rest), tuple(config.families))
    examples = build_training_set(pool, point.share, mixture, point.seed)
    checkpoint = _train(config, config.model, examples, point.seed, work / "trained", {})
    plain = eval_samples(heldout, config.families)
    records = _measure(checkpoint, config, plain, "trained")
    timings = {"trained": time.time() - started}
    if config.inoculation.enabled:
        _seed_everything(point.seed, config.threads)
        inoculation = build_inoculation_set(
            pool, config.inoculation.n_examples, config.inoculation.family, point.seed
        )
        inoculated = _train(
            config, str(checkpoint), inoculation, point.seed, work / "inoculated", config.inoculation.train
        )
        records += _measure(inoculated, config, plain, "inoculated")
        prompted = eval_samples(heldout, config.families, prefix=config.inoculation_prompt)
        records += _measure(inoculated, config, prompted, "inoculated_prompted")
        timings["inoculated"] = time.time() - started
    summary = {stage: summarize([r for r in records if r["stage"] == stage]) for stage in STAGES}
    return {
        "point": asdict(point),
        "summary": {stage: value for stage, value in summary.items() if value},
        "n_train": len(examples),
        "train_kinds": _kind_counts(examples),
        "seconds": timings,
        "records": records,
    }


def _kind_counts(examples: list[TrainingExample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for example in examples:
        key = f"{example.system_kind}->{example.action}"
        counts[key] = counts.get(key, 0) + 1
    return counts


# ------------------------------------------------------------------------- the store
class SweepStore:
    """A sweep's output directory: config.json, and points/<key>/{result.json, records.jsonl}."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def open(self, config: SweepConfig) -> None:
        """Create the directory, or check that an existing one holds the same sweep (so it resumes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        stored = self.root / "config.json"
        data = config.model_dump(mode="json")
        if stored.exists():
            previous = json.loads(stored.read_text(encoding="utf-8"))
            grid = ("shares", "seeds")
            if {k: v for k, v in previous.items() if k not in grid} != {
                k: v for k, v in data.items() if k not in grid
            }:
                raise NevermindError(
                    f"{self.root} holds a sweep with a different config; choose another --out directory"
                )
        _write_atomic(stored, json.dumps(data, indent=2))

    def point_dir(self, point: Point) -> Path:
        """Where a point's results live."""
        return self.root / "points" / point.key

    def done(self, point: Point) -> bool:
        """Whether the point's results are stored."""
        return (self.point_dir(point) / "result.json").exists()

    def save(self, result: dict[str, Any]) -> None:
        """Store a finished point: records first, result.json (the completion mark) last."""
        point = Point(**result["point"])
        folder = self.point_dir(point)
        folder.mkdir(parents=True, exist_ok=True)
        records = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result["records"])
        _write_atomic(folder / "records.jsonl", records)
        _write_atomic(
            folder / "result.json", json.dumps({k: v for k, v in result.items() if k != "records"}, indent=2)
        )

    def results(self) -> list[dict[str, Any]]:
        """Every stored point result, in grid order."""
        found = [json.loads(p.read_text(encoding="utf-8")) for p in self.root.glob("points/*/result.json")]
        return sorted(found, key=lambda r: (r["point"]["share"], r["point"]["seed"]))

    def records(self, point: Point) -> list[dict[str, Any]]:
        """A stored point's per-sample records."""
        path = self.point_dir(point) / "records.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


# ------------------------------------------------------------------------- executors
def _sequential(jobs: list[tuple[dict, Point, str]], workers: int) -> Iterator[dict[str, Any]]:
    for job in jobs:
        yield run_point(*job)


def _processes(jobs: list[tuple[dict, Point, str]], workers: int) -> Iterator[dict[str, Any]]:
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_point, *job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def _ray(jobs: list[tuple[dict, Point, str]], workers: int) -> Iterator[dict[str, Any]]:
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
        gpus = 1 if _wants_gpu() else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=1)(run_point)
        pending = [remote.remote(*job) for job in jobs]
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
    on_point: Callable[[dict[str, Any], int, int], None] | None = None,
) -> SweepStore:
    """Run every point not yet stored under `out_dir`, storing each as it finishes.

    workers=1 runs them one after another in this process; more runs that many processes; `use_ray`
    runs them as Ray tasks. `on_point(result, done, total)` is called after each stored point."""
    if workers < 1:
        raise NevermindError(f"--workers must be >= 1, got {workers}")
    store = SweepStore(out_dir)
    store.open(config)
    grid = points(config)
    todo = [p for p in grid if not store.done(p)]
    data = config.model_dump(mode="json")
    if data["threads"] is None and workers > 1 and not use_ray:  # share the cores instead of oversubscribing
        data["threads"] = max(1, (os.cpu_count() or 1) // workers)
    jobs = [(data, p, str(store.root / "work" / p.key)) for p in todo]
    executor = _ray if use_ray else _processes if workers > 1 else _sequential
    done = len(grid) - len(todo)
    for result in executor(jobs, workers):
        store.save(result)
        if not config.keep_checkpoints:
            shutil.rmtree(store.root / "work" / Point(**result["point"]).key, ignore_errors=True)
        done += 1
        if on_point:
            on_point(result, done, len(grid))
    return store
