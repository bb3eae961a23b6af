"""The memory budget of messages being stored: never exceeded, first come first served,
robust to sessions that end while waiting."""
import asyncio
import os
import tracemalloc

import pytest

from firmware.models import HEADER_SUMMARY_MEMORY_MB, MESSAGE_MEMORY_COPIES
from services.archive.store import Envelope, Store
from services.intake.gate import archive_message
from services.intake.memory_budget import MemoryBudget, memory_to_store

MiB = 1024 * 1024


def test_storing_costs_the_copies_and_the_header_summary_bounded():
    assert memory_to_store(1000) == MESSAGE_MEMORY_COPIES * 1000 + 64 * 1000
    assert memory_to_store(100 * MiB) == (MESSAGE_MEMORY_COPIES * 100 + HEADER_SUMMARY_MEMORY_MB) * MiB


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_takers_never_exceed_the_budget_and_are_served_in_order():
    async def scenario():
        budget, order, peak = MemoryBudget(100), [], [0]

        async def store(name, amount, seconds):
            granted = await budget.take(amount)
            order.append(name)
            peak[0] = max(peak[0], budget.used)
            await asyncio.sleep(seconds)
            budget.give_back(granted)

        await asyncio.gather(store("a", 60, 0.02), store("big", 90, 0.01), store("b", 10, 0),
                             store("c", 500, 0), store("d", 5, 0))
        return order, peak[0], budget.used
    order, peak, used = run(scenario())
    assert order == ["a", "big", "b", "c", "d"]  # b fits beside a, but big came first
    assert peak <= 100 and used == 0  # c (500) was capped at the whole budget, alone


def test_a_taker_cancelled_while_waiting_gives_its_turn_to_the_next():
    async def scenario():
        budget = MemoryBudget(100)
        first = await budget.take(80)
        waiting = asyncio.create_task(budget.take(50))
        behind = asyncio.create_task(budget.take(20))
        await asyncio.sleep(0)
        waiting.cancel()
        granted = await asyncio.wait_for(behind, 1)  # not stuck behind the cancelled one
        budget.give_back(first)
        budget.give_back(granted)
        return budget.used, waiting.cancelled()
    assert run(scenario()) == (0, True)


def test_a_taker_cancelled_just_as_it_was_granted_gives_the_memory_back():
    async def scenario():
        budget = MemoryBudget(100)
        first = await budget.take(100)
        waiting = asyncio.create_task(budget.take(40))
        await asyncio.sleep(0)
        budget.give_back(first)  # grants the waiter ...
        waiting.cancel()         # ... which is cancelled before it runs again
        await asyncio.gather(waiting, return_exceptions=True)
        return budget.used
    assert run(scenario()) == 0


def shapes(size: int):
    """Messages of about `size` bytes whose storing takes the most memory per byte."""
    yield "all header", (b"X-H: " + b"y" * 70 + b"\r\n") * (size // 77)
    yield "tiny headers", b"X:\n" * (size // 3)
    yield "8-bit body", b"From: a@example.com\r\n\r\n" + os.urandom(size)
    yield "journal report", (
        b"From: j@example.com\r\nX-MS-Journal-Report:\r\nContent-Type: multipart/mixed; "
        b"boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nSender: a@example.com\r\n"
        b"Recipient: b@example.com\r\n--BB\r\nContent-Type: message/rfc822\r\n\r\n"
        b"From: a@example.com\r\n\r\n" + os.urandom(size) + b"\r\n--BB--\r\n")
    yield "journal report all header", b"X-MS-Journal-Report:\r\n" + b"X:\n" * (size // 3)


@pytest.mark.parametrize("name", [name for name, _ in shapes(1)])
def test_storing_takes_no_more_than_memory_to_store_says(tmp_path, name):
    raw = dict(shapes(8 * MiB))[name]
    store = Store(tmp_path, 256 * MiB)
    try:
        tracemalloc.start()
        archive_message(store, raw, Envelope("a@example.com", ["b@example.com"]), "smtp", True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        store.close()
    # Python traces neither the raw bytes (made before) nor LMDB's pages: two of the copies.
    assert peak <= memory_to_store(len(raw)) - 2 * len(raw), f"{peak / len(raw):.1f} x"
