"""The `archiver` command: one entry point whose command groups live with the code they drive."""
from __future__ import annotations

import argparse
import sys

from firmware import cli as firmware_cli

from . import (archive_cli, firstboot_cli, journal_cli, mirror_cli, netconfig_cli,
               policy_cli, run_cli, status_cli, users_cli)
from firmware.errors import ArchiverError

# Each group registers its subcommands; a subcommand sets `handler` to a function(args) -> int.
COMMAND_GROUPS = [firmware_cli.register, archive_cli.register, run_cli.register,
                  journal_cli.register, mirror_cli.register,
                  policy_cli.register, status_cli.register, firstboot_cli.register,
                  netconfig_cli.register, users_cli.register]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archiver", description="Email-archiving appliance.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMAND_GROUPS:
        register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except ArchiverError as exc:
        print(f"archiver: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
