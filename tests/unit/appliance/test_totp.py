"""Two-factor codes: RFC 6238's test vectors, one step of drift, each
step once, recovery codes once and only as hashes, the QR code."""
import base64
import dataclasses
import subprocess
import sys

import pytest

from services.appliance import totp, users
from services.appliance.totp import TwoFactorError
from services.archive.archive import Archive

# RFC 6238 appendix B: the SHA-1 key "12345678901234567890"; 8-digit codes, of which a
# 6-digit code is the last six digits (RFC 4226 5.3: the same truncation, modulo 10**6).
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
               (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130")]


@pytest.fixture
def archive(tmp_path):
    opened = Archive(tmp_path / "data", 450)
    yield opened
    opened.close()


def enrol(archive, name="alice", secret=RFC_SECRET, at=59.0) -> list[str]:
    # the RFC's key, to check against its vectors
    enrolment = dataclasses.replace(totp.begin(archive, name, "Archiver"), secret=secret)
    return totp.confirm(archive, enrolment, code_at(secret, at), now=at)


def code_at(secret: str, when: float) -> str:
    import pyotp
    return pyotp.TOTP(secret).at(int(when))


@pytest.mark.parametrize("when, eight_digits", RFC_VECTORS)
def test_codes_are_rfc_6238s(archive, when, eight_digits):
    enrol(archive, at=max(when - 90, 0))  # enrolled a step or more before
    assert totp.verify(archive, "alice", eight_digits[-6:], now=when) == "totp"


def test_one_step_of_drift_either_way_and_no_more(archive):
    enrol(archive, at=1000 * 30)
    now = 1010 * 30
    for step, accepted in [(-2, False), (2, False), (-1, True), (1, True)]:
        code = code_at(RFC_SECRET, now + step * 30)
        assert (totp.verify(archive, "alice", code, now=now) == "totp") is accepted, step


def test_each_step_signs_in_once_and_never_an_earlier_one(archive):
    enrol(archive, at=1000 * 30)
    now = 1005 * 30
    current = code_at(RFC_SECRET, now)
    assert totp.verify(archive, "alice", current, now=now) == "totp"
    assert totp.verify(archive, "alice", current, now=now) is None  # replayed
    assert totp.verify(archive, "alice", code_at(RFC_SECRET, now - 30), now=now) is None
    assert totp.verify(archive, "alice", code_at(RFC_SECRET, now + 30), now=now) == "totp"


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", "12 34 5x", "１２３４５６",
                                   "123456\n", "-12345", "+12345"])
def test_malformed_codes_are_refused(archive, typed):
    enrol(archive, at=1000 * 30)
    assert totp.verify(archive, "alice", typed, now=1000 * 30 + 60) is None


def test_a_code_with_a_space_in_the_middle_is_read_as_typed(archive):
    enrol(archive, at=1000 * 30)
    code = code_at(RFC_SECRET, 1002 * 30)
    assert totp.verify(archive, "alice", f"{code[:3]} {code[3:]}", now=1002 * 30) == "totp"


def test_recovery_codes_work_once_each_and_are_kept_only_as_hashes(archive):
    codes = enrol(archive, at=1000 * 30)
    assert len(codes) == totp.RECOVERY_CODES == len(set(codes))
    stored = str(archive.store.setting(totp.SETTING_PREFIX + "alice"))
    assert not any(code in stored or code.replace("-", "") in stored for code in codes)
    assert totp.verify(archive, "alice", codes[3].upper(), now=0) == "recovery"
    assert totp.verify(archive, "alice", codes[3], now=0) is None
    assert totp.status(archive, "alice")["recovery_codes_left"] == totp.RECOVERY_CODES - 1
    renewed = totp.new_recovery_codes(archive, "alice")
    assert totp.verify(archive, "alice", codes[4], now=0) is None  # the old ones are gone
    assert totp.verify(archive, "alice", renewed[0], now=0) == "recovery"


