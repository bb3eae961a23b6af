"""A small filesystem a test makes, fills and frees again (needs root), so that an archive
runs out of room for real: ENOSPC, LMDB's short writes, Xapian's failed block writes.

    with SmallDisk(tmp_path / "disk", 40) as disk:      # a loop-mounted ext4 image
        disk.fill(leave_bytes=0)                        # ballast files until ENOSPC
        disk.release()                                  # the ballast goes: room again

    with SmallDisk(path, 4, kind="tmpfs") as disk:      # tmpfs with size=
        disk.grow(64)                                   # remount with a larger size

ext4 has no reserved blocks (-m 0), so root and an unprivileged service see the same free
space. The mount goes away on exit even when the test failed; a mount still busy (a
process of the test not yet stopped) is detached lazily rather than left behind.
"""
from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

CHUNK = 1024 * 1024


class SmallDisk:
    def __init__(self, mount_point: Path, size_mb: int, kind: str = "ext4"):
        self.mount_point, self.size_mb, self.kind = Path(mount_point), size_mb, kind
        self.image = self.mount_point.with_name(self.mount_point.name + ".img")
        self.ballast: list[Path] = []

    def __enter__(self) -> "SmallDisk":
        self.mount_point.mkdir(parents=True, exist_ok=True)
        if self.kind == "tmpfs":
            _run("mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs",
                 self.mount_point)
        else:
            with open(self.image, "wb") as image:
                image.truncate(self.size_mb * 1024 * 1024)
            _run("mkfs.ext4", "-q", "-m", "0", "-F", self.image)
            _run("mount", "-o", "loop", self.image, self.mount_point)
        return self

    def __exit__(self, *exc_info) -> None:
        done = subprocess.run(["umount", str(self.mount_point)], capture_output=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(self.mount_point)], capture_output=True)
        self.image.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        found = os.statvfs(self.mount_point)
        return found.f_bavail * found.f_frsize

    def fill(self, leave_bytes: int = 0) -> int:
        """Write ballast until about `leave_bytes` are free (0: until ENOSPC); returns
        the bytes written. Synced, so the blocks are taken, not merely reserved."""
        written = 0
        path = self.mount_point / f"ballast.{len(self.ballast)}"
        self.ballast.append(path)
        with open(path, "wb", buffering=0) as ballast:  # unbuffered: nothing left to flush
            try:
                while (room := self.free_bytes() - leave_bytes) > 0 or not leave_bytes:
                    written += ballast.write(os.urandom(min(CHUNK, max(room, 4096))))
                    os.fsync(ballast.fileno())
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        return written

    def release(self) -> None:
        """Remove all ballast: the room it took is free again."""
        for path in self.ballast:
            path.unlink(missing_ok=True)
        self.ballast.clear()

    def grow(self, size_mb: int) -> None:
        """A tmpfs only: remount it larger (what a bigger disk would be)."""
        _run("mount", "-o", f"remount,size={size_mb}m", self.mount_point)
        self.size_mb = size_mb


def _run(*command) -> None:
    subprocess.run([str(part) for part in command], check=True, capture_output=True)
