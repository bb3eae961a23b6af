"""`archiver mirror join|leave|status|backfill`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from firmware.errors import ArchiverError

from services.mirror import state as mirror_state
from services.archive.archive import Archive
from services.common.config import MIN_SECRET_LENGTH, load_config


class MirrorSetupError(ArchiverError):
    pass


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("mirror", help="mirroring with peer appliances")
    sub = group.add_subparsers(dest="mirror_command", required=True, metavar="ACTION")

    p = _command(sub, "join", cmd_join, "share a secret with peers and copy to one of them")
    p.add_argument("--secret", help=f"the shared secret (at least {MIN_SECRET_LENGTH} characters)")
    p.add_argument("--secret-file", type=Path, help="read the secret from a file instead")
    p.add_argument("--peer", action="append", default=[],
                   help="HOST:PORT of a peer to copy to (repeat the option, or join again, "
                        "for more)")

    p = _command(sub, "leave", cmd_leave, "stop copying to a peer")
    p.add_argument("--peer", required=True)

    p = _command(sub, "status", cmd_status, "each peer's state, queue and last success")
    p.add_argument("--json", action="store_true", help="one JSON object per peer")

    p = _command(sub, "backfill", cmd_backfill, "queue the existing archive for a peer")
    p.add_argument("--peer", required=True)


def _command(sub, name, handler, help_text) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None)
    parser.set_defaults(handler=handler)
    return parser


def _archive(args) -> tuple[Archive, object]:
    config = load_config(args.config)
    return Archive(args.data or config.data_dir, config.model), config


def _check_peer(peer: str) -> None:
    host, _, port = peer.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MirrorSetupError(f"peer {peer!r}: expected HOST:PORT, e.g. 10.0.0.2:8443")


def cmd_join(args) -> int:
    secret = args.secret_file.read_text().strip() if args.secret_file else args.secret
    if not secret:
        raise MirrorSetupError("give the shared secret with --secret or --secret-file")
    if len(secret) < MIN_SECRET_LENGTH:
        raise MirrorSetupError(f"the secret must have at least {MIN_SECRET_LENGTH} characters "
                               f"(this one has {len(secret)})")
    for peer in args.peer:
        _check_peer(peer)
    archive, _ = _archive(args)
    if not archive.profile.features.mirroring:
        raise MirrorSetupError(f"a model {archive.profile.model} cannot mirror: mirroring needs "
                               "model 450 or higher")
    for peer in args.peer or [None]:
        mirror_state.join(archive.store, secret, peer)
    print(f"joined{''.join(' ' + peer for peer in args.peer)}: mail archived from now on is "
          "copied; `archiver mirror backfill` queues what is already here")
    return 0


def cmd_leave(args) -> int:
    archive, _ = _archive(args)
    if not mirror_state.leave(archive.store, args.peer):
        raise MirrorSetupError(f"{args.peer} is not a joined peer")
    print(f"left {args.peer}")
    return 0


def cmd_status(args) -> int:
    archive, config = _archive(args)
    current = mirror_state.settings(config, archive.store)
    reports = [mirror_state.report(archive.store, peer) for peer in current.peers]
    if args.json:
        for report in reports:
            print(json.dumps(report))
        return 0
    if not current.secret:
        print("mirroring is off: no secret (archiver mirror join --secret ...)")
    for report in reports:
        reason = f": {report['reason']}" if report["reason"] else ""
        print(f"{report['peer']}  {report['state']}{reason}")
        if report["settings_differ"]:
            print("    WARNING: retention policies, holds or saved searches differ from the peer's")
        print(f"    queued {report['queued']}, copied {report['copied']}, last success "
              f"{report['last_success'] or 'never'}, last error {report['last_error'] or '-'}")
    return 0


def cmd_backfill(args) -> int:
    archive, config = _archive(args)
    if args.peer not in mirror_state.settings(config, archive.store).peers:
        raise MirrorSetupError(f"{args.peer} is not a peer; join it first")
    queued = mirror_state.backfill(archive.store, args.peer)
    print(f"queued {queued} messages for {args.peer}")
    return 0
