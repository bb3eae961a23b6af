"""`archiver firstboot`: node id, keys and admin password, once (archiver-firstboot.service)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from services.common.config import load_config
from services.appliance.firstboot import (DEFAULT_CONSOLE, DEFAULT_TLS_CERT, DEFAULT_TLS_KEY,
                                          SERVICE_USER, Places, first_boot, start_tls_key)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("firstboot", help="first-boot setup: node id, TLS certificate, "
                                              "admin password (once)")
    p.add_argument("--config", type=Path, default=None,
                   help="default $ARCHIVER_CONFIG or /etc/archiver/archiver.yaml")
    p.add_argument("--data", type=Path, default=None, help="overrides data_dir")
    p.add_argument("--tls-cert", type=Path, default=DEFAULT_TLS_CERT)
    p.add_argument("--tls-key", type=Path, default=DEFAULT_TLS_KEY)
    p.add_argument("--console", type=Path, default=DEFAULT_CONSOLE,
                   help="where a generated admin password is shown (and on stdout)")
    p.add_argument("--user", default=SERVICE_USER,
                   help="the user the services run as, who gets the data folder")
    p.add_argument("--keep-owners", action="store_true",
                   help="change no file's owner (a development machine without that user)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_firstboot)


def cmd_firstboot(args) -> int:
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    places = Places(tls_cert=args.tls_cert, tls_key=args.tls_key, console=args.console,
                    credentials=Path(credentials) if credentials else None,
                    user=None if args.keep_owners else args.user, stdout=not args.json)
    # The TLS key is made first, beside the rest: under TCG the key and the archive's
    # imports take seconds each (archiver-firstboot holds back every archiver service).
    tls_key = start_tls_key(places)
    from services.archive.archive import Archive
    config = load_config(args.config)
    archive = Archive(args.data or config.data_dir, config.model)
    try:
        outcome = first_boot(archive, places, tls_key)
    finally:
        archive.close()
    if args.json:  # for scripts: a generated password is in it, and only shown on the console
        print(json.dumps(dataclasses.asdict(outcome)))
    elif outcome.already_done:
        print(f"firstboot: done before ({archive.data_dir / 'firstboot.done'}); nothing changed")
    else:
        print(f"firstboot: node id {outcome.node_id}; mirror keys in {outcome.mirror_dir}; TLS "
              f"certificate {args.tls_cert} {outcome.tls_certificate}; admin password "
              f"{outcome.admin_password}"
              + (f" (shown on {', '.join(outcome.shown_on)})" if outcome.shown_on else ""))
    return 0
