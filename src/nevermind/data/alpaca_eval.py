"""AlpacaEval's 805 evaluation instructions, read from the `alpaca-eval` source archive.

The PyPI wheel of alpaca-eval 0.6.6 does not carry them; its source archive does
(`example/outputs.json`, with a reference output per instruction). The archive is fetched
once by pip into nevermind's cache and read in place: nothing is downloaded at run time."""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from nevermind.data import MissingCarrierError
from nevermind.errors import NevermindError
from nevermind.models.registry import cache_root

VERSION = "0.6.6"
"""The pinned alpaca-eval release whose source archive carries the instructions."""
ARCHIVE_NAME = f"alpaca_eval-{VERSION}.tar.gz"
"""File name pip gives the source archive."""
MEMBER = f"alpaca_eval-{VERSION}/example/outputs.json"
"""Path of the instructions inside the archive."""
OUTPUTS_SHA256 = "4337273753e16055c9c9a2c3c917a43de8b7a50d538f2c0a6200d21ff711eed5"
"""sha256 of `example/outputs.json` in the pinned release (805 records)."""
COUNT = 805
"""Number of AlpacaEval instructions."""


def sdist_dir() -> Path:
    """Where the source archive is looked for: <nevermind cache>/sdists."""
    return cache_root() / "sdists"


def install_command() -> str:
    """The one command that puts the source archive where nevermind reads it."""
    return f"pip download --no-binary :all: --no-deps alpaca-eval=={VERSION} -d {sdist_dir()}"


@dataclass(frozen=True)
class EvalInstruction:
    """One AlpacaEval instruction with the example output the archive ships for it."""

    instruction: str
    """The instruction text (single user turn)."""
    dataset: str
    """The source subset (helpful_base, koala, oasst, selfinstruct, vicuna)."""
    example_output: str
    """The archive's example response (used for response ranking, never as a judged reference)."""


def load_instructions(limit: int | None = None) -> list[EvalInstruction]:
    """The AlpacaEval instructions in archive order (the first `limit` when given)."""
    archive = sdist_dir() / ARCHIVE_NAME
    if not archive.is_file():
        raise MissingCarrierError(
            f"AlpacaEval instructions need the alpaca-eval source archive: run `{install_command()}`"
        )
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(MEMBER)
            raw = member.read() if member else b""
    except (tarfile.TarError, KeyError, OSError) as error:
        raise NevermindError(
            f"cannot read {MEMBER} from {archive}: {error}; re-run `{install_command()}`"
        ) from None
    if hashlib.sha256(raw).hexdigest() != OUTPUTS_SHA256:
        raise NevermindError(
            f"{archive} does not hold the expected {MEMBER} (checksum differs); re-run `{install_command()}`"
        )
    records = json.loads(raw)
    items = [EvalInstruction(r["instruction"], r["dataset"], r["output"]) for r in records]
    return items if limit is None else items[:limit]
