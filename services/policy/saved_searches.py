"""Saved searches: a name and a query, replicated to mirror peers. Retention policies and
litigation holds are defined on them."""
from __future__ import annotations

from firmware.errors import ArchiverError

from services.policy.replicated import Replicated
from services.archive.search import parse

PREFIX = "saved:"


class UnknownSavedSearch(ArchiverError):
    pass


def save(replicated: Replicated, name: str, query: str) -> None:
    if not name.strip() or ":" in name:
        raise ArchiverError(f"saved search name {name!r}: expected a non-empty name without ':'")
    parse(query)  # refuse a query that does not parse, with the reason
    replicated.put(PREFIX + name, {"query": query})


def all_saved(replicated: Replicated) -> dict[str, str]:
    return {key[len(PREFIX):]: value["query"] for key, value in replicated.items(PREFIX).items()}


def query_of(replicated: Replicated, name: str) -> str:
    saved = replicated.get(PREFIX + name)
    if saved is None:
        raise UnknownSavedSearch(f"no saved search named {name!r}")
    return saved["query"]


def delete(replicated: Replicated, name: str) -> None:
    """Delete a saved search no hold and no retention policy is defined on."""
    query_of(replicated, name)
    holding = [key for key, hold in replicated.items("hold:").items() if hold["saved"] == name]
    if holding:
        raise ArchiverError(f"saved search {name!r} is held by {', '.join(holding)}; "
                            "remove the hold first")
    if replicated.get(f"retention:saved:{name}") is not None:
        raise ArchiverError(f"saved search {name!r} has a retention policy; remove it first "
                            "(archiver retention set --saved NAME --days none)")
    replicated.delete(PREFIX + name)
