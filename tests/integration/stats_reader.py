"""`archiver stats --json` of a data folder, answered by one long-lived Python process per
service or node under test instead of a new `archiver` process each time.

Tests poll the stats while they wait for a service to store, copy or index mail, every few
tenths of a second. Each `archiver` start costs about 0.3 s of CPU (the interpreter and the
archive's modules): ~430 of them in one run of the tests, taking a third of a core from the
very services the loops wait for. This reader starts once, then for each question opens the
archive, reads it with the command's own function (services.cli.archive.archive_stats) and
closes it again, so every answer is the archive as it is now. It is a process of its own, not
the test's: LMDB must not be opened twice in one process, and a test may hold the archive
open itself. `archiver stats` as a command is tested on its own (tests/integration/archive).
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading

# Reads a data folder a line on stdin, writes its stats as one JSON line (or
# {"error": ...} when there is no archive there yet or it cannot be read).
READER = r"""
import json, sys
from services.archive.archive import Archive
from services.cli.archive import archive_stats
for line in sys.stdin:
    archive = Archive(line.rstrip("\n"))
    try:
        answer = archive_stats(archive.require_existing())
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        archive.close()
    print(json.dumps(answer), flush=True)
"""


class StatsReader:
    """stats(data_dir, env) -> `archiver stats --json`'s dict, read under `env` (the service's
    environment: ARCHIVER_MODELS and the like; a reader started under another environment is
    replaced, as a test may change its service's). AssertionError when the archive cannot be
    read, as a failed `archiver stats` would be. close() ends the reader; so does the test
    process's end (its stdin closes)."""

    def __init__(self):
        self._env: dict[str, str] = {}  # the running reader's
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one question at a time: a test may poll from threads

    def stats(self, data_dir, env: dict[str, str]) -> dict:
        with self._lock:
            if self._process is not None and env != self._env:
                self._end()
            if self._process is None or self._process.poll() is not None:
                self._env = dict(env)
                self._process = subprocess.Popen([sys.executable, "-c", READER], text=True,
                                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                 env=self._env)
            self._process.stdin.write(f"{data_dir}\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        assert line, f"the stats reader of {data_dir} ended (exit {self._process.poll()})"
        answer = json.loads(line)
        assert "error" not in answer, f"stats of {data_dir}: {answer['error']}"
        return answer

    def close(self) -> None:
        with self._lock:
            self._end()

    def _end(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # (ci73: one never saw EOF, probably its
                self._process.kill()           # stdin held by a child forked since)
                self._process.wait()
            self._process = None
