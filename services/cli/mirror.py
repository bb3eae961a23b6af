"""`archiver mirror join|leave|status|backfill`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware.errors import ArchiverError

from services.mirror import state as mirror_state
from services.archive.archive import Archive
from services.common import mirror_secret
from services.common.config import load_config
from services.common.terminal import terminal_safe


class MirrorSetupError(ArchiverError):
    pass


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("mirror", help="mirroring with peer appliances")
    sub = group.add_subparsers(dest="mirror_command", required=True, metavar="ACTION")

    p = _command(sub, "join", cmd_join, "share a secret with peers and copy to one of them")
    p.add_argument("--secret", help=f"the shared secret: {mirror_secret.RULE}. Without it "
                   "(and --secret-file) the secret this system has is kept, or, when it has "
                   "none, a strong one is made and shown once")
    p.add_argument("--secret-file", type=Path,
                   help="read the secret from a file instead (its first line, as written)")
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


def _archive(args, create: bool = False) -> tuple[Archive, object]:
    """The archive and the config. Unless `create` (join, which may come first on a fresh
    data folder) the archive must be there already: a mistyped --data is told so
    (NoArchive), not given an empty new archive."""
    config = load_config(args.config)
    archive = Archive(args.data or config.data_dir, config.model)
    return (archive if create else archive.require_existing()), config


def _check_peer(peer: str) -> None:
    host, _, port = peer.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MirrorSetupError(f"peer {peer!r}: expected HOST:PORT, e.g. 10.0.0.2:8443")


def _first_line(path: Path) -> str:
    """A secret file's first line, as typed: spaces at its ends are part of the secret (the
    API, the web form and --secret take them), only the line's end is not."""
    text = path.read_text()
    return text.splitlines()[0] if text else ""


def cmd_join(args) -> int:
    given = _first_line(args.secret_file) if args.secret_file else args.secret
    if given is not None:
        mirror_secret.check(given)          # WeakSecret says which part of the rule fails
    for peer in args.peer:
        _check_peer(peer)
    archive, config = _archive(args, create=True)
    if not archive.profile.features.mirroring:
        raise MirrorSetupError(f"a model {archive.profile.model} cannot mirror: mirroring needs "
                               "model 450 or higher")
    secret = given or mirror_state.settings(config, archive.store).secret
    generated = secret is None
    if generated:
        secret = mirror_secret.generate()
    for peer in args.peer or [None]:
        mirror_state.join(archive.store, secret, peer, _configured_secret(config))
    if generated:
        # Shown this once: the store keeps it, but no command shows it again.
        print("made a new mirror secret; give it to every peer (archiver mirror join "
              f"--secret-file FILE) and keep it safe:\n\n    {secret}\n")
    print(f"joined{''.join(' ' + peer for peer in args.peer)}: mail archived from now on is "
          "copied; `archiver mirror backfill` queues what is already here")
    return 0


def _configured_secret(config) -> str | None:
    return config.mirror.secret if config.mirror else None


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
    if args.json and mirror_state.joined_secret_unused(config, archive.store):
        print(f"WARNING: {mirror_state.SECRET_OVERRIDDEN}", file=sys.stderr)  # stdout: JSON
    if args.json:
        for report in reports:
            print(json.dumps(report))
        return 0
    if mirror_state.joined_secret_unused(config, archive.store):
        print(f"WARNING: {mirror_state.SECRET_OVERRIDDEN}")
    if not current.secret:
        print("mirroring is off: no secret (archiver mirror join)")
    elif (weak := mirror_secret.problem(current.secret)) is not None:
        print(f"WARNING: {weak}; join again with a stronger one on every peer")
    for report in reports:
        reason = f": {terminal_safe(report['reason'])}" if report["reason"] else ""
        print(f"{report['peer']}  {report['state']}{reason}")
        if report["settings_differ"]:
            print("    WARNING: retention policies, holds or saved searches differ from the peer's")
        print(f"    queued {report['queued']}, copied {report['copied']}, last success "
              f"{report['last_success'] or 'never'}, last error "
              f"{terminal_safe(report['last_error'] or '-')}")
        if report.get("audit_broken"):
            print(f"    WARNING: the peer says this system's audit log was rewritten or cut "
                  f"(audit_broken): {terminal_safe(report['audit_broken'])}")
        elif report.get("audit_anchored") is not None:
            print(f"    this system's audit log anchored there up to entry "
                  f"{report['audit_anchored']}")
        else:
            print("    this system's audit log not anchored there (yet): audit verify there "
                  "cannot vouch for it")
    return 0


def cmd_backfill(args) -> int:
    archive, config = _archive(args)
    if args.peer not in mirror_state.settings(config, archive.store).peers:
        raise MirrorSetupError(f"{args.peer} is not a peer; join it first")
    queued = mirror_state.backfill(archive.store, args.peer)
    print(f"queued {queued} messages for {args.peer}")
    return 0
