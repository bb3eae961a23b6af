"""`archiver user add|passwd|list|remove`: accounts of the web UI and HTTP API."""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from services.policy import audit
from services.appliance import totp, users
from services.appliance.directory import AmbiguousName, Directory
from services.appliance.sign_in import directory_user, two_factor_name
from services.archive.archive import Archive
from services.cli.archive import add_archive_options, open_archive
from services.common.config import load_config
from services.policy.audit import cli_actor


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("user", help="accounts of the web UI and HTTP API")
    sub = group.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    p = _command(sub, "add", cmd_add, "add an account")
    p.add_argument("name")
    p.add_argument("--role", choices=users.ROLES, required=True,
                   help="admin: everything; auditor: all mail, saved searches, holds; "
                        "user: only their own mail")
    p.add_argument("--email", action="append", default=[], metavar="ADDRESS",
                   help="an address of theirs (repeat for more); a user sees mail from or to these")
    _password_option(p)

    p = _command(sub, "passwd", cmd_passwd, "set an account's password")
    p.add_argument("name")
    _password_option(p)

    p = _command(sub, "list", cmd_list, "the accounts")
    p.add_argument("--json", action="store_true", help="one JSON object per account")

    p = _command(sub, "remove", cmd_remove, "remove an account")
    p.add_argument("name")

    p = _command(sub, "two-factor-off", cmd_two_factor_off,
                 "switch an account's two-factor codes off (a lost phone and recovery "
                 "codes); it sets them up again at its next sign-in where they are required")
    p.add_argument("name", help="a local account's name, or a name a directory account "
                                "signs in with (the directory is asked which entry it is)")
    p.add_argument("--config", type=Path, default=None,
                   help="for the directory, and its data_dir unless --data is given: "
                        "default $ARCHIVER_CONFIG or /etc/archiver/archiver.yaml")


def _command(sub, name, handler, help_text) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text)
    add_archive_options(parser)
    parser.set_defaults(handler=handler)
    return parser


def _password_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-file", type=Path, metavar="FILE",
                        help="read the password from FILE (its first line); default: ask")


def read_password(args) -> str:
    """From --password-file, else asked twice on the terminal (never from the command line,
    where other users' `ps` would see it)."""
    if args.password_file:
        text = args.password_file.read_text()
        return text.splitlines()[0] if text else ""
    if not sys.stdin.isatty():
        raise users.UserError("no terminal to ask for the password: give --password-file")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise users.UserError("the passwords differ")
    return first


def cmd_add(args) -> int:
    audit.require_admin(cli_actor(), "adds accounts")
    archive = open_archive(args)  # may be the first command on a fresh data folder
    user = users.add(archive, args.name, args.role, args.email, read_password(args))
    audit.record(archive.store, cli_actor(), "user-add", name=user.name, role=user.role,
                 emails=list(user.emails))
    print(f"added {user.role} {user.name}")
    return 0


def cmd_passwd(args) -> int:
    audit.require_admin(cli_actor(), "sets passwords")
    archive = open_archive(args, create=False)
    password = read_password(args)
    if args.name != users.admin_password.ADMIN_USER and users.get(archive, args.name) is None:
        raise users.UserError(f"there is no user named {args.name!r}")
    users.set_password(archive, args.name, password)
    audit.record(archive.store, cli_actor(), "user-passwd", name=args.name)
    print(f"password of {args.name} set")
    return 0


def cmd_list(args) -> int:
    archive = open_archive(args, create=False)
    for user in users.all_users(archive):
        if args.json:
            print(json.dumps(user.as_json()))
        else:
            print(f"{user.name:<24} {user.role:<8} {', '.join(user.emails) or '-'}")
    return 0


def cmd_remove(args) -> int:
    audit.require_admin(cli_actor(), "removes accounts")
    archive = open_archive(args, create=False)
    users.remove(archive, args.name)
    audit.record(archive.store, cli_actor(), "user-remove", name=args.name)
    print(f"removed {args.name}")
    return 0


def cmd_two_factor_off(args) -> int:
    """A local account's codes by its name; a directory account's by a name it signs in
    with now: the directory says which entry that is, and only that entry's codes (kept
    by its id for life) go. The name an account had when it set its codes up is no guide:
    the directory may since have renamed it, and given the name to someone else."""
    audit.require_admin(cli_actor(), "turns two-factor codes off")
    if args.config is not None and args.data is None:  # the config's archive, as elsewhere
        config = load_config(args.config)
        archive = Archive(config.data_dir, args.model or config.model).require_existing()
    else:
        archive = open_archive(args, create=False)
    local = args.name == users.admin_password.ADMIN_USER or users.get(archive, args.name)
    kept_as = args.name if local else _directory_codes(args)
    if not totp.status(archive, kept_as)["enrolled"]:
        raise users.UserError(f"{args.name} has no two-factor codes")
    totp.remove(archive, kept_as)
    audit.record(archive.store, cli_actor(), "two-factor-off", name=args.name,
                 **({} if local else {"kept_as": kept_as}))
    print(f"two-factor codes of {args.name} are off")
    return 0


def _directory_codes(args) -> str:
    """The name (totp) the codes of the directory account `args.name` signs in as are
    kept under; UserError when there is no such account, DirectoryError when the
    directory cannot say now."""
    config = load_config(args.config)
    if config.directory is None:
        raise users.UserError(f"there is no user named {args.name!r} (no local account, and "
                              f"{config.source} configures no directory)")
    try:
        account = Directory(config.directory).find(args.name)
    except AmbiguousName as error:
        raise users.UserError(f"{error}: the directory must give the name to one entry")
    if account is None:
        raise users.UserError(f"there is no user named {args.name!r} (no local account, and "
                              "no directory account signs in with that name)")
    return two_factor_name(directory_user(account))
