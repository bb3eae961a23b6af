"""`archiver journal status|poll`: the journal mailboxes as the puller sees them."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from firmware.errors import ArchiverError

from services.archive.archive import Archive
from services.common.terminal import terminal_safe
from services.common.config import Config, JournalAccount, load_config
from services.intake.journal_mailbox import JournalPuller, account_status


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("journal", help="journal mailboxes (IMAP/POP3): status, poll now")
    actions = group.add_subparsers(dest="journal_command", required=True, metavar="ACTION")

    p = actions.add_parser("status", help="per account: state, last poll, last error, imported")
    _add_options(p)
    p.set_defaults(handler=cmd_status)

    p = actions.add_parser("poll", help="poll the accounts (or one) once, now")
    _add_options(p)
    p.add_argument("--account", metavar="NAME", help="only this account")
    p.add_argument("--retry-left", action="store_true",
                   help="try again the messages left on the server (too large, or their "
                        "fetch broke the session 3 times), which polls otherwise pass by")
    p.set_defaults(handler=cmd_poll)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="default $ARCHIVER_CONFIG or /etc/archiver/archiver.yaml")
    parser.add_argument("--data", type=Path, default=None, help="overrides data_dir")
    parser.add_argument("--json", action="store_true", help="one JSON object per account")


def _open(args, create: bool = False) -> tuple[Config, Archive]:
    """The config and the archive; status's must be there already (NoArchive: a mistyped
    --data is told so, not given an empty new archive); poll archives mail, as the service
    does, and may make it."""
    config = load_config(args.config)
    archive = Archive(args.data or config.data_dir, config.model)
    return config, (archive if create else archive.require_existing())


def cmd_status(args) -> int:
    config, archive = _open(args)
    for account in config.journal_accounts:
        status = {"account": account.name, "protocol": account.protocol,
                  "server": f"{account.host}:{account.port}",
                  "keep_on_server": account.keep_on_server,
                  **account_status(archive.store, account.name)}
        print(json.dumps(status) if args.json else _status_line(status))
    archive.close()
    return 0


def _status_line(status: dict) -> str:
    error = status["last_error"] and terminal_safe(status["last_error"])  # a server's words
    if error and status["state"] != "error":
        error = f"{error} (at {status['last_error_at']}, since recovered)"
    return (f"{status['account']}: {status['state']}; {status['protocol']} {status['server']}; "
            f"last poll {status['last_poll'] or '-'}, last success {status['last_success'] or '-'}; "
            f"imported {status['imported_total']}, duplicates {status['duplicates_total']}; "
            f"last error: {error or '-'}")


def cmd_poll(args) -> int:
    config, archive = _open(args, create=True)
    failed = False
    max_bytes = archive.profile.smtp.max_message_bytes
    for account in _chosen(config, args.account):
        puller = JournalPuller(account, archive.store, max_message_bytes=max_bytes)
        if args.retry_left:
            puller.retry_left()
        result = puller.poll_once()
        failed = failed or result.error is not None
        if args.json:
            print(json.dumps({"account": account.name, **asdict(result)}))
        else:
            print(f"{account.name}: fetched {result.fetched}, imported {result.imported}, "
                  f"duplicates {result.duplicates}"
                  + (f"; paused: {result.paused}" if result.paused else "")
                  + (f"; error: {terminal_safe(result.error)}" if result.error else "")
                  + "".join(f"\n  {problem}" for problem in result.problems))
    archive.close()
    return 1 if failed else 0


def _chosen(config: Config, name: str | None) -> list[JournalAccount]:
    if name is None:
        return config.journal_accounts
    for account in config.journal_accounts:
        if account.name == name:
            return [account]
    known = ", ".join(a.name for a in config.journal_accounts) or "none"
    raise ArchiverError(f"{config.source}: no journal account named {name!r} (known: {known})")
