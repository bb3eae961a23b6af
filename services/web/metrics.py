"""/metrics: the appliance's health in Prometheus' text exposition format (version 0.0.4),
written by hand from services.appliance.health. Counts and states only, never mail or addresses,
so it needs no login (as Prometheus scrapers expect)."""
from __future__ import annotations

import asyncio
import datetime as dt

from aiohttp import web

from services.appliance.health import health

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def handle(request: web.Request) -> web.Response:
    # No directory state in the exposition, and no login to fetch it: asking the directory
    # for each fetch let anyone fill the directory.concurrency places sign-ins wait in.
    report = await asyncio.to_thread(health, request.app["config"], request.app["archive"],
                                     ask_directory=False)
    text = render(report, request.app["auth"].failed_logins, request.app["transfers"],
                  request.app["renders"])
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def render(report: dict, failed_logins: int, transfers=None, renders=None) -> str:
    """`transfers`, `renders`: the web app's services.web.transfers.Transfers and
    services.web.renders.Renders, when there are."""
    out = _Exposition()
    out.gauge("archiver_info", "node, model and firmware of this appliance", 1,
              node=report["node"], model=report["model"], firmware=report["firmware"])
    _storage(out, report)
    _compaction(out, report["queues"]["index"]["compaction"])
    _space(out, report["space"])
    _archived(out, report)
    _services(out, report)
    _peers(out, report["queues"]["peers"])
    _journal(out, report["journal_accounts"])
    system = report["system"]
    out.gauge("archiver_disk_free_bytes", "free space on the data disk",
              system["disk"]["free_bytes"])
    out.gauge("archiver_memory_available_bytes", "memory available",
              system["memory"]["available_bytes"])
    out.counter("archiver_web_failed_logins_total", "failed logins since the web service "
                "started", failed_logins)
    if transfers is not None:
        out.gauge("archiver_web_transfers_running", "downloads and exports running",
                  sum(transfers.running.values()))
        out.counter("archiver_web_transfers_cut_total", "downloads and exports cut because "
                    "their client took no data for web.transfer_idle_seconds", transfers.cut)
    if renders is not None:
        out.counter("archiver_web_renders_total", "PDF pages rendered (or tried)",
                    renders.started)
        out.counter("archiver_web_render_failures_remembered_total", "page requests answered "
                    "from the memory of failed renders", renders.remembered)
    return out.text()


def _storage(out: "_Exposition", report: dict) -> None:
    storage, index = report["storage"], report["queues"]["index"]
    out.gauge("archiver_messages_stored", "messages in the store", storage["messages"])
    out.gauge("archiver_messages_indexed", "messages in the search index", index["indexed"])
    out.gauge("archiver_index_backlog", "arrivals and deletions the indexer has yet to do",
              index["backlog"])
    out.gauge("archiver_message_bytes", "size of the stored messages as received",
              storage["message_bytes"])
    out.gauge("archiver_store_compressed_bytes", "size of the stored messages, compressed",
              storage["compressed_bytes"])
    out.gauge("archiver_store_capacity_bytes", "the model's storage capacity",
              storage["capacity_bytes"])
    out.gauge("archiver_store_free_bytes", "what the store may still grow by",
              storage["free_bytes"])


def _compaction(out: "_Exposition", state: dict) -> None:
    """The live index's size and compaction (services.archive.live_compaction)."""
    if state["index_bytes"] is not None:
        out.gauge("archiver_index_bytes", "size of the live search index on disk",
                  state["index_bytes"])
        out.gauge("archiver_index_compacts_at_bytes", "size at which the indexer compacts "
                  "the live index next", state["compacts_at_bytes"])
    out.counter("archiver_index_compactions_total", "compactions of the index",
                state["compactions"])
    last = state["last"]
    if last is not None:
        out.gauge("archiver_index_last_compaction_timestamp_seconds", "when the index was "
                  "last compacted", _epoch(last["at"]))
        out.gauge("archiver_index_compacted_bytes", "size of the index right after its last "
                  "compaction", last["bytes_after"])
    out.gauge("archiver_index_compaction_skipped", "1 if the live index's last compaction "
              "was skipped (no room)", int(state["skipped"] is not None))


