"""External readers (pdftotext, antiword, xls2csv, unrtf, odt2txt, tnef, openssl) run on a
stranger's file, inside the extraction worker, with limits of their own.

Each run gets a private temporary directory holding the input, RLIMIT_CPU (its time
limit: CPU_S), a limit of BLOCKED_S seconds blocked, for a tool that waits without computing
(cpu_time.BlockedClock: the indexer runs at the idle scheduling policy, so a tool may wait
long for a core, and that must not count), RLIMIT_FSIZE (no file it writes grows past the
output limit) and RLIMIT_AS, set by util-linux's prlimit(1) in front of it: a preexec_fn
would make Python fork the whole worker instead of vfork, 10 ms per run. A tool fed its
input on standard input gets the same limits from prlimit(2), called on it before it is
given a byte of the input (so before it can read anything hostile), which spares running
prlimit(1) (about 1 ms of a pdftotext run's 6). A tool that fails, is blocked too long or
is killed raises ToolFailed with a reason fit for `show`.
"""
from __future__ import annotations

import fcntl
import os
import resource
import shutil
import struct
import subprocess
import tempfile
import termios
import threading
from collections.abc import Iterable
from pathlib import Path

from services.archive import cpu_time

# Below the extraction pool's limits (20 s of CPU, 200 s blocked a message), so one slow
# file is that file's failure.
CPU_S = 8
BLOCKED_S = 60.0
MEMORY_BYTES = 384 * 1024 * 1024
OUTPUT_BYTES = 64 * 1024 * 1024  # per file written, and read back from standard output


class ToolFailed(Exception):
    """The tool could not read the file; str() is the reason, `output` what the tool wrote
    on standard output before it failed (b"" when it never ran or ran out of time)."""

    def __init__(self, reason: str, output: bytes = b""):
        super().__init__(reason)
        self.output = output


def available(name: str) -> bool:
    return shutil.which(name) is not None


def run(argv: list[str], data: bytes | Iterable[bytes], input_name: str = "input",
        stdin: bool = False) -> tuple[bytes, str]:
    """Run argv on data and return (stdout, stderr). "{input}" in argv is replaced by the
    path of the input file in a private temporary directory; stdin=True feeds data on
    standard input instead, for tools that write nothing but standard output (no directory
    is made then). `data`: bytes, or chunks of bytes (an iterable), written a chunk at a
    time (an input of tens of MB need not be held whole). Raises ToolFailed on a missing
    tool, a non-zero exit, a timeout or a signal."""
    if stdin:
        return run_in(None, argv, data, input_name, stdin)
    with tempfile.TemporaryDirectory(prefix="archiver-tool-") as directory:
        return run_in(Path(directory), argv, data, input_name, stdin)


def run_in(directory: Path | None, argv: list[str], data: bytes | Iterable[bytes],
           input_name: str = "input", stdin: bool = False) -> tuple[bytes, str]:
    """run(), in a directory the caller owns (to read the files the tool writes there)."""
    if not available(argv[0]):
        raise ToolFailed(f"{argv[0]} is not installed")
    directory = directory or Path(tempfile.gettempdir())
    path = directory / input_name
    if not stdin:
        with open(path, "wb") as file:
            _write_chunks(file, data)
    argv = [part.replace("{input}", str(path)) for part in argv]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8",
           "HOME": str(directory)}
    try:
        if stdin:
            done = _run(argv, data, directory, env, limit_here=True)
        else:
            done = _run(_limits() + argv, b"", directory, env, limit_here=False)
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{argv[0]} was blocked for {BLOCKED_S:g} s") from None
    stderr = done.stderr.decode("utf-8", "replace").strip()
    output = done.stdout[:OUTPUT_BYTES]
    if done.returncode < 0:
        raise ToolFailed(f"{argv[0]} was killed by signal {-done.returncode}"
                         + limit_hint(-done.returncode), output)
    if done.returncode != 0:
        raise ToolFailed(f"{argv[0]} failed (exit code {done.returncode}): "
                         f"{stderr.splitlines()[-1] if stderr else 'no message'}"[:300], output)
    return output, stderr


def _write_chunks(file, data: bytes | Iterable[bytes]) -> None:
    """Write `data` (bytes, or chunks of bytes) to a binary file."""
    for chunk in [data] if isinstance(data, bytes) else data:
        file.write(chunk)


