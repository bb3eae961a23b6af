"""services.common.interrupts: a Ctrl-C inside a deferred step comes after it, not in it."""
from __future__ import annotations

import os
import signal
import threading

import pytest

from services.common.interrupts import ctrl_c_deferred


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler (a background job, as CI runs, starts with it ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def another_thread():
    """A thread beside the main one, as an import's indexing thread: the kernel may hand a
    process's SIGINT to it (ci76 failed a version that blocked SIGINT in the caller only)."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    yield
    stop.set()
    thread.join()


@pytest.mark.parametrize("threads", ["main alone", "with another thread"])
def test_a_ctrl_c_inside_the_step_is_raised_once_it_is_done(ctrl_c_raises, request, threads):
    if threads != "main alone":
        request.getfixturevalue("another_thread")
    done = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("stored")
            done.append("counted")
    assert done == ["stored", "counted"]


def test_ctrl_c_is_raised_at_once_again_after_the_step(ctrl_c_raises):
    with ctrl_c_deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)  # (raised at once: nothing holds it)


def test_an_ignored_ctrl_c_stays_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ctrl_c_deferred():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # and nothing was raised
    finally:
        signal.signal(signal.SIGINT, before)


def test_in_another_thread_the_step_runs_as_it_is():
    done = []

    def step():
        with ctrl_c_deferred():
            done.append(signal.getsignal(signal.SIGINT))
    thread = threading.Thread(target=step)
    thread.start()
    thread.join()
    assert done == [signal.getsignal(signal.SIGINT)]  # no handler set: it may not be there
