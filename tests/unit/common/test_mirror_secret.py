"""The mirror secret's rule: length and zxcvbn's estimate, over corpora of weak and strong
secrets, and generated secrets."""
from __future__ import annotations

import string

import pytest

from firmware.errors import ArchiverError
from services.common import mirror_secret
from services.common.mirror_secret import MIN_LENGTH, WeakSecret, check, generate, problem

# Each passed the old rule (16 characters or more), and each is guessed quickly.
WEAK = [
    "sixteen chars!!!",                           # the old minimum
    "a shared secret of 16+",
    "aaaaaaaaaaaaaaaaaaaaaaaa",                   # repeats
    "abcdefghijklmnopqrstuvwxyz",                 # sequences
    "01234567890123456789012345",
    "qwertyuiopasdfghjklzxcvbnm",                 # a keyboard walk
    "Password1234567890!!",                       # a common word with digits
    "mirror secret mirror secret",                # the product's own words
    "archiver-mirror-secret-2024",
    "secretsecretsecretsecret",
    "1qaz2wsx3edc4rfv5tgb6yhn",
    "iloveyouiloveyouiloveyou",
    # Phrases of common words (zxcvbn scored them 10^20 or more as typed; the review's four)
    "correct horse battery staple",
    "the quick brown fox jumps over the lazy dog",
    "mirror-secret-for-example-com",
    "archiver-mirror-secret-2024-01",
    "Correct.Horse_Battery-Staple",
    "lab mirror secret, shared by every VM of the lab",  # the VM lab's old default
    "a shared secret of enough length",
]
STRONG = [
    "tulip-gravel-mosaic-ninja-orbit-fjord",
    "quartz-lantern-vivid-saddle-prism-otter",
    "x7Kq9pL2mR4vT8wZ3nB6yH5s",
    "lab: quartz lantern vivid saddle prism otter fjord",  # qemu/lab.py's default
    "crème-brûlée-façade-naïve-élan-öre",
]


@pytest.mark.parametrize("secret", WEAK)
def test_weak_secrets_are_refused_with_the_reason_and_never_echoed(secret):
    reason = problem(secret)
    assert reason is not None
    with pytest.raises(WeakSecret) as refused:
        check(secret)
    assert isinstance(refused.value, ArchiverError) and str(refused.value) == reason
    assert secret not in reason
    if len(secret) < MIN_LENGTH:
        assert f"at least {MIN_LENGTH} characters" in reason and f"has {len(secret)}" in reason
    else:
        assert "too easy to guess" in reason and "10^20" in reason


@pytest.mark.parametrize("length", [0, 1, 12, 16, MIN_LENGTH - 1])
def test_length_alone_is_checked_first(length):
    random_like = (string.ascii_letters + string.digits)[7:7 + length]
    assert problem(random_like) == (f"the mirror secret must have at least {MIN_LENGTH} "
                                    f"characters; the one given has {length}")


@pytest.mark.parametrize("secret", STRONG)
def test_strong_secrets_pass(secret):
    assert problem(secret) is None and check(secret) == secret


@pytest.mark.parametrize("secret", WEAK[-7:])
def test_a_phrase_of_common_words_is_refused_whatever_its_separators(secret):
    reason = problem(secret)
    assert reason is not None and "too easy to guess" in reason
    for separator in ("-", ".", "_", " ", " - ", "__"):
        variant = separator.join(secret.replace(",", "").split())
        if len(variant) >= MIN_LENGTH:
            assert problem(variant) is not None, variant
            assert problem(variant.upper()) is not None, variant.upper()


def test_generated_secrets_pass_and_differ():
    made = {generate() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert problem(secret) is None
        groups = secret.split("-")
        assert len(groups) == 8 and all(len(g) == 4 for g in groups)
        assert set(secret) <= set("abcdefghijklmnopqrstuvwxyz234567-")
    assert mirror_secret.GENERATED_BITS == 160


def test_a_long_secret_is_judged_by_its_first_hundred_characters():
    assert problem("a" * 100 + "x7Kq9pL2mR4vT8wZ3nB6yH5s") is not None
    assert problem("x7Kq9pL2mR4vT8wZ3nB6yH5s" + "a" * 10_000) is None
