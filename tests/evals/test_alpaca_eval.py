"""AlpacaEval's 805 instructions, read from the alpaca-eval source archive in the cache."""

import io
import tarfile

import pytest

from nevermind.data import MissingCarrierError
from nevermind.data.alpaca_eval import (
    ARCHIVE_NAME,
    COUNT,
    MEMBER,
    install_command,
    load_instructions,
    sdist_dir,
)
from nevermind.errors import NevermindError


def test_805_instructions_from_the_archive():
    if not (sdist_dir() / "alpaca_eval-0.6.6.tar.gz").exists():
        pytest.skip(f"archive not fetched: {install_command()}")
    items = load_instructions()
    assert len(items) == COUNT == 805
    assert items[0].instruction.startswith(
        "What are the names of some famous actors that started their careers on Broadway?"
    )
    assert {i.dataset for i in items} == {"helpful_base", "koala", "oasst", "selfinstruct", "vicuna"}
    assert len(load_instructions(10)) == 10


def test_missing_archive_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("NEVERMIND_CACHE", str(tmp_path))
    with pytest.raises(
        MissingCarrierError, match="pip download --no-binary :all: --no-deps alpaca-eval==0.6.6"
    ):
        load_instructions()


def test_a_tampered_archive_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("NEVERMIND_CACHE", str(tmp_path))
    sdist_dir().mkdir(parents=True)
    payload = b'[{"instruction": "x", "output": "y", "dataset": "d"}]'
    with tarfile.open(sdist_dir() / ARCHIVE_NAME, "w:gz") as tar:
        info = tarfile.TarInfo(MEMBER)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(NevermindError, match="checksum differs"):
        load_instructions()
