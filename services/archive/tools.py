"""External readers (pdftotext, antiword, xls2csv, unrtf, odt2txt, tnef, openssl) run on a
stranger's file, inside the extraction worker, with limits of their own.

Each run gets a private temporary directory holding the input, a wall-clock timeout, and
RLIMIT_CPU, RLIMIT_FSIZE (no file it writes grows past the output limit) and RLIMIT_AS (it
inherits the worker's, and gets a tighter one here). A tool that fails, times out or is
killed raises ToolFailed with a reason fit for `show`.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 8.0            # below the pool's 20 s, so one slow file is that file's failure
CPU_S = 8
MEMORY_BYTES = 384 * 1024 * 1024
OUTPUT_BYTES = 64 * 1024 * 1024  # per file written, and read back from standard output


class ToolFailed(Exception):
    """The tool could not read the file; str() is the reason."""


@dataclass
class Run:
    stdout: bytes
    stderr: str
    directory: Path   # the run's private directory (input and anything written), until close


def available(name: str) -> bool:
    return shutil.which(name) is not None


def run(argv: list[str], data: bytes, input_name: str = "input",
        stdin: bool = False) -> tuple[bytes, str]:
    """Run argv on data and return (stdout, stderr). "{input}" in argv is replaced by the
    path of the input file (stdin=True feeds data on standard input instead). Raises
    ToolFailed on a missing tool, a non-zero exit, a timeout or a signal."""
    with tempfile.TemporaryDirectory(prefix="archiver-tool-") as directory:
        return run_in(Path(directory), argv, data, input_name, stdin)


def run_in(directory: Path, argv: list[str], data: bytes, input_name: str = "input",
           stdin: bool = False) -> tuple[bytes, str]:
    """run(), in a directory the caller owns (to read the files the tool writes there)."""
    if not available(argv[0]):
        raise ToolFailed(f"{argv[0]} is not installed")
    path = directory / input_name
    if not stdin:
        path.write_bytes(data)
    argv = [part.replace("{input}", str(path)) for part in argv]
    try:
        done = subprocess.run(argv, input=data if stdin else b"", capture_output=True,
                              timeout=TIMEOUT_S, cwd=directory, preexec_fn=_limits,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                   "LC_ALL": "C.UTF-8", "HOME": str(directory)})
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{argv[0]} timed out after {TIMEOUT_S:g} s") from None
    stderr = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode < 0:
        raise ToolFailed(f"{argv[0]} was killed by signal {-done.returncode}"
                         + _limit_hint(-done.returncode))
    if done.returncode != 0:
        raise ToolFailed(f"{argv[0]} failed (exit code {done.returncode}): "
                         f"{stderr.splitlines()[-1] if stderr else 'no message'}"[:300])
    return done.stdout[:OUTPUT_BYTES], stderr


def _limits() -> None:
    """In the child, before exec: CPU seconds, file size, address space."""
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_S, CPU_S))
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_BYTES, OUTPUT_BYTES))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = MEMORY_BYTES if soft == resource.RLIM_INFINITY else min(soft, MEMORY_BYTES)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _limit_hint(signal_number: int) -> str:
    import signal
    return {signal.SIGXCPU: " (CPU time limit)", signal.SIGXFSZ: " (output size limit)",
            signal.SIGKILL: " (killed)", signal.SIGSEGV: " (crashed)"}.get(signal_number, "")
