"""`archiver serve SERVICE` and `archiver run`: argument parsing over services.supervisor."""
from __future__ import annotations

import argparse
from pathlib import Path

from services.appliance.service_state import SERVICES
from services.supervisor.runtime import run_services


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="run one appliance service in the foreground")
    p.add_argument("service", choices=SERVICES)
    _add_options(p)
    # `archiver run` hands its indexer child the index lock it holds (supervisor.indexer_process)
    p.add_argument("--index-lock-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=lambda args: run_services(args, [args.service]))

    p = commands.add_parser("run", help="run every appliance service in one process")
    _add_options(p)
    p.set_defaults(handler=lambda args: run_services(args, list(SERVICES)))


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="default $ARCHIVER_CONFIG or /etc/archiver/archiver.yaml")
    parser.add_argument("--data", type=Path, default=None, help="overrides data_dir")
    parser.add_argument("--model", type=int, default=None, help="overrides model")
