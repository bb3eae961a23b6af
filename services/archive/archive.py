"""An archive on disk: where its store and index live, and the model it is sized for.

  DATA/store/          the LMDB environment (services.archive.store)
  DATA/index           symlink to the live index DATA/index.N/ (in shards: services.archive.shards)
  DATA/index.next      symlink to an index being rebuilt (services.archive.reindex)
  DATA/index.N/retired  in an index switched from, kept a while (services.archive.retired_index)
  DATA/indexer.lock    held by whichever process writes the index
  DATA/index-first.lock  held while the first index is made (Archive.index_dir)
  DATA/spool/          SMTP DATA past 1 MiB, in unnamed files (services.intake.smtp_data)
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Iterator

import lmdb

from firmware.errors import ArchiverError
from firmware.models import ModelProfile, load_models
from firmware.system import this_model

from services.archive import retired_index
from services.archive.space import Space, capacity_space, distinct_disks, is_no_room_error
from services.archive.store import RESERVE_BYTES, Store

DEFAULT_DATA = "/var/lib/archiver"
log = logging.getLogger("archiver")


def default_data_dir(configured: str | Path | None = None) -> Path:
    """$ARCHIVER_DATA, else the configured data_dir, else /var/lib/archiver."""
    return Path(os.environ.get("ARCHIVER_DATA") or configured or DEFAULT_DATA)


class NoArchive(ArchiverError):
    """A data folder without an archive, given to a command that only uses one."""


class UnusableDataFolder(ArchiverError):
    """A data folder that is no folder this process can write in (a file, another user's
    folder, a read-only disk): said with its path, not a traceback."""


def _why_not_made(exc: OSError) -> str:
    """Why mkdir of a data folder failed, in words for the one line the CLI prints."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return "it, or a folder above it, is a file"
    return f"it cannot be made: {(exc.strerror or str(exc)).lower()}"


# What the system says when this user may not open a file (read-only disks included).
NOT_PERMITTED_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


class UnreadableArchive(ArchiverError):
    """An archive's store this process cannot open: another user's files (the service user
    or root made them), or a store/data.mdb that is no LMDB file (damaged, or something
    else): said with its path, not a traceback."""


def _why_unreadable(exc: Exception) -> str:
    """Why the store could not be opened, in words for the one line the CLI prints."""
    if isinstance(exc, (lmdb.ReadonlyError, PermissionError)) or (
            isinstance(exc, OSError) and exc.errno in NOT_PERMITTED_ERRNOS):
        return ("this user may not open it for writing (permission denied): run the command "
                "as the user the archive belongs to (the service user, or root)")
    if isinstance(exc, (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError)):
        return ("store/data.mdb is not a readable archive store (not an LMDB file, damaged, "
                "or of another LMDB version): restore it from a backup or a mirror peer, or "
                "give --data the folder an archive lives in")
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc)).lower()
    return str(exc)


