"""Group commit: many threads hand in work, one thread applies it in batches.

Each batch is one durable LMDB transaction, so N concurrent puts cost one sync instead of
N, and every caller is answered only after the batch holding its item is committed. A batch
that fails (its transaction is then aborted: nothing of it is written) is applied again one
item at a time, so that only the items that fail by themselves are refused.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Callable, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommitter(Generic[Item, Result]):
    def __init__(self, apply_batch: Callable[[list[Item]], list[Result]], max_batch: int = 512,
                 name: str = "group-commit"):
        self._apply_batch = apply_batch
        self._max_batch = max_batch
        self._pending: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> Result:
        """Block until the batch holding `item` is durable; return its result or raise."""
        return self.submit_future(item).result()

    def submit_future(self, item: Item) -> Future:
        """Hand in `item` without waiting: the Future gets its result (or exception) once
        the batch holding it is durable; its done callbacks run in the committing thread,
        so an event loop is told straight from there (no thread waits in between)."""
        future: Future = Future()
        self._pending.put((item, future))
        return future

    def close(self) -> None:
        self._pending.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._pending.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    more = self._pending.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._pending.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch) -> None:
        try:
            results = self._apply_batch([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
            else:  # nothing of it was written: one bad item must not fail the others
                for one in batch:
                    self._commit([one])
            return
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: tell every caller why
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
