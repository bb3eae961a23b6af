"""Who may open an SMTP session now: the model's session limits (models.yaml smtp:).

- at most `concurrency` sessions at once;
- `reserved_for_trusted` of them only for trusted servers (smtp.trusted_servers), so that
  strangers holding every other session never keep a journaling server out;
- a client that is not a trusted server holds at most `sessions_per_address` at once,
  counted per IPv4 address and per IPv6 /64 (one host usually has a whole /64).
A refusal is a sentence for the 421 reply.

Under stress (`stressed()`: untrusted sessions hold STRESS_SHARE of theirs or more, as a
flood of slow clients makes them), untrusted sessions are held to shorter timeouts and a
minimum rate in DATA (services.intake.smtp.LimitedSMTP), as Postfix's smtpd does under
stress: a client that keeps a session by a command or a byte now and then gives it up.
"""
from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from firmware.models import SmtpLimits

IPV6_CLIENT_PREFIX = 64
STRESS_SHARE = 0.75  # of the untrusted sessions held: past it, timeouts shorten


def client_of(peer_ip: str) -> str:
    """The client a session counts against: the IPv4 address (also when IPv4-mapped), the
    IPv6 /64, or the text as given when it is no address."""
    try:
        address = ipaddress.ip_address(peer_ip.partition("%")[0])
    except ValueError:
        return peer_ip
    if address.version == 6 and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)


@dataclass(frozen=True)
class SessionSlot:
    client: str
    trusted: bool


class NoSessionSlot(Exception):
    """No session for this client now; str() says why (for a 421 reply)."""


class SessionSlots:
    """The sessions held now, by client; take() one per session, give_back() it at its end.
    Used from the event loop only."""

    def __init__(self, limits: SmtpLimits, trusted: Callable[[str], bool]):
        self.limits, self.trusted = limits, trusted
        self.active = self.untrusted = 0
        self.by_client: Counter[str] = Counter()

    def take(self, peer_ip: str) -> SessionSlot:
        """A session for this peer, or NoSessionSlot saying why not."""
        slot = SessionSlot(client_of(peer_ip), self.trusted(peer_ip))
        self._check(slot)
        self.active += 1
        if not slot.trusted:
            self.untrusted += 1
            self.by_client[slot.client] += 1
        return slot

    def stressed(self) -> bool:
        """Whether untrusted sessions hold STRESS_SHARE of theirs or more now."""
        shared = self.limits.concurrency - self.limits.reserved_for_trusted
        return self.untrusted >= max(1, shared * STRESS_SHARE)

    def give_back(self, slot: SessionSlot) -> None:
        self.active -= 1
        if not slot.trusted:
            self.untrusted -= 1
            self.by_client[slot.client] -= 1
            if not self.by_client[slot.client]:
                del self.by_client[slot.client]

    def _check(self, slot: SessionSlot) -> None:
        limits = self.limits
        if self.active >= limits.concurrency:
            raise NoSessionSlot(f"too many connections ({limits.concurrency} at once)")
        if slot.trusted:
            return
        shared = limits.concurrency - limits.reserved_for_trusted
        if self.untrusted >= shared:
            raise NoSessionSlot(f"too many connections from servers that are not trusted "
                                f"({shared} at once)")
        if self.by_client[slot.client] >= limits.sessions_per_address:
            raise NoSessionSlot(f"too many connections from {slot.client} "
                                f"({limits.sessions_per_address} at once)")
