"""`make test`: every tier, in two streams at once, each one pytest run in its own order.

- the QEMU stream: the tests that build images or boot virtual appliances (marked `image`
  or `system`). They share build/ (the cached base tree, the images, the VMs), so they
  stay in one stream, one after another, as before.
- the host stream: everything else (unit and integration tests).

Run one after the other the two took some 35 minutes here, 18 of them the QEMU stream,
whose time is mostly a guest under TCG booting or waiting on itself: the host stream runs in
that time. Each stream's lines are printed as they come, prefixed with its name; the
summary of each is printed again at the end. The exit status is the first failing
stream's (pytest's: 1 tests failed, 2 interrupted, 5 no tests ...), else 0.

    python -m tests.tiers [pytest options for both streams ...]
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field

QEMU_MARKS = "image or system"
BASETEMP = "/tmp/archiver-tests"


@dataclass
class Stream:
    name: str
    marks: str
    options: tuple[str, ...] = ()
    process: subprocess.Popen | None = None
    last_lines: list[str] = field(default_factory=list)


def streams(extra: list[str]) -> list[Stream]:
    # Only the host stream keeps pytest's cache: two runs writing .pytest_cache at once race.
    return [Stream("qemu", QEMU_MARKS, ("-p", "no:cacheprovider", *extra)),
            Stream("host", f"not ({QEMU_MARKS})", tuple(extra))]


def start(stream: Stream, lock: threading.Lock) -> threading.Thread:
    # Each its own temporary folder: neither cleans up the other's.
    command = [sys.executable, "-m", "pytest", "-m", stream.marks, "--durations=15",
               f"--basetemp={BASETEMP}-{stream.name}", *stream.options, "tests"]
    stream.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=os.environ.copy())
    thread = threading.Thread(target=relay, args=(stream, lock), daemon=True)
    thread.start()
    return thread


def relay(stream: Stream, lock: threading.Lock) -> None:
    """Print the stream's lines as they come, prefixed; keep its last ones (its summary)."""
    for raw in stream.process.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        with lock:
            print(f"[{stream.name}] {line}", flush=True)
        stream.last_lines = (stream.last_lines + [line])[-3:]


def main(argv: list[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    lock = threading.Lock()
    running = [(stream, start(stream, lock)) for stream in streams(extra)]
    statuses = []
    for stream, thread in running:
        statuses.append(stream.process.wait())
        thread.join()
    print("\n== summary ==")
    for (stream, _), status in zip(running, statuses):
        print(f"[{stream.name}] exit {status}: {stream.last_lines[-1] if stream.last_lines else ''}")
    return next((status for status in statuses if status != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
