"""Walking the files `archiver import` is given, without ever leaving them.

A path named by the caller is a tree: the file or directory it names. A symlink named by
the caller is followed only to a directory (~/Maildir linked to another disk: the caller's
choice of tree); a named symlink to a file is skipped and reported like any other, so a link
dropped where import is pointed (to /etc/shadow) is never read. Below it, no symlink is followed,
whether it points outside (a Maildir whose cur/ holds a link to /etc/shadow), inside (its
target is read where it lies, if it is read at all), nowhere or into a loop: each one met
where mail is read is reported as skipped, with where it points. Every file and directory
is opened with O_NOFOLLOW, and the path the kernel opened (/proc/self/fd) must lie inside
the tree, so swapping a directory for a symlink during the walk leads nowhere either.

What is mail: a directory with cur/ and new/ is a Maildir; its messages are the files in
cur/ and new/ (tmp/ holds deliveries in progress, names starting with "." are not
messages), and its subdirectories are searched for more Maildirs (Maildir++ ".Sent",
Dovecot's fs layout) while loose files there (dovecot.index, subscriptions) are skipped.
In any other directory every regular file is mail, and hidden entries (.git, .DS_Store)
are skipped. Paths named by the caller are always read, hidden or not. A directory
reached twice (a tree named twice, a bind mount) is read once.
"""
from __future__ import annotations

import errno
import heapq
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

MAILDIR_PARTS = ("cur", "new")
SINGLE_MESSAGE_SUFFIX = ".eml"
# The files an evidence export adds beside its mail (services.archive.evidence): skipped
# on import when all of them are at the root of a zip or of a folder (an unpacked export).
EXPORT_MANIFEST_FILES = ("manifest.csv", "export.json", "SHA256SUMS")
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
# Entries of a Maildir folder held at once, at most (some 200 bytes each): a folder of
# more is read in name order a chunk at a time, each chunk a scan of the folder for the
# next names, so an import of millions of messages in one folder does not hold all their
# names (a scan of a million entries takes about a second; a million messages, hours).
LISTING_CHUNK = 50_000


@dataclass(frozen=True)
class Found:
    """A file to read, or why a path gives none."""
    path: Path                  # as the caller sees it: the label of what it gives
    tree: str = "/"             # real path of the tree it was found in
    opens: str | None = None    # the path to open (a named symlink's target), else `path`
    error: str | None = None
    skipped: bool = False       # a symlink not followed: reported, not a failure
    single_message: bool = False  # a Maildir entry or a .eml file: exactly one message


class NotReadable(Exception):
    """A path that is there but holds no bytes to read (FIFO, device, directory), or lies
    outside the tree it was found in."""


