"""Look into (and, for tests, change) the ext4 file system of an image's system disk without
a loop device or a mount: qemu-img turns the qcow2 into a raw file and debugfs reads it."""
from __future__ import annotations

import subprocess
from pathlib import Path


class DiskError(Exception):
    pass


def to_raw(qcow2: Path, raw: Path) -> Path:
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2), str(raw)],
                   check=True, capture_output=True)
    return raw


def to_qcow2(raw: Path, qcow2: Path) -> Path:
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
                   check=True, capture_output=True)
    return qcow2


def debugfs(raw: Path, *requests: str, write: bool = False) -> str:
    """Run debugfs requests on the file system; returns their output."""
    command = ["debugfs", *(["-w"] if write else []), "-f", "-", str(raw)]
    done = subprocess.run(command, input="\n".join(requests) + "\n", capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise DiskError(f"debugfs failed: {done.stderr.strip()}")
    return done.stdout


def read_file(raw: Path, path: str) -> bytes:
    done = subprocess.run(["debugfs", "-R", f"cat {path}", str(raw)], capture_output=True)
    if done.returncode != 0 or b"File not found" in done.stderr:
        raise DiskError(f"{path}: not in the file system ({done.stderr.decode().strip()})")
    return done.stdout


def exists(raw: Path, path: str) -> bool:
    done = subprocess.run(["debugfs", "-R", f"stat {path}", str(raw)], capture_output=True,
                          text=True)
    return done.returncode == 0 and "File not found" not in done.stderr and "Inode:" in done.stdout


def listdir(raw: Path, path: str) -> list[str]:
    done = subprocess.run(["debugfs", "-R", f"ls -p {path}", str(raw)], capture_output=True,
                          text=True)
    if "File not found" in done.stderr or done.returncode != 0:
        raise DiskError(f"{path}: not a folder in the file system")
    names = []
    for line in done.stdout.splitlines():
        fields = line.strip().strip("/").split("/")
        if len(fields) >= 5 and fields[4] not in (".", ".."):
            names.append(fields[4])
    return names


def replace_file(raw: Path, path: str, local: Path) -> None:
    """Put `local` at `path` in the file system (the file's inode is made anew)."""
    folder, _, name = path.rpartition("/")
    debugfs(raw, f"cd {folder or '/'}", f"rm {name}", f"write {local} {name}", write=True)


def dump_tree(raw: Path, target: Path) -> Path:
    """Copy the whole file system into target (debugfs rdump); returns target."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["debugfs", "-R", f"rdump / {target}", str(raw)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise DiskError(f"debugfs rdump failed: {done.stderr.strip()}")
    return target
