"""An index in shards: N Xapian databases written side by side, searched as one.

A new index directory holds N shard directories, shard0 .. shard{N-1}, and Xapian's stub
file XAPIANDB listing them ("glass shard0" a line). xapian.Database(index_dir) and
xapian.WritableDatabase(index_dir) open the stub as one database whose document ids
interleave the shards': document id n is local id (n - 1) // N + 1 of shard (n - 1) % N.
So every reader opens an index the same way, and a document's id stays its store number.
The indexer (services.archive.indexer) instead opens each shard for itself, so that one
thread a shard writes them at once (Xapian releases the interpreter lock in its calls).

Metadata of the whole index (schema, the arrival-log position) is shard 0's: the combined
database reads and writes only the first shard's. N is recorded in the stub only.

An index directory made by older code is one glass database (its iamglass file at the
top): it is read and written as a single shard, as it always was, until a reindex makes a
new, sharded one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import xapian

from services.common.atomic_file import atomic_output

__all__ = ["STUB", "create", "local_id", "open_shards", "revision", "shard_dirs", "shard_of"]
STUB = "XAPIANDB"          # Xapian's stub database file: one "glass PATH" line a shard
SINGLE = "iamglass"        # the version file at the top of a single glass database


def shard_dirs(index_dir: Path) -> list[Path]:
    """The shard directories of the index at `index_dir`, in document id order: the
    directory itself for a single database; [] when it holds no database yet. Raises
    ValueError for a stub this code did not write (another backend, an absolute path)."""
    index_dir = Path(index_dir)
    if (index_dir / SINGLE).exists():
        return [index_dir]
    try:
        lines = (index_dir / STUB).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in filter(None, (line.strip() for line in lines)):
        backend, _, name = line.partition(" ")
        if backend != "glass" or not name or "/" in name:
            raise ValueError(f"{index_dir / STUB}: line {line!r} is not 'glass shardK'")
        found.append(index_dir / name)
    return found


def create(index_dir: Path, count: int, flags: int) -> list[xapian.WritableDatabase]:
    """Make a new, empty index of `count` shards (at least 1) in directory `index_dir`
    (made if missing; it must hold no database) and return each shard opened writable
    with Xapian `flags`. The stub is written last, atomically: until then readers find no
    index there (as before the first commit of a single database)."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    names = [f"shard{k}" for k in range(max(1, count))]
    opened = [xapian.WritableDatabase(str(index_dir / name), flags | xapian.DB_CREATE_OR_OPEN)
              for name in names]
    with atomic_output(index_dir / STUB, mode=0o644) as output:
        output.write("".join(f"glass {name}\n" for name in names).encode("ascii"))
    return opened


def open_shards(index_dir: Path, flags: int) -> list[xapian.WritableDatabase]:
    """Each shard of the existing index at `index_dir` opened writable ([] when there is
    none yet)."""
    return [xapian.WritableDatabase(str(path), flags) for path in shard_dirs(index_dir)]


def shard_of(docid: int, count: int) -> int:
    """Which of `count` shards holds document id `docid` (1-based, Xapian's interleaving)."""
    return (docid - 1) % count


def local_id(docid: int, count: int) -> int:
    """The id document `docid` has inside its shard, of `count`."""
    return (docid - 1) // count + 1


def revision(index_dir: Path) -> int:
    """The index's revision: its first shard's, which every commit of the indexer commits
    last (with the arrival-log position). Xapian gives no revision for several shards
    opened as one. Raises xapian.DatabaseOpeningError when there is no index."""
    dirs = shard_dirs(index_dir)
    if not dirs:
        raise xapian.DatabaseOpeningError(f"no index in {index_dir}")
    database = xapian.Database(str(dirs[0]))
    try:
        return database.get_revision()
    finally:
        database.close()


def files_of(index_dir: Path) -> Iterator[Path]:
    """Every regular file of the index at `index_dir`, its shards' included, as listed:
    one may be gone by the time it is looked at (compaction.size_of); a directory gone
    (an index retired after a switch) lists nothing."""
    try:
        listing = list(Path(index_dir).iterdir())
    except FileNotFoundError:
        return
    for path in listing:
        if path.is_dir() and not path.is_symlink():
            yield from files_of(path)
        elif path.is_file():
            yield path
