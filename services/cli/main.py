"""The `archiver` command: one entry point whose command groups live with the code they drive."""
from __future__ import annotations

import argparse
import errno
import importlib
import json
import sys

from firmware.errors import ArchiverError

# A want of room (services.archive.space's errnos and exit code, here without importing
# the archive's libraries into every command's start).
NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NO_ROOM_EXIT_CODE = 75  # EX_TEMPFAIL (sysexits.h): try again later

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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of `command`'s group, or of every group for help or an unknown command."""
    parser = argparse.ArgumentParser(prog="archiver", description="Email-archiving appliance.")
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
    export), with services.archive.space.OutOfSpace's exit code 75."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return args.handler(args) or 0
    except ArchiverError as exc:
        return _failed(args, str(exc), exc.exit_code)
    except OSError as exc:
        if exc.errno not in NO_ROOM_ERRNOS:
            raise
        return _failed(args, f"no room on the disk of {exc.filename or 'the data folder'} "
                             f"({exc.strerror}): make room, then run the same command again",
                       NO_ROOM_EXIT_CODE)
    except KeyboardInterrupt:
        return 130


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
