"""Runs appliance services: one (`archiver serve SERVICE`, a systemd unit) or all of them in
one process (`archiver run`: development, tests, demos, a machine without systemd), with the
same code; `archiver run`'s indexer alone runs in a child process (its own GIL, as under
systemd: services.supervisor.indexer_process).

Under systemd (Type=notify) a service says READY=1 once it listens or follows, then
WATCHDOG=1 every half WatchdogSec= while its threads and tasks are alive; whether or not
under systemd it records its state in the store (services.appliance.service_state) for `archiver
status`. A service that cannot start or goes down records why, logs it and exits 1, so
that systemd restarts it (Restart=on-failure)."""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.errors import ArchiverError

from services.archive.archive import Archive
from services.archive.space import disk_space, is_out_of_space
from services.common.config import Config, load_config
from services.appliance.service_state import HEARTBEAT_SECONDS, ServiceRecords
from services.appliance.systemd_integration import (log_to_journal_or_stderr, notify,
                                                    watchdog_interval)
from services.supervisor.space_watch import SpaceWatch

if TYPE_CHECKING:
    from services.archive.indexer import IndexLock
    from services.supervisor.indexer_process import IndexerProcess

# Each service's modules are imported only by a process that runs it (see _index_lock,
# run_indexer, serve): on a small appliance every module costs its services' start time.
log = logging.getLogger("archiver")
SUPERVISE_SECONDS = 0.2  # how soon a stop signal or a dead thread is noticed
ROOM_POLL_SECONDS = 5.0  # how often start-up looks for room on a full disk


class ServiceFailed(ArchiverError):
    exit_code = 1

    def __init__(self, service: str, reason: str):
        self.service, self.reason = service, reason
        super().__init__(f"{service}: {reason}")


