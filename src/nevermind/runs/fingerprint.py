"""A fingerprint of a model's weights on disk, so a run id changes when the weights at a path do
(a checkpoint retrained into the same directory must not reuse the old model's samples).

Fast rather than a full hash of gigabytes: for each file at the top of a model directory (or the
one GGUF file), its name, size and modification time, and a hash of its first and last MiB.
Retraining rewrites the files (new mtime, new tensor bytes at both ends); copying a checkpoint
elsewhere without keeping times gives a new fingerprint too, which costs a rerun, never a stale
result."""

from __future__ import annotations

import hashlib
from pathlib import Path

EDGE = 1 << 20
"""Bytes hashed at each end of every file."""


def weights_fingerprint(model: str) -> str | None:
    """The fingerprint of a local model directory or GGUF file; None for a bundled name, a hub id or
    an endpoint (their weights are pinned by a package version, a hub revision or the server)."""
    if model.startswith(("http://", "https://")):
        return None
    path = Path(model).expanduser()
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(child for child in path.iterdir() if child.is_file() and not child.name.startswith("."))
    else:
        return None
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        with open(file, "rb") as handle:
            digest.update(handle.read(EDGE))
            if stat.st_size > 2 * EDGE:
                handle.seek(-EDGE, 2)
                digest.update(handle.read(EDGE))
            elif stat.st_size > EDGE:
                digest.update(handle.read())
    return digest.hexdigest()[:16]
