"""The mirror secret: the rule a secret must meet, and a generated one that meets it.

Peers prove to each other that they know the secret with SPAKE2 (services.mirror.pairing),
so a stranger can test one guess per connection and never one offline. The rule still asks
for a secret that an online guesser cannot reach and that no word list holds:

    at least MIN_LENGTH characters, and at least 10**MIN_GUESSES_LOG10 guesses by zxcvbn's
    estimate (Dropbox's password strength estimator, Debian's python3-zxcvbn), which
    counts dictionary words, names, keyboard walks, repeats, sequences and dates as the
    few guesses they are. The secret is scored three ways and the lowest score counts:
    as typed; lowercased with its separators (spaces, dashes, dots, underscores) removed;
    and, for a phrase, as the sum of its words' scores (a guesser of common words tries
    them word by word). zxcvbn takes "correct horse battery staple" for random-ish text
    between its spaces; "the quick brown fox jumps over the lazy dog" run together it
    splits into rarer pieces than its nine common words.

A generated secret (`archiver mirror join` without --secret) is 160 random bits as 32
base32 characters in groups of four, e.g. "k7qm-2xpf-...": easy to read out and type.
"""
from __future__ import annotations

import base64
import math
import re
import secrets

from firmware.errors import ArchiverError

MIN_LENGTH = 20
MIN_GUESSES_LOG10 = 20          # about 66 bits
GENERATED_BITS = 160
RULE = (f"at least {MIN_LENGTH} characters and at least 10^{MIN_GUESSES_LOG10} guesses by "
        "zxcvbn's estimate (random characters, or several uncommon words)")
# zxcvbn's cost grows fast with the length; the first characters decide a secret's strength
# well enough (a longer secret is only stronger than its estimate).
_ESTIMATED_CHARACTERS = 100
# Words an attacker of this product tries first, counted as single guesses.
_PRODUCT_WORDS = ["archiver", "archive", "mirror", "mirroring", "secret", "shared",
                  "appliance", "peer", "password", "passphrase", "mail", "email"]
_SEPARATORS = re.compile(r"[\s\-._]+")


class WeakSecret(ArchiverError):
    """A mirror secret that does not meet RULE; the message says which part and why."""


def problem(secret: str) -> str | None:
    """Why `secret` is too weak (words for the user, never the secret itself), or None when
    it meets RULE."""
    if len(secret) < MIN_LENGTH:
        return (f"the mirror secret must have at least {MIN_LENGTH} characters; the one given "
                f"has {len(secret)}")
    estimate = min(_estimates(secret[:_ESTIMATED_CHARACTERS]),
                   key=lambda found: found["guesses_log10"])
    if estimate["guesses_log10"] >= MIN_GUESSES_LOG10:
        return None
    warning = (estimate.get("feedback") or {}).get("warning") or ""
    because = f" ({warning.rstrip('.').lower()})" if warning else ""
    guesses = math.floor(estimate["guesses_log10"])
    return (f"the mirror secret is too easy to guess: about 10^{guesses} guesses{because}, "
            f"and it needs 10^{MIN_GUESSES_LOG10}; use random characters or several uncommon "
            "words, or let `archiver mirror join` make one")


def _estimates(secret: str) -> list[dict]:
    """zxcvbn's estimates of `secret` as typed, run together in lower case, and word by word
    (a phrase of two words or more: log10 guesses summed; its warning says so)."""
    together = _SEPARATORS.sub("", secret).lower()
    found = [_zxcvbn(form) for form in dict.fromkeys([secret, together]) if form]
    words = [word for word in _SEPARATORS.split(secret.lower()) if word]
    if len(words) > 1:
        found.append({"guesses_log10": sum(_zxcvbn(word)["guesses_log10"] for word in words),
                      "feedback": {"warning": "A phrase of common words is guessed word by "
                                              "word."}})
    return found


def _zxcvbn(text: str) -> dict:
    # Imported at the first secret checked, not with this module: services.common.config
    # imports it, so every `archiver` command would load zxcvbn's word lists (~15 ms).
    from zxcvbn import zxcvbn
    return zxcvbn(text, user_inputs=_PRODUCT_WORDS)


def check(secret: str) -> str:
    """`secret` itself when it meets RULE; raises WeakSecret saying why not."""
    reason = problem(secret)
    if reason is not None:
        raise WeakSecret(reason)
    return secret


def generate() -> str:
    """A new secret of GENERATED_BITS random bits: lower-case base32 in groups of four,
    joined by "-" (39 characters)."""
    text = base64.b32encode(secrets.token_bytes(GENERATED_BITS // 8)).decode().lower()
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))
