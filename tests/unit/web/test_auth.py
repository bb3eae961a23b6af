"""The login throttle and the sessions of the web UI."""
import pytest

from services.web.auth import LoginThrottle, Sessions, Throttled
from services.appliance.users import User


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def fail(throttle, times, name="bob", address="10.1.1.1"):
    for _ in range(times):
        throttle.begin(name, address)  # counted as failed until succeeded() says otherwise


def test_five_failures_then_an_exponential_delay():
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    fail(throttle, 5)
    with pytest.raises(Throttled) as waiting:
        throttle.begin("bob", "10.1.1.1")
    assert waiting.value.retry_after == 2  # 2**0 s, rounded up
    clock.now += 1.01
    fail(throttle, 1)  # the sixth failure: now 2 s
    with pytest.raises(Throttled):
        throttle.begin("bob", "10.1.1.1")
    clock.now += 2.01
    fail(throttle, 1)
    clock.now += 3.9
    with pytest.raises(Throttled):  # the seventh: 4 s
        throttle.begin("BOB", "10.9.9.9")  # names are case-insensitive, any address
    clock.now += 0.2
    throttle.begin("bob", "10.1.1.1")


def test_the_delay_is_capped_and_forgotten_after_an_hour():
    clock = Clock()
    throttle = LoginThrottle(clock=clock, longest=60)
    fail(throttle, 5)
    for _ in range(20):
        clock.now += 61
        fail(throttle, 1)
    with pytest.raises(Throttled) as waiting:
        throttle.begin("bob", "10.1.1.1")
    assert waiting.value.retry_after <= 61
    clock.now += 3601
    throttle.begin("other", "10.2.2.2")  # trimming drops the old entries
    throttle.begin("bob", "10.1.1.1")


def test_success_clears_the_name_and_takes_back_the_address_attempt():
    throttle = LoginThrottle(clock=Clock(), free_per_address=3)
    fail(throttle, 2, name="alice")
    throttle.begin("alice", "10.1.1.1")
    throttle.succeeded("alice", "10.1.1.1")
    fail(throttle, 1, name="carol")  # the address has 3 failures now: 2 + carol's
    with pytest.raises(Throttled):
        throttle.begin("dave", "10.1.1.1")
    throttle.begin("dave", "10.2.2.2")


def test_sessions_expire_when_idle():
    sessions = Sessions(idle=60, lifetime=3600)
    user = User("alice", "user", ("alice@example.com",), {"hash": "ab" * 32})
    session = sessions.open(user)
    assert sessions.find(session.token) is session and session.stamp == "ab" * 8
    assert session.csrf and session.csrf != session.token
    session.last_seen -= 61
    assert sessions.find(session.token) is None
    assert sessions.find("made-up") is None
