"""Progress of a build on stderr and everything, commands' output included, in its log file."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


class BuildError(Exception):
    pass


class BuildLog:
    def __init__(self, path: Path | None = None, quiet: bool = False):
        self.start = time.monotonic()
        self.quiet = quiet
        self.file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w", buffering=1)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def write(self, line: str, echo: bool = False) -> None:
        if self.file:
            self.file.write(line + "\n")
        if echo and not self.quiet:
            print(line, file=sys.stderr, flush=True)

    def step(self, message: str) -> None:
        self.write(f"[{self.elapsed():6.1f}s] {message}", echo=True)

    def run(self, command: list[str], echo: bool = False, env=None, cwd=None,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run a command; its output goes to the log (and to stderr with echo)."""
        self.write("$ " + " ".join(command))
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", env=env, cwd=cwd)
        lines = []
        for line in process.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            self.write(("    " + line) if echo else line, echo=echo)
        code = process.wait()
        if check and code != 0:
            tail = "\n".join(lines[-20:])
            raise BuildError(f"{command[0]} failed with exit code {code}:\n{tail}")
        return subprocess.CompletedProcess(command, code, "\n".join(lines), "")

    def close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None