def _space(out: "_Exposition", spaces: dict) -> None:
    """Each disk of the archive and the store's capacity (services.archive.space)."""
    for key, space in spaces.items():
        out.gauge("archiver_space_free_bytes", "room left on a disk or in the store's capacity",
                  space["free_bytes"], space=key)
        out.gauge("archiver_space_total_bytes", "size of a disk or of the store's capacity",
                  space["total_bytes"], space=key)
        out.gauge("archiver_space_low_below_bytes", "free bytes below which a space is low "
                  "(the model's min_free_disk_mb)", space["low_below_bytes"], space=key)
        out.gauge("archiver_space_low", "1 if a space is low or full",
                  int(space["state"] != "ok"), space=key)
        out.gauge("archiver_space_full", "1 if a space is full", int(space["state"] == "full"),
                  space=key)


def _archived(out: "_Exposition", report: dict) -> None:
    archived, dedup = report["archived"], report["dedup"]
    for source, count in sorted(archived["by_source"].items()):
        out.counter("archiver_archived_total", "messages archived, by source kind", count,
                    source=source)
    out.counter("archiver_duplicates_total", "deliveries of messages already stored",
                dedup["duplicates"])
    out.counter("archiver_dedup_saved_bytes_total", "bytes not stored twice",
                dedup["bytes_saved"])
    last = _epoch(archived["last_archived"])
    if last is not None:
        out.gauge("archiver_last_archived_timestamp_seconds", "when mail was last archived",
                  last)


def _services(out: "_Exposition", report: dict) -> None:
    for name, state in sorted(report["services"].items()):
        out.gauge("archiver_service_up", "1 if the service runs and beats",
                  int(state["state"] == "running"), service=name)


def _peers(out: "_Exposition", peers: list[dict]) -> None:
    for peer in peers:
        name = peer["peer"]
        out.gauge("archiver_mirror_peer_connected", "1 if the peer is connected",
                  int(peer["state"] == "connected"), peer=name)
        out.gauge("archiver_mirror_queued_messages", "messages waiting to be copied to the "
                  "peer", peer["queued"], peer=name)
        out.counter("archiver_mirror_copied_total", "messages copied to the peer",
                    peer["copied"], peer=name)
        last = _epoch(peer["last_success"])
        if last is not None:
            out.gauge("archiver_mirror_last_success_timestamp_seconds", "last copy that "
                      "succeeded", last, peer=name)


def _journal(out: "_Exposition", accounts: list[dict]) -> None:
    for account in accounts:
        name = account["account"]
        out.counter("archiver_journal_imported_total", "messages taken from the journal "
                    "mailbox that were new", account["imported_total"], account=name)
        out.counter("archiver_journal_duplicates_total", "messages taken from the journal "
                    "mailbox that were already archived", account["duplicates_total"],
                    account=name)
        out.gauge("archiver_journal_last_poll_failed", "1 if the last poll failed",
                  int(account.get("state") == "error"),
                  account=name)


class _Exposition:
    """Samples grouped by metric name, each with its HELP and TYPE once."""

    def __init__(self):
        self.metrics: dict[str, tuple[str, str, list[str]]] = {}

    def gauge(self, name: str, help_text: str, value, **labels) -> None:
        self._add(name, "gauge", help_text, value, labels)

    def counter(self, name: str, help_text: str, value, **labels) -> None:
        self._add(name, "counter", help_text, value, labels)

    def _add(self, name, kind, help_text, value, labels) -> None:
        _, _, samples = self.metrics.setdefault(name, (kind, help_text, []))
        label_text = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
        samples.append(f"{name}{{{label_text}}} {value}" if labels else f"{name} {value}")

    def text(self) -> str:
        lines = []
        for name, (kind, help_text, samples) in self.metrics.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc).timestamp()
