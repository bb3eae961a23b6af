"""Server-side renders of what mail carries (PDF pages by poppler): their own small pool of
threads, a limit per user, and a memory of what failed. A stranger's PDF may be built to
take a renderer's whole time limit (nested form XObjects: a 2 KB file, minutes of drawing);
here it holds at most its user's few render slots and never the threads that message
pages, part downloads and logins run on (asyncio's default pool), and it costs its time
once: a page that failed or timed out is answered from memory the next time.

Bounds: at most `workers` renders run at once; one user runs at most `per_user` of them
and has at most `waiting` more queued behind those (more: RendersBusy, answered 429 —
fine for an <img>); identical renders asked at once run once; FAILURES_REMEMBERED
failures are kept (least recently used first out), keyed by the SHA-256 of the document
and the page.
"""
from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from services.appliance.users import User
from services.web.transfers import TransfersBusy

FAILURES_REMEMBERED = 1024


class RendersBusy(TransfersBusy):
    """Answered 429 with Retry-After: the user's (or everyone's) render slots are taken."""


class RenderFailed(Exception):
    """The render failed now or before (the reason in words)."""


class Renders:
    """The render pool of one web app: `workers` threads, `per_user` renders running and
    `waiting` queued per user."""

    def __init__(self, workers: int = 3, per_user: int = 2, waiting: int = 6):
        self.workers, self.per_user, self.waiting = workers, per_user, waiting
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="web-render")
        self.admitted: Counter[str] = Counter()   # per user: running and queued
        self._running: dict[str, asyncio.Semaphore] = {}
        self._in_flight: dict[tuple, asyncio.Future] = {}
        self.failures: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()  # failures are remembered from the pool's threads
        self.started = 0      # renders run (for /metrics and tests)
        self.remembered = 0   # answers given from the memory of failures

    async def render(self, user: User, data: bytes, key: tuple, function: Callable,
                     *args, errors: tuple[type[Exception], ...] = ()) -> bytes:
        """function(*args) on the render pool, in one of the user's slots. `key` names the
        render within `data` (e.g. ("page", 3)); an exception of `errors` is remembered
        for (SHA-256 of data, key) and raised as RenderFailed, now and for every later
        request. Raises RendersBusy when the user (or everyone) has too many queued."""
        memo_key = (hashlib.sha256(data).hexdigest(), *key)
        known = self._remembered(memo_key)
        if known is not None:
            raise RenderFailed(known)
        running = self._in_flight.get(memo_key)
        if running is not None:  # the same render asked twice: wait for the first
            return await asyncio.shield(running)
        self._admit(user)
        future = asyncio.get_running_loop().create_future()
        self._in_flight[memo_key] = future
        try:
            result = await self._run(user, memo_key, function, args, errors)
            future.set_result(result)
            return result
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._in_flight[memo_key]
            self._release(user)

    async def _run(self, user: User, memo_key: tuple, function: Callable, args: tuple,
                   errors: tuple[type[Exception], ...]) -> bytes:
        semaphore = self._running.setdefault(user.name, asyncio.Semaphore(self.per_user))
        async with semaphore:
            self.started += 1
            return await asyncio.get_running_loop().run_in_executor(
                self.executor, self._remembering, memo_key, errors, function, args)

    def _remembering(self, memo_key: tuple, errors: tuple[type[Exception], ...],
                     function: Callable, args: tuple) -> bytes:
        # In the thread, so a failure is remembered even when the asking client is gone.
        try:
            return function(*args)
        except errors as exc:
            self._remember(memo_key, str(exc))
            raise RenderFailed(str(exc)) from None

    def _admit(self, user: User) -> None:
        if self.admitted[user.name] >= self.per_user + self.waiting:
            raise RendersBusy(f"{user.name} already has {self.admitted[user.name]} page "
                              "renders running or queued, the most one user may; try again "
                              "shortly", retry_after=5)
        if sum(self.admitted.values()) >= 4 * (self.workers + self.waiting):
            raise RendersBusy("the page renderer is busy; try again shortly", retry_after=5)
        self.admitted[user.name] += 1

    def _release(self, user: User) -> None:
        self.admitted[user.name] -= 1
        if not self.admitted[user.name]:
            del self.admitted[user.name]
            self._running.pop(user.name, None)

    def _remembered(self, memo_key: tuple) -> str | None:
        with self._lock:
            reason = self.failures.get(memo_key)
            if reason is not None:
                self.failures.move_to_end(memo_key)
                self.remembered += 1
            return reason

    def _remember(self, memo_key: tuple, reason: str) -> None:
        with self._lock:
            self.failures[memo_key] = reason
            while len(self.failures) > FAILURES_REMEMBERED:
                self.failures.popitem(last=False)

    def close(self) -> None:
        """Drop queued renders; running ones end within the renderer's time limit."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    def join(self) -> None:
        """Wait until running renders have ended (within the renderer's time limit)."""
        self.executor.shutdown(wait=True)
