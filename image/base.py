"""The base tree of every image: Debian 12 from the build host's own apt sources (mmdebstrap),
cached as a tarball under build/cache/ by a digest of what it is made from.

No mirror is named here: the chroot gets the host's apt sources files and the host's
`Acquire::` settings (proxy, snapshot validity), so a build uses whatever the host uses.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .log import BuildLog

HERE = Path(__file__).resolve().parent
RUNTIME_PACKAGES = HERE / "debian-runtime.txt"
SYSTEM_PACKAGES = HERE / "debian-system.txt"
SUITE = "bookworm"
ARCHITECTURE = "amd64"
# Bump when the way the base is made changes in a way the inputs below do not show.
RECIPE = 1
# Documentation and translations are of no use on an appliance without a shell user.
DPKG_OPTIONS = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
]
# The host's apt settings a build takes over: how to reach the archive, not what it holds.
HOST_APT_SETTING = re.compile(r"Acquire::(Check-Valid-Until|Check-Date|Retries|ForceIPv4|"
                              r"(https?|ftp)::(Proxy|proxy|Timeout|Verify-Peer|CaInfo))\b")
HOST_SOURCES = [Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d")]


class BaseError(Exception):
    pass


def read_package_list(path: Path) -> list[str]:
    """Package names of a list file: one a line, `#` comments."""
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def packages() -> list[str]:
    return sorted(set(read_package_list(RUNTIME_PACKAGES) + read_package_list(SYSTEM_PACKAGES)))


def host_sources(suite: str = SUITE) -> list[Path]:
    """The host's apt sources files that name `suite` (sources.list, *.list, *.sources)."""
    found = []
    for place in HOST_SOURCES:
        candidates = ([place] if place.is_file() else
                      sorted(p for p in place.glob("*") if p.suffix in (".list", ".sources"))
                      if place.is_dir() else [])
        for path in candidates:
            text = path.read_text(errors="replace")
            active = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
            if any(re.search(rf"\b{re.escape(suite)}\b", l) for l in active):
                found.append(path)
    if not found:
        raise BaseError(f"the build host has no apt sources for {suite} in "
                        f"{', '.join(map(str, HOST_SOURCES))}; pass --sources FILE")
    return found


def host_apt_options() -> list[str]:
    """The host's `Acquire::` apt settings (proxies, validity checks of a snapshot mirror)."""
    try:
        dump = subprocess.run(["apt-config", "dump"], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line.strip() for line in dump.splitlines() if HOST_APT_SETTING.match(line)]


@dataclass(frozen=True)
class BaseRecipe:
    suite: str
    architecture: str
    packages: tuple[str, ...]
    sources: tuple[tuple[str, str], ...]      # (file name, contents)
    apt_options: tuple[str, ...]

    @classmethod
    def from_host(cls, sources: list[Path] | None = None) -> "BaseRecipe":
        files = sources or host_sources()
        return cls(SUITE, ARCHITECTURE, tuple(packages()),
                   tuple((p.name, p.read_text()) for p in files), tuple(host_apt_options()))

    def digest(self) -> str:
        """What the tree is made of: packages, sources, how mmdebstrap is called. The host's
        access settings (apt_options) do not change the result and are left out."""
        doc = {"recipe": RECIPE, "suite": self.suite, "architecture": self.architecture,
               "packages": list(self.packages), "sources": [list(s) for s in self.sources],
               "dpkg_options": DPKG_OPTIONS, "variant": "apt"}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def mmdebstrap_command(self, output: Path, source_files: list[Path]) -> list[str]:
        command = ["mmdebstrap", "--variant=apt", "--format=tar",
                   f"--architectures={self.architecture}",
                   "--include=" + ",".join(self.packages)]
        command += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
        command += [f"--aptopt={option}" for option in self.apt_options]
        return command + [self.suite, str(output)] + [str(p) for p in source_files]


def cached_base(cache_dir: Path, log: BuildLog, sources: list[Path] | None = None,
                rebuild: bool = False) -> tuple[Path, bool]:
    """The base tarball for this recipe, made with mmdebstrap if the cache does not have it;
    and whether it came from the cache."""
    source_files = sources or host_sources()
    recipe = BaseRecipe.from_host(source_files)
    digest = recipe.digest()[:20]
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / f"base-{recipe.suite}-{digest}.tar"
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one mmdebstrap at a time; the others wait and reuse
        if tarball.exists() and not rebuild:
            os.utime(tarball)  # recently used: prune() keeps it
            log.step(f"base: cached {tarball.name} ({tarball.stat().st_size >> 20} MiB)")
            return tarball, True
        log.step(f"base: mmdebstrap {recipe.suite} with {len(recipe.packages)} packages from "
                 f"{', '.join(map(str, source_files))} (takes a minute or two)")
        partial = tarball.with_name(tarball.name + ".partial")
        partial.unlink(missing_ok=True)
        environment = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        log.run(recipe.mmdebstrap_command(partial, source_files), env=environment, echo=True)
        # mmdebstrap picks the format from the name; .partial is not one it knows
        os.replace(partial, tarball)
        (cache_dir / f"base-{recipe.suite}-{digest}.json").write_text(json.dumps(
            {"packages": list(recipe.packages), "sources": [p for p, _ in recipe.sources],
             "digest": recipe.digest()}, indent=1) + "\n")
        log.step(f"base: made {tarball.name} ({tarball.stat().st_size >> 20} MiB)")
        prune(cache_dir, keep=tarball)
        return tarball, False


def prune(cache_dir: Path, keep: Path, newest: int = 3) -> None:
    """Keep the newest few base trees (another branch's package list may come back)."""
    tarballs = sorted(cache_dir.glob("base-*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in tarballs if p != keep][newest - 1:]:
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)
