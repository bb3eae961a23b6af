"""Files that appear whole or not at all, and survive a power cut once written."""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterator

# A new_file_output temporary unchanged this long was left by a writer that died.
STALE_PART_S = 30 * 60
TEMPORARY_CHARACTERS = r"[a-z0-9_]{8}"  # the random part tempfile.mkstemp puts in a name


@contextlib.contextmanager
def atomic_output(path: Path, suffix: str = "", mode: int = 0o600,
                  owner: tuple[int, int] | None = None) -> Iterator[BinaryIO]:
    """Write to a temporary file beside `path`, then fsync, rename over `path` (a symlink
    there is replaced, not followed) and fsync the folder; if writing fails, `path` keeps
    what it had. `owner` (uid, gid): given to the new file before it takes the name, so
    nothing is ever changed through the name (chown only where it differs: a process
    other than root may not chown at all)."""
    with _temporary_beside(path, suffix, mode) as (output, temporary):
        try:
            if owner is not None and os.fstat(output.fileno())[4:6] != tuple(owner):
                os.fchown(output.fileno(), *owner)
            yield output
            _synced(output)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
    fsync_path(path.parent)  # the rename itself must be durable


class OutputExists(FileExistsError):
    pass


@contextlib.contextmanager
def new_file_output(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Like atomic_output, but `path` must not exist, then or when the file is put in
    place (a hard link, which never replaces anything): raises OutputExists rather than
    overwrite, FileNotFoundError when the folder is missing. Nothing is left behind when
    writing fails, nor when the folder cannot be synced once the file is linked."""
    if path.exists() or path.is_symlink():
        raise OutputExists(f"{path} exists")
    remove_stale_parts(path)
    with _temporary_beside(path, ".part", mode) as (output, temporary):
        try:
            # Held until closed, even while this process is stopped: remove_stale_parts
            # leaves a locked part alone. The kernel lets go of it when the writer dies.
            fcntl.flock(output.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield output
            _synced(output)
            written = os.fstat(output.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise OutputExists(f"{path} exists") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    try:
        fsync_path(path.parent)
    except BaseException:
        # Not in place for sure (a power cut may lose the name): the caller says it failed
        # (an export is recorded "export-failed"), so the name is taken back, if still ours.
        with contextlib.suppress(OSError):
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) == (written.st_dev, written.st_ino):
                os.unlink(path)
        raise


def remove_stale_parts(path: Path, stale_s: float = STALE_PART_S) -> list[Path]:
    """Remove what a writer of `path` killed midway (SIGKILL, a power cut) left beside it:
    the hidden files new_file_output writes to, named exactly as _temporary_beside names
    them, that are regular files of this user, unchanged for `stale_s`, and locked by no
    one (a live writer holds a lock on its own, even while stopped; another user's are
    theirs, in a shared folder). Returns those removed."""
    pattern = re.compile(re.escape(f".{path.name}.") + TEMPORARY_CHARACTERS + r"\.part")
    removed = []
    with contextlib.suppress(OSError), os.scandir(path.parent) as listing:
        for entry in listing:
            with contextlib.suppress(OSError):
                if pattern.fullmatch(entry.name) and _is_stale_part(entry, stale_s):
                    removed.append(Path(entry.path))
    return removed


def _is_stale_part(entry: os.DirEntry, stale_s: float) -> bool:
    """Whether `entry` is one of this user's regular files, unchanged for `stale_s` and
    unlocked; if so it is removed, under the lock taken to check, so that no writer can
    take it meanwhile. Raises OSError."""
    listed = entry.stat(follow_symlinks=False)
    if not stat.S_ISREG(listed.st_mode) or listed.st_uid != os.geteuid() \
            or time.time() - listed.st_mtime <= stale_s:
        return False
    descriptor = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if os.fstat(descriptor).st_ino != listed.st_ino:
            return False  # replaced since it was listed
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live (perhaps stopped) writer's
        os.unlink(entry.path)
        return True
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _temporary_beside(path: Path, suffix: str, mode: int) -> Iterator[tuple[BinaryIO, str]]:
    """A new hidden file in `path`'s folder, open for writing: (file, its path); closed
    on leaving. The caller puts it in place or removes it."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=suffix)
    try:
        os.fchmod(descriptor, mode)
    except BaseException:
        os.close(descriptor)
        os.unlink(temporary)
        raise
    with os.fdopen(descriptor, "wb") as output:
        yield output, temporary


def _synced(output: BinaryIO) -> None:
    output.flush()
    os.fsync(output.fileno())


def fsync_files_of(directory: Path, skip: tuple[str, ...] = ()) -> None:
    """fsync(2) every regular file in `directory` (but those named in `skip`) and in its
    subdirectories (not followed through symlinks), then each directory itself: what a
    writer that did not sync (Xapian's DB_NO_SYNC, its compact) left there, made durable.
    Raises OSError."""
    directory = Path(directory)
    for path in directory.iterdir():
        if path.is_dir() and not path.is_symlink():
            fsync_files_of(path)
        elif path.is_file() and path.name not in skip:
            fsync_path(path)
    fsync_path(directory)


def fsync_path(path: Path) -> None:
    """fsync(2) a file or a directory (for a directory: the names in it) by its path.
    Raises OSError."""
    descriptor = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