def test_enrolment_needs_a_right_first_code(archive):
    enrolment = totp.begin(archive, "alice", "Archiver")
    assert archive.store.setting(totp.SETTING_PREFIX + "alice") is None  # the caller's alone
    with pytest.raises(TwoFactorError, match="not the app's current one"):
        totp.confirm(archive, enrolment, "000000", now=0)
    assert not totp.enrolled(archive, "alice")
    assert totp.in_use(archive, "alice") == totp.NO_CODES  # nothing kept: never had codes
    assert totp.verify(archive, "alice", "000000", now=0) is None  # pending is not on
    enrol(archive)
    with pytest.raises(TwoFactorError, match="already on"):
        totp.begin(archive, "alice", "Archiver")


def test_of_two_enrolments_begun_only_the_first_confirmed_switches_codes_on(archive):
    first, second = (totp.begin(archive, "alice", "Archiver") for _ in range(2))
    assert first.secret != second.secret
    totp.confirm(archive, second, code_at(second.secret, 3000), now=3000)
    with pytest.raises(TwoFactorError, match="already on"):
        totp.confirm(archive, first, code_at(first.secret, 3000), now=3000)
    assert totp.verify(archive, "alice", code_at(second.secret, 3030), now=3030) == "totp"


def test_codes_switched_off_and_on_again_are_others(archive):
    enrol(archive, at=1000 * 30)
    before = totp.in_use(archive, "alice")
    totp.remove(archive, "alice")
    totp.confirm(archive, new := totp.begin(archive, "alice", "Archiver"),
                 code_at(new.secret, 1001 * 30), now=1001 * 30)  # a new secret: new codes
    assert totp.in_use(archive, "alice") not in (before, totp.NO_CODES)


def test_every_change_of_codes_is_a_state_never_seen_before(archive):
    """On, off, on again, off by the account's removal, made again: each state its own id,
    none of them an earlier one's or NO_CODES (a session noted under one ends at the next);
    an off state (a tombstone) is no codes to enrolled(), status() and verify()."""
    users.add(archive, "alice", "auditor", [], "a good password")
    seen = [totp.in_use(archive, "alice")]
    assert seen == [totp.NO_CODES] and totp.current(archive, "alice") == (totp.NO_CODES, False)
    for at in (1000, 1010):
        enrol(archive, at=at * 30)
        seen.append(totp.in_use(archive, "alice"))
        assert totp.current(archive, "alice") == (seen[-1], True)
        off = totp.remove(archive, "alice")
        assert totp.in_use(archive, "alice") == off
        seen.append(off)
        assert not totp.enrolled(archive, "alice")
        assert totp.status(archive, "alice") == {"enrolled": False, "recovery_codes_left": 0}
        assert totp.verify(archive, "alice", code_at(RFC_SECRET, at * 30 + 30),
                           now=at * 30 + 30) is None
        with pytest.raises(TwoFactorError, match="not on"):
            totp.new_recovery_codes(archive, "alice")
    totp.verify(archive, "alice", "000000")  # a code tried changes no state
    users.remove(archive, "alice")
    seen.append(totp.in_use(archive, "alice"))
    users.add(archive, "alice", "auditor", [], "a good password")
    assert totp.in_use(archive, "alice") == seen[-1]  # made again: the removal's state
    assert len(set(seen)) == len(seen) == 6, seen


def test_codes_an_older_tree_switched_on_keep_one_state(archive):
    """A record without a state (an older tree's) is in one state while it stays."""
    archive.store.set_setting(totp.SETTING_PREFIX + "alice", {
        "secret": RFC_SECRET, "confirmed": True, "last_step": -1, "account": "alice"})
    first = totp.in_use(archive, "alice")
    assert totp.verify(archive, "alice", code_at(RFC_SECRET, 90), now=90) == "totp"
    assert totp.in_use(archive, "alice") == first != totp.NO_CODES


def test_an_enrolment_an_older_tree_kept_counts_for_nothing(archive):
    archive.store.set_setting(totp.SETTING_PREFIX + "alice", {
        "secret": RFC_SECRET, "confirmed": False, "last_step": -1, "account": "alice"})
    assert not totp.enrolled(archive, "alice")
    assert totp.in_use(archive, "alice") == totp.NO_CODES
    assert totp.verify(archive, "alice", code_at(RFC_SECRET, 90), now=90) is None
    enrol(archive, at=120)
    assert totp.enrolled(archive, "alice")


