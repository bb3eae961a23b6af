"""The systemd units of the appliance (services/units/), shipped in the wheel as package data.

They name /usr/bin/archiver, where the image installs the console script; install() copies
them with another path when the command lives elsewhere (a venv, a test's temporary root).
"""
from __future__ import annotations

from pathlib import Path

UNITS_DIR = Path(__file__).parent.parent / "units"
INSTALLED_ARCHIVER = "/usr/bin/archiver"
LONG_RUNNING = ("smtp", "journal", "indexer", "mirror", "web")


def unit_paths() -> list[Path]:
    return sorted([*UNITS_DIR.glob("*.service"), *UNITS_DIR.glob("*.timer")])


def install(destination: Path, archiver: str = INSTALLED_ARCHIVER) -> list[Path]:
    """Copy every unit into `destination` (e.g. an image's /usr/lib/systemd/system), with
    ExecStart= running `archiver`; returns the copies."""
    destination.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in unit_paths():
        copy = destination / source.name
        copy.write_text(source.read_text().replace(f"={INSTALLED_ARCHIVER} ", f"={archiver} "))
        copies.append(copy)
    return copies
