"""This tree's wheel, built reproducibly, and its installation into an image's root.

The wheel is built from a copy of the tree's packages (setuptools builds in-tree and would
otherwise pick up stale build/lib files) with SOURCE_DATE_EPOCH set, so two builds of the
same sources give the same bytes. It is installed by unpacking it into
/usr/lib/python3/dist-packages, where Debian's python3 finds it beside the runtime libraries,
with the console script as /usr/bin/archiver (what the units run).
"""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from .log import BuildError, BuildLog

TREE = Path(__file__).resolve().parent.parent
PACKAGES = ("firmware", "services", "image", "qemu")
TOP_FILES = ("pyproject.toml", "README.md")
SITE_PACKAGES = "usr/lib/python3/dist-packages"
BIN_DIR = "usr/bin"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")


def source_date_epoch(tree: Path = TREE) -> str:
    """SOURCE_DATE_EPOCH if set, else the time of the tree's last commit (so rebuilds of one
    commit are byte-identical), else now."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    done = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%ct"],
                          capture_output=True, text=True)
    if done.returncode == 0 and done.stdout.strip().isdigit():
        return done.stdout.strip()
    return str(int(time.time()))


def build_wheel(output_dir: Path, log: BuildLog, tree: Path = TREE,
                version: str | None = None) -> Path:
    """Build the wheel into output_dir (emptied first); returns its path. `version` stands in
    for firmware/VERSION in the copy the wheel is built from (another release of the same
    sources, e.g. for the system tests' firmware-mismatch case)."""
    epoch = source_date_epoch(tree)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="archiver-wheel-") as scratch:
        source = Path(scratch) / "src"
        source.mkdir()
        for name in TOP_FILES:
            shutil.copy2(tree / name, source / name)
        for package in PACKAGES:
            shutil.copytree(tree / package, source / package, ignore=IGNORED)
        if version is not None:
            (source / "firmware" / "VERSION").write_text(f"{version}\n")
        environment = {**os.environ, "SOURCE_DATE_EPOCH": epoch, "PYTHONHASHSEED": "0"}
        log.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--disable-pip-version-check", "--no-cache-dir", "-q", "-w", str(output_dir),
                 str(source)], env=environment)
    wheels = sorted(output_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"pip wheel made {len(wheels)} wheels in {output_dir}, not 1")
    log.step(f"wheel: {wheels[0].name} (SOURCE_DATE_EPOCH={epoch})")
    return wheels[0]


def install_wheel(wheel: Path, root: Path) -> list[str]:
    """Unpack the wheel into root's dist-packages and write its console scripts into
    /usr/bin; returns the installed paths relative to root."""
    site = root / SITE_PACKAGES
    installed = []
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            name = info.filename
            if info.is_dir():
                continue
            if name.startswith("/") or ".." in Path(name).parts or ".data/" in name:
                raise BuildError(f"{wheel.name}: unexpected member {name}")
            target = site / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
            target.chmod(0o644)
            installed.append(f"{SITE_PACKAGES}/{name}")
        dist_info = next(n.split("/")[0] for n in archive.namelist()
                         if n.split("/")[0].endswith(".dist-info"))
        (site / dist_info / "INSTALLER").write_text("archiver-image\n")
        installed.append(f"{SITE_PACKAGES}/{dist_info}/INSTALLER")
        entry_points = configparser.ConfigParser(delimiters=("=",))
        entry_points.optionxform = str
        try:
            entry_points.read_string(archive.read(f"{dist_info}/entry_points.txt").decode())
        except KeyError:
            pass
    scripts = dict(entry_points["console_scripts"]) if entry_points.has_section(
        "console_scripts") else {}
    for name, target in sorted(scripts.items()):
        module, _, function = target.strip().partition(":")
        script = root / BIN_DIR / name
        script.write_text("#!/usr/bin/python3\n"
                          f"# The {name} command of {wheel.name}.\n"
                          "import sys\n"
                          f"from {module} import {function}\n"
                          "if __name__ == '__main__':\n"
                          f"    sys.exit({function}())\n")
        script.chmod(0o755)
        installed.append(f"{BIN_DIR}/{name}")
    return sorted(installed)
