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


@pytest.mark.parametrize("spelling", ["BOB", "Bob", "\uff42\uff4f\uff42", "\uff22\uff2f\uff22",
                                      "\u1d2e\u1d3c\u1d2e"])
def test_a_name_in_another_case_or_width_is_the_same_name(spelling):
    """Fullwidth letters are the same name to a directory (RFC 4518 maps them with NFKC):
    five guesses at bob, then one at ｂｏｂ, is a sixth guess at bob."""
    throttle = LoginThrottle(clock=Clock())
    fail(throttle, 5)
    with pytest.raises(Throttled):
        throttle.begin(spelling, "10.1.1.1")


def test_an_attempt_never_checked_is_taken_back_alone():
    """The directory was busy: that attempt is no failure, the earlier ones still count."""
    throttle = LoginThrottle(clock=Clock())
    fail(throttle, 4)
    for _ in range(10):
        throttle.begin("bob", "10.1.1.1")
        throttle.unchecked("bob", "10.1.1.1")
    fail(throttle, 1)  # the fifth failure
    with pytest.raises(Throttled):
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


def test_success_clears_the_name_and_the_address():
    """The right password from (name, address) forgets that pair's and that address's
    failures: a typo or a NAT neighbour's guesses do not hang over the next login."""
    throttle = LoginThrottle(clock=Clock(), free_per_address=3)
    fail(throttle, 2, name="alice")
    fail(throttle, 1, name="carol")
    with pytest.raises(Throttled):
        throttle.begin("dave", "10.1.1.1")  # 3 failures from the address
    throttle.begin("alice", "10.2.2.2")  # another address is not held
    throttle.succeeded("alice", "10.2.2.2")
    clock = Clock()
    throttle = LoginThrottle(clock=clock, free_per_address=3)
    fail(throttle, 2, name="alice")
    throttle.begin("alice", "10.1.1.1")
    throttle.succeeded("alice", "10.1.1.1")
    fail(throttle, 2, name="carol")  # 2 since the success: not yet 3
    throttle.begin("dave", "10.1.1.1")


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


def test_guessing_spread_over_many_addresses_slows_every_address_that_guesses():
    """Past free_overall failures in the hour, an address with `guessing` (3) failures or
    more waits overall_wait * 2**(failures - 3); one with fewer is checked at once."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock, free_overall=30)
    for n in range(31):
        fail(throttle, 1, name="admin", address=f"10.0.0.{n}")
    fail(throttle, 2, name="admin", address="10.0.0.7")  # 3 failures: guessing
    with pytest.raises(Throttled) as waiting:
        throttle.begin("admin", "10.0.0.7")  # now waits, whatever the name
    assert waiting.value.retry_after == 61
    with pytest.raises(Throttled):
        throttle.begin("alice", "10.0.0.7")
    throttle.begin("admin", "10.0.0.8")  # failed once: its attempt is checked
    throttle.succeeded("admin", "10.0.0.8")
    throttle.begin("admin", "192.0.2.1")  # never failed: checked
    throttle.succeeded("admin", "192.0.2.1")
    clock.now += 59
    with pytest.raises(Throttled):
        throttle.begin("admin", "10.0.0.7")
    clock.now += 1.01
    throttle.begin("admin", "10.0.0.7")  # after its wait (60 s), one more attempt
    with pytest.raises(Throttled) as waiting:
        throttle.begin("admin", "10.0.0.7")
    assert waiting.value.retry_after == 121  # the fourth failure: 120 s
    clock.now += 3601
    throttle.begin("admin", "10.0.0.7")  # an hour without failures: forgotten


@pytest.mark.parametrize("attackers", [101, 150, 1000])
def test_one_typo_under_distributed_guessing_never_refuses_the_right_password(attackers):
    """The reviewer's case: guessing from many addresses (one guess each, and a fresh one
    every 30 s), an API client's one typo, then ten minutes of HTTP Basic requests with the
    right password, one a second: every one is checked (590 of 600 were refused)."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for n in range(attackers):
        throttle.begin("admin", f"10.{n // 62500}.{n // 250 % 250}.{n % 250}")
    for typos in range(2):  # the typo, and a NAT neighbour's
        throttle.begin(("script", "neighbour")[typos], "192.0.2.7")
    for second in range(600):
        clock.now += 1
        throttle.begin("script", "192.0.2.7")
        throttle.succeeded("script", "192.0.2.7")
        if second % 30 == 0:
            throttle.begin("admin", f"10.9.{second // 250}.{second % 250}")
    assert throttle._under_attack(clock.now)


def test_one_slow_guesser_alone_never_holds_the_others():
    """One address guessing as fast as it may for six hours: only it is held; alice's
    typo, then her right password, is checked at once."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(6 * 3600):
        clock.now += 1
        try:
            throttle.begin("admin", "203.0.113.66")
        except Throttled:
            pass
    throttle.begin("alice", "198.51.100.1")
    clock.now += 2
    throttle.begin("alice", "198.51.100.1")
    throttle.succeeded("alice", "198.51.100.1")
    with pytest.raises(Throttled):
        throttle.begin("admin", "203.0.113.66")


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
