"""The base install (`pip install -e .[dev]`, no extras) runs every `--help` and the main job, and a
command that needs an extra says which in one line. The extras are made unimportable for real
(base_install/sitecustomize.py hides them from every import finder), so a module-level import of
an optional package anywhere the CLI reaches fails these tests."""

import ast
import json
import os
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from nevermind.extras import EXTRAS, OPTIONAL_MODULES
from tests.cli_runner import run_cli

ROOT = Path(__file__).parents[2]
SRC = ROOT / "src" / "nevermind"
BLOCKED = sorted(OPTIONAL_MODULES | {"statsmodels"})
GUARDED_MODULES = {"nevermind.serve.app": "serve", "nevermind.models.vllm_backend": "vllm"}
"""Modules that are the extra's feature itself: imported only after `require` checked the extra."""


@pytest.fixture(scope="module")
def base_env():
    """The environment of a base install: every optional module unimportable."""
    paths = [str(Path(__file__).parent / "base_install"), str(ROOT / "src"), str(ROOT)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]),
            "NEVERMIND_BLOCK": ",".join(BLOCKED)}


def python(env, code):
    import subprocess

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False)


def assert_needs_extra(result, extra):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert f"pip install 'nevermind[{extra}]'" in lines[0]


def test_the_blocker_hides_extras_like_an_uninstall(base_env):
    """Positive control: under the blocker the optional packages really are missing."""
    result = python(base_env, "import importlib.util as u, sys\n"
                              "print(u.find_spec('fastapi'), u.find_spec('httpx'))\n"
                              "import trl")
    assert result.stdout.strip() == "None None"
    assert "ModuleNotFoundError: No module named 'trl'" in result.stderr


def test_every_help_works_without_extras(base_env):
    code = """
import json
from typer.main import get_command
from typer.testing import CliRunner
from nevermind.cli.app import app
command = get_command(app)
runner = CliRunner()
codes = {"": runner.invoke(app, ["--help"]).exit_code}
for name in command.commands:
    result = runner.invoke(app, [name, "--help"])
    codes[name] = result.exit_code if result.exception is None or result.exit_code == 0 else repr(result.exception)
print(json.dumps(codes))
"""
    result = python(base_env, code)
    assert result.returncode == 0, result.stderr
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(codes) >= 12 and {"eval", "report", "serve", "train", "winrate"} <= set(codes)
    assert all(code == 0 for code in codes.values()), codes
    real = run_cli("--help", env=base_env)  # and once as a user types it
    assert real.returncode == 0 and "eval" in real.stdout, real.stderr


def test_every_module_imports_without_extras(base_env):
    code = f"""
import importlib, json, pkgutil
import nevermind
guarded = {GUARDED_MODULES!r}
failed = {{}}
for info in pkgutil.walk_packages(nevermind.__path__, "nevermind."):
    if info.name.endswith(".__main__"):  # running it would start the CLI
        continue
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as error:
        if info.name not in guarded:
            failed[info.name] = str(error)
    else:
        if info.name in guarded:
            failed[info.name] = "imported although its extra is missing: is the blocker working?"
print(json.dumps(failed))
"""
    result = python(base_env, code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}


def test_no_module_level_import_of_an_optional_package():
    """Static twin of the test above: it also covers modules that only import cleanly by luck."""
    offenders = []
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        if module in GUARDED_MODULES:
            continue
        for node in ast.parse(path.read_text()).body:
            for inner in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
                names = []
                if isinstance(inner, ast.Import):
                    names = [alias.name for alias in inner.names]
                elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                    names = [inner.module]
                offenders += [f"{module}:{inner.lineno} {name}" for name in names
                              if name.partition(".")[0] in BLOCKED]
    assert offenders == []


def test_main_job_runs_without_extras(base_env, tiny_llama_dir, tmp_path):
    """README command 1's `eval` and `report` on a tiny model, with no extra installed."""
    out = tmp_path / "runs"
    result = run_cli("eval", "-m", tiny_llama_dir, "--tasks", "needle,override,moderation,jailbreak", "--limit", 2,
                     "--lengths", 100, "--depths", 50, "--max-new-tokens", 4, "--out", out, env=base_env)
    assert result.returncode == 0, result.stderr
    report = run_cli("report", out, "-o", tmp_path / "report.html", env=base_env)
    assert report.returncode == 0, report.stderr
    assert "needle" in (tmp_path / "report.html").read_text()
    outputs = tmp_path / "outputs.jsonl"  # a local judge needs no HTTP client (it used to need httpx)
    outputs.write_text(json.dumps({"instruction": "Say hi.", "output": "hi", "generator": "m"}) + "\n")
    winrate = run_cli("winrate", "--outputs", outputs, "--reference", outputs, "--judge", f"local:{tiny_llama_dir}",
                      "-o", tmp_path / "winrate", env=base_env)
    assert winrate.returncode == 0, winrate.stderr


def test_commands_that_need_an_extra_name_it(base_env, tiny_llama_dir, tmp_path):
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"instruction": "Say hi.", "output": "hi", "generator": "m"}) + "\n")
    dead = "http://127.0.0.1:9/v1#m"
    cases = {
        "serve": (["serve", "-m", tiny_llama_dir], "serve"),
        "train": (["train", "-m", tiny_llama_dir, "--max-steps", 1, "-o", tmp_path / "ckpt"], "train"),
        "sweep": (["sweep", ROOT / "configs" / "sweep-mini.yaml", "--out", tmp_path / "sweep"], "train"),
        "experiment": (["experiment", ROOT / "configs" / "experiment-mini.yaml", "-o", tmp_path / "exp"], "train"),
        "generate from an endpoint": (["generate", "-m", dead, "hi"], "serve"),
        "winrate with an API judge": (["winrate", "--outputs", outputs, "--reference", outputs, "--judge",
                                       f"openai:{dead}", "-o", tmp_path / "wr"], "serve"),
        "generate-outputs from an endpoint": (["generate-outputs", "-m", dead, "--instructions", outputs,
                                               "-o", tmp_path / "o.jsonl"], "serve"),
    }
    for name, (args, extra) in cases.items():
        result = run_cli(*args, env=base_env)
        assert_needs_extra(result, extra), name
    assert not any((tmp_path / name).exists() for name in ("ckpt", "sweep", "exp"))


def test_extras_table_matches_pyproject():
    """`nevermind.extras.EXTRAS` names the import modules of every optional extra in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["optional-dependencies"]
    assert set(declared) - {"dev", "bundled"} == set(EXTRAS)

    def requirement_name(requirement: str) -> str:
        name = requirement.split(";")[0].split("[")[0]
        for mark in "<>=!~ ":
            name = name.split(mark)[0]
        return name.strip().lower().replace("_", "-")

    base = {requirement_name(r) for r in project["dependencies"]}  # an extra may narrow a base pin
    by_distribution = {}
    for module, distributions in packages_distributions().items():
        for distribution in distributions:
            by_distribution.setdefault(distribution.lower().replace("_", "-"), set()).add(module)
    aliases = {"llama-cpp-python": {"llama_cpp"}}
    for extra, requirements in declared.items():
        if extra in ("dev", "bundled"):
            continue
        for requirement in requirements:
            name = requirement_name(requirement)
            if name in base:
                continue
            modules = by_distribution.get(name) or aliases.get(name) or {name.replace("-", "_")}
            assert modules & set(EXTRAS[extra]), f"{requirement} (extra {extra}) provides {modules}"