def _run(argv: list[str], data: bytes | Iterable[bytes], cwd: Path, env: dict[str, str],
         limit_here: bool) -> subprocess.CompletedProcess:
    """subprocess.run() of argv with `data` on standard input, until it has been blocked
    for BLOCKED_S seconds; with `limit_here`, its limits set first (see the module
    docstring). Raises subprocess.TimeoutExpired then (the tool killed), ToolFailed when
    its limits cannot be set (it is killed: it never runs without them)."""
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=cwd, env=env) as process:
        try:
            if limit_here:
                limit(process)
            stdout, stderr = _communicate(process, data)
        except BaseException:  # as subprocess.run: no tool outlives its run
            process.kill()
            process.wait()
            raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _communicate(process: subprocess.Popen, data: bytes | Iterable[bytes]
                 ) -> tuple[bytes, bytes]:
    """process.communicate(data), looking at the process every cpu_time.LOOK_S: raises
    subprocess.TimeoutExpired once it has been blocked for BLOCKED_S. A call cut short by
    its timeout is taken up again, which loses no output; but it cannot go on sending
    input, so `data` is written by a thread of its own."""
    stdin = feeder = None
    if data:
        stdin, process.stdin = process.stdin, None  # communicate() leaves it to the feeder
        feeder = threading.Thread(target=_feed, args=(stdin, data), daemon=True)
        feeder.start()
    blocked = cpu_time.BlockedClock()
    while True:
        try:
            output = process.communicate(
                timeout=max(min(cpu_time.LOOK_S, BLOCKED_S - blocked.seconds), 0.01))
            break
        except subprocess.TimeoutExpired:
            if blocked.look(process.pid, _waits_on_us(process, stdin, feeder)) >= BLOCKED_S:
                raise  # the caller kills the tool: the feeder's write fails, and it ends
    if feeder is not None:
        feeder.join()  # the tool ended: its standard input is closed
    return output


def _waits_on_us(process: subprocess.Popen, stdin, feeder: threading.Thread | None) -> bool:
    """Whether the tool may be blocked on this process, not on itself: output in its pipes
    not yet read here (subprocess reads none when it wakes past its timeout: a worker kept
    waiting for a core), or input not yet written here (the pipe empty, the feeder busy)."""
    if any(_bytes_in(pipe) for pipe in (process.stdout, process.stderr)):
        return True
    return feeder is not None and feeder.is_alive() and _bytes_in(stdin) == 0


def _bytes_in(pipe) -> int:
    """Bytes waiting in a pipe (FIONREAD, either end); 0 for none or a closed one."""
    try:
        return struct.unpack("i", fcntl.ioctl(pipe.fileno(), termios.FIONREAD, b"\0" * 4))[0]
    except (AttributeError, ValueError, OSError):
        return 0


def _feed(stdin, data: bytes | Iterable[bytes]) -> None:
    """Write `data` (bytes, or chunks of bytes) to a tool's standard input and close it; a
    tool that stops reading (it ended, or was killed) ends the write."""
    try:
        _write_chunks(stdin, data)
    except OSError:  # BrokenPipeError: it ended without reading all of it
        pass
    finally:
        try:
            stdin.close()
        except OSError:
            pass


def limit(process: subprocess.Popen, but: tuple[int, ...] = ()) -> None:
    """The tool limits, set on a running process (prlimit(2)), but for the resources in
    `but` (RLIMIT_* numbers). Raises ToolFailed when one cannot be set."""
    try:
        for which, _, value in tool_limits():
            if which not in but:
                resource.prlimit(process.pid, which, (value, value))
    except ProcessLookupError:
        pass  # it is gone already, without a byte of its input: there is nothing to limit
    except OSError as exc:
        raise ToolFailed(f"{process.args[0]}: its limits could not be set ({exc})") from None


def _limits() -> list[str]:
    """The tool limits as prlimit(1) arguments, in front of the tool's own."""
    return ["prlimit", *(f"--{option}={value}:{value}" for _, option, value in tool_limits()),
            "--"]


def tool_limits() -> list[tuple[int, str, int]]:
    """(resource, prlimit(1) option, soft = hard value) of each limit a tool runs under:
    CPU seconds, file size in bytes, address space in bytes (MEMORY_BYTES, at most the
    worker's own)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    memory = MEMORY_BYTES if soft == resource.RLIM_INFINITY else min(soft, MEMORY_BYTES)
    return [(resource.RLIMIT_CPU, "cpu", CPU_S), (resource.RLIMIT_FSIZE, "fsize", OUTPUT_BYTES),
            (resource.RLIMIT_AS, "as", memory)]


def limit_hint(signal_number: int) -> str:
    """What a signal that ended a tool says of its limits: " (CPU time limit)"... or ""."""
    import signal
    return {signal.SIGXCPU: " (CPU time limit)", signal.SIGXFSZ: " (output size limit)",
            signal.SIGKILL: " (killed)", signal.SIGSEGV: " (crashed)",
            signal.SIGABRT: " (aborted: out of memory, as a rule)"}.get(signal_number, "")
