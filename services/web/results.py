"""The results page's model: what a search asked for (query, sort, page), and each hit as
a row: its first recipients and "+N", and a snippet of its body with the query's words
marked.

Snippets re-read the text instead of storing it in the index: for each hit shown, the
message is read from the store (zstd), the first SNIPPET_PARSE_BYTES of it parsed and its
body's text (HTML as text; no attachment) searched for the query's words
(services.archive.highlight). That costs a few milliseconds a hit (a page of 250 stays
well under a second; `make bench` reports it: tests/bench/snippet_bench.py) and nothing in the index,
whose size would otherwise grow by the text of every body. Words found only in an
attachment, a file name or a header are said to be there, not shown.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from services.appliance.users import User
from services.archive.archive import Archive
from services.archive.extract import body_text
from services.archive.highlight import Highlighter, Segment
from services.archive.mime import summarize_headers
from services.archive.search import SORTS, Hit
from services.archive.store import NotFound
from services.web.access import may_read

PAGE_SIZES = (25, 50, 100, 250)
DEFAULT_PAGE_SIZE = 50
SNIPPET_PARSE_BYTES = 1024 * 1024
RECIPIENTS_SHOWN = 2


@dataclass(frozen=True)
class Asked:
    """What the results page was asked for, from its URL (bad values fall back to the
    defaults: a URL is typed and edited by people)."""
    query: str | None
    sort: str = "date"
    descending: bool | None = None  # None: the sort's own default
    size: int = DEFAULT_PAGE_SIZE
    offset: int = 0

    @classmethod
    def of(cls, params) -> "Asked":
        sort = params.get("sort", "date")
        sort = sort if sort in SORTS else "date"
        order = params.get("order", "")
        descending = {"desc": True, "asc": False}.get(order)
        size = int(params["size"]) if params.get("size", "").isdigit() else DEFAULT_PAGE_SIZE
        offset = int(params["offset"]) if params.get("offset", "").isdigit() else 0
        return cls(params.get("q"), sort, descending,
                   size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE, offset)

    @property
    def is_descending(self) -> bool:
        return SORTS[self.sort][1] if self.descending is None else self.descending

    def url(self, **changes) -> str:
        """/search?... with `changes` (query, sort, descending, size, offset) applied."""
        values = {"query": self.query or "", "sort": self.sort, "descending": self.descending,
                  "size": self.size, "offset": self.offset, **changes}
        params = {"q": values["query"]}
        if values["sort"] != "date":
            params["sort"] = values["sort"]
        if values["descending"] is not None:
            params["order"] = "desc" if values["descending"] else "asc"
        if values["size"] != DEFAULT_PAGE_SIZE:
            params["size"] = values["size"]
        if values["offset"]:
            params["offset"] = values["offset"]
        return "/search?" + urlencode(params)

    def sort_url(self, sort: str) -> str:
        """The URL a column heading links to: that sort, or the other way when it is on."""
        if sort == self.sort:
            return self.url(descending=not self.is_descending, offset=0)
        return self.url(sort=sort, descending=None, offset=0)


@dataclass(frozen=True)
class Row:
    hit: Hit
    to: list[str]          # the first recipients, as "Name" or the address
    more_recipients: int   # how many more
    snippet: list[Segment]
    elsewhere: bool        # the query's words are not in the body (attachment, header...)


def rows(archive: Archive, user: User, hits: list[Hit], highlighter: Highlighter
         ) -> list[Row]:
    """A row per hit; a hit gone since the search (retention) or not the user's to read
    (checked again, as for every message) gets no snippet."""
    return [_row(archive, user, hit, highlighter) for hit in hits]


def _row(archive: Archive, user: User, hit: Hit, highlighter: Highlighter) -> Row:
    try:
        raw, meta = archive.store.get(hit.digest), archive.store.meta(hit.digest)
    except NotFound:
        return Row(hit, _shown(hit.to or ()), 0, [], False)
    if not may_read(user, raw, meta):
        return Row(hit, [], 0, [], False)
    recipients, total = hit.to, hit.recipients
    if recipients is None:  # an index of an older schema: no recipients in its summary
        summary = summarize_headers(raw)
        recipients = summary.to + summary.cc
        total = len(recipients)
    shown = _shown(recipients[:RECIPIENTS_SHOWN])
    snippet = highlighter.snippet(body_text(raw, SNIPPET_PARSE_BYTES))
    elsewhere = bool(highlighter) and not any(marked for _, marked in snippet)
    return Row(hit, shown, max(total - len(shown), 0), snippet, elsewhere)


def _shown(recipients) -> list[str]:
    """ "Name <addr>" as Name, a bare address as itself."""
    shown = []
    for display in recipients:
        name, _, _ = display.partition(" <")
        shown.append(name.strip('"') if display.endswith(">") and name else display)
    return shown
