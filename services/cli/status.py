"""`archiver status [--json]`: services, queues, counters and resources in one view."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from services.archive.archive import Archive, default_data_dir
from services.archive.space import size_in_words
from services.common.config import load_config
from services.appliance.health import health
from services.common.terminal import terminal_safe


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("status", help="services, queues, archived counters, storage, "
                                           "system resources")
    p.add_argument("--config", type=Path, default=None,
                   help="default $ARCHIVER_CONFIG or /etc/archiver/archiver.yaml")
    p.add_argument("--data", type=Path, default=None,
                   help="data folder (default $ARCHIVER_DATA, else the config's data_dir)")
    p.add_argument("--model", type=int, default=None, help="overrides model")
    p.add_argument("--json", action="store_true", help="everything as one JSON object")
    p.set_defaults(handler=cmd_status)


def cmd_status(args) -> int:
    config = load_config(args.config)
    archive = Archive(args.data or default_data_dir(config.data_dir),
                      args.model or config.model).require_existing()
    try:
        report = health(config, archive)
    finally:
        archive.close()
    print(json.dumps(report, indent=2) if args.json else "\n".join(text_lines(report)))
    return 0


def text_lines(report: dict) -> list[str]:
    lines = [f"node {report['node']}, model {report['model']}, firmware {report['firmware']}, "
             f"at {report['time']}, time zone {report['timezone']}"]
    lines += [f"space: {space['words']}" for space in report["space"].values()]
    lines.append("services:")
    for name, state in report["services"].items():
        lines.append(f"  {name:8} {_service_line(state)}")
    index = report["queues"]["index"]
    lines.append(f"index: {index['indexed']} of {index['stored']} messages indexed, "
                 f"backlog {index['backlog']}")
    lines.append(_compaction_line(index["compaction"]))
    if index["reindexing"]:
        lines.append(f"  reindexing {index['reindexing']['done']} of "
                     f"{index['reindexing']['total']} (the old index answers until then)")
    for peer in report["queues"]["peers"]:
        reason = f" ({terminal_safe(peer['reason'])})" if peer["reason"] else ""
        lines.append(f"  peer {peer['peer']}: {peer['state']}{reason}, queued {peer['queued']}, "
                     f"last success {peer['last_success'] or 'never'}, "
                     f"last error {terminal_safe(peer['last_error'] or '-')}")
    for account in report["journal_accounts"]:
        lines.append(f"  journal {account['account']}: {account['state']}, last poll "
                     f"{account['last_poll'] or '-'}, last error "
                     f"{terminal_safe(account['last_error'] or '-')}")
    directory = report.get("directory")
    if directory is not None:
        lines.append(f"directory {directory['uri']}: {directory['state']}"
                     + (f" ({terminal_safe(directory['error'])})" if directory["error"] else ""))
        if directory.get("warning"):
            lines.append(f"  warning: {terminal_safe(directory['warning'])}")
    lines += _hold_lines(report["holds"])
    lines += _archived_lines(report)
    lines.append(_system_line(report["system"]))
    return lines


def _compaction_line(state: dict) -> str:
    """E.g. "  index size 71.3 MiB; compacted 2026-11-30T15:00:00Z, 70.1 MiB to 29.0 MiB;
    compacts next at 43.5 MiB"."""
    if state["index_bytes"] is None:
        return "  index size 0 B (no index yet)"
    line = f"  index size {size_in_words(state['index_bytes'])}"
    last = state["last"]
    if last is not None:
        line += (f"; compacted {last['at']}, {size_in_words(last['bytes_before'])} to "
                 f"{size_in_words(last['bytes_after'])}")
    line += f"; compacts next at {size_in_words(state['compacts_at_bytes'])}"
    if state["skipped"] is not None:
        line += f"; last skipped {state['skipped']['at']}: {state['skipped']['reason']}"
    return line


def _service_line(state: dict) -> str:
    line = state["state"]
    if state["reason"]:
        line += f": {state['reason']}"
    if state["state"] == "running":
        line += f" (pid {state['pid']}, since {state['since']})"
    elif state["last_seen"]:
        line += f" (at {state['last_seen']})"
    if state.get("unit"):
        line += f"; systemd: {state['unit']}"
    return line


def _hold_lines(state: dict) -> list[str]:
    lines = [f"holds: {state['in_force']} in force"]
    if state["holding_everything"]:
        keeping = len(state["holding_everything"])
        lines[0] += (f"; {keeping} {'keeps' if keeping == 1 else 'keep'} every message: "
                     "retention deletes nothing while they live")
    lines += [f"  hold {terminal_safe(hold['id'])} keeps every message: "
              f"{terminal_safe(hold['why'])}"
              for hold in state["holding_everything"]]
    return lines


def _archived_lines(report: dict) -> list[str]:
    archived, dedup, storage = report["archived"], report["dedup"], report["storage"]
    sources = ", ".join(f"{source} {count}" for source, count in
                        sorted(archived["by_source"].items())) or "none yet"
    return [f"archived: {archived['total']} ({sources}); this hour {archived['this_hour']}, "
            f"last hour {archived['last_hour']}, today {archived['today']}, yesterday "
            f"{archived['yesterday']}; last at {archived['last_archived'] or '-'}",
            f"dedup: {dedup['duplicates']} duplicates, {_size(dedup['bytes_saved'])} not "
            "stored twice",
            f"storage: {storage['messages']} messages, {_size(storage['message_bytes'])} "
            f"({_size(storage['compressed_bytes'])} compressed); {_size(storage['used_bytes'])}"
            f" used, {_size(storage['free_bytes'])} free of {_size(storage['capacity_bytes'])}"]


def _system_line(system: dict) -> str:
    disk, memory, load = system["disk"], system["memory"], system["load"]
    return (f"system: disk {disk['path']} {disk['percent_used']}% used "
            f"({_size(disk['free_bytes'])} free), memory {memory['percent_used']}% used, "
            f"load {load['1min']:.2f} {load['5min']:.2f} {load['15min']:.2f}")


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count} B"
