"""MAIL FROM / RCPT TO arguments (RFC 5321 4.1.2 Path): the everyday shape read by one
regular expression gives exactly what aiosmtpd's parser gives, for every variant; any
other shape still goes to aiosmtpd's parser."""
import random

from aiosmtpd.smtp import SMTP

from services.intake.smtp import LimitedSMTP, everyday_path

LOCAL_PARTS = ["alice", "a.b.c", "x+tag", "o'brien", "us=er", "q#z", "a_b-c", "ALL.CAPS", "9"]
DOMAINS = ["example.org", "mail.example.co.uk", "localhost", "x-y.example", "EXAMPLE.COM"]
PARAMETERS = ["", " SIZE=1234", " BODY=8BITMIME", "\tSIZE=9 BODY=7BIT", "  SMTPUTF8",
              " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b"]
# What turns the everyday shape into another one (or into a malformed one).
MUTATIONS = [" ", "\t", "(comment)", '"', "\\", "[", "]", "<", ">", "@", ".", "..", ",", ":",
             ";", "é", "\x0c", "\x00", "@route:", "[192.0.2.1]", "()"]


def aiosmtpd_reads(arg: str):
    reader = SMTP.__new__(SMTP)
    reader.local_part_limit = 0
    return SMTP._getaddr(reader, arg)


def ours(arg: str):
    reader = LimitedSMTP.__new__(LimitedSMTP)
    reader.local_part_limit = 0
    return reader._getaddr(arg)


def variants() -> list[str]:
    rng = random.Random(5321)
    everyday = [f"<{local}@{domain}>{parameters}" for local in LOCAL_PARTS
                for domain in DOMAINS for parameters in PARAMETERS]
    mutated = []
    for arg in rng.sample(everyday, 120):
        for _ in range(3):
            at = rng.randrange(len(arg) + 1)
            mutated.append(arg[:at] + rng.choice(MUTATIONS) + arg[at:])
    others = ["<>", "<> SIZE=5", "a@example.org", '<"quoted local"@example.org>',
              "<user@[192.0.2.1]>", "<@relay.example:user@example.org>", "<user@example.org",
              "<user@example.org>(comment) SIZE=1", "<user@example.org> (comment)",
              "<user.@example.org>", "<.user@example.org>", "<us..er@example.org>",
              "<user@example..org>", "<user@>", "<@example.org>", "<josé@example.org>",
              "<user@example.org>SIZE=1", ""]
    return everyday + mutated + others


def test_every_variant_reads_as_aiosmtpd_reads_it():
    for arg in variants():
        assert ours(arg) == aiosmtpd_reads(arg), repr(arg)


def test_the_everyday_shape_takes_the_quick_way_and_no_other_shape_does():
    quick = [arg for arg in variants() if everyday_path(arg) is not None]
    assert len(quick) >= len(LOCAL_PARTS) * len(DOMAINS) * len(PARAMETERS)
    for arg in quick:
        assert everyday_path(arg) == aiosmtpd_reads(arg), repr(arg)
    for arg in ["<>", '<"a b"@example.org>', "<user@[192.0.2.1]>", "<josé@example.org>",
                "<user@example.org> (comment)", "<@relay.example:user@example.org>"]:
        assert everyday_path(arg) is None, arg
