"""What the environment gets wrong (another user's archive, a store/data.mdb that is no LMDB
file, a path name too long, a reader of stdout gone) is said in one line, and with --json
as {"error", "exit_code"} on stdout: never a traceback with exit 1 (review 126, 2)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import ARCHIVER
from tests.integration.archive.test_import_reading import as_nobody, root_folder  # noqa: F401

LONG = "x" * 300  # longer than NAME_MAX (255)


def _one_json_line(done, exit_code: int = 2) -> str:
    assert done.returncode == exit_code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    error = json.loads(done.stdout.splitlines()[-1])
    assert error["exit_code"] == exit_code
    assert done.stderr == f"archiver: {error['error']}\n"
    return error["error"]


@pytest.fixture
def archive(archiver, tmp_path):
    (tmp_path / "m.eml").write_bytes(b"From: a@example.com\nSubject: m\n\nx\n")
    archiver("import", "--data", tmp_path / "archive", tmp_path / "m.eml", check=0)
    return tmp_path / "archive"


@pytest.mark.parametrize("command", [["stats"], ["search", "x"], ["audit", "show"]])
def test_another_users_archive_is_named(archiver, root_folder, command):  # noqa: F811
    """The data folder is writable but the archive in it is root's: its store is named."""
    (root_folder / "m.eml").write_bytes(b"From: a@example.com\nSubject: m\n\nx\n")
    archiver("import", "--no-index", "--data", root_folder / "data", root_folder / "m.eml",
             check=0)  # as root
    (root_folder / "data").chmod(0o777)
    done = as_nobody(root_folder, *command, "--json", "--data", root_folder / "data")
    why = _one_json_line(done)
    assert why.startswith(f"cannot open the archive in {root_folder / 'data' / 'store'}: "
                          "this user may not open it for writing (permission denied)"), why


def test_import_into_another_users_archive_names_the_file(archiver, root_folder):  # noqa: F811
    (root_folder / "m.eml").write_bytes(b"From: a@example.com\nSubject: m\n\nx\n")
    (root_folder / "m.eml").chmod(0o644)
    archiver("import", "--data", root_folder / "data", root_folder / "m.eml", check=0)
    (root_folder / "data").chmod(0o777)
    done = as_nobody(root_folder, "import", "--json", "--data", root_folder / "data",
                     root_folder / "m.eml")
    why = _one_json_line(done)
    assert why.startswith(f"cannot use {root_folder / 'data'}/"), why
    assert "Permission denied" in why


@pytest.mark.parametrize("command", [["stats"], ["search", "x"], ["verify"],
                                     ["mirror", "status"], ["audit", "verify"]])
def test_a_store_that_is_not_lmdb_is_named(archiver, tmp_path, command):
    store = tmp_path / "data" / "store"
    store.mkdir(parents=True)
    (store / "data.mdb").write_bytes(os.urandom(100_000))
    done = archiver(*command, "--json", "--data", tmp_path / "data")
    why = _one_json_line(done)
    assert why.startswith(f"cannot open the archive in {store}: store/data.mdb is not a "
                          "readable archive store"), why


@pytest.mark.parametrize("command", [["stats"], ["search", "x"]])
def test_a_data_folder_name_too_long_is_named(archiver, tmp_path, command):
    data = tmp_path / LONG
    why = _one_json_line(archiver(*command, "--json", "--data", data))
    assert why.startswith(f"cannot use {data} as the data folder (file name too long)"), why


def test_an_export_name_too_long_is_named(archiver, archive, tmp_path):
    output = tmp_path / LONG
    why = _one_json_line(archiver("export", "", "--format", "zip", "-o", output, "--json",
                                  "--data", archive))
    assert why.startswith(f"cannot export to {output}: File name too long"), why


def test_an_import_path_too_long_fails_as_that_path(archiver, archive, tmp_path):
    done = archiver("import", "--json", "--data", archive, tmp_path / LONG)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    summary = json.loads(done.stdout)
    assert summary["failed"] == 1
    assert summary["problems"][0]["item"] == str(tmp_path / LONG)


@pytest.mark.parametrize("command", [["search", "", "--json"], ["audit", "show", "--json"],
                                     ["stats", "--json"]])
def test_a_reader_gone_ends_the_command_quietly(archiver, archive, command):
    """`archiver search --json | head -1`: stdout's reader gone before anything is written."""
    archiver("search", "--save", "s", "x", "--data", archive, check=0)  # audited: a line
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([str(ARCHIVER), *command, "--data", str(archive)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == "", (done.returncode, done.stderr)
