"""`archiver directory test [--user NAME] [--json]`: whether the company directory answers
with the appliance's settings, and what a user would get from it (addresses, groups,
role), without signing anyone in; a warning when the settings send passwords in clear."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from firmware.errors import ArchiverError

from services.appliance.directory import AmbiguousName, Directory, DirectoryError
from services.common.config import load_config


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("directory", help="signing in with LDAP or Active Directory")
    sub = group.add_subparsers(dest="directory_command", required=True, metavar="ACTION")
    p = sub.add_parser("test", help="bind, search, and show what a user would get (no "
                                    "password of theirs is needed or checked)")
    p.add_argument("--config", type=Path, default=None,
                   help="default $ARCHIVER_CONFIG or /etc/archiver/archiver.yaml")
    p.add_argument("--user", metavar="NAME",
                   help="a login name (uid, sAMAccountName or userPrincipalName) to look up")
    p.add_argument("--json", action="store_true", help="the result as one JSON object")
    p.set_defaults(handler=cmd_test)


def cmd_test(args) -> int:
    """Exit 0 when the directory answers (and knows --user), 1 when it does not."""
    config = load_config(args.config)
    if config.directory is None:
        raise ArchiverError(f"{config.source}: no directory: section (see archiver.yaml's "
                            "documentation in services/common/config.py)")
    directory = Directory(config.directory)
    state = directory.probe()
    report = {"directory": state, "user": None}
    if args.user is not None and report["directory"]["state"] == "ok":
        report["user"] = _look_up(directory, args.user)
    print(json.dumps(report, indent=2) if args.json else "\n".join(_text(config, report)))
    found = args.user is None or (report["user"] or {}).get("account") is not None
    return 0 if report["directory"]["state"] == "ok" and found else 1


def _look_up(directory: Directory, name: str) -> dict:
    try:
        account = directory.find(name)
    except (AmbiguousName, DirectoryError) as error:
        return {"login": name, "account": None, "error": str(error)}
    error = None if account is not None else "no entry matches user_filter with that name"
    return {"login": name, "account": account.as_json() if account else None, "error": error}


def _text(config, report: dict) -> list[str]:
    state, settings = report["directory"], config.directory
    bound = f"bound as {settings.bind_dn}" if settings.bind_dn else "anonymous"
    lines = [f"directory {state['uri']} ({settings.kind}): {state['state']}"
             + (f": {state['error']}" if state["error"] else f", {bound}, base {settings.base_dn}")]
    if state.get("warning"):
        lines.append(f"warning: {state['warning']}")
    found = report["user"]
    if found is None:
        return lines
    account = found["account"]
    if account is None:
        return lines + [f"user {found['login']}: {found['error']}"]
    may = f"no: {account['disabled']}" if account["disabled"] else "yes, with their password"
    return lines + [f"user {found['login']}: {account['dn']}",
                    f"  name       {account['name']}",
                    f"  addresses  {', '.join(account['emails']) or '- (sees no mail)'}",
                    f"  groups     {'; '.join(account['groups']) or '-'}",
                    f"  role       {account['role']}",
                    f"  signs in   {may}"]
