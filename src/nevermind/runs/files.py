"""File primitives every store uses: fsynced atomic writes, UTF-8 reads that fail in one line,
and inter-process locks (filelock)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nevermind.errors import NevermindError


def write_atomic(path: str | Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never half of it, and the new
    content survives a power cut once this returns (file and directory entry fsynced)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def decode_utf8(data: bytes, path: str | Path) -> str:
    """`data` as UTF-8 text; invalid bytes raise a NevermindError naming the file and line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise NevermindError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x}); save the file as UTF-8"
        ) from None


def read_text(path: str | Path, what: str = "file") -> str:
    """A text file's content; a missing, unreadable or non-UTF-8 file is one NevermindError line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NevermindError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise NevermindError(f"{path}: is a directory, expected a {what}") from None
    except OSError as error:
        raise NevermindError(f"{path}: cannot read {what} ({error.strerror or error})") from None
    return decode_utf8(data, path)


@contextmanager
def file_lock(path: str | Path, *, wait: bool = True, busy_message: str | None = None) -> Iterator[None]:
    """An exclusive inter-process lock held for the block (released even if the holder is killed).

    With `wait=False` a lock held elsewhere raises NevermindError(`busy_message`) at once."""
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except Timeout:
        raise NevermindError(busy_message or f"{path} is locked by another nevermind process") from None
    try:
        yield
    finally:
        lock.release()