def walk(paths: Iterable[Path | str]) -> Iterator[Found]:
    """Every file under `paths` that may hold mail, in a stable order (name order)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # one path, not the characters of its name
    visited: set[tuple[int, int]] = set()
    for path in map(Path, paths):
        if path.is_symlink() and not path.is_dir():
            yield _skipped_symlink(path, os.path.realpath(path.parent))
            continue
        try:
            tree = os.path.realpath(path, strict=True)
        except OSError as exc:
            yield Found(path, error=describe(exc, path))
            continue
        if os.path.isdir(tree) and _is_maildir_part(tree):  # Mail/cur named on its own
            yield from _maildir_messages(path, tree, opens=tree)
        elif os.path.isdir(tree):
            yield from _walk_directory(path, tree, visited, loose_files_are_mail=True,
                                       opens=tree)
        else:
            single = is_single_message(path.name) or _is_maildir_part(os.path.dirname(tree))
            yield Found(path, tree, opens=tree, single_message=single)


def open_file(found: Found) -> BinaryIO:
    """Open a found regular file for reading, never through a symlink and never outside its
    tree; raises NotReadable (with the reason) or OSError."""
    descriptor = os.open(found.opens or found.path, _OPEN_FLAGS | os.O_NONBLOCK)
    try:
        _refuse_irregular(os.fstat(descriptor))
        _refuse_outside(descriptor, found.tree)
    except BaseException:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def describe(exc: BaseException, path: Path) -> str:
    """Why `path` could not be read, in words."""
    if isinstance(exc, NotReadable):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return "a symlink (not followed)" if os.path.islink(path) else "a symlink loop"
    if isinstance(exc, OSError) and exc.errno == errno.ENOENT:
        return "dangling symlink" if os.path.islink(path) else "no such file"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read: {exc.strerror.lower()}"
    return f"cannot read: {exc}"


def _walk_directory(directory: Path, tree: str, visited: set[tuple[int, int]],
                    loose_files_are_mail: bool, opens: str | None = None) -> Iterator[Found]:
    try:
        entries, identity = _list_directory(opens or directory, tree)
    except (OSError, NotReadable) as exc:
        yield Found(directory, tree, error=describe(exc, directory))
        return
    if identity in visited:
        return
    visited.add(identity)
    real_directories = {entry.name for entry in entries if _is_directory(entry)}
    maildir = all(part in real_directories for part in MAILDIR_PARTS)
    unpacked_export = {entry.name for entry in entries}.issuperset(EXPORT_MANIFEST_FILES)
    if maildir:
        for part in MAILDIR_PARTS:
            yield from _maildir_messages(directory / part, tree)
    for entry in entries:
        path = directory / entry.name
        if maildir and entry.name in MAILDIR_PARTS + ("tmp",):
            continue
        if loose_files_are_mail and not maildir and entry.name.startswith("."):
            continue
        if unpacked_export and entry.name in EXPORT_MANIFEST_FILES:
            continue  # an unpacked export's manifest: what its mail is, not mail
        if _is_symlink(entry):
            if loose_files_are_mail and not maildir or _points_to_directory(path):
                yield _skipped_symlink(path, tree)
        elif entry.name in real_directories:
            yield from _walk_directory(path, tree, visited, loose_files_are_mail and not maildir)
        elif loose_files_are_mail and not maildir:
            yield Found(path, tree, single_message=is_single_message(path.name))


def _maildir_messages(folder: Path, tree: str, opens: str | None = None) -> Iterator[Found]:
    for entry in _entries_in_chunks(opens or folder, tree):
        if isinstance(entry, BaseException):
            yield Found(folder, tree, error=describe(entry, folder))
            return
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        if _is_symlink(entry):
            yield _skipped_symlink(path, tree)
        else:
            yield Found(path, tree, single_message=True)


def _list_directory(directory: Path | str, tree: str
                    ) -> tuple[list[os.DirEntry], tuple[int, int]]:
    """The entries of a directory in name order, and its (device, inode); the directory is
    opened without following a symlink and must lie inside `tree`."""
    descriptor = os.open(directory, _OPEN_FLAGS | os.O_DIRECTORY)
    try:
        _refuse_outside(descriptor, tree)
        status = os.fstat(descriptor)
        with os.scandir(descriptor) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    finally:
        os.close(descriptor)
    return entries, (status.st_dev, status.st_ino)


def _entries_in_chunks(directory: Path | str, tree: str
                       ) -> Iterator[os.DirEntry | OSError | NotReadable]:
    """The entries of a directory in name order, as _list_directory gives them, holding at
    most LISTING_CHUNK of them at once: each chunk is the smallest names after the last
    chunk's, from a scan of its own (a folder of N entries is scanned N / LISTING_CHUNK
    times, rounded up). Ends with the error (not raised) when the directory cannot be read
    or no longer lies inside `tree`."""
    after = None
    while True:
        try:
            descriptor = os.open(directory, _OPEN_FLAGS | os.O_DIRECTORY)
            try:
                _refuse_outside(descriptor, tree)
                with os.scandir(descriptor) as listing:
                    chunk = heapq.nsmallest(
                        LISTING_CHUNK, (entry for entry in listing
                                        if after is None or entry.name > after),
                        key=lambda entry: entry.name)
            finally:
                os.close(descriptor)
        except (OSError, NotReadable) as exc:
            yield exc
            return
        yield from chunk
        if len(chunk) < LISTING_CHUNK:
            return
        after = chunk[-1].name


def _refuse_irregular(status: os.stat_result) -> None:
    if stat.S_ISREG(status.st_mode):
        return
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    kind = next((name for test, name in kinds.items() if test(status.st_mode)), "special")
    raise NotReadable(f"not a regular file ({kind})")


def _refuse_outside(descriptor: int, tree: str) -> None:
    """The kernel's own path of an open file: it must be `tree` or lie below it."""
    try:
        opened = os.readlink(f"/proc/self/fd/{descriptor}")
    except OSError:
        return  # no /proc (not Linux): O_NOFOLLOW on every step is the guard left
    if not _inside(opened, tree):
        raise NotReadable(f"outside the imported tree {tree} (at {opened}): not read")


def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _skipped_symlink(path: Path, tree: str) -> Found:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    try:
        resolved = os.path.realpath(path, strict=True)
    except OSError as exc:
        kind = "a symlink loop" if exc.errno == errno.ELOOP else "a dangling symlink"
        return Found(path, tree, error=f"{kind} (to {target}): not followed", skipped=True)
    where = "inside the imported tree: read where it lies, if at all" if _inside(resolved, tree) \
        else "outside the imported tree"
    return Found(path, tree, error=f"a symlink to {resolved} ({where}): not followed",
                 skipped=True)


def is_single_message(name: str) -> bool:
    """Whether a file or zip member of this name (a path in the zip) is one message whatever
    it starts with: a .eml file, or a member of a zipped Maildir's cur/ or new/."""
    parent = name.rstrip("/").rpartition("/")[0].rpartition("/")[2]
    return name.lower().endswith(SINGLE_MESSAGE_SUFFIX) or parent in MAILDIR_PARTS


def _is_maildir_part(directory: str) -> bool:
    """Whether a (real) directory is the cur/ or new/ of a Maildir."""
    name, parent = os.path.basename(directory), os.path.dirname(directory)
    return name in MAILDIR_PARTS and all(
        os.path.isdir(os.path.join(parent, part)) for part in MAILDIR_PARTS)


def _is_directory(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False  # reading it as a file then reports the problem


def _is_symlink(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _points_to_directory(path: Path) -> bool:
    try:
        return os.path.isdir(path)
    except OSError:
        return False
