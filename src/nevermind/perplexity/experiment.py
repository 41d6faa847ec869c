"""A context-scaling experiment in an output directory: perplexity measured with resume, its files
(JSON, CSV, PNG), and the buffer experiment with its HTML page. What `nevermind perplexity` calls;
usable from Python the same way.

    result, reused = measure_to_dir(PerplexityConfig(model="smollm2-135m-instruct"), Path("out/ppl"))
    points = buffer_to_dir(result, Path("out/ppl"), per_length=4)

Every finished (alpha, excerpt) measurement and every buffer sample is appended to a record file
(fsynced) as soon as it exists, so a killed run resumes without measuring it again; a directory
holding measurements of another setting is refused, never overwritten."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path

from nevermind.perplexity.buffer import BUFFER_TASKS, BufferPoint, points_to_dicts, run_buffer
from nevermind.perplexity.measure import PerplexityConfig, PerplexityResult, run_perplexity
from nevermind.perplexity.plot import plot_perplexity
from nevermind.progress import Progress
from nevermind.runs.files import file_lock, write_atomic
from nevermind.runs.records import RecordFile

RESULT_FILE = "perplexity.json"
"""The finished result (also what marks a perplexity directory for the report)."""
RECORDS_FILE = "perplexity.records.jsonl"
"""One record per (alpha, excerpt): the window NLLs with full and baseline context."""
CSV_FILE = "perplexity.csv"
PLOT_FILE = "perplexity.png"
BUFFER_RECORDS_FILE = "buffer.records.jsonl"
"""One record per buffer sample (task, alpha, length, id): its score and output."""
BUFFER_FILE = "buffer.json"
PAGE_FILE = "context-scaling.html"
LOCK_FILE = ".nevermind-perplexity.lock"


def default_output(config: PerplexityConfig) -> Path:
    """perplexity/<model>-<scaling>[-<N>pos]."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(config.model).name)
    restricted = f"-{config.max_positions}pos" if config.max_positions else ""
    return Path("perplexity") / f"{name}-{config.scaling}{restricted}"


def _lock(out: Path):
    return file_lock(out / LOCK_FILE, wait=False, busy_message=f"{out} is in use by another nevermind perplexity run")


def measure_to_dir(
    config: PerplexityConfig, out: Path, *, text: str | None = None, progress: Progress | None = None
) -> tuple[PerplexityResult, int]:
    """Measure into `out` (resuming from its records) and write the JSON, CSV and PNG there.
    Returns the result and how many of its measurements an earlier attempt had already made."""
    from nevermind.models import prepare_model

    prepare_model(config.model, config.backend, on_status=progress.status if progress else None)
    created = [d for d in (out, *out.parents) if not d.exists()]  # leaf first
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _lock(out):
            store = RecordFile(out / RECORDS_FILE, ("alpha", "excerpt"), what="perplexity measurement")
            store.repair()
            done = {(float(r["alpha"]), int(r["excerpt"])): r for r in store.read().values()}
            reused = sum(1 for alpha, e in done if alpha in config.alphas and e < config.samples)
            result = run_perplexity(config, text, done=done, on_record=lambda r: store.append([r]),
                                    progress=progress)  # fmt: skip
            write_result(result, out)
    except BaseException:
        if created and {p.name for p in out.iterdir()} <= {LOCK_FILE}:  # failed before measuring anything
            (out / LOCK_FILE).unlink(missing_ok=True)
            for directory in created:
                directory.rmdir()
        raise
    return result, reused


def write_result(result: PerplexityResult, out: Path) -> list[Path]:
    """perplexity.json, perplexity.csv and perplexity.png in `out`."""
    write_atomic(out / RESULT_FILE, json.dumps(result.to_dict(), indent=2) + "\n")
    rows = result.rows()
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / CSV_FILE, table.getvalue())
    return [out / RESULT_FILE, out / CSV_FILE, plot_perplexity(result, out / PLOT_FILE)]


def buffer_to_dir(
    result: PerplexityResult,
    out: Path,
    *,
    tasks: Sequence[str] = BUFFER_TASKS,
    per_length: int = 2,
    depths: Sequence[float] = (50.0,),
    lengths: Sequence[int] | None = None,
    alphas: Sequence[float] | None = None,
    progress: Progress | None = None,
) -> list[BufferPoint]:
    """Run the buffer experiment for `result` (resuming from `out`'s buffer records), write
    buffer.json and a standalone context-scaling.html page (the report's context-scaling section)."""
    from nevermind.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        store = RecordFile(out / BUFFER_RECORDS_FILE, ("task", "alpha", "length", "id"), what="buffer record")
        store.repair()
        done = {(r["task"], float(r["alpha"]), int(r["length"]), r["id"]): r for r in store.read().values()}
        points = run_buffer(result, tasks=tasks, per_length=per_length, depths=depths, lengths=lengths,
                            alphas=alphas, done=done, on_record=lambda r: store.append([r]),
                            progress=progress)  # fmt: skip
        write_atomic(out / BUFFER_FILE, json.dumps(points_to_dicts(points), indent=2) + "\n")
        write_report([out], out / PAGE_FILE, title=f"context scaling: {result.config.model}")
    return points
