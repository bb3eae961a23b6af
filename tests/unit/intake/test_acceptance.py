import pytest

from services.common.config import SmtpConfig
from services.intake.acceptance import AcceptancePolicy

BASE = dict(trusted_servers=["10.0.0.5/32", "192.168.10.0/24", "fd00::/8"],
            local_domains=["example.com"], journal_recipient="journal@archive.example.com")


@pytest.mark.parametrize("peer, trusted", [("10.0.0.5", True), ("10.0.0.6", False),
                                           ("192.168.10.77", True), ("::ffff:10.0.0.5", True),
                                           ("fd00::1", True), ("not-an-ip", False)])
def test_trusted_servers_are_ips_and_cidrs(peer, trusted):
    assert AcceptancePolicy(SmtpConfig(**BASE)).trusted(peer) is trusted


def test_without_forwarding_trusted_servers_relay_any_domain_others_only_local():
    policy = AcceptancePolicy(SmtpConfig(**BASE, forwarding=False))
    assert policy.refuse_sender("203.0.113.9") is None
    assert policy.refuse_recipient("10.0.0.5", "x@anywhere.net") is None
    assert policy.refuse_recipient("203.0.113.9", "bob@EXAMPLE.com") is None
    assert policy.refuse_recipient("203.0.113.9", "journal@archive.example.com") is None
    assert policy.refuse_recipient("203.0.113.9", "x@anywhere.net") == \
        "relaying denied: anywhere.net is not a local domain"
    assert policy.refuse_recipient("203.0.113.9", "bob@sub.example.com") is not None


def test_with_forwarding_only_trusted_servers_hand_in_mail():
    policy = AcceptancePolicy(SmtpConfig(**BASE, forwarding=True))
    assert policy.refuse_sender("203.0.113.9") == \
        "relaying denied: 203.0.113.9 is not a trusted server (forwarding mode)"
    assert policy.refuse_recipient("203.0.113.9", "bob@example.com") is not None
    assert policy.refuse_sender("10.0.0.5") is None
    assert policy.refuse_recipient("10.0.0.5", "x@anywhere.net") is None
