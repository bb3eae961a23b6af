"""Files that appear whole or not at all, and survive a power cut once written."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_output(path: Path, suffix: str = "", mode: int = 0o600) -> Iterator[BinaryIO]:
    """Write to a temporary file beside `path`, then fsync, rename over `path` (a symlink
    there is replaced, not followed) and fsync the folder; if writing fails, `path` keeps
    what it had."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=suffix)
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as output:
            yield output
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)  # the rename itself must be durable
    finally:
        os.close(directory)


class OutputExists(FileExistsError):
    pass


@contextlib.contextmanager
def new_file_output(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Like atomic_output, but `path` must not exist, then or when the file is put in
    place (a hard link, which never replaces anything): raises OutputExists rather than
    overwrite, FileNotFoundError when the folder is missing. Nothing is left behind when
    writing fails."""
    if path.exists() or path.is_symlink():
        raise OutputExists(f"{path} exists")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".part")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as output:
            yield output
            output.flush()
            os.fsync(output.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise OutputExists(f"{path} exists") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
