"""Loaded by every Python process of a test service whose PYTHONPATH names this folder
(tests/integration/supervisor/test_compaction_crashes.py): kills the whole service (its
process group: `archiver run`, its indexer child, the extraction workers) with SIGKILL at
one step of indexing or of the live index's compaction, named by $KILL_HOOK_KILL_AT, as a
power cut or the OOM killer would at that instant. $KILL_HOOK_MIN_GROWTH_BYTES lowers the
size at which the indexer service compacts, so that a small corpus reaches it, and
$KILL_HOOK_RETIRED_SECONDS how long a replaced index is kept (the tests wait that out)."""
import os
import signal
import threading

KILL_AT = os.environ.get("KILL_HOOK_KILL_AT")
MIN_GROWTH = os.environ.get("KILL_HOOK_MIN_GROWTH_BYTES")
RETIRED = os.environ.get("KILL_HOOK_RETIRED_SECONDS")


def _die(step: str) -> None:
    marker = os.environ.get("KILL_HOOK_KILLED_FILE")
    if marker:
        with open(marker, "w") as out:
            out.write(step)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _install() -> None:
    from services.archive import archive, compaction, live_compaction, retired_index
    from services.archive import indexer as indexer_module
    if MIN_GROWTH:
        live_compaction.MIN_GROWTH_BYTES = int(MIN_GROWTH)
    if RETIRED:
        retired_index.RETIRED_SECONDS = float(RETIRED)
    if KILL_AT == "copy":  # one shard copied, the next not: index.compacting half made
        real_one, done = compaction._compact_one, []

        def compact_one(source, target):
            real_one(source, target)
            done.append(target)
            if len(done) == 1:
                _die(KILL_AT)
        compaction._compact_one = compact_one
    elif KILL_AT == "before-switch":  # the copy renamed to index.N, not yet live
        real_switch = live_compaction.LiveCompaction._switch

        def switch(self, copied, size):
            _die(KILL_AT)
        live_compaction.LiveCompaction._switch = switch
    elif KILL_AT == "swapped":  # the link points to the copy; the indexer not yet moved
        real_swap = archive.Archive.swap_index

        def swap_index(self, new_dir):
            old = real_swap(self, new_dir)
            if old is not None:  # not the first index: these tests rebuild none, so the
                _die(KILL_AT)    # live compaction's swap
            return old
        archive.Archive.swap_index = swap_index
    elif KILL_AT == "retiring":  # the copy live and written; the old one not yet removed
        real_move = indexer_module.Indexer.move_to

        def move_to(self, index_dir):
            real_move(self, index_dir)
            _die(KILL_AT)
        indexer_module.Indexer.move_to = move_to
    elif KILL_AT and KILL_AT.startswith("shard0-commit-"):
        # Shard 0 (with the log position) dies at the Nth commit: shards 1.. committed first
        # (a batch at the end of the log) or are committing (a backlog: all at once).
        wanted, seen = int(KILL_AT.rsplit("-", 1)[1]), [0]
        real_commit = indexer_module.Indexer._commit

        def commit(self, batch, *options):
            first = self.shards[0]
            if len(self.shards) > 1 and self.live:
                seen[0] += 1
                if seen[0] == wanted:
                    self.shards[0] = _DyingShard(first)
            try:
                real_commit(self, batch, *options)
            finally:
                self.shards[0] = first
        indexer_module.Indexer._commit = commit


class _DyingShard:
    def __init__(self, shard):
        self._shard = shard

    def commit(self):
        _die(KILL_AT)

    def __getattr__(self, name):
        return getattr(self._shard, name)


if KILL_AT or MIN_GROWTH or RETIRED:
    try:
        _install()
    except ImportError:  # a Python that is not the archiver's
        pass
