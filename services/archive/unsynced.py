"""An index written without fsync, and the mark that says whether it can be trusted.

An index being rebuilt beside the live one (services.archive.reindex) is not searched
until it is complete, so its commits need not reach the disk one by one: Xapian's
DB_NO_SYNC saves the fsyncs of every commit (measured: a tenth to a third of a reindex's
time). Each commit is still whole for the processes on this system, since the page cache
holds it, so the writer's position in the arrival log stays committed with its batch
across a killed process. Only the system going down (a crash, a power cut) can lose
writes not yet on disk, and leave Xapian's revisions torn, silently.

So before the first such commit the index gets a mark, on disk, naming this boot
(/proc/sys/kernel/random/boot_id); `settle()` writes everything to disk and then removes
the mark. An index marked by another boot may have lost writes: it is not trusted
(`lost()`), and the rebuild starts afresh; a rebuild is derived data, the live index
answers meanwhile.
"""
from __future__ import annotations

from pathlib import Path

from services.common.atomic_file import atomic_output, fsync_files_of, fsync_path

MARK = "unsynced-since-boot"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot's id; "" where the system gives none (every mark then counts as lost)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def mark(index_dir: Path) -> None:
    """Mark `index_dir` as written without fsync since this boot, durably (before any
    such write). Raises OSError when the mark cannot be written."""
    with atomic_output(Path(index_dir) / MARK, mode=0o644) as output:
        output.write(f"{boot_id()}\n".encode("ascii"))


def lost(index_dir: Path) -> bool:
    """Whether `index_dir` may have lost writes: it is marked, and not by this boot."""
    try:
        marked = (Path(index_dir) / MARK).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError):
        return True
    return not marked or marked != boot_id()


def is_marked(index_dir: Path) -> bool:
    return (Path(index_dir) / MARK).exists()


def settle(index_dir: Path) -> None:
    """Write every file of `index_dir` to disk (its writer closed), then remove its mark.
    Raises OSError when that fails (the mark then stays)."""
    directory = Path(index_dir)
    if not is_marked(directory):
        return
    fsync_files_of(directory, skip=(MARK,))
    (directory / MARK).unlink()
    fsync_path(directory)

