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
        throttle.begin("BOB", "10.1.1.1")  # names are case-insensitive
    throttle.begin("bob", "10.9.9.9")  # an address that has not been guessing is not refused
    throttle.succeeded("bob", "10.9.9.9")
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


@pytest.mark.parametrize("guesses", [5, 500])
def test_guessing_from_one_address_never_refuses_the_user_at_another(guesses):
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    refused = 0
    for _ in range(guesses):
        try:
            throttle.begin("admin", "127.0.0.2")
        except Throttled:
            refused += 1
        clock.now += 0.01
    assert guesses - refused <= 7  # 5 free, then after waits of 1 s and 2 s
    throttle.begin("admin", "127.0.0.1")  # the right password is then checked
    throttle.succeeded("admin", "127.0.0.1")


def test_guessing_spread_over_many_addresses_slows_every_address_that_guessed():
    clock = Clock()
    throttle = LoginThrottle(clock=clock, free_overall=30)
    for n in range(31):
        fail(throttle, 1, name="admin", address=f"10.0.0.{n}")
    with pytest.raises(Throttled):
        throttle.begin("admin", "10.0.0.7")  # failed before: now waits, whatever the name
    with pytest.raises(Throttled):
        throttle.begin("alice", "10.0.0.7")
    throttle.begin("admin", "192.0.2.1")  # never failed: its attempt is checked
    throttle.succeeded("admin", "192.0.2.1")
    clock.now += 59
    with pytest.raises(Throttled):
        throttle.begin("admin", "10.0.0.7")
    clock.now += 1.01
    throttle.begin("admin", "10.0.0.7")  # after its wait (60 s), one more attempt
    clock.now += 3601
    throttle.begin("admin", "10.0.0.8")  # an hour without failures: forgotten


def test_an_ipv6_site_is_one_guesser():
    throttle = LoginThrottle(clock=Clock(), free_per_pair=2)
    throttle.begin("admin", "2001:db8:1:2::1")
    throttle.begin("admin", "2001:db8:1:2::2")
    with pytest.raises(Throttled):
        throttle.begin("admin", "2001:db8:1:2:ffff::3")
    throttle.begin("admin", "2001:db8:1:3::1")
    throttle.begin("admin", "::ffff:10.1.1.1")
    throttle.begin("admin", "10.1.1.1")
    with pytest.raises(Throttled):
        throttle.begin("admin", "::ffff:10.1.1.1")  # IPv4-mapped is that IPv4 address
