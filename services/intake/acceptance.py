"""Who may hand in mail over SMTP, as the appliance this follows decides it.

- forwarding on: only trusted servers may hand in mail, for any domain;
- forwarding off: trusted servers for any domain; other senders only for the local
  domains and the journal recipient.
A refusal is a sentence for the 5xx reply.
"""
from __future__ import annotations

import functools
import ipaddress

from services.common.config import SmtpConfig

TRUSTED_CACHE_SIZE = 4096  # peer addresses whose answer is kept


class AcceptancePolicy:
    def __init__(self, config: SmtpConfig):
        self.forwarding = config.forwarding
        self.networks = [ipaddress.ip_network(n, strict=False) for n in config.trusted_servers]
        self.local_domains = {d.lower().rstrip(".") for d in config.local_domains}
        self.journal_recipient = (config.journal_recipient or "").lower()
        # Asked at each command of a session: the answer per address is kept (bounded).
        self.trusted = functools.lru_cache(maxsize=TRUSTED_CACHE_SIZE)(self._trusted)

    def _trusted(self, peer_ip: str) -> bool:
        """Whether `peer_ip` is in smtp.trusted_servers (an IPv4-mapped IPv6 address as its
        IPv4 address); False for text that is no address."""
        try:
            address = ipaddress.ip_address(peer_ip)
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def refuse_sender(self, peer_ip: str) -> str | None:
        if self.forwarding and not self.trusted(peer_ip):
            return f"relaying denied: {peer_ip} is not a trusted server (forwarding mode)"
        return None

    def refuse_recipient(self, peer_ip: str, recipient: str) -> str | None:
        if self.trusted(peer_ip):
            return None
        if self.forwarding:
            return f"relaying denied: {peer_ip} is not a trusted server (forwarding mode)"
        if recipient.lower() == self.journal_recipient:
            return None
        domain = recipient.rpartition("@")[2].lower().rstrip(".")
        if domain in self.local_domains:
            return None
        return f"relaying denied: {domain or repr(recipient)} is not a local domain"
