"""Runs: a typed eval config, one directory per model run (config, samples, summary), an SQLite
index across runs, and the runner that fills them and resumes after a crash.

The runner (`nevermind.runs.runner`: `run_eval`, `run_model`) imports the tasks and is not
re-exported here, so reading configs and run directories stays light."""

from nevermind.runs.config import SUITE, EvalConfig, RunSpec, SuiteOptions, resolve_config, split_list
from nevermind.runs.index import INDEX_FILE, IndexedRun, RunIndex
from nevermind.runs.store import RunDir, SampleRecord
from nevermind.runs.summary import aggregate, summarize

__all__ = [
    "INDEX_FILE",
    "SUITE",
    "EvalConfig",
    "IndexedRun",
    "RunDir",
    "RunIndex",
    "RunSpec",
    "SampleRecord",
    "SuiteOptions",
    "aggregate",
    "resolve_config",
    "split_list",
    "summarize",
]