class Runtime:
    """The services one process runs and what they share: configuration, archive, a stop
    signal; their threads and tasks, watched for as long as they run."""

    def __init__(self, config: Config, archive: Archive, services: list[str],
                 indexer: IndexerProcess | None = None):
        self.config, self.archive, self.services = config, archive, services
        self.indexer = indexer  # `archiver run`'s indexer, in a child process
        self.stop = threading.Event()
        # Stop cleanly even when told to before the event loop runs (a fast restart).
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop.set())
        self.records = ServiceRecords(archive.store, services)
        # The service modules load only when a service runs.
        from services.intake.gate import IntakeGate
        self.gate = IntakeGate(archive.store, archive.profile, archive.data_dir)
        self.threads: list[tuple[str, threading.Thread]] = []
        self.tasks: list[tuple[str, asyncio.Task]] = []
        self._thread_errors: dict[str, str] = {}
        self.space_watch = SpaceWatch(archive)
        self.details: dict[str, str] = {}  # service -> what status adds ("paused: ...")

    # -- threads -------------------------------------------------------------------------

    def start_threads(self, index_lock: IndexLock | None) -> None:
        if index_lock is not None:
            self._start_thread("indexer", "indexer", self.run_indexer, index_lock)
        if len(self.services) > 1:  # `archiver run`: no systemd timer runs retention for it
            from services.policy.replicated import Replicated
            from services.policy.retention import run_weekly
            self._start_thread("retention", "retention", run_weekly, self.archive.store,
                               self.archive.index_dir, Replicated(self.archive.store), self.stop,
                               3600, self.config.timezone)
        if "journal" in self.services:
            from services.intake.journal_mailbox import JournalPuller
            for account in self.config.journal_accounts:
                # A journal mailbox is a trusted source: it keeps the trusted share.
                puller = JournalPuller(
                    account, self.archive.store, functools.partial(self.gate.reason, trusted=True),
                    max_message_bytes=self.archive.profile.smtp.max_message_bytes)
                self._start_thread("journal", f"journal-{account.name}", puller.run, self.stop)

    def _start_thread(self, service: str, name: str, target, *args) -> None:
        def run_and_remember_why_it_ended():
            try:
                target(*args)
            except Exception as exc:
                log.exception("%s ended with an error", name)
                self._thread_errors[name] = _in_words(exc)
        thread = threading.Thread(target=run_and_remember_why_it_ended, name=name)
        thread.start()
        self.threads.append((service, thread))

    def run_indexer(self, lock: IndexLock) -> None:
        """Follow the arrival log until stopped (rebuilding the index first when its schema
        is old), pausing while a disk is full; `lock` is held and released here."""
        from services.archive import compaction, reindex
        from services.archive.live_compaction import LiveCompaction
        from services.supervisor.indexing import Pause, PausingIndexer

        def disks():
            return [space for space in self.archive.spaces() if space.key.endswith("_disk")]

        def note(detail: str) -> None:
            self.details["indexer"] = detail

        def tidy() -> None:
            """Index folders retired long enough go (only with the lock: no switch is
            under way): also while indexing waits for room, which they may hold."""
            if lock.held:
                try:
                    compaction.remove_strays(self.archive)
                except Exception as exc:  # the clean-up must not stop the indexer
                    log.warning("cannot remove index folders no longer used: %s", exc)

        pause = Pause(disks, self.stop, note, tidy)
        try:
            if not _take(lock, pause):
                return
            tidy()  # what the last run left: before a rebuild wants room of its own
            with self.archive.extraction_pool() as pool:
                while not self.stop.is_set():
                    try:  # opening (or making) the index may want room too
                        return reindex.serve(
                            self.archive, pool, stop=self.stop.is_set, pause=pause,
                            follow=lambda indexer: PausingIndexer(
                                indexer, pause, LiveCompaction(self.archive, indexer).caught_up
                            ).run())
                    except Exception as exc:
                        if not is_out_of_space(exc, self.archive.data_dir):
                            raise
                        pause.wait(exc)
        finally:
            lock.release()

    def join_threads(self) -> None:
        """Stop and wait for the threads, and the indexer's child process."""
        self.stop.set()
        for _, thread in self.threads:
            thread.join(timeout=30)
        if self.indexer is not None:
            self.indexer.stop()

    # -- the event loop ------------------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop.set)
        stopping = asyncio.Event()  # the stop signal, as the asyncio services wait for it
        server = web = None
        try:  # what started is closed again even when a later service cannot start
            server = await self._start_smtp() if "smtp" in self.services else None
            web = await self._start_web() if "web" in self.services else None
            if "mirror" in self.services:
                from services.mirror.service import MirrorService
                self.tasks.append(("mirror", asyncio.create_task(
                    MirrorService(self.config, self.archive, self.gate.reason).run(stopping))))
            await self._ready()
            await self._supervise()
        finally:
            notify("STOPPING=1")
            stopping.set()
            await asyncio.gather(*(task for _, task in self.tasks), return_exceptions=True)
            if server is not None:
                server.close()
                await server.wait_closed()
            if web is not None:
                await web.cleanup()

    async def _start_smtp(self) -> asyncio.AbstractServer:
        from services.intake.smtp import start_smtp
        profile = self.archive.profile
        try:
            return await start_smtp(self.config.smtp, self.archive.store, self.gate,
                                    profile.smtp, Path(self.archive.data_dir) / "spool")
        except OSError as exc:  # the port is taken, the address is not ours, a TLS file...
            detail = os.strerror(exc.errno).lower() if exc.errno else _in_words(exc)
            where = f" ({exc.filename})" if exc.filename else ""
            raise ServiceFailed("smtp", f"cannot listen on {self.config.smtp.listen}: "
                                        f"{detail}{where}") from None

    async def _start_web(self):
        from services.web.app import start_web
        try:
            return await start_web(self.config, self.archive)
        except OSError as exc:  # the port is taken, the address is not ours, a TLS file...
            detail = exc.strerror.lower() if exc.strerror else _in_words(exc)
            raise ServiceFailed("web", f"cannot listen on {self.config.web.listen}: "
                                       f"{detail}") from None

    async def _ready(self) -> None:
        await self._record_running()
        summary = f"{', '.join(self.services)}: running"
        notify("READY=1", f"STATUS={summary}")
        log.info("ready: %s", summary)
        print("archiver: ready", file=sys.stderr, flush=True)

    async def _supervise(self) -> None:
        """Until stopped: fail when a thread or task ended; ping the watchdog; keep the
        heartbeat records fresh. The watchdog pings come from this loop, so a blocked event
        loop stops them too."""
        interval = watchdog_interval()
        next_ping = next_beat = 0.0
        while not self.stop.is_set():
            self._check_alive()
            now = time.monotonic()
            if interval is not None and now >= next_ping:
                notify("WATCHDOG=1")
                next_ping = now + interval
            if now >= next_beat:
                await self._beat()
                next_beat = now + HEARTBEAT_SECONDS
            await asyncio.sleep(min(SUPERVISE_SECONDS, interval or SUPERVISE_SECONDS))

    def _check_alive(self) -> None:
        if self.indexer is not None and not self.stop.is_set():
            if (gave_up := self.indexer.supervise(self.archive.store, self.archive.data_dir)):
                raise ServiceFailed("indexer", gave_up)
        for service, thread in self.threads:
            if not thread.is_alive() and not self.stop.is_set():
                raise ServiceFailed(service, self._thread_errors.get(thread.name,
                                                                     f"{thread.name} ended"))
        for service, task in self.tasks:
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise ServiceFailed(service, _in_words(error) if error else "it ended")

    async def _beat(self) -> None:
        store = self.archive.store
        backlog = store.log_end("arrival") - store.cursor("indexer")
        status = f"{', '.join(self.services)}: running; index backlog {backlog}"
        short = await asyncio.to_thread(self.space_watch.check)
        status += "".join(f"; {space.words()}" for space in short)
        await self._record_running()
        notify(f"STATUS={status}")

    async def _record_running(self) -> None:
        try:
            await asyncio.to_thread(self.records.running, dict(self.details))
        except Exception as exc:  # a full disk must not take the services down with it
            log.warning("cannot record the services' heartbeat: %s", exc)


