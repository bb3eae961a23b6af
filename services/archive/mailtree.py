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
cur/ and new/ (names starting with "." are not messages), and its subdirectories are
searched for more Maildirs (Maildir++ ".Sent", Dovecot's fs layout); there, a folder with
cur/ or new/ is a Maildir (the other, empty, lost in a copy: git and some zip tools drop
empty folders), as its mail would be read nowhere else. Nothing else inside a Maildir is
read, but only its servers' housekeeping files (dovecot.index*, dovecot-uidlist, subscriptions,
Courier's courierimap*: MAILDIR_HOUSEKEEPING; files only, a folder so named is walked, but
for Courier's keyword and ACL folders, left out unless they hold cur/ or new/) is left out
unlisted: a tmp/ holding
anything (deliveries in progress, or abandoned) is listed once as skipped, and so is each
other file (an Archive.eml or old.mbox put there by hand), symlink and hidden entry, so an
operator sees what was not imported and can name it.
In any other directory every regular file is mail, and hidden entries (.git, .DS_Store)
are listed as skipped, not read (so is a hidden folder that cannot be listed: another
user's ~/.gnupg), unless a hidden folder is a Maildir folder, with cur/ or new/ (".Sent"
beside a Maildir's cur/, the empty new/ of both lost in a copy): then its mail is read.
A file "<name>.lock" beside a regular file <name> may be its dotlock (an MTA delivering
to an mbox): Found.dotlock_of says so, and the reader lists it as the lock
when it holds what a lock holds (mailfiles.is_dotlock), else reads it as any file (a
message so named is not hidden from the import). A folder "__MACOSX" where mail is loose
files (macOS's Archive Utility puts the other files' resource forks there) is listed as
skipped once, not walked. An evidence export's manifest files (manifest.csv, export.json,
SHA256SUMS, all three in one folder) are listed as skipped when they hold what an export
writes there (mailfiles.is_export_manifest), else read (a message so named is read).
Paths named by the caller are always read, hidden or not (`import d1 d1/.Sent` reads
.Sent, listed as skipped by the walk of d1 too). A directory walked twice (a tree named
twice, a bind mount) is read once.
A tree is walked whatever its depth, holding one listing per level and no open directory
(so no more descriptors than a flat tree); a folder nested so deep that its path is longer
than the system opens (PATH_MAX) fails, with why, and the rest is read.

A zip is read by the same rules (walk_zip), on the folders its members' names make, as
the same zip unpacked would be: the same members read, listed as skipped or left out, in
the same order; except where no tree could hold what it holds: a symlink member is read as
a file (its bytes are the link's target, refused as not mail unless that is mail), each of
several members of one name is read, and a member with no name left ("..") or a folder's
entry that holds data fails, with why.

A Maildir may be live: a server delivering into it, clients flagging its mail (an admin
imports a user's Maildir from a running Dovecot). It changes only by rename and unlink
(https://cr.yp.to/proto/maildir.html): a message seen by a client moves from new/ to cur/
("UNIQUE" -> "UNIQUE:2,"), a flag change renames it in cur/ ("UNIQUE:2,S" ->
"UNIQUE:2,RS"); its unique name, before the ":" of the info, stays. Every message that is
there for the whole walk is read (unless it is renamed during each listing of its part of
the folder: _MaildirWalk says how); one moved from new/ after it was read is read again in
cur/, the same bytes (the store counts a duplicate).
"""
from __future__ import annotations

import contextlib
import enum
import errno
import heapq
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Collection, Generator, Iterable, Iterator, NamedTuple, TypeVar

from services.archive.mbox import DOTLOCK_SUFFIX

T = TypeVar("T")

# new/ first: a message moved from new/ to cur/ while new/ is read is met again in cur/,
# listed later; read cur/ first and a message moved during it is in neither listing.
MAILDIR_PARTS = ("new", "cur")
INFO_SEPARATOR = ":"  # a Maildir file's name is its unique name, then ":" and the info
SINGLE_MESSAGE_SUFFIX = ".eml"
# The files an evidence export adds beside its mail (services.archive.evidence): listed as
# skipped on import when all of them are in one folder (of a zip, or an unpacked export)
# and each holds what an export writes there.
EXPORT_MANIFEST_FILES = ("manifest.csv", "export.json", "SHA256SUMS")
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
# Entries of a Maildir folder held at once, at most (some 300 bytes each, with the unique
# names read): a folder of more is read in name order a range at a time, each listing a
# scan of the folder for the next names, so an import of millions of messages in one
# folder does not hold all their names (a scan of a million entries takes about a second;
# a million messages, hours).
LISTING_CHUNK = 50_000
# Listings of one range of a Maildir folder that show unread messages, at most: a quiet
# folder takes two (the second shows none); a message renamed during a listing may be in
# it under neither name, and one moved in from new/ is new to cur/ (see _MaildirWalk).
LISTINGS = 4
# Parts of a zip member's name, at most (a name may hold 30,000: one member so deep would
# make its walk hold some 30,000 paths of up to 64 KB each).
ZIP_NAME_PARTS = 256
# Files Maildir servers keep beside cur/ and new/, by their real names (Dovecot's indexes,
# logs and lists, Courier's and the Maildir++ quota's): never mail, left out unlisted. Files
# only: a folder so named (Dovecot's fs layout makes a folder of any mailbox name, and a
# mailbox may be called "subscriptions") is walked, and any other file ("dovecot-backup.mbox")
# is listed as not read.
MAILDIR_HOUSEKEEPING = re.compile(
    r"dovecot\.index(?:\..*)?|dovecot\.list\.index(?:\..*)?|dovecot\.mailbox\.log(?:\..*)?|"
    r"dovecot-uidlist|dovecot-keywords|dovecot-uidvalidity(?:\..*)?|"
    r"dovecot-acl|dovecot-acl-list|dovecot-shared|subscriptions|"
    r"maildirfolder|maildirsize|courierimap.*|courierpop3dsizelist")
# Folders Courier keeps beside cur/ and new/ (its keywords and ACLs): left out unlisted too,
# unless one holds cur/ or new/ (a mailbox so named: its mail is read).
MAILDIR_HOUSEKEEPING_FOLDERS = re.compile(r"courierimapkeywords|courierimaphieracl")
MAILDIR_TMP = ("a Maildir's tmp/ (deliveries in progress, or abandoned): not read; name a "
               "file in it to import it")
IN_MAILDIR = "inside a Maildir but not in its cur/ or new/: not read; name it to import it"
# Why a hidden entry (.git, .DS_Store, ~/.cache) of a folder of loose mail is not read.
HIDDEN = "hidden (its name starts with '.'): not read; name it to import it"
# The folder macOS's Archive Utility adds to a zip (and leaves when unpacked elsewhere): the
# resource forks and Finder data ("._NAME" AppleDouble files) of the other files, never mail.
MACOS_METADATA = "__MACOSX"
MACOS_METADATA_SKIPPED = ("macOS's metadata of the other files (resource forks, '._' "
                          "files): not mail, not read")
# Why an export's manifest file is not read as mail.
EXPORT_MANIFEST_SKIPPED = "an export's manifest: what its mail is, not mail"
# Listings of one range cut short by a message lost when opened, at most: past them, what is
# still lost is reported gone (a client renaming one message over and over must not keep
# an import listing the folder for ever).
CUT_SHORT_LISTINGS = 100
# Unique names one range may hold as read, at most: names keep coming into a range (a
# hostile user hard-links new ones in between its listings), the memory they hold may not.
READ_NAMES_HELD = 2 * LISTING_CHUNK


@dataclass(frozen=True)
class Found:
    """A file to read, or why a path gives none."""
    path: Path                  # as the caller sees it: the label of what it gives
    tree: str = "/"             # real path of the tree it was found in
    opens: str | None = None    # the path to open (a named symlink's target), else `path`
    error: str | None = None
    skipped: bool = False       # reported, not a failure: a symlink not followed, a message gone
    single_message: bool = False  # a Maildir entry or a .eml file: exactly one message
    dotlock_of: str | None = None  # "<name>.lock" beside the regular file <name>: its name
    # manifest.csv, export.json or SHA256SUMS beside the other two: an export's, if it
    # holds what an export writes there (mailfiles.is_export_manifest)
    export_manifest: bool = False
    # A message of a Maildir being walked: the walk to tell when it is not where listed.
    maildir: _MaildirWalk | None = field(default=None, compare=False, repr=False)


class NotReadable(Exception):
    """A path that is there but holds no bytes to read (FIFO, device, directory), or lies
    outside the tree it was found in."""


class Moved(Exception):
    """A Maildir message not where it was listed: renamed since (a flag change, a move from
    new/ to cur/) or deleted. It gives nothing: its walk lists it again under its new name,
    or reports it gone."""


def walk(paths: Iterable[Path | str]) -> Iterator[Found]:
    """Every file under `paths` that may hold mail, in a stable order (name order; a
    Maildir's new/ before its cur/). Open each Found (open_file) before taking the next, as
    iter_mail does: a Maildir message renamed since it was listed is then found again."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # one path, not the characters of its name
    visited: set[tuple[int, int]] = set()
    for path in map(Path, paths):
        try:  # a name too long (ENAMETOOLONG), a folder above not searchable: said, named
            symlink = path.is_symlink() and not path.is_dir()
        except OSError as exc:
            yield Found(path, error=describe(exc, path))
            continue
        if symlink:
            yield _skipped_symlink(path, os.path.realpath(path.parent))
            continue
        try:
            tree = os.path.realpath(path, strict=True)
        except OSError as exc:
            yield Found(path, error=describe(exc, path))
            continue
        if os.path.isdir(tree) and _is_maildir_part(tree):  # Mail/cur named on its own
            yield from _MaildirWalk(tree, [(path, tree)]).messages()
        elif os.path.isdir(tree):
            yield from _walked(_walk_directory(path, tree, visited, loose_files_are_mail=True,
                                               opens=tree))
        else:
            single = is_single_message(path.name) or _is_maildir_part(os.path.dirname(tree))
            yield Found(path, tree, opens=tree, single_message=single,
                        dotlock_of=_locked_by(path.name, _regular_files_beside(tree)))


def open_file(found: Found) -> BinaryIO:
    """Open a found regular file for reading, never through a symlink and never outside its
    tree; raises NotReadable (with the reason), Moved (a Maildir message no longer where it
    was listed; its walk is told) or OSError."""
    try:
        descriptor = os.open(found.opens or found.path, _OPEN_FLAGS | os.O_NONBLOCK)
    except FileNotFoundError:
        if found.maildir is None:
            raise
        found.maildir.lose(found)
        raise Moved(found.path) from None
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
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return (f"cannot read: its path, {len(os.fsencode(path))} bytes, is longer than the "
                "system opens (nested too deep, or a name too long)")
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read: {exc.strerror.lower()}"
    return f"cannot read: {exc}"


def _listing_failed(folder: Path, tree: str, exc: BaseException) -> Found:
    """The item for a folder that could not be listed. One that is no longer there was
    there when the walk found it: deleted or moved away during the import (a mail client's
    IMAP DELETE or RENAME), so not ours to import, and skipped, not failed."""
    if isinstance(exc, FileNotFoundError):
        return Found(folder, tree, skipped=True, error="gone during the import: the folder "
                     "was deleted or moved away")
    return Found(folder, tree, error=describe(exc, folder))


def _walk_directory(directory: Path, tree: str, visited: set[tuple[int, int]],
                    loose_files_are_mail: bool, opens: str | None = None,
                    hidden: bool = False, housekeeping: bool = False
                    ) -> Iterator[Found | _Subwalk]:
    """What one folder on disk gives, in order (_walked takes it): Founds, and for each
    folder in it to walk there, a _Subwalk of its own walk. A `hidden` folder (".Sent"
    where mail is loose files) is read only if it is a Maildir (cur/ or new/ will do), else
    listed as skipped, not walked (~/.cache), as is one that cannot be listed (another
    user's ~/.gnupg). A folder is `visited` once walked, not when listed as skipped: named
    too, it is read."""
    try:
        entries, identity = _list_directory(opens or directory, tree)
    except (OSError, NotReadable) as exc:
        yield Found(directory, tree, skipped=True, error=HIDDEN) \
            if hidden and not isinstance(exc, FileNotFoundError) \
            else _listing_failed(directory, tree, exc)
        return
    if identity in visited:
        return
    real_directories = {entry.name for entry in entries if _is_directory(entry)}
    rules = _FolderRules.of(real_directories, [entry.name for entry in entries],
                            loose_files_are_mail)
    if (hidden or housekeeping) and not rules.maildir:
        if hidden:
            yield Found(directory, tree, skipped=True, error=HIDDEN)
        return  # a server's housekeeping folder: left out unlisted
    visited.add(identity)
    if rules.maildir:
        parts = [(directory / part, directory / part) for part in MAILDIR_PARTS
                 if part in real_directories]
        yield from _MaildirWalk(tree, parts).messages()
    files = {entry.name for entry in entries if _is_regular_file(entry)}
    for entry in entries:
        path = directory / entry.name
        verdict = rules.verdict(entry.name, _kind(entry, path, real_directories))
        if verdict in _WALKED:
            hidden_folder = verdict is _Verdict.HIDDEN_FOLDER
            yield _Subwalk(_walk_directory(path, tree, visited, rules.loose and not hidden_folder,
                                           hidden=hidden_folder, housekeeping=verdict is
                                           _Verdict.HOUSEKEEPING_FOLDER))
        elif verdict is _Verdict.MAIL:
            yield Found(path, tree, single_message=is_single_message(path.name),
                        dotlock_of=_locked_by(path.name, files),
                        export_manifest=rules.is_export_manifest(entry.name))
        elif verdict is _Verdict.SYMLINK:
            yield _skipped_symlink(path, tree)
        elif verdict in _SKIPPED_WHY:
            yield Found(path, tree, skipped=True, error=_SKIPPED_WHY[verdict])
        elif verdict is _Verdict.MAILDIR_TMP and _holds_anything(path, tree):
            yield Found(path, tree, skipped=True, error=MAILDIR_TMP)


def _holds_anything(directory: Path, tree: str) -> bool:
    """Whether a folder has an entry (one that cannot be listed may: it is listed)."""
    try:
        with _opened_directory(directory, tree) as descriptor, \
                os.scandir(descriptor) as listing:
            return any(True for _ in listing)
    except (OSError, NotReadable):
        return True


def _kind(entry: os.DirEntry, path: Path, real_directories: Collection[str]) -> _Kind:
    if entry.name in real_directories:
        return _Kind.FOLDER
    if _is_symlink(entry):
        return _Kind.LINK_TO_FOLDER if _points_to_directory(path) else _Kind.LINK
    return _Kind.FILE


# --- the tree rules: one statement of them, for a tree on disk and the folders of a zip -

class _Kind(enum.Enum):
    """What an entry of a folder is, as far as the tree rules ask."""
    FOLDER = enum.auto()          # a real folder (a zip's: one its members' names make)
    FILE = enum.auto()            # anything else but a symlink (a zip's symlink member too)
    LINK = enum.auto()            # a symlink (on disk) to no folder
    LINK_TO_FOLDER = enum.auto()  # a symlink (on disk) to a folder


class _Verdict(enum.Enum):
    """What the tree rules make of an entry of a folder."""
    LEFT_OUT = enum.auto()        # neither read nor listed (cur/ and new/, dovecot.index)
    MAIL = enum.auto()            # a file to read
    FOLDER = enum.auto()          # a folder to walk
    HIDDEN_FOLDER = enum.auto()   # a folder to walk only if it is a Maildir folder
    HOUSEKEEPING_FOLDER = enum.auto()  # the same, else left out unlisted (courierimapkeywords)
    HIDDEN = enum.auto()          # listed as skipped: hidden
    MACOS_METADATA = enum.auto()  # listed as skipped: macOS's metadata, not walked
    SYMLINK = enum.auto()         # listed as skipped: a symlink, not followed
    IN_MAILDIR = enum.auto()      # listed as skipped: a file in a Maildir, not in cur/ new/
    MAILDIR_TMP = enum.auto()     # listed as skipped once, if it holds anything: tmp/


_WALKED = (_Verdict.FOLDER, _Verdict.HIDDEN_FOLDER, _Verdict.HOUSEKEEPING_FOLDER)
_SKIPPED_WHY = {_Verdict.HIDDEN: HIDDEN, _Verdict.MACOS_METADATA: MACOS_METADATA_SKIPPED,
                _Verdict.IN_MAILDIR: IN_MAILDIR}


@dataclass(frozen=True)
class _FolderRules:
    """How the tree rules read one folder, from the names in it alone, so that a folder on
    disk and the same folder in a zip are read alike."""
    maildir: bool          # its new/ and cur/ hold its messages; its loose files are not mail
    loose: bool            # mail is loose files here: each file is read, hidden ones not
    unpacked_export: bool  # it holds all of an export's manifest files

    @classmethod
    def of(cls, folders: Collection[str], names: Collection[str],
           loose_files_are_mail: bool) -> _FolderRules:
        """The rules of a folder holding the folders `folders` among the entries `names`,
        found where mail is loose files (`loose_files_are_mail`) or inside a Maildir."""
        maildir = is_maildir(folders, in_maildir=not loose_files_are_mail)
        return cls(maildir, loose_files_are_mail and not maildir,
                   set(names).issuperset(EXPORT_MANIFEST_FILES))

    def verdict(self, name: str, kind: _Kind) -> _Verdict:
        """What the entry `name`, a `kind`, of this folder is."""
        if self.maildir and name in MAILDIR_PARTS:
            return _Verdict.LEFT_OUT  # read as the Maildir's messages
        if self.maildir and name == "tmp" and kind is _Kind.FOLDER:
            return _Verdict.MAILDIR_TMP
        if not self.loose and kind is _Kind.FILE and MAILDIR_HOUSEKEEPING.fullmatch(name):
            return _Verdict.LEFT_OUT  # a file only: a folder so named may hold mail
        if not self.loose and kind is _Kind.FOLDER and \
                MAILDIR_HOUSEKEEPING_FOLDERS.fullmatch(name):
            return _Verdict.HOUSEKEEPING_FOLDER
        if kind in (_Kind.LINK, _Kind.LINK_TO_FOLDER) and not (
                self.loose and name.startswith(".")):  # where loose mail is: hidden
            return _Verdict.SYMLINK
        if name.startswith("."):
            # A Maildir++ folder (".Sent") is hidden, and read: it has cur/ or new/.
            return _Verdict.HIDDEN_FOLDER if kind is _Kind.FOLDER else _Verdict.HIDDEN
        if self.loose and name == MACOS_METADATA and kind is _Kind.FOLDER:
            return _Verdict.MACOS_METADATA
        if kind is _Kind.FOLDER:
            return _Verdict.FOLDER
        return _Verdict.MAIL if self.loose else _Verdict.IN_MAILDIR

    def is_export_manifest(self, name: str) -> bool:
        """Whether the file `name` may be an export's manifest (mailfiles.is_export_manifest
        says whether it holds what one does)."""
        return self.unpacked_export and name in EXPORT_MANIFEST_FILES


def is_maildir(folders: Iterable[str], in_maildir: bool = False) -> bool:
    """Whether a folder holding the folders named `folders` is a Maildir: it has cur/ and
    new/; inside a Maildir (`in_maildir`: its Maildir++ folders, where loose files are not
    mail), cur/ or new/ will do, the other lost in a copy (an empty folder that git, some
    zip tools and some backups drop), as its mail would be read nowhere else."""
    present = [part in folders for part in MAILDIR_PARTS]
    return all(present) or in_maildir and any(present)


# --- walking folders in folders, at any depth -------------------------------------------

class _Subwalk(NamedTuple):
    """The walk of a folder, given by the walk of the folder it is in (_walked walks it)."""
    walk: Iterator


def _walked(walk: Iterator[T | _Subwalk]) -> Iterator[T]:
    """What a folder's `walk` gives, each _Subwalk replaced by what that folder's walk
    gives. The walks are held on a stack, not nested (a generator per level of a tree
    1,000 folders deep is a RecursionError); none holds a descriptor open between steps,
    so a deep tree holds no more descriptors than a flat one."""
    walks = [walk]
    while walks:
        step = next(walks[-1], None)
        if step is None:
            walks.pop()
        elif isinstance(step, _Subwalk):
            walks.append(step.walk)
        else:
            yield step


# --- zips: the same rules, on the folders the members' names make ----------------------

@dataclass(frozen=True)
class ZipFound:
    """What a zip holds, as a Found says it of a tree on disk: a member to read (`member`,
    a zipfile.ZipInfo), or a folder of the zip's listed as skipped (`member` None). `name`
    is the member's name, or the folder's path in the zip: the label after "ZIP#"."""
    name: str
    member: object | None = None
    error: str | None = None
    skipped: bool = False
    single_message: bool = False
    dotlock_of: str | None = None
    export_manifest: bool = False


class _ZipFolder:
    def __init__(self):
        self.folders: dict[str, _ZipFolder] = {}
        self.files: dict[str, list] = {}  # name -> its members (a zip may repeat a name)


# Why a zip member is not read when its name leaves it nowhere to lie once unpacked.
NO_NAME_LEFT = ("no name left once its '.', '..' and empty parts are dropped (nowhere to "
                "unpack it): not read")


def walk_zip(members: Iterable) -> Iterator[ZipFound]:
    """The members of a zip (zipfile.ZipInfo) that may hold mail, and the folders and
    members listed as skipped, by the rules a tree on disk is walked by (_FolderRules),
    applied to the folders the members' names make (a zip need not list its folders): the
    zip is read as the same tree unpacked would be, and in the same order. Empty, "." and
    ".." parts of a name are left out of where it lies (as unzip does), not out of its
    label. What no tree unpacked could hold comes last, in the zip's order, each failed with
    why: a member whose name has no part left ("."; ".."), one nested more than
    ZIP_NAME_PARTS deep, and a folder's entry (a name ending in "/") that holds data. A zip
    can also hold what a tree cannot and is read anyway: a symlink member is read as a
    file, each of several members of one name is read, a file and a folder may share a
    name."""
    root, unplaced = _ZipFolder(), []
    for member in members:
        parts = [part for part in member.filename.split("/") if part not in ("", ".", "..")]
        if not member.is_dir() and not parts:
            unplaced.append(ZipFound(member.filename, error=NO_NAME_LEFT))
            continue
        if len(parts) > ZIP_NAME_PARTS:  # each level's walk holds its path: bounded
            unplaced.append(ZipFound(member.filename, error=(
                f"its name nests {len(parts) - 1} folders deep (at most {ZIP_NAME_PARTS - 1} "
                "are read): not read")))
            continue
        if member.is_dir() and member.file_size:
            unplaced.append(ZipFound(member.filename, error=(
                f"a folder's entry (its name ends in '/') holding {member.file_size} bytes: "
                "not read")))
        folder = root
        for part in parts[:-1] if not member.is_dir() else parts:
            folder = folder.folders.setdefault(part, _ZipFolder())
        if parts and not member.is_dir():
            folder.files.setdefault(parts[-1], []).append(member)
    yield from _walked(_walk_zip_folder(root, "", loose_files_are_mail=True, hidden=False))
    yield from unplaced


def _walk_zip_folder(folder: _ZipFolder, path: str, loose_files_are_mail: bool,
                     hidden: bool, housekeeping: bool = False
                     ) -> Iterator[ZipFound | _Subwalk]:
    """What one folder of a zip gives, in order (_walked takes it), as _walk_directory
    gives it of the same folder on disk: ZipFounds, and for each folder in it to walk
    there, a _Subwalk of its own walk."""
    names = sorted({*folder.folders, *folder.files})
    rules = _FolderRules.of(folder.folders, names, loose_files_are_mail)
    if (hidden or housekeeping) and not rules.maildir:
        if hidden:
            yield ZipFound(path.rstrip("/"), skipped=True, error=HIDDEN)
        return  # a server's housekeeping folder: left out unlisted
    if rules.maildir:
        for part in MAILDIR_PARTS:
            if part in folder.folders:
                yield from _zip_maildir_part(folder.folders[part], f"{path}{part}/")
    for name in names:  # a name may be both a folder and files: each is an entry
        verdict = rules.verdict(name, _Kind.FOLDER)
        if name in folder.folders and verdict in _WALKED:
            hidden_folder = verdict is _Verdict.HIDDEN_FOLDER
            yield _Subwalk(_walk_zip_folder(folder.folders[name], f"{path}{name}/",
                                            rules.loose and not hidden_folder, hidden_folder,
                                            verdict is _Verdict.HOUSEKEEPING_FOLDER))
        elif name in folder.folders and verdict in _SKIPPED_WHY:
            yield ZipFound(path + name, skipped=True, error=_SKIPPED_WHY[verdict])
        elif name in folder.folders and verdict is _Verdict.MAILDIR_TMP and (
                folder.folders[name].files or folder.folders[name].folders):
            yield ZipFound(path + name, skipped=True, error=MAILDIR_TMP)
        verdict = rules.verdict(name, _Kind.FILE)
        for member in folder.files.get(name, ()):
            if verdict is _Verdict.MAIL:
                yield ZipFound(member.filename, member, single_message=is_single_message(name),
                               dotlock_of=_locked_by(name, folder.files.keys()),
                               export_manifest=rules.is_export_manifest(name))
            elif verdict in _SKIPPED_WHY:
                yield ZipFound(member.filename, skipped=True, error=_SKIPPED_WHY[verdict])


def _zip_maildir_part(part: _ZipFolder, path: str) -> Iterator[ZipFound]:
    """A zipped Maildir's cur/ or new/, as _MaildirWalk reads one on disk: every file not
    hidden is one message; a folder in it is no message."""
    for name in sorted({*part.folders, *part.files}):
        if name.startswith("."):
            continue
        if name in part.folders:
            yield ZipFound(path + name, error="not a regular file (a directory)")
        for member in part.files.get(name, ()):
            yield ZipFound(member.filename, member, single_message=True)


def _locked_by(name: str, files_beside: Collection[str]) -> str | None:
    """The file `name` may be the dotlock of ("inbox" for "inbox.lock", mbox.DOTLOCK_SUFFIX),
    when it is among `files_beside` (the regular files of its folder)."""
    locked = name.removesuffix(DOTLOCK_SUFFIX)
    return locked if locked and locked != name and locked in files_beside else None


class _MaildirWalk:
    """The messages of one Maildir: its new/ then its cur/ (or the one of them named alone),
    then those that went away during the walk.

    A folder is read a range of names at a time (LISTING_CHUNK at most, in name order), and
    each range is listed until a listing shows no message not read from it yet (by unique
    name: a message keeps its place in name order, and so its range, whatever its info).
    Why list it again:
      * A listing is no snapshot: a message renamed while the folder is listed may be in it
        under neither name (ext4 lists in hash order: the new name may land where the
        listing has been already). The next listing shows it.
      * A message not found when it is opened (open_file calls lose()) was renamed or
        deleted since it was listed: its range is listed again at once, which shows it under
        its new name and the rest of the range as it is now (a burst of renames, a client
        marking all read, costs a few listings, not one per rename).
      * One lost from new/ was moved to cur/, read later, or deleted. One lost and not
        listed again by the end was deleted, or moved to another folder, during the walk:
        it is reported gone, skipped and not failed, as no longer there to import.
    So a message there all along is missed only if it is renamed during every listing of its
    range: at least two, the second once the range is read; at most LISTINGS that showed
    unread messages or missed a lost one, besides CUT_SHORT_LISTINGS cut short by a lost
    one (one renamed over and over cannot stall the walk: it ends reported gone).
    """

    def __init__(self, tree: str, folders: list[tuple[Path, Path | str]]):
        self.tree = tree
        self.folders = folders  # (the path as the caller sees it, the path to list)
        self.lost: dict[str, Found] = {}  # unique name -> its message not found when opened

    def messages(self) -> Iterator[Found]:
        for folder, listed in self.folders:
            yield from self._folder(folder, listed)
        parts = " or ".join(f"{Path(listed).name}/" for _, listed in self.folders)
        for found in self.lost.values():
            yield Found(found.path, self.tree, skipped=True, error=(
                f"gone during the import: no longer in {parts} (deleted or moved away)"))

    def lose(self, found: Found) -> None:
        self.lost[unique_name(found.path.name)] = found

    def _folder(self, folder: Path, listed: Path | str) -> Iterator[Found]:
        after = None  # the last name of the ranges read
        while True:
            try:
                after = yield from self._range(folder, listed, after)
            except (OSError, NotReadable) as exc:  # listing it failed
                yield _listing_failed(folder, self.tree, exc)
                return
            if after is None:
                return

    def _range(self, folder: Path, listed: Path | str, after: str | None
               ) -> Generator[Found, None, str | None]:
        """The messages named after `after`, LISTING_CHUNK at most, listed until a listing
        shows none unread and none lost from it still missing; returns the range's last
        name, None if it is the folder's end. Raises OSError or NotReadable when the
        folder cannot be listed."""
        read: set[str] = set()  # unique names
        lost_here: set[str] = set()  # unique names lost when opened, from this range
        last, listings, cut_short = None, 0, 0
        while listings < LISTINGS and len(read) <= READ_NAMES_HELD:
            entries = _listing(listed, self.tree, after, last)
            if len(entries) == LISTING_CHUNK:
                last = entries[-1].name  # the next range goes on after it
            unread = [entry for entry in entries if not entry.name.startswith(".")
                      and unique_name(entry.name) not in read]
            if not unread and not lost_here & self.lost.keys():
                break
            patient = cut_short < CUT_SHORT_LISTINGS  # may stop at a lost one, list again
            if (yield from self._read(folder, unread, read, lost_here, stop_at_loss=patient)):
                listings += 1  # also one that showed a lost message under neither name
            else:  # a lost message: listed again at once, counted apart
                cut_short += 1
        return last

    def _read(self, folder: Path, entries: list[os.DirEntry], read: set[str],
              lost_here: set[str], stop_at_loss: bool) -> Generator[Found, None, bool]:
        """A Found for each entry, its unique name added to `read`; one the reader lost is
        taken out of `read` again (a later listing shows it under its new name) and put in
        `lost_here`. With `stop_at_loss`, False at the first loss; else True once all were
        read."""
        for entry in entries:
            unique = unique_name(entry.name)
            read.add(unique)
            found = self._found(folder, entry)
            yield found
            if self.lost.get(unique) is found:
                read.discard(unique)
                lost_here.add(unique)
                if stop_at_loss:
                    return False
        return True

    def _found(self, folder: Path, entry: os.DirEntry) -> Found:
        path = folder / entry.name
        if _is_symlink(entry):
            return _skipped_symlink(path, self.tree)
        self.lost.pop(unique_name(entry.name), None)  # found again, under this name
        return Found(path, self.tree, single_message=True, maildir=self)


def unique_name(name: str) -> str:
    """A Maildir file's unique name: its name up to the info (":2,FLAGS"), which is what a
    flag change rewrites; the whole name if it has no info (in new/)."""
    return name.partition(INFO_SEPARATOR)[0]


def _list_directory(directory: Path | str, tree: str
                    ) -> tuple[list[os.DirEntry], tuple[int, int]]:
    """The entries of a directory in name order, and its (device, inode); the directory is
    opened as _opened_directory opens it."""
    with _opened_directory(directory, tree) as descriptor:
        status = os.fstat(descriptor)
        with os.scandir(descriptor) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    return entries, (status.st_dev, status.st_ino)


def _listing(directory: Path | str, tree: str, after: str | None, last: str | None
             ) -> list[os.DirEntry]:
    """The LISTING_CHUNK smallest names of a directory after `after` and up to `last` (no
    bound where None), in name order, from one scan of it (a folder of N entries is read in
    about N / LISTING_CHUNK ranges). The directory is opened as _opened_directory opens it;
    raises OSError or NotReadable."""
    with _opened_directory(directory, tree) as descriptor, os.scandir(descriptor) as listing:
        return heapq.nsmallest(LISTING_CHUNK, (
            entry for entry in listing if (after is None or entry.name > after)
            and (last is None or entry.name <= last)), key=lambda entry: entry.name)


@contextlib.contextmanager
def _opened_directory(directory: Path | str, tree: str) -> Iterator[int]:
    """A descriptor of `directory`, opened without following a symlink, closed on leaving;
    raises NotReadable when it does not lie inside `tree`, OSError when it cannot be
    opened."""
    descriptor = os.open(directory, _OPEN_FLAGS | os.O_DIRECTORY)
    try:
        _refuse_outside(descriptor, tree)
        yield descriptor
    finally:
        os.close(descriptor)


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


def _regular_files_beside(path: str) -> set[str]:
    """The name of the regular file `path` (a named file's real path) may lock, if there is
    one beside it (`import /var/mail/*` names the locks too)."""
    locked = os.path.basename(path).removesuffix(DOTLOCK_SUFFIX)
    try:
        found = os.lstat(os.path.join(os.path.dirname(path), locked))
    except (OSError, ValueError):
        return set()
    return {locked} if stat.S_ISREG(found.st_mode) else set()


def _is_regular_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


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
