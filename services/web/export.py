"""Exports of a search, streamed: the zip or mbox is written in a thread of the transfer
pool (services.web.transfers) straight into the HTTP response, a chunk at a time, so an
export of any size needs no disk and little memory; a client that goes away, or takes no
data for the idle write timeout, stops the writer."""
from __future__ import annotations

import asyncio
import time
from typing import Iterator

from aiohttp import web

from services.archive.archive import Archive
from services.archive.mailfiles import write_mbox_to, write_zip_to
from services.archive.search import search
from services.archive.store import NotFound
from services.appliance.users import User
from services.web.access import mail_filter, may_read
from services.web.transfers import CHUNK, ClientIdle, Transfers

PAGE = 500
FORMATS = {"zip": ("application/zip", write_zip_to),
           "mbox": ("application/mbox", write_mbox_to)}


def matching_messages(archive: Archive, user: User, query: str, timezone: str = "UTC"
                      ) -> Iterator[tuple[str, bytes]]:
    """(digest, raw) of every message `query` finds that `user` may read; dates are days
    in `timezone`, relative ones as of the start of the export."""
    index_dir, within, offset, now = archive.index_dir(), mail_filter(user), 0, time.time()
    while hits := search(index_dir, query, PAGE, offset, within=within, timezone=timezone,
                         now=now).hits:
        for hit in hits:
            try:
                meta, raw = archive.store.meta(hit.digest), archive.store.get(hit.digest)
            except NotFound:
                continue  # deleted since it was indexed (retention)
            if may_read(user, raw, meta):
                yield hit.digest, raw
        offset += len(hits)


def download_name(fmt: str) -> str:
    return time.strftime(f"archive-export-%Y%m%dT%H%M%SZ.{fmt}", time.gmtime())


async def stream(request: web.Request, transfers: Transfers, fmt: str,
                 messages: Iterator[tuple[str, bytes]]) -> web.StreamResponse:
    """Send the export; the caller holds the user's transfer slot (Transfers.slot)."""
    content_type, write = FORMATS[fmt]
    response = web.StreamResponse(headers={
        "Content-Type": content_type,
        "Content-Disposition": f'attachment; filename="{download_name(fmt)}"'})
    await response.prepare(request)
    sink = _ResponseSink(request, response, transfers, asyncio.get_running_loop())

    def produce() -> None:
        write(messages, sink)
        sink.flush()

    try:
        await transfers.run(produce)
    except ClientIdle:
        return response  # cut: the connection is reset, the thread and slot are free
    await transfers.finish(request, response)
    return response


class _ResponseSink:
    """A write-only file for the writer thread; each full chunk is sent on the event loop
    and the thread waits for it, so a slow client slows the export, not memory."""

    def __init__(self, request: web.Request, response: web.StreamResponse,
                 transfers: Transfers, loop: asyncio.AbstractEventLoop):
        self.request, self.response, self.transfers, self.loop = (request, response,
                                                                  transfers, loop)
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            chunk, self.buffer = bytes(self.buffer), bytearray()
            sent = self.transfers.write(self.request, self.response, chunk)
            asyncio.run_coroutine_threadsafe(sent, self.loop).result()
