"""Firmware versions: MAJOR.MINOR.PATCH.BUILD, e.g. 1.0.0.001.

The one source of truth is the file firmware/VERSION; pyproject.toml reads it too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering
from pathlib import Path

from .errors import ArchiverError

VERSION_FILE = Path(__file__).with_name("VERSION")
_PATTERN = re.compile(r"(\d{1,6})\.(\d{1,6})\.(\d{1,6})\.(\d{1,6})")


class VersionError(ArchiverError, ValueError):
    """A firmware version string that is not MAJOR.MINOR.PATCH.BUILD."""


@total_ordering
@dataclass(frozen=True)
class FirmwareVersion:
    major: int
    minor: int
    patch: int
    build: int

    @classmethod
    def parse(cls, text: str) -> "FirmwareVersion":
        if not isinstance(text, str):
            raise VersionError(f"firmware version must be a string, got {text!r}")
        match = _PATTERN.fullmatch(text.strip())
        if not match:
            raise VersionError(
                f"malformed firmware version {text!r}: expected MAJOR.MINOR.PATCH.BUILD "
                "with decimal numbers, e.g. 1.0.0.001"
            )
        return cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        # The build number is shown with three digits, as the appliance's releases are.
        return f"{self.major}.{self.minor}.{self.patch}.{self.build:03d}"

    def _key(self) -> tuple[int, int, int, int]:
        return (self.major, self.minor, self.patch, self.build)

    def __lt__(self, other: "FirmwareVersion") -> bool:
        if not isinstance(other, FirmwareVersion):
            return NotImplemented
        return self._key() < other._key()


def current_version() -> FirmwareVersion:
    """The version of the firmware this tree (or the installed image) is."""
    return FirmwareVersion.parse(VERSION_FILE.read_text())
