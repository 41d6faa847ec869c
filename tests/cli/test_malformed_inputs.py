"""A table of malformed inputs and environments fed through the CLI's entry point: each must end
with exit code 2 and one line `error: ...` on stderr, never a traceback.

The cases run in one Python process (one import of torch and transformers instead of sixty), each
through `nevermind.cli.app.main` exactly as the console script calls it. Almost all of them fail
before a model loads; that is part of what is tested."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nevermind.runs.config import RunSpec
from nevermind.runs.store import RunDir

PROBE_FILE = Path(__file__).parents[1] / "runs" / "probe_tasks.py"
MODEL = "smollm2-135m-instruct"

HARNESS = r"""
import contextlib, io, json, sys, traceback
from nevermind.cli.app import main
results = []
for argv in json.load(sys.stdin):
    err, out = io.StringIO(), io.StringIO()
    code, crash = None, ""
    sys.argv = ["nevermind", *argv]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as done:
            code = done.code
        except BaseException:
            crash = traceback.format_exc()
    results.append({"code": code, "stderr": err.getvalue(), "crash": crash})
print(json.dumps(results))
"""


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def run_dir(root, name, **files):
    """A run directory as nevermind writes it, then damaged by `files` (name → content)."""
    run = RunDir.create(root / name, RunSpec(model="m", tasks=["probe"]))
    for file, content in files.items():
        write(run.path / file.replace("_", "."), content)
    return run.path


def build_cases(tmp: Path, tiny_llama_dir: Path) -> dict[str, list]:
    bad_utf8 = b"models: [caf\xe9]\n"
    cfg = {
        "nonutf8": write(tmp / "nonutf8.yaml", bad_utf8),
        "malformed": write(tmp / "malformed.yaml", "models: [a\ntasks: needle\n  limit: 3\n"),
        "list": write(tmp / "list.yaml", "- a\n- b\n"),
        "unknown": write(tmp / "unknown.yaml", "models: [a]\nbogus: 1\n"),
        "negative": write(tmp / "negative.yaml", f"models: [{MODEL}]\nlimit: -3\n"),
        "binary": write(tmp / "binary.yaml", b"\x00\x01\x02\xff\xfe"),
    }
    tasks = {
        "broken": write(tmp / "broken_tasks.py", "def oops(:\n"),
        "nonutf8": write(tmp / "nonutf8_tasks.py", b"# caf\xe9\nx = 1\n"),
    }
    no_tokenizer = tmp / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((tiny_llama_dir / name).read_bytes())
    no_config = tmp / "no-config"
    no_config.mkdir()
    gguf = write(tmp / "broken.gguf", b"GGUF" + b"\0" * 64)
    jsonl = {
        "nonutf8": write(tmp / "nonutf8.jsonl", b'{"instruction": "caf\xe9", "output": "x"}\n'),
        "array": write(tmp / "array.jsonl", "[1, 2]\n"),
        "notjson": write(tmp / "notjson.jsonl", '{"instruction": "a", "output": \n'),
        "empty": write(tmp / "empty.jsonl", ""),
        "samples": write(tmp / "samples.jsonl", json.dumps({"task": "t", "id": "1", "output": "x"}) + "\n"),
        "noinstr": write(tmp / "noinstr.jsonl", json.dumps({"prompt": "x"}) + "\n"),
        "good": write(tmp / "good.jsonl", json.dumps({"instruction": "a", "output": "b", "generator": "g"}) + "\n"),
    }
    runs = tmp / "runs"
    reports = {
        "garbage run.json": run_dir(runs, "a", run_json="{{{ not json"),
        "run.json not an object": run_dir(runs, "b", run_json="[1, 2, 3]"),
        "sample line not an object": run_dir(runs, "c", samples_jsonl='["a", "b"]\n'),
        "non-UTF-8 sample line": run_dir(runs, "d", samples_jsonl=b'{"task": "probe", "id": "caf\xe9"}\n'),
        "garbage config.yaml": run_dir(runs, "e", config_yaml="model: [unclosed\n"),
        "config.yaml of another tool": run_dir(runs, "f", config_yaml="learning_rate: 3\n"),
        "non-UTF-8 run.json": run_dir(runs, "g", run_json=b'{"status": "caf\xe9"}'),
        "sample record missing id": run_dir(runs, "h", samples_jsonl='{"task": "probe"}\n'),
    }
    empty_out = tmp / "empty-out"
    empty_out.mkdir()
    write(empty_out / "index.sqlite", b"")
    E = ["eval", "-m", MODEL, "--out", tmp / "never"]
    G = ["generate", "-m", MODEL]
    cases = {
        # eval: config files
        "eval: config not UTF-8": ["eval", "--config", cfg["nonutf8"]],
        "eval: config binary": ["eval", "--config", cfg["binary"]],
        "eval: malformed YAML": ["eval", "--config", cfg["malformed"]],
        "eval: config is a list": ["eval", "--config", cfg["list"]],
        "eval: unknown config key": ["eval", "--config", cfg["unknown"]],
        "eval: negative limit in config": ["eval", "--config", cfg["negative"]],
        "eval: missing config": ["eval", "--config", tmp / "nope.yaml"],
        "eval: config is a directory": ["eval", "--config", tmp],
        # eval: flags
        "eval: no model": ["eval", "--tasks", "needle"],
        "eval: unknown task": [*E, "--tasks", "needle,nedle"],
        "eval: task listed twice": [*E, "--tasks", "needle,needle"],
        "eval: missing task file": [*E, "--tasks", f"{tmp / 'gone.py'}:probe"],
        "eval: task file with a syntax error": [*E, "--tasks", f"{tasks['broken']}:probe"],
        "eval: task file not UTF-8": [*E, "--tasks", f"{tasks['nonutf8']}:probe"],
        "eval: task file without that task": [*E, "--tasks", f"{PROBE_FILE}:nope"],
        "eval: limit 0": [*E, "--limit", "0"],
        "eval: limit not a number": [*E, "--limit", "abc"],
        "eval: batch size 0": [*E, "--batch-size", "0"],
        "eval: length not a number": [*E, "--lengths", "100,2fifty"],
        "eval: depth over 100": [*E, "--depths", "150"],
        "eval: --device bogus": [*E, "--device", "bogus"],
        "eval: --device cuda without CUDA": [*E, "--device", "cuda"],
        "eval: unknown adapter": [*E, "--adapters", "nosuch"],
        "eval: bad adapter option": [*E, "--adapters", "rules:nope=1"],
        "eval: empty --out": ["eval", "-m", MODEL, "--out", ""],
        "eval: unknown model": ["eval", "-m", "not-a-model", "--out", tmp / "never"],
        "eval: model dir without tokenizer": ["eval", "-m", no_tokenizer, "--out", tmp / "never"],
        "eval: model dir without config": ["eval", "-m", no_config, "--out", tmp / "never"],
        "eval: corrupt GGUF": ["eval", "-m", gguf, "--out", tmp / "never"],
        "eval: unknown flag": ["eval", "--bogus-flag"],
        # report: damaged run directories
        **{f"report: {name}": ["report", path, "-o", tmp / "r.html"] for name, path in reports.items()},
        "report: missing directory": ["report", tmp / "nope", "-o", tmp / "r.html"],
        "report: a plain file": ["report", cfg["list"], "-o", tmp / "r.html"],
        "report: output dir without runs": ["report", empty_out, "-o", tmp / "r.html"],
        # generate
        "generate: empty raw prompt": [*G, "--no-chat", ""],
        "generate: empty stop string": [*G, "--stop", "", "hi"],
        "generate: prompt not UTF-8": [*G, "caf\udce9"],
        "generate: --device bogus": [*G, "--device", "bogus", "hi"],
        "generate: --device cuda without CUDA": [*G, "--device", "cuda", "hi"],
        "generate: unknown adapter": [*G, "--adapter", "nosuch", "hi"],
        "generate: bad rope": [*G, "--rope", "bad:x", "hi"],
        "generate: negative temperature": [*G, "--temperature", "-1", "hi"],
        "generate: no model": ["generate", "hi"],
        # outputs, pairs, instructions
        "generate-outputs: -o is a samples file": ["generate-outputs", "-m", MODEL, "--instructions", jsonl["good"],
                                                   "-o", jsonl["samples"]],
        "generate-outputs: instructions not UTF-8": ["generate-outputs", "-m", MODEL, "--instructions",
                                                     jsonl["nonutf8"], "-o", tmp / "o.jsonl"],
        "generate-outputs: instruction line is an array": ["generate-outputs", "-m", MODEL, "--instructions",
                                                           jsonl["array"], "-o", tmp / "o.jsonl"],
        "generate-outputs: no instruction field": ["generate-outputs", "-m", MODEL, "--instructions",
                                                   jsonl["noinstr"], "-o", tmp / "o.jsonl"],
        "winrate: outputs not UTF-8": ["winrate", "--outputs", jsonl["nonutf8"], "--reference", jsonl["good"],
                                       "--judge", "local:x"],
        "winrate: outputs empty": ["winrate", "--outputs", jsonl["empty"], "--reference", jsonl["good"],
                                   "--judge", "local:x"],
        "winrate: outputs line not JSON": ["winrate", "--outputs", jsonl["notjson"], "--reference", jsonl["good"],
                                           "--judge", "local:x"],
        "winrate: unknown judge kind": ["winrate", "--outputs", jsonl["good"], "--reference", jsonl["good"],
                                        "--judge", "bogus:x", "-o", tmp / "wr"],
        "rank: pairs not UTF-8": ["rank", "-m", MODEL, "--pairs", jsonl["nonutf8"]],
        "rank: pairs line is an array": ["rank", "-m", MODEL, "--pairs", jsonl["array"]],
        # other commands' inputs
        "train: config not UTF-8": ["train", "--config", cfg["nonutf8"]],
        "train: malformed YAML": ["train", "--config", cfg["malformed"]],
        "train: unknown preset": ["train", "--preset", "nope"],
        "perplexity: alphas not numbers": ["perplexity", "-m", MODEL, "--alphas", "x"],
        "train: unknown config key": ["train", "--config", cfg["unknown"]],
        "serve: port out of range": ["serve", "-m", MODEL, "--port", "99999"],
        "unknown command": ["evl"],
    }
    return {name: [str(arg) for arg in argv] for name, argv in cases.items()}


@pytest.fixture(scope="module")
def outcomes(tiny_llama_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("malformed")
    cases = build_cases(tmp, tiny_llama_dir)
    done = subprocess.run([sys.executable, "-c", HARNESS], input=json.dumps(list(cases.values())), capture_output=True, text=True, timeout=900, check=False,
                          errors="surrogateescape")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return dict(zip(cases, results)), tmp


def test_there_are_at_least_forty_cases(outcomes):
    assert len(outcomes[0]) >= 40


def test_every_malformed_input_is_one_line_and_exit_2(outcomes):
    results, tmp = outcomes
    bad = {}
    for name, result in results.items():
        lines = result["stderr"].strip().splitlines()
        if result["crash"] or result["code"] != 2 or len(lines) != 1 or not lines[0].startswith("error: ") \
                or "Traceback" in result["stderr"]:
            bad[name] = result["crash"][-600:] or result
    assert bad == {}
    assert not (tmp / "never").exists()  # every eval case failed before making its output directory
