"""Steps a Ctrl-C must not split."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Within it, SIGINT (Ctrl-C) waits: a handler that only notes it stands in for the one
    before, which is run once the block ends (Python's own raises KeyboardInterrupt there;
    the default action ends the process; an ignored SIGINT stays ignored). So a step such as
    storing a batch and counting what was stored is done whole: an import interrupted in
    between said one batch fewer than it had made durable. Python runs handlers in the
    main thread whichever thread the signal reached (blocking it with pthread_sigmask(2)
    did not hold: another thread took it); in any other thread, where no KeyboardInterrupt
    is ever raised, it changes nothing (signal.signal would raise ValueError there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
        if caught:
            _run_handler(before)


def _run_handler(handler) -> None:
    """What a SIGINT would have done under `handler` (from signal.signal)."""
    if handler is signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)
    elif callable(handler):
        handler(signal.SIGINT, None)