def run_services(args, services: list[str]) -> int:
    log_to_journal_or_stderr("archiver" if len(services) > 1 else f"archiver-{services[0]}")
    config = load_config(args.config)
    archive = Archive(args.data or config.data_dir, args.model or config.model)
    try:
        if not _wait_for_the_store(archive):
            return 0  # stopped while waiting
        index_lock = _index_lock(archive, services, getattr(args, "index_lock_fd", None))
        indexer = None
        if index_lock is not None and len(services) > 1:  # `archiver run`: off this GIL
            from services.supervisor.indexer_process import IndexerProcess
            indexer, index_lock = IndexerProcess.start(args, index_lock), None
        if index_lock is None and "indexer" in services:
            services = [s for s in services if s != "indexer"]
        runtime = Runtime(config, archive, services, indexer)
        _run(runtime, index_lock)
    finally:
        archive.close()
    return 0


def _wait_for_the_store(archive: Archive) -> bool:
    """Open (or create) the archive's store, waiting while its disk has no room to create
    it (a fresh data folder on a full disk), saying why; False when stopped meanwhile."""
    stopped = threading.Event()
    handlers = {signum: signal.signal(signum, lambda *_: stopped.set())
                for signum in (signal.SIGTERM, signal.SIGINT)}
    waiting = False
    try:
        while True:
            try:
                archive.store
                return True
            except Exception as exc:
                if not is_out_of_space(exc, _existing(archive.data_dir)):
                    raise
                why = _disk_in_words(archive, exc)
                if not waiting:
                    log.warning("cannot open the archive: %s; waiting for room", why,
                                extra={"ARCHIVER_SPACE": why})
                    waiting = True
                notify(f"STATUS=waiting for room: {why}")
            if stopped.wait(ROOM_POLL_SECONDS):
                return False
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _disk_in_words(archive: Archive, exc: Exception) -> str:
    """E.g. "data disk full: 0 B free of 35.0 MiB (full below 1.0 MiB)"."""
    try:
        return disk_space("data_disk", "data disk", _existing(archive.data_dir),
                          archive.profile.intake.min_free_disk_bytes).words()
    except OSError:
        return _in_words(exc)


def _existing(path: Path) -> Path:
    """`path`, or its nearest folder that exists (a data folder not made yet)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _index_lock(archive: Archive, services: list[str], handed_fd: int | None = None
                ) -> IndexLock | None:
    """The index lock if this process (or its indexer child) is to be the indexer; None if
    it runs no indexer. When the disk has no room for the lock file, no other process can
    hold it: it is returned not yet held, and the indexer takes it once there is room.
    `handed_fd`: the lock's open file, held, from the `archiver run` that started this."""
    if "indexer" not in services:
        return None
    from services.archive.indexer import IndexerBusy, IndexLock
    lock = IndexLock(archive.data_dir)
    if handed_fd is not None:
        lock.adopt(handed_fd)
        return lock
    try:
        if lock.acquire(wait=False):
            return lock
    except OSError as exc:
        if not is_out_of_space(exc, archive.data_dir):
            raise
        log.warning("cannot make the index lock: %s; the indexer waits for room",
                    _disk_in_words(archive, exc))
        return lock
    if services == ["indexer"]:
        raise IndexerBusy(f"another process writes the index of {archive.data_dir}")
    # `archiver run`: its indexer child ends at once, and is started again once the lock is
    # free (IndexerProcess.supervise), as after a crash. Without one, a run started again
    # while the indexer child of the run before it still ended (it had the lock a second
    # longer: SIGTERM from PR_SET_PDEATHSIG lets it finish) never indexed (ci74).
    log.warning("another process writes the index of %s; this one indexes once it is free",
                archive.data_dir)
    return lock


def _take(lock: IndexLock, pause) -> bool:
    """Hold `lock` (already held, or not yet for want of room), waiting in `pause` while the
    disk has no room for it; False when stopped first."""
    while not lock.held:
        try:
            if not lock.acquire(wait=False):  # an import took it meanwhile: it ends
                pause.stop.wait(ROOM_POLL_SECONDS)
        except OSError as exc:
            if not is_out_of_space(exc, lock.path.parent):
                raise
            pause.wait(exc)
        if pause.stop.is_set():
            return False
    return True


def _run(runtime: Runtime, index_lock: IndexLock | None) -> None:
    try:
        runtime.start_threads(index_lock)
        asyncio.run(runtime.serve())
    except ServiceFailed as failure:
        log.error("%s failed: %s", failure.service, failure.reason,
                  extra={"ARCHIVER_SERVICE": failure.service})
        runtime.join_threads()
        runtime.records.failed(failure.reason, failure.service)
        raise
    except Exception as exc:  # the traceback (of a bug) goes to the journal, the gist to status
        runtime.join_threads()
        bug = not isinstance(exc, ArchiverError)
        runtime.records.failed(f"{'internal error: ' if bug else ''}{_in_words(exc)}")
        raise
    except BaseException:
        runtime.join_threads()
        runtime.records.stopped()
        raise
    runtime.join_threads()
    runtime.records.stopped()


def _in_words(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
