"""services.common.interrupts: a Ctrl-C inside a deferred step comes after it, not in it."""
from __future__ import annotations

import os
import signal

import pytest

from services.common.interrupts import ctrl_c_deferred


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler (a background job, as CI runs, starts with it ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_ctrl_c_inside_the_step_is_raised_once_it_is_done(ctrl_c_raises):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("stored")
            done.append("counted")
    assert done == ["stored", "counted"]


def test_sigint_is_not_blocked_after_the_step(ctrl_c_raises):
    with ctrl_c_deferred():
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)  # (raised at once: nothing holds it)
