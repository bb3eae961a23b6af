"""An export as the audit log sees it: written by services.archive.evidence, recorded with
who made it, what it holds and its manifest's digest, whichever way it was asked for (web
UI, HTTP API, `archiver export`).

One entry per export: "export" once it is complete (export id, format, the query or the
selected digests, how many messages, the SHA-256 of SHA256SUMS and of manifest.csv), or
"export-failed" with the reason when it stopped short (a client that went away, a full
disk); an export that found nothing writes nothing and records nothing but the attempt.
A CLI export's file is put in place only once its "export" is recorded, so that no export
file is ever unrecorded; when putting it in place fails, "export-failed" follows.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from services.archive.evidence import EmptyExport, ExportInfo, ExportResult, write_export
from services.archive.search_snapshot import AsOf
from services.archive.store import Store
from services.policy import audit
from services.policy.audit import Actor


def new_info(store: Store, actor: Actor, fmt: str, query: str | None = None,
             selection: Iterable[str] | None = None, timezone: str = "UTC",
             as_of: AsOf | None = None) -> ExportInfo:
    """An ExportInfo with a fresh id, now, on this node; `selection` (digests) wins over
    `query` when both are given. `as_of`: the index the query's matches were read from
    (search_snapshot.Snapshot.as_of)."""
    chosen = tuple(dict.fromkeys(selection)) if selection is not None else None
    return ExportInfo(uuid.uuid4().hex[:12], time.time(), actor.name, actor.role,
                      store.node_id, fmt, None if chosen is not None else (query or ""),
                      chosen, timezone,
                      as_of.as_json() if as_of is not None and chosen is None else None)


def export(store: Store, actor: Actor, info: ExportInfo,
           messages: Iterable[tuple[str, bytes, dict]], output: BinaryIO,
           put_in_place: Callable[[], object] | None = None) -> ExportResult:
    """Write the export to `output` and record it (module docstring); its spooled files
    (evidence.write_export) are unnamed files in the archive's spool folder, on the data
    disk (services.archive.archive). `put_in_place` (the CLI's: sync the file and link it
    under its name) runs once the export is recorded, so that no file is ever in place
    unrecorded, even after a power cut; when it fails, "export-failed" follows "export".
    Raises EmptyExport (recorded as "export-empty"), and whatever writing or putting in
    place raised (recorded as "export-failed")."""
    try:
        result = write_export(messages, output, info, spool_folder(store))
        # All of it handed on before it is recorded as complete: what `output` still
        # buffers (the web's last chunk, a whole small export) may fail to go yet.
        output.flush()
    except EmptyExport:
        audit.record(store, actor, "export-empty", **_what(info))
        raise
    except BaseException as exc:
        _record_failure(store, actor, info, exc)
        raise
    audit.record(store, actor, "export", **result.audit_details(info))
    if put_in_place is not None:
        try:
            put_in_place()
        except BaseException as exc:
            _record_failure(store, actor, info, exc)
            raise
    return result


def _record_failure(store: Store, actor: Actor, info: ExportInfo, exc: BaseException) -> None:
    audit.record(store, actor, "export-failed", **_what(info),
                 reason=f"{type(exc).__name__}: {exc}"[:300])


def spool_folder(store: Store) -> Path:
    """DATA/spool, beside the store DATA/store: on the data disk, never a RAM /tmp. It
    belongs to whoever owns the store: an export by root's CLI that makes it must not
    take it from the services, which run as their own user."""
    folder = Path(store.path).parent / "spool"
    folder.mkdir(mode=0o700, exist_ok=True)
    owner = Path(store.path).stat()
    if os.geteuid() == 0 and folder.stat().st_uid != owner.st_uid:
        os.chown(folder, owner.st_uid, owner.st_gid)
    return folder


def _what(info: ExportInfo) -> dict:
    what = {"export": info.export_id, "format": info.format}
    if info.selection is not None:
        what["selection"] = list(info.selection)
    else:
        what["query"] = info.query or ""
    return what
