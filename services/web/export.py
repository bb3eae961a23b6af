"""Exports of a search or of chosen messages, streamed: the evidence zip (the messages,
manifest.csv, export.json, SHA256SUMS; services.archive.evidence) is written in a thread
of the transfer pool (services.web.transfers) straight into the HTTP response, a chunk at
a time, so an export of any size needs memory that does not grow with it (its manifest,
checksums and zip directory are spooled to unnamed files on the data disk); a client that
goes away, or takes no data for the idle write timeout, stops the writer. A search's export
lists what it matched when the export began, each message once, newest first
(services.archive.search_snapshot). The audit log gets the export with its manifest's
digest once it is complete, or why it failed (services.policy.exports)."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import BinaryIO, Callable, Iterable, Iterator

from aiohttp import web

from services.appliance.users import User
from services.archive.archive import Archive
from services.archive import search_snapshot
from services.archive.evidence import FORMATS
from services.archive.search import parse
from services.policy import exports
from services.web.access import as_read, mail_filter, reader, reads_all_mail
from services.web.transfers import CHUNK, AppStopping, ClientIdle, Transfers

CONTENT_TYPE = "application/zip"


class BadExport(ValueError):
    """An export asked for wrongly (unknown format, nothing chosen): a 400."""


def matching(archive: Archive, user: User, query: str, timezone: str = "UTC"
             ) -> search_snapshot.Snapshot:
    """What `query` matches now among the mail `user` may read (search_snapshot.take);
    dates are days in `timezone`. Raises QuerySyntaxError, PatternTooBroad."""
    return search_snapshot.take(archive.live_index_link(), query, timezone,
                                within_query=mail_filter(user), reader=reader(user))


def selected_messages(archive: Archive, user: User, digests: Iterable[str]
                      ) -> Iterator[tuple[str, bytes, dict]]:
    """(digest, raw, metadata) of each of `digests` that is stored and `user` may read, in
    the order given, as they read it (access.as_read); the others are left out (gone, or
    not theirs: not theirs to know)."""
    return _as_read(user, search_snapshot.stored_messages(archive.store, digests))


def _as_read(user: User, messages: Iterator[tuple[str, bytes, dict]]
             ) -> Iterator[tuple[str, bytes, dict]]:
    """Those of `messages` `user` may read, as they read them (access.as_read); closing
    this closes them."""
    try:
        for digest, raw, meta in messages:
            copy = as_read(user, raw, meta)
            if copy is not None:
                yield (digest, *copy)
    finally:
        messages.close()


async def start(request: web.Request, archive: Archive, user: User, fmt: str,
                timezone: str, query: str | None = None,
                digests: list[str] | None = None) -> web.StreamResponse:
    """Stream the export of `digests` (when given) or of `query`'s matches, on the
    transfer pool (request.app["transfers"]) in one of the user's transfer slots. Raises
    BadExport, QuerySyntaxError, TransfersBusy (a 429: the user's or everyone's slots are
    taken), or EmptyExport (nothing the user may read was chosen: then nothing is sent,
    and the audit log says so)."""
    if fmt not in FORMATS:
        raise BadExport(f"format: expected zip or mbox, got {fmt!r}")
    if digests is not None and not digests:
        raise BadExport("no message chosen: tick some, or export all the results")
    if digests is None:
        await asyncio.to_thread(parse, query or "")  # a bad query is a 400, not a broken zip
    transfers: Transfers = request.app["transfers"]
    async with transfers.slot(user):
        as_of = None
        if digests is None:  # each match once, as of now, newest first
            snapshot = await transfers.run(matching, archive, user, query or "", timezone)
            messages = _as_read(user, snapshot.messages(archive.store))
            # The highest document id tells how much mail the archive ever took in: only
            # for those who may read all of it.
            as_of = snapshot.as_of if reads_all_mail(user) else None
        else:
            messages = selected_messages(archive, user, digests)
        try:
            info = exports.new_info(archive.store, user.actor, fmt, query, digests,
                                    timezone, as_of)
            first = await transfers.run(next, messages, None)
            if first is None:  # recorded, and said, before any byte of a download is sent
                await transfers.run_to_end(exports.export, archive.store, user.actor,
                                           info, [], None)
            chained = itertools.chain([first], messages)
            return await stream(request, transfers, lambda sink: exports.export(
                archive.store, user.actor, info, chained, sink), download_name(info))
        finally:
            _let_go(messages)


def _let_go(messages: Iterator) -> None:
    """Close an export's messages once it is over, finished or cut: what they read from
    (the index a search's snapshot holds: services.archive.index_hold) is let go now. One
    still being read in a transfer thread (the request was cancelled) is let go as that
    thread ends."""
    try:
        messages.close()
    except ValueError:  # "generator already executing"
        pass


def download_name(info) -> str:
    when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(info.created))
    kind = "-mbox" if info.format == "mbox" else ""
    return f"archive-export-{when}-{info.export_id}{kind}.zip"


async def stream(request: web.Request, transfers: Transfers,
                 write: Callable[[BinaryIO], object], filename: str) -> web.StreamResponse:
    """Send what `write(sink)` writes, as a download named `filename`; the caller holds
    the user's transfer slot (Transfers.slot). The writer job is submitted before any byte
    is sent: once the response has begun, the job runs and records how the export ended;
    a pool that is closed already (the app stops) refuses it, and nothing is sent
    (AppStopping). The job's first write waits until the response has begun."""
    response = web.StreamResponse(headers={
        "Content-Type": CONTENT_TYPE,
        "Content-Disposition": f'attachment; filename="{filename}"'})
    loop = asyncio.get_running_loop()
    began = loop.create_future()  # True once the status line and headers are sent
    sink = _ResponseSink(request, response, transfers, loop, began)

    def produce() -> None:
        write(sink)
        sink.flush()

    job = transfers.run_to_end(produce)
    try:
        await response.prepare(request)
    except BaseException:
        began.set_result(False)  # its writes fail: the export is recorded as failed
        with contextlib.suppress(Exception):
            await job  # the slot is held until the thread is done
        raise
    began.set_result(True)
    try:
        await job
    except (ClientIdle, ConnectionError):
        # cut, or the client went: the connection is reset or gone, the thread and slot
        # are free, and the audit log has the export as failed
        return response
    except AppStopping:
        if request.transport is not None:
            request.transport.abort()  # else the end of the response waits for the client
        return response
    await transfers.finish(request, response)
    return response


class _ResponseSink:
    """A write-only file for the writer thread; each full chunk is sent on the event loop
    and the thread waits for it, so a slow client slows the export, not memory."""

    def __init__(self, request: web.Request, response: web.StreamResponse,
                 transfers: Transfers, loop: asyncio.AbstractEventLoop,
                 began: asyncio.Future):
        self.request, self.response, self.transfers, self.loop = (request, response,
                                                                  transfers, loop)
        self.began = began  # stream(): whether the response has begun
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            chunk, self.buffer = bytes(self.buffer), bytearray()
            self.transfers.wait_from_thread(self._send(chunk), self.loop)

    async def _send(self, chunk: bytes) -> None:
        if not await asyncio.shield(self.began):
            raise ConnectionResetError("the response could not begin")
        await self.transfers.write(self.request, self.response, chunk)
