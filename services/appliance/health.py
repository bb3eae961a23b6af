"""The appliance's health, as `archiver status` (and later the web UI) shows it: system
resources (psutil), the state of each service, queue lengths, and the counters of the
appliance MIB: archived per hour, per day and by source, last archived, dedup savings,
storage used and free; and the room left on each disk and in the store's capacity, ok, low
or full (services.archive.space). Hours and days are UTC."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from pathlib import Path

import psutil
from systemd import daemon

from firmware.system import this_version

from services.mirror import state as mirror_state
from services.archive import dates
from services.policy import holds
from services.policy.replicated import Replicated
from services.archive.archive import Archive
from services.common.config import Config
from services.archive.indexer import status as index_status
from services.archive import live_compaction
from services.archive.reindex import progress_of as reindex_progress
from services.intake.journal_mailbox import account_status
from services.appliance.directory import Directory
from services.appliance.service_state import SERVICES, describe
from services.archive.store import RESERVE_BYTES, Store

HOURS_SHOWN, DAYS_SHOWN = 24, 7


def health(config: Config, archive: Archive, now: float | None = None,
           ask_directory: bool = True) -> dict:
    """The report; without `ask_directory`, its "directory" is None (not asked)."""
    now = time.time() if now is None else now
    store = archive.store
    return {"node": store.node_id, "model": archive.profile.model,
            "firmware": str(this_version()), "time": _iso(now), "timezone": config.timezone,
            "system": system_resources(archive.data_dir, now),
            "services": services(store, now),
            "queues": queues(config, archive),
            "journal_accounts": [{"account": account.name,
                                  **account_status(store, account.name)}
                                 for account in config.journal_accounts],
            "archived": archived(store, now),
            "dedup": dedup(store),
            "storage": storage(store, archive.data_dir),
            "space": {space.key: space.as_json() for space in archive.spaces()},
            "holds": holds_state(store, config.timezone, now),
            "directory": directory_state(config) if ask_directory else None}


def holds_state(store: Store, timezone: str, now: float) -> dict:
    """The litigation holds in force today (in `timezone`): {"in_force": count,
    "holding_everything": [{"id", "why"}]}, the latter those that keep every message
    (services.policy.holds.all_holds: an unreadable hold, a saved search gone or one this
    release cannot parse, now or before it was changed): while one lives, retention
    deletes nothing, which an admin should know without asking `hold list`."""
    today = dt.datetime.fromtimestamp(now, dates.zone(timezone)).date()
    in_force = {hold_id: hold for hold_id, hold in holds.all_holds(Replicated(store)).items()
                if holds.in_force(hold, today)}
    return {"in_force": len(in_force),
            "holding_everything": [{"id": hold_id, "why": hold["holds_everything"]}
                                   for hold_id, hold in sorted(in_force.items())
                                   if hold["holds_everything"]]}


def directory_state(config: Config) -> dict | None:
    """Whether the company directory answers now (asked afresh; None when none is
    configured): {"uri", "state": "ok", "unreachable" or "failing", "error", "warning",
    "checked"}; warning: what is unsafe in the settings (Directory.warning)."""
    if config.directory is None:
        return None
    state = Directory(config.directory).probe()
    return {**state, "checked": _iso(state["checked"])}


def system_resources(data_dir: Path, now: float) -> dict:
    disk = psutil.disk_usage(str(data_dir))
    memory = psutil.virtual_memory()
    return {"disk": {"path": str(data_dir), "total_bytes": disk.total,
                     "used_bytes": disk.used, "free_bytes": disk.free,
                     "percent_used": disk.percent},
            "memory": {"total_bytes": memory.total, "available_bytes": memory.available,
                       "percent_used": memory.percent},
            "load": dict(zip(("1min", "5min", "15min"), os.getloadavg())),
            "cpus": psutil.cpu_count(),
            "uptime_seconds": int(now - psutil.boot_time())}


def services(store: Store, now: float) -> dict:
    """Each service's own record; under systemd also what systemd says of its unit."""
    found = {}
    units = systemd_unit_states() if daemon.booted() else {}
    for name in SERVICES:
        state = describe(store, name, now)
        state["since"], state["last_seen"] = _iso(state["since"]), _iso(state["last_seen"])
        if units:
            state["unit"] = units.get(name)
        found[name] = state
    return found


