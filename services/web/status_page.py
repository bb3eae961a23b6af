"""The status page: services, the index ("X of Y indexed"), storage against the model's
capacity and the data disk's free space (two different limits, shown apart), each mirror
peer in plain words, and two charts over the last CHART_DAYS days: messages archived a
day and the store's size at the end of each day (services.web.charts)."""
from __future__ import annotations

import asyncio
import datetime as dt
import time

from aiohttp import web

from services.appliance.health import health
from services.appliance.users import User
from services.archive.archive import Archive
from services.archive.store import Store
from services.common.config import Config
from services.mirror import state as mirror_state
from services.web import charts
from services.web.api import STAFF
from services.archive.space import size_in_words as size
from services.web.formatting import ago, count, duration
from services.web.ui import app_context, page, render

CHART_DAYS = 90
DAY = 86400


@page("GET", "/status", STAFF)
async def status_page(request: web.Request, user: User) -> web.Response:
    config, archive = app_context(request)
    model = await asyncio.to_thread(status_model, config, archive)
    return render(request, "status.html", **model)


def status_model(config: Config, archive: Archive, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    report = health(config, archive, now)
    archived = archived_per_day(archive.store, now)
    stored = stored_per_day(archive.store, now)
    return {"report": report,
            "archived_chart": charts.bar_chart(archived, "messages archived a day, last "
                                               f"{CHART_DAYS} days (UTC)"),
            "archived_days": sum(value for _, value in archived),
            "storage_chart": charts.line_chart(stored, "the store's size at the end of "
                                               "each day (UTC)", size),
            "peers": [peer_in_words(archive.store, peer, now)
                      for peer in mirror_state.settings(config, archive.store).peers]}


def archived_per_day(store: Store, now: float, days: int = CHART_DAYS
                     ) -> list[tuple[str, int]]:
    """(UTC day "YYYY-MM-DD", messages archived that day), oldest first, today last."""
    counted = store.counters_with_prefix("archived_day:")
    return [(day.isoformat(), counted.get(day.strftime("%Y%m%d"), 0))
            for day in _days(now, days)]


def stored_per_day(store: Store, now: float, days: int = CHART_DAYS
                   ) -> list[tuple[str, int]]:
    """(UTC day, bytes the store held at its end), oldest first: today's size less what
    was stored since, plus what was deleted since. Days before the store counted bytes per
    day (older firmware) are left out: their sizes are not known."""
    added = store.counters_with_prefix("stored_bytes_day:")
    removed = store.counters_with_prefix("deleted_bytes_day:")
    if not added and not removed:
        return []
    first = min([*added, *removed])
    level = store.counters()["stored_bytes"]
    series = []
    for day in reversed(_days(now, days)):
        key = day.strftime("%Y%m%d")
        if key < first:
            break
        series.append((day.isoformat(), max(level, 0)))
        level -= added.get(key, 0) - removed.get(key, 0)  # the level at the day before's end
    return list(reversed(series))


def peer_in_words(store: Store, peer: str, now: float) -> dict:
    """A peer's state as sentences: {"peer", "state", "sentences": [...], "error"}; the
    last error only while it is current (the peer is not connected)."""
    status = mirror_state.load_status(store, peer)
    queued = store.log_end("outbox") - store.cursor(mirror_state.cursor_name(peer))
    sentences = []
    if status.state == "connected":
        since = status.connected_since
        sentences.append(f"Connected for {duration(now - since)}." if since else "Connected.")
    else:
        sentences.append(f"Not connected ({status.state}): {status.reason}." if status.reason
                         else f"Not connected ({status.state}).")
    sentences.append("Nothing waiting to be copied." if queued <= 0 else
                     f"{count(queued)} message{'s' if queued != 1 else ''} waiting to be copied.")
    sentences.append(f"Last copied {ago(status.last_success, now)}; "
                     f"{count(status.copied)} copied in all."
                     if status.last_success else "Nothing copied yet.")
    if status.node:
        sentences.append(f"It is node {status.node}, model {status.model}, firmware "
                         f"{status.version}.")
    if status.settings_differ:
        sentences.append("Its retention policies, holds or saved searches differ from ours.")
    current_error = status.last_error if status.state != "connected" else None
    return {"peer": peer, "state": status.state, "sentences": sentences,
            "error": current_error,
            "error_since": ago(status.last_error_time, now) if current_error else None}


def _days(now: float, days: int) -> list[dt.date]:
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    return [today - dt.timedelta(days=back) for back in range(days - 1, -1, -1)]
