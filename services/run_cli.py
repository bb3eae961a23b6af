"""`archiver serve SERVICE` runs one appliance service; `archiver run` runs them all in one
process (development, tests, demos, a machine without systemd) with the same code."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from pathlib import Path

from .archive import Archive
from .archive_cli import extraction_pool
from .config import Config, load_config
from .indexer import Indexer, IndexerBusy, IndexLock

log = logging.getLogger("archiver")
SERVICES = ("smtp", "journal", "indexer", "mirror")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="run one appliance service in the foreground")
    p.add_argument("service", choices=SERVICES)
    _add_options(p)
    p.set_defaults(handler=lambda args: run_services(args, [args.service]))

    p = commands.add_parser("run", help="run every appliance service in one process")
    _add_options(p)
    p.set_defaults(handler=lambda args: run_services(args, list(SERVICES)))


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="default $ARCHIVER_CONFIG or /etc/archiver/archiver.yaml")
    parser.add_argument("--data", type=Path, default=None, help="overrides data_dir")
    parser.add_argument("--model", type=int, default=None, help="overrides model")


class Runtime:
    """What the services of one process share: configuration, archive, a stop signal."""

    def __init__(self, config: Config, archive: Archive):
        self.config, self.archive = config, archive
        self.stop = threading.Event()
        from .intake import IntakeGate  # the service modules load only when a service runs
        self.gate = IntakeGate(archive.store, archive.profile, archive.data_dir)

    def run_indexer(self, lock: IndexLock) -> None:
        """Follow the arrival log until stopped; `lock` is held and released here."""
        try:
            with extraction_pool(self.archive) as pool, \
                    Indexer(self.archive.store, self.archive.index_dir(), pool) as indexer:
                log.info("indexer following %s", self.archive.data_dir)
                indexer.follow(stop=self.stop.is_set)
        finally:
            lock.release()

    def journal_threads(self) -> list[threading.Thread]:
        from .journal import JournalPuller
        return [threading.Thread(target=JournalPuller(account, self.archive.store,
                                                      self.gate.reason).run,
                                 args=(self.stop,), name=f"journal-{account.name}", daemon=True)
                for account in self.config.journal_accounts]

    async def serve(self, with_smtp: bool, with_mirror: bool) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop.set)
        stopping = asyncio.Event()  # the stop signal, as the asyncio services wait for it
        tasks = []
        if with_mirror:
            from .mirror_service import MirrorService
            tasks.append(asyncio.create_task(MirrorService(self.config, self.archive)
                                             .run(stopping)))
        server = None
        if with_smtp:
            from .smtp import start_smtp
            profile = self.archive.profile
            server = await start_smtp(self.config.smtp, self.archive.store, self.gate,
                                      profile.smtp.concurrency,
                                      profile.smtp.max_message_mb * 1024 * 1024)
        print("archiver: ready", file=sys.stderr, flush=True)
        while not self.stop.is_set():
            await asyncio.sleep(0.2)
        stopping.set()
        await asyncio.gather(*tasks)
        if server is not None:
            server.close()
            await server.wait_closed()


def run_services(args, services: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = load_config(args.config)
    archive = Archive(args.data or config.data_dir, args.model or config.model)
    runtime = Runtime(config, archive)
    threads = []
    if "indexer" in services:
        lock = IndexLock(archive.data_dir)
        if lock.acquire(wait=False):
            threads.append(threading.Thread(target=runtime.run_indexer, args=(lock,),
                                            name="indexer"))
        elif services == ["indexer"]:
            raise IndexerBusy(f"another process writes the index of {archive.data_dir}")
        else:
            log.warning("another process writes the index of %s; this one does not index",
                        archive.data_dir)
    if "journal" in services:
        threads += runtime.journal_threads()
    for thread in threads:
        thread.start()
    try:
        asyncio.run(runtime.serve(with_smtp="smtp" in services,
                                  with_mirror="mirror" in services))
    finally:
        runtime.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        archive.close()
    return 0
