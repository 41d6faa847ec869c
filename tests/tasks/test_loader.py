import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from nevermind.errors import NevermindError
from nevermind.tasks import TASKS, TaskOptions, available_tasks, build_task, loader

USER_TASK = '''
"""A user's task in one file."""
from nevermind.models.requests import GenerationConfig
from nevermind.tasks import Sample, SampleScore, TaskOptions, register_task


@register_task("{name}")
class Capitals:
    name = "{name}"
    generation = GenerationConfig(max_new_tokens=8)

    def __init__(self, options: TaskOptions):
        self.options = options

    def samples(self):
        return [Sample(id=f"q{{i}}", messages=[{{"role": "user", "content": "Capital of Peru?"}}],
                       target={{"answer": "Lima"}}) for i in range(5)][: self.options.limit]

    def score(self, sample, output):
        ok = sample.target["answer"].lower() in output.lower()
        return SampleScore(value=float(ok), explanation="found" if ok else "missing")
'''


@pytest.fixture
def user_task_file(tmp_path):
    path = tmp_path / "my_tasks.py"
    path.write_text(USER_TASK.format(name="user_capitals"))
    yield path
    TASKS.pop("user_capitals", None)


def test_builtin_tasks_are_registered():
    assert {"needle", "override", "moderation", "jailbreak"} <= set(available_tasks())


def test_user_task_file_is_loaded_and_built(user_task_file):
    task = build_task(f"{user_task_file}:user_capitals", TaskOptions(limit=3))
    assert task.name == "user_capitals"
    assert [s.id for s in task.samples()] == ["q0", "q1", "q2"]
    assert task.score(task.samples()[0], "It is Lima.").value == 1.0
    assert task.score(task.samples()[0], "It is Cusco.").value == 0.0
    assert "user_capitals" in available_tasks()


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(
        NevermindError, match="unknown task 'needel'.*jailbreak, moderation, needle, override"
    ):
        build_task("needel", TaskOptions())


@pytest.mark.parametrize(
    ("content", "spec", "message"),
    [
        (None, "missing.py:x", "does not exist"),
        ("def broken(:\n", "bad.py:x", "failed to load: SyntaxError"),
        ("raise RuntimeError('no data')\n", "bad.py:x", "failed to load: RuntimeError: no data"),
        ("x = 1\n", "bad.py:x", "registers no task 'x'"),
    ],
)
def test_bad_task_files_give_one_line_errors(tmp_path, content, spec, message):
    if content is not None:
        (tmp_path / "bad.py").write_text(content)
    with pytest.raises(NevermindError, match=message) as error:
        build_task(str(tmp_path / spec), TaskOptions())
    assert "\n" not in str(error.value)


def test_a_factory_must_build_a_task(tmp_path):
    (tmp_path / "not_a_task.py").write_text(
        "from nevermind.tasks import register_task\nregister_task('not_a_task')(lambda: object())\n"
    )
    try:
        with pytest.raises(NevermindError, match="does not build a Task"):
            build_task(f"{tmp_path / 'not_a_task.py'}:not_a_task")
    finally:
        TASKS.pop("not_a_task", None)


def test_entry_point_plugins(tmp_path, monkeypatch):
    (tmp_path / "plugin_tasks.py").write_text(
        textwrap.dedent(USER_TASK.format(name="plugin_capitals")).replace(
            '@register_task("plugin_capitals")', ""
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = EntryPoint(name="plugin_capitals", value="plugin_tasks:Capitals", group=loader.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        loader, "entry_points", lambda group: [plugin] if group == loader.ENTRY_POINT_GROUP else []
    )
    try:
        assert "plugin_capitals" in available_tasks()
        assert len(build_task("plugin_capitals", TaskOptions()).samples()) == 5
    finally:
        TASKS.pop("plugin_capitals", None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"lengths": [100, -5]},
        {"lengths": ["1k"]},
        {"lengths": [2.5]},
        {"depths": ["half"]},
        {"lengths": []},
        {"depths": [50, 120]},
        {"depths": [-1]},
    ],
)
def test_bad_options_are_user_errors(kwargs):
    with pytest.raises(NevermindError):
        TaskOptions(**kwargs)


def test_options_defaults_and_coercion():
    options = TaskOptions(lengths=["100", 250.0], depths=[0, "50"])
    assert options.lengths == [100, 250] and options.depths == [0.0, 50.0]
    assert TaskOptions().lengths == [100, 250, 500, 1000, 2000, 4096]


def test_the_documented_example_task_runs(tmp_path):
    docs = (Path(__file__).parents[2] / "docs" / "tasks.md").read_text()
    example = docs.split("# my_tasks.py\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my_tasks.py").write_text(example)
    try:
        task = build_task(f"{tmp_path / 'my_tasks.py'}:capital_quiz", TaskOptions())
        sample = task.samples()[0]
        assert task.score(sample, "Lima is the capital.").value == 1.0
        assert task.score(sample, "Cusco.").value == 0.0
    finally:
        TASKS.pop("capital_quiz", None)
