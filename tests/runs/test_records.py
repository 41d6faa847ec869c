"""The shared record file and file primitives: keyed reads, torn lines, bad lines named, locks."""

from __future__ import annotations

import pytest

from nevermind.config import load_config, read_yaml
from nevermind.errors import NevermindError
from nevermind.runs.files import file_lock, read_text, write_atomic
from nevermind.runs.records import RecordFile


def test_a_repeated_key_is_read_once_and_counted(tmp_path):
    records = RecordFile(tmp_path / "r.jsonl", ("task", "id"))
    records.append([{"task": "t", "id": "1", "v": 1}, {"task": "t", "id": "2", "v": 2}])
    records.append([{"task": "t", "id": "1", "v": 99}])
    read = records.read()
    assert list(read) == [("t", "1"), ("t", "2")]
    assert read[("t", "1")]["v"] == 1  # the first finished record wins
    assert records.duplicates() == 1


def test_torn_last_line_is_ignored_then_cut(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"k": 1}\n{"k": 2')
    records = RecordFile(path, ("k",))
    assert list(records.read()) == [(1,)]
    assert records.repair() == len(b'{"k": 2')
    assert path.read_bytes() == b'{"k": 1}\n'


@pytest.mark.parametrize(
    ("line", "problem"),
    [(b"[1, 2]", "not an object"), (b"{nope", "not JSON"), (b'{"other": 1}', "without k"), (b"\xff\xfe", "UTF-8")],
)
def test_a_complete_bad_line_is_an_error_naming_file_and_line(tmp_path, line, problem):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"k": 1}\n' + line + b"\n")
    with pytest.raises(NevermindError, match=rf"r\.jsonl:2: .*{problem}"):
        RecordFile(path, ("k",)).read()


def test_write_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "a.json"
    write_atomic(path, "one")
    write_atomic(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_read_text_names_non_utf8_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"a: 1\nb: \xe9t\xe9\n")
    with pytest.raises(NevermindError, match=r"c\.yaml:2: not UTF-8"):
        read_text(path)
    with pytest.raises(NevermindError, match=r"c\.yaml:2: not UTF-8"):
        read_yaml(path)


def test_file_lock_without_waiting_refuses_a_held_lock(tmp_path):
    import multiprocessing

    lock = tmp_path / ".lock"
    ready, release = multiprocessing.Event(), multiprocessing.Event()

    def hold() -> None:
        with file_lock(lock):
            ready.set()
            release.wait(10)

    holder = multiprocessing.get_context("fork").Process(target=hold)
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(NevermindError, match="busy"), file_lock(lock, wait=False, busy_message="busy"):
            pass
    finally:
        release.set()
        holder.join()
    with file_lock(lock, wait=False):  # free again once the holder is gone
        pass


def test_load_config_names_file_line_and_flag(tmp_path):
    from pydantic import BaseModel, ConfigDict

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        steps: int = 1
        name: str = "x"

    path = tmp_path / "o.yaml"
    path.write_text("name: a\nsteps: many\n")
    with pytest.raises(NevermindError, match=r"o\.yaml:2: steps: .*'many'"):
        load_config(Options, path)
    with pytest.raises(NevermindError, match=r"^--steps: .*'lots'"):
        load_config(Options, None, {"steps": "lots"})
    assert load_config(Options, path, {"steps": 3}).steps == 3


def test_repair_never_cuts_a_file_that_is_not_records(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my own notes\nwithout a final newline")
    with pytest.raises(NevermindError, match="not touching it"):
        RecordFile(path, ("k",)).repair()
    assert path.read_bytes() == b"my own notes\nwithout a final newline"
