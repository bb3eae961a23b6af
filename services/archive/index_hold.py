"""An index directory held against removal while a reader has it open.

A reader that keeps an index open (an export's snapshot, a hold's count:
index_reader.open_index) may read it for longer than an index stays retired
(services.archive.retired_index). Xapian reads an open index through the files it opened,
but reopens it by its path (index_reader.reopen before each span; read_consistently when
the revision read was discarded): once compaction.remove_strays had removed the directory,
that reopen raised xapian.DatabaseNotFoundError, and the export stopped partway.

So a reader holds the directory it reads: a shared flock on a descriptor of the directory,
from before it opens the index until it closes it. remove_strays removes a directory only
when it gets an exclusive flock on it without waiting (remove_unless_held), and leaves a
held one for a later clean-up. A flock is between processes (the web service reads, the
indexer service removes) and ends when its descriptor is closed, or its process ends: a
reader that crashed holds nothing.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import weakref
from pathlib import Path

__all__ = ["Held", "hold", "remove_unless_held"]


class Held:
    """Index directory `path` (resolved) held by a shared flock on `descriptor`, until
    release() or until this object is collected (whichever comes first). Without a
    descriptor (a directory this process may search but not list) it is read unheld."""

    def __init__(self, path: Path, descriptor: int | None):
        self.path = path
        self._close = weakref.finalize(self, os.close, descriptor) if descriptor is not None \
            else lambda: None  # finalize runs at most once

    def release(self) -> None:
        self._close()


def hold(index_path: Path) -> Held | None:
    """The directory `index_path` names (the index link, or a directory itself), held.
    None when it names no directory. Waits while the directory is being removed (an
    exclusive flock: for as long as remove_unless_held takes); one that was removed after
    the link was resolved, before the flock was taken, is let go and the link resolved
    again."""
    tried = None
    while (path := Path(index_path).resolve()) != tried:  # the same again: it is gone
        tried = path
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except PermissionError:  # Xapian needs only search permission: read it unheld,
            return Held(path, None) if path.is_dir() else None  # never as nothing indexed
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            if _still_at(path, descriptor):
                return Held(path, descriptor)
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)
    return None


def remove_unless_held(index_dir: Path) -> bool:
    """Remove directory `index_dir` and all in it unless a reader holds it (hold); True
    when it was removed. Never waits for a reader: the indexer service asks, and must
    not stop for an export. Readers that come while it is removed wait, then find it
    gone. False for one held, one that cannot be opened, or one not all removed (the
    next clean-up tries again)."""
    descriptor = _directory_descriptor(index_dir)
    if descriptor is None:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by a reader (BlockingIOError), or no lock to be had: kept
        os.close(descriptor)
        return False
    try:
        shutil.rmtree(index_dir, ignore_errors=True)
    finally:
        os.close(descriptor)  # a reader let in now finds it gone (hold resolves again)
    return not os.path.lexists(index_dir)  # what could not be removed is tried again later


def _directory_descriptor(path: Path) -> int | None:
    """A read-only descriptor of directory `path`, not followed if a symlink; None when
    there is none there, or it cannot be opened."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None


def _still_at(path: Path, descriptor: int) -> bool:
    """Whether `path` still names the directory open as `descriptor`."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