class Archive:
    def __init__(self, data_dir: Path | str | None = None, model: int | None = None):
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.profile: ModelProfile = load_models().get(model if model else this_model())

    def exists(self) -> bool:
        """Whether the data folder holds an archive (its store) already. A path that cannot
        be looked at (a name too long, a folder above it not searchable) raises
        UnusableDataFolder naming it and why."""
        try:
            return (self.data_dir / "store" / "data.mdb").is_file()
        except OSError as exc:
            raise self._unusable((exc.strerror or str(exc)).lower()) from exc

    def require_existing(self) -> "Archive":
        """This archive, if there is one; else NoArchive, so that reading commands never
        create an empty archive where none was (a mistyped --data)."""
        if not self.exists():
            raise NoArchive(f"no archive in {self.data_dir} (it has no store/data.mdb): give "
                            "--data or ARCHIVER_DATA the folder an archive lives in (import, "
                            "run, serve, firstboot, journal poll and the commands that set "
                            "something up create one)")
        return self

    @cached_property
    def store(self) -> Store:
        """The store, opened (made if missing). UnreadableArchive, naming it and why, when
        this user may not open its files or they are no LMDB store; a full disk raises its
        own OSError, as make_data_dir's does."""
        self.make_data_dir()
        path = self.data_dir / "store"
        try:
            return Store(path, map_size=self.profile.storage_bytes)
        except (lmdb.ReadonlyError, lmdb.InvalidError, lmdb.CorruptedError,
                lmdb.VersionMismatchError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in NOT_PERMITTED_ERRNOS:
                raise  # a full disk (waited out by `archiver run`), or a bug to see
            raise UnreadableArchive(f"cannot open the archive in {path}: "
                                    f"{_why_unreadable(exc)}") from exc

    def make_data_dir(self) -> None:
        """The data folder, made (with the folders above it) if missing.

        Raises UnusableDataFolder, naming it and why, when it cannot be one: it or a folder
        above it is a file, it cannot be made (no permission, a read-only disk, /proc), or
        this user cannot write in it. A full disk (ENOSPC, EDQUOT) raises the mkdir's own
        OSError: that is no wrong --data but a want of room, which `archiver run` waits out
        (services.supervisor.runtime._wait_for_the_store) and other commands report as such."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if is_no_room_error(exc):
                raise
            raise self._unusable(_why_not_made(exc)) from exc
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise self._unusable("this user cannot write in it")

    def _unusable(self, why: str) -> "UnusableDataFolder":
        return UnusableDataFolder(
            f"cannot use {self.data_dir} as the data folder ({why}): give --data or "
            "ARCHIVER_DATA a folder this user can write in, or where one can be made")

    def extraction_pool(self):
        """A services.archive.extract.ExtractionPool sized for the model, remembering failures
        in this archive's store (services.archive.extraction_memo), so that a hostile
        attachment costs its time once, across restarts and reindexing. Close it after use."""
        from services.archive.extract import ExtractionPool  # lxml, pypdf: not for every command
        from services.archive.extraction_memo import ExtractionMemo
        return ExtractionPool.for_model(self.profile, memo=ExtractionMemo(self.store))

    def indexer(self, pool, index_dir: Path | None = None, **options):
        """A services.archive.indexer.Indexer of this archive's store into `index_dir`
        (default: the live index, index_dir()) fed by `pool`, within the model's limits:
        the memory indexing may hold, and the index disk's low threshold (below it, a
        message whose commit does not fit waits for room). `options`: the Indexer's others
        (live, synced). Close it after use."""
        from services.archive.indexer import Indexer  # Xapian: not for every command
        return Indexer(self.store, index_dir or self.index_dir(), pool,
                       memory_bytes=self.profile.indexing.memory_bytes,
                       low_below_bytes=self.profile.intake.min_free_disk_bytes, **options)

    @property
    def index_link(self) -> Path:
        return self.data_dir / "index"

    @property
    def next_index_link(self) -> Path:
        return self.data_dir / "index.next"

    def index_dir(self) -> Path:
        """The live index (created empty on first use)."""
        if not self.index_link.exists():
            self._make_first_index()
        return self.index_link.resolve()

    def live_index_link(self) -> Path:
        """The link naming the live index (made, empty, on first use): for a reader that
        keeps the index open (index_reader.open_index), which resolves the link itself,
        and again when the directory it named was removed before the reader held it."""
        self.index_dir()
        return self.index_link

    def _make_first_index(self) -> None:
        # At first boot every service asks at once: unserialized, each made an index of its
        # own and swapped it in, removing the one another had just swapped in and opened.
        with self.first_index_lock():
            if not self.index_link.exists():
                self.swap_index(self.new_index_dir())

    @contextmanager
    def first_index_lock(self) -> Iterator[None]:
        """Held while the first index is made, and by whatever removes index directories
        that are not live (compaction.remove_strays), which the one being made is not yet."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "index-first.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def new_index_dir(self) -> Path:
        path = self.data_dir / f"index.{time.time_ns()}"
        path.mkdir(parents=True)
        return path

    def swap_index(self, new_dir: Path) -> Path | None:
        """Make `new_dir` the live index in one atomic rename. The old one is marked
        retired (services.archive.retired_index), not removed: a reader that resolved the
        link just before still opens it; compaction.remove_strays removes it later.
        Returns the old one's path (None: there was none, or it was `new_dir`)."""
        old = self.index_link.resolve() if self.index_link.is_symlink() else None
        temporary = self.data_dir / "index.link-new"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(new_dir.name)
        os.replace(temporary, self.index_link)
        if old is None or old == new_dir.resolve() or not old.is_dir():
            return None
        try:  # never raised: the switch is done, and the caller would undo it
            retired_index.mark(old)
        except OSError as exc:  # a full disk: it goes at the next clean-up, as before
            log.warning("the index %s switched from is not marked retired (%s): the next "
                        "clean-up removes it at once", old, exc)
        return old

    def spaces(self) -> list[Space]:
        """Room left on its disks and in the store's capacity (services.archive.space)."""
        return spaces_of(self.data_dir, self.store, self.profile.intake.min_free_disk_mb)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()


def spaces_of(data_dir: Path, store: Store, low_below_mb: int) -> list[Space]:
    """The data disk, the store's and the index's disks where they are others, and the
    store's capacity; each low below `low_below_mb` MiB (the model's min_free_disk_mb)."""
    low = low_below_mb * 1024 * 1024
    disks = distinct_disks(data_dir, {"store_disk": store.path,
                                      "index_disk": data_dir / "index"}, low)
    return disks + [capacity_space(store.path, store.map_size - RESERVE_BYTES,
                                   store.space_left(), low)]