def systemd_unit_states() -> dict[str, str]:
    """`systemctl is-active` of each service's unit: active, failed, inactive, ..."""
    units = [f"archiver-{name}.service" for name in SERVICES]
    done = subprocess.run(["systemctl", "is-active", *units], capture_output=True, text=True,
                          timeout=10)
    return dict(zip(SERVICES, done.stdout.split()))


def queues(config: Config, archive: Archive) -> dict:
    store = archive.store
    # The live index as it is: status must not create one (archive.index_dir() would);
    # the link resolved first, so that a switch while Xapian opens it mixes no two indexes.
    index = index_status(store, archive.index_link.resolve())
    peers = mirror_state.settings(config, store).peers
    return {"index": {"backlog": index.pending, "indexed": index.indexed,
                      "stored": index.stored, "reindexing": reindex_progress(archive),
                      "compaction": compaction_state(archive)},
            "peers": [mirror_state.report(store, peer) for peer in peers]}


def compaction_state(archive: Archive) -> dict:
    """The live index's size and its compaction (services.archive.live_compaction):
    {"index_bytes", "compacts_at_bytes", "not_before", "compactions", "last": {"at",
    "bytes_before", "bytes_after", "messages"} or None, "skipped": {"at", "index_bytes",
    "reason"} or None (the last one, when the live index was skipped since it was
    compacted)}; sizes in bytes, None where there is no index yet."""
    state = live_compaction.status(archive)
    record = state.record
    live = archive.index_link.resolve().name if state.index_bytes is not None else None
    last = None if record.compacted_at is None else {
        "at": _iso(record.compacted_at), "bytes_before": record.bytes_before,
        "bytes_after": record.bytes_after, "messages": record.messages}
    skipped = None if record.skipped_at is None or record.skipped_index != live else {
        "at": _iso(record.skipped_at), "index_bytes": record.skipped_bytes,
        "reason": record.skipped_reason}
    return {"index_bytes": state.index_bytes, "compacts_at_bytes": state.compacts_at_bytes,
            "not_before": _iso(state.not_before), "compactions": record.compactions,
            "last": last, "skipped": skipped}


def archived(store: Store, now: float) -> dict:
    by_source = store.counters_with_prefix("archived:")
    per_hour = store.counters_with_prefix("archived_hour:")
    per_day = store.counters_with_prefix("archived_day:")
    hours = [_utc(now - 3600 * back) for back in range(HOURS_SHOWN)]
    days = [_utc(now - 86400 * back) for back in range(DAYS_SHOWN)]
    last = store.counters_with_prefix("last_archived").get("")  # the one counter of that name
    return {"total": sum(by_source.values()), "by_source": by_source,
            "this_hour": per_hour.get(hours[0].strftime("%Y%m%d%H"), 0),
            "last_hour": per_hour.get(hours[1].strftime("%Y%m%d%H"), 0),
            "today": per_day.get(days[0].strftime("%Y%m%d"), 0),
            "yesterday": per_day.get(days[1].strftime("%Y%m%d"), 0),
            "per_hour": {h.strftime("%Y-%m-%dT%H"): per_hour.get(h.strftime("%Y%m%d%H"), 0)
                         for h in hours},
            "per_day": {d.strftime("%Y-%m-%d"): per_day.get(d.strftime("%Y%m%d"), 0)
                        for d in days},
            "last_archived": _iso(last)}


def dedup(store: Store) -> dict:
    return {"duplicates": store.counters()["duplicates"],
            "bytes_saved": store.counters_with_prefix("dedup_bytes").get("", 0)}


def storage(store: Store, data_dir: Path) -> dict:
    """Used and free as intake sees them: free is what the model's capacity leaves, or
    what the data disk has, whichever is less."""
    totals = store.counters()
    capacity = store.map_size - RESERVE_BYTES
    used = capacity - store.space_left()
    free = max(min(capacity - used, psutil.disk_usage(str(data_dir)).free), 0)
    return {"messages": totals["messages"], "message_bytes": totals["raw_bytes"],
            "compressed_bytes": totals["stored_bytes"], "capacity_bytes": capacity,
            "used_bytes": used, "free_bytes": free}


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


def _iso(epoch: float | None) -> str | None:
    return _utc(epoch).strftime("%Y-%m-%dT%H:%M:%SZ") if epoch else None
