"""The `archiver` command: one entry point whose command groups live with the code they drive."""
from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import sys

from firmware.errors import ArchiverError

# A want of room (services.archive.space's errnos and exit code, here without importing
# the archive's libraries into every command's start).
NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NO_ROOM_EXIT_CODE = 75  # EX_TEMPFAIL (sysexits.h): try again later
BROKEN_PIPE_EXIT_CODE = 141  # 128 + SIGPIPE: what a shell shows for a reader gone
# The last guard's: an OSError naming a file the command was given or found (a name too
# long, no permission, a read-only disk, not a folder, a loop of links) is the
# environment's, said in one line with exit 2 like an ArchiverError; any other OSError (no
# file named, or a file missing or there already: more often a bug or a race) stays a
# traceback.
FILE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR,
               errno.ELOOP)
ENVIRONMENT_EXIT_CODE = 2
USAGE_EXIT_CODE = 2  # argparse's for a command line it refuses
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for a command Ctrl-C ended

# The module that registers each command (its `register(commands)` adds the subcommands, each
# setting `handler` to a function(args) -> int). Only the module of the command given is
# imported: importing every group costs ~0.5 s on the build host and ~10 s on a small or
# emulated appliance, at every `archiver` start.
COMMAND_MODULES = {
    "firmware": "firmware.cli",
    **dict.fromkeys(["import", "search", "show", "export", "verify", "stats", "reindex",
                     "compact"],
                    "services.cli.archive"),
    **dict.fromkeys(["serve", "run"], "services.cli.run"),
    "journal": "services.cli.journal",
    "mirror": "services.cli.mirror",
    **dict.fromkeys(["retention", "hold", "audit"], "services.cli.policy"),
    "status": "services.cli.status",
    "firstboot": "services.cli.firstboot",
    "netconfig": "services.cli.netconfig",
    "user": "services.cli.users",
    "directory": "services.cli.directory",
}


class UsageError(Exception):
    """A command line argparse refuses: its message, as argparse words it."""


class _Parser(argparse.ArgumentParser):
    """argparse's, with its usage errors raised for main() to report (on stdout as JSON
    too, under --json) instead of exiting from deep inside parse_args. Its subcommands'
    parsers are of this class too (add_subparsers takes the parent's class)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: error: {message}")


def _asks_json(argv: list[str]) -> bool:
    """Whether a command line asks for --json as argparse reads it: an abbreviation of it
    ("--js", which argparse takes for --json) or "--json=..." too, never past "--"."""
    for arg in argv:
        if arg == "--":
            return False
        name = arg.split("=", 1)[0]
        if len(name) >= 3 and "--json".startswith(name):
            return True
    return False


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of `command`'s group, or of every group for help or an unknown command."""
    parser = _Parser(prog="archiver", description="Email-archiving appliance.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else COMMAND_MODULES.values()
    for module in dict.fromkeys(wanted):  # each module once, in the order above
        importlib.import_module(module).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code. A command that fails (ArchiverError) says why in one
    line on stderr, and with --json also as {"error": why, "exit_code": n} on stdout, so a
    script reading the JSON is told too. So does one that meets a full disk where it did
    not expect one (an OSError ENOSPC/EDQUOT: making a new archive's folder, writing an
    export), with services.archive.space.OutOfSpace's exit code 75. An OSError naming a
    file the environment got wrong (FILE_ERRNOS) is said so too, with exit 2; a reader of
    stdout gone ends the command quietly, with exit 141. A command line argparse refuses
    gets its usage and error on stderr, exit 2, and under --json the error on stdout.
    Ctrl-C (SIGINT) ends it with exit 130, the shell's code for it, whenever it comes:
    while the command's modules load too (nothing done yet), without a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(argv[0] if argv else None).parse_args(argv)
    except UsageError as exc:  # argparse's words and exit code; under --json, its line too
        print(exc, file=sys.stderr)
        if _asks_json(argv):
            print_json_error(str(exc), USAGE_EXIT_CODE)
        return USAGE_EXIT_CODE
    except KeyboardInterrupt:  # while the command's modules load: it has done nothing yet
        return INTERRUPTED_EXIT_CODE
    try:
        code = args.handler(args) or 0
        sys.stdout.flush()  # a reader gone (`| head -1`) is found here, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except ArchiverError as exc:
        return _failed(args, str(exc), exc.exit_code)
    except OSError as exc:
        if exc.errno in NO_ROOM_ERRNOS:
            return _failed(args, f"no room on the disk of {exc.filename or 'the data folder'} "
                                 f"({exc.strerror}): make room, then run the same command "
                                 "again", NO_ROOM_EXIT_CODE)
        if exc.filename is None or exc.errno not in FILE_ERRNOS:
            raise  # no file named: a bug to see, not a path to correct
        hint = ("; run the command as the user it belongs to (the service user, or root)"
                if exc.errno in (errno.EACCES, errno.EPERM) else "")
        return _failed(args, f"cannot use {exc.filename}: {exc.strerror or exc}{hint}",
                       ENVIRONMENT_EXIT_CODE)
    except KeyboardInterrupt:
        said = getattr(args, "interrupted", None)
        if said is not None:  # what the command had done when it was interrupted
            said()
        return INTERRUPTED_EXIT_CODE


def _reader_gone() -> int:
    """stdout's reader has gone (`archiver search --json ... | head -1`): stop quietly, as
    a command killed by SIGPIPE would. stdout goes to /dev/null so that the interpreter's
    flush at exit does not fail again (https://docs.python.org/3/library/signal.html
    #note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return BROKEN_PIPE_EXIT_CODE


def _failed(args, why: str, exit_code: int) -> int:
    print(f"archiver: {why}", file=sys.stderr)
    if getattr(args, "json", False):
        print_json_error(why, exit_code)
    return exit_code


def print_json_error(why: str, exit_code: int) -> None:
    """A failed --json command's line on stdout: {"error": why, "exit_code": exit_code}."""
    print(json.dumps({"error": why, "exit_code": exit_code}))


if __name__ == "__main__":
    sys.exit(main())