def test_the_enrolment_shows_an_otpauth_uri_and_its_qr_code(archive):
    enrolment = totp.begin(archive, "alice", "Example Archive")
    assert enrolment.uri.startswith("otpauth://totp/Example%20Archive:alice?")
    assert f"secret={enrolment.secret}" in enrolment.uri
    svg = enrolment.qr_svg
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "style" not in svg and "<script" not in svg  # the page's CSP forbids inline styles


def test_the_qr_code_reads_back_as_the_uri(archive, tmp_path):
    enrolment = totp.begin(archive, "alice", "Archiver")
    image = tmp_path / "qr.svg"
    image.write_text(enrolment.qr_svg)
    # zbarimg: zbar-tools, a host tool that `make setup` installs
    read = subprocess.run(["zbarimg", "--quiet", "--raw", image], capture_output=True,
                          text=True, timeout=60)
    assert read.stdout.strip() == enrolment.uri


def test_removing_an_account_removes_its_codes(archive):
    users.add(archive, "alice", "user", ["alice@example.com"], "a good password")
    enrol(archive)
    users.remove(archive, "alice")
    users.add(archive, "alice", "user", ["alice@example.com"], "a good password")
    assert not totp.enrolled(archive, "alice")


def test_codes_kept_by_an_entry_id_keep_the_name_they_signed_in_with(archive):
    enrolment = totp.begin(archive, "directory:1234", "Archiver", account="carol")
    assert "carol" in enrolment.uri and "1234" not in enrolment.uri  # the app shows the name
    totp.confirm(archive, enrolment, code_at(enrolment.secret, 60), now=60)
    enrolment = totp.begin(archive, "carl", "Archiver")
    totp.confirm(archive, enrolment, code_at(enrolment.secret, 60), now=60)
    accounts = {key: record["account"] for key, record in
                archive.store.settings_with_prefix(totp.SETTING_PREFIX).items()}
    assert accounts == {"two_factor:directory:1234": "carol", "two_factor:carl": "carl"}


OFF_IN_ANOTHER_PROCESS = """
import sys
from services.appliance import totp
from services.archive.archive import Archive
archive = Archive(sys.argv[1], 450)
totp.remove(archive, "alice")
archive.close()
"""


@pytest.mark.parametrize("spend", ["code", "recovery code", "renewal"])
def test_codes_switched_off_by_another_process_while_one_is_spent_stay_off(archive, tmp_path,
                                                                         monkeypatch, spend):
    """`archiver user two-factor-off` (another process) landing while the web service spends
    a code: the spend's read and write are one transaction, so its write never brings back
    the codes the other process switched off."""
    recovery = enrol(archive, at=59.0)
    checking = totp._matching_step

    def while_checking(record, code, now):  # the other process tries to write meanwhile
        other = subprocess.Popen([sys.executable, "-c", OFF_IN_ANOTHER_PROCESS,
                                  str(tmp_path / "data")])
        try:
            other.wait(timeout=2)  # it finishes only if nothing holds the write
        except subprocess.TimeoutExpired:
            pass
        monkeypatch.setattr(totp, "_matching_step", checking)
        waiting.append(other)
        return checking(record, code, now)
    waiting = []
    monkeypatch.setattr(totp, "_matching_step", while_checking)
    if spend == "code":
        assert totp.verify(archive, "alice", code_at(RFC_SECRET, 120.0), now=120.0) == "totp"
    elif spend == "recovery code":
        assert totp.verify(archive, "alice", recovery[0], now=120.0) == "recovery"
    else:
        monkeypatch.setattr(totp, "_recovery_codes", lambda: (
            while_checking({"secret": RFC_SECRET}, "0", 0.0), ([], {}))[1])
        totp.new_recovery_codes(archive, "alice")
    assert waiting and waiting[0].wait(timeout=30) == 0
    assert not totp.enrolled(archive, "alice")


def test_two_switch_offs_at_once_switch_off_once(archive):
    recovery = enrol(archive, at=59.0)
    first = totp.switch_off(archive, "alice", code_at(RFC_SECRET, 120.0), "first", now=120.0)
    second = totp.switch_off(archive, "alice", recovery[0], "second", now=120.0)
    assert (first, second, totp.in_use(archive, "alice")) == ("off", "none", "first")
    assert totp.switch_off(archive, "alice", "000000") == "none"
