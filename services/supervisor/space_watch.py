"""Tells the journal when a space of the archive (services.archive.space) turns low or
full and when it is ok again, with the numbers, so an operator hears of a filling disk
before intake waits and before writes fail."""
from __future__ import annotations

import logging

from services.archive.archive import Archive
from services.archive.space import Space

log = logging.getLogger(__name__)


class SpaceWatch:
    def __init__(self, archive: Archive):
        self.archive = archive
        self.states: dict[str, str] = {}  # space key -> state last told; "ok" untold

    def check(self) -> list[Space]:
        """Measure every space, log each change of state; returns the spaces not ok."""
        spaces = self.archive.spaces()
        for space in spaces:
            if space.state != self.states.get(space.key, "ok"):
                level = logging.INFO if space.state == "ok" else logging.WARNING
                log.log(level, "%s", space.words(), extra={
                    "ARCHIVER_SPACE": space.key, "ARCHIVER_SPACE_STATE": space.state,
                    "ARCHIVER_FREE_BYTES": space.free_bytes,
                    "ARCHIVER_TOTAL_BYTES": space.total_bytes})
            self.states[space.key] = space.state
        return [space for space in spaces if space.state != "ok"]
