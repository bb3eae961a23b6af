"""Steps a Ctrl-C must not split."""
from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Within it, SIGINT (Ctrl-C) waits: blocked for the calling thread (POSIX
    pthread_sigmask(2); Python runs its handlers in the main thread, which must be the
    caller), it is delivered when the block ends, and its KeyboardInterrupt raised there.
    So a step such as storing a batch and counting what was stored is done whole: an
    import interrupted in between said one batch fewer than it had made durable. A
    process forked inside it inherits the block: start none there."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
