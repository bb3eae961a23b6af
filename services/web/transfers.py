"""Downloads and exports: their own bounded pool of threads, a limit per user, and an idle
write timeout. A client that starts transfers and never reads them then holds at most its
own few slots, each for at most the idle timeout, and never the threads that logins and
searches run on (asyncio's default pool): those never wait behind a transfer.

Bounds (web.transfers, web.transfers_per_user, web.transfer_idle_seconds): at most
`workers` transfers run at once, each holding one thread and one chunk (CHUNK) of
memory; one user runs at most `per_user` of them; a transfer whose client takes none of its
data for `idle_seconds` is cut (its connection reset), freeing its thread and slot.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Callable

from aiohttp import web

from services.appliance.users import User

CHUNK = 256 * 1024  # bytes handed to the connection at a time


class TransfersBusy(Exception):
    """Answered 429 with Retry-After: the user's (or everyone's) transfer slots are taken."""

    def __init__(self, reason: str, retry_after: int):
        super().__init__(reason)
        self.retry_after = retry_after


class ClientIdle(Exception):
    """The client took no data for the idle write timeout: the transfer was cut."""


class AppStopping(Exception):
    """The web app is shutting down: the transfer was cut."""


class Transfers:
    """The pool of one web app. `workers`, `per_user`: transfers at once, in all and per
    user; `idle_seconds`: how long a write may wait for the client to read."""

    def __init__(self, workers: int, per_user: int, idle_seconds: float):
        self.workers, self.per_user, self.idle_seconds = workers, per_user, idle_seconds
        self.executor = ThreadPoolExecutor(max_workers=workers,
                                           thread_name_prefix="web-transfer")
        self.running: Counter[str] = Counter()
        self.cut = 0  # transfers cut for an idle client, for /metrics
        # What writer threads wait for on the event loop; close() cancels them, since a
        # stopped loop never completes them and a thread left waiting keeps the process
        # from exiting (the executor's threads are joined at interpreter exit).
        self._waits: set[concurrent.futures.Future] = set()
        self._waits_lock = threading.Lock()
        self._closed = False

    @contextlib.asynccontextmanager
    async def slot(self, user: User) -> AsyncIterator[None]:
        """Hold one of the user's transfer slots; TransfersBusy when none is free. Runs on
        the event loop (no lock needed): take it before the response is prepared."""
        if self.running[user.name] >= self.per_user:
            raise TransfersBusy(
                f"{user.name} already has {self.running[user.name]} downloads or exports "
                f"running, the most one user may (web.transfers_per_user); let one finish",
                retry_after=int(self.idle_seconds) + 1)
        if sum(self.running.values()) >= self.workers:
            raise TransfersBusy(f"all {self.workers} download and export slots are in use "
                                "(web.transfers); try again shortly", retry_after=5)
        self.running[user.name] += 1
        try:
            yield
        finally:
            self.running[user.name] -= 1
            if not self.running[user.name]:
                del self.running[user.name]

    @property
    def closed(self) -> bool:
        """Whether close() was called: the pool takes no new transfers."""
        return self._closed

    async def run(self, function: Callable, *args):
        """function(*args) on the transfer pool (a blocking read or a writer thread).
        AppStopping when the pool is closed (the app stops): nothing was run."""
        return await self._submit(function, *args)

    def run_to_end(self, function: Callable, *args) -> asyncio.Future:
        """Submit function(*args) now and return what to await for its result; once
        submitted it runs to its end even when the request is cancelled meanwhile (its
        client went before a thread took it up): an export whose response has begun then
        still writes its audit entry ("export-failed"), as one cut mid-way does. A
        cancelled caller gets CancelledError; the function's own error is then dropped (a
        client that went makes its writes fail). AppStopping at once when the pool is
        closed (the app stops): then nothing runs, so submit before any byte is sent."""
        future = self._submit(function, *args)
        future.add_done_callback(_retrieve_error)
        return asyncio.shield(future)

    def _submit(self, function: Callable, *args) -> asyncio.Future:
        # A closed pool's executor refuses jobs with a RuntimeError; the app stops.
        if self._closed:
            raise AppStopping("the web app is stopping: no new downloads or exports")
        return asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def write(self, request: web.Request, response: web.StreamResponse,
                    data: bytes) -> None:
        """Send `data`; ClientIdle (after resetting the connection) when the client takes
        none of it for idle_seconds. The reset frees the socket's unsent buffer at once."""
        try:
            await asyncio.wait_for(response.write(data), self.idle_seconds)
        except asyncio.TimeoutError:
            self.cut += 1
            if request.transport is not None:
                request.transport.abort()
            raise ClientIdle(f"no data taken for {self.idle_seconds:g} s: transfer cut") \
                from None

    async def send(self, request: web.Request, data: bytes, filename: str,
                   content_type: str) -> web.StreamResponse:
        """A download the browser saves and never renders (mail is from strangers), sent a
        chunk at a time with the idle write timeout."""
        safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)[:150]
        response = web.StreamResponse(headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{safe_name or "download"}"'})
        response.content_length = len(data)
        await response.prepare(request)
        view = memoryview(data)
        try:
            for start in range(0, len(data), CHUNK):
                await self.write(request, response, bytes(view[start:start + CHUNK]))
        except (ClientIdle, ConnectionError):
            return response  # cut, or the client went: nothing more to send, no error
        await self.finish(request, response)
        return response

    async def finish(self, request: web.Request, response: web.StreamResponse) -> None:
        """End the response, within the idle write timeout too."""
        try:
            await asyncio.wait_for(response.write_eof(), self.idle_seconds)
        except asyncio.TimeoutError:
            self.cut += 1
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            pass  # the client went: nothing is left to send it

    def wait_from_thread(self, coroutine, loop: asyncio.AbstractEventLoop):
        """Run `coroutine` on `loop` and wait for its result in a transfer thread.
        Raises AppStopping when the pool is closed meanwhile (the app shuts down), so the
        thread ends instead of waiting on a loop that no longer serves it."""
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        with self._waits_lock:
            if self._closed:
                future.cancel()
            self._waits.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise AppStopping("the web app is stopping: transfer cut") from None
        finally:
            with self._waits_lock:
                self._waits.discard(future)
            # The future holds an error raised in it, whose traceback holds this frame: a
            # cycle that would keep what the transfer read (an export's index hold) until
            # the garbage collector next runs.
            del future

    def close(self) -> None:
        """Release threads waiting on the event loop; take no new transfers."""
        with self._waits_lock:
            self._closed = True
            for future in self._waits:
                future.cancel()
        # Queued jobs are not cancelled: each runs to its first write, which fails now
        # (AppStopping), so an export still records how it ended. Never many: the slots
        # let at most `workers` transfers run, each with one job in the pool at a time.
        self.executor.shutdown(wait=False)

    def join(self) -> None:
        """Wait until the running transfers' threads have ended (after close(): each ends
        at its next write to the client, or when it finishes reading)."""
        self.executor.shutdown(wait=True)


def _retrieve_error(future: asyncio.Future) -> None:
    """Mark a shielded job's error as seen: its caller may have gone (run_to_end)."""
    if not future.cancelled():
        future.exception()
