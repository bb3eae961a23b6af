"""services.cli.main's last guard: an OSError naming a file the environment got wrong is one
line (and the --json error line) with exit 2; any other OSError stays a traceback."""
from __future__ import annotations

import argparse
import errno
import json

import pytest

from services.cli import main


def _run(monkeypatch, exc: BaseException, capsys):
    def handler(args):
        raise exc
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=handler)
    monkeypatch.setattr(main, "build_parser", lambda command=None: parser)
    code = main.main(["--json"])
    return code, capsys.readouterr()


def test_a_file_this_user_may_not_open_is_named(monkeypatch, capsys):
    code, out = _run(monkeypatch, PermissionError(errno.EACCES, "Permission denied",
                                                  "/data/indexer.lock"), capsys)
    assert code == 2
    assert out.err.startswith("archiver: cannot use /data/indexer.lock: Permission denied")
    assert json.loads(out.out) == {"error": out.err[len("archiver: "):-1], "exit_code": 2}


@pytest.mark.parametrize("exc", [
    OSError(errno.EACCES, "Permission denied"),                   # no file named
    OSError(errno.EIO, "Input/output error", "/data/store"),      # not a path to correct
    FileNotFoundError(errno.ENOENT, "No such file", "/data/x"),   # more often a bug
])
def test_other_os_errors_stay_visible(monkeypatch, capsys, exc):
    with pytest.raises(OSError):
        _run(monkeypatch, exc, capsys)
