"""How `archiver show` prints a file's name (review r7 F4): a sender names the file, so the
name is quoted, a Python string of it (a backslash and a quote in it escaped, its controls
and its white space but a lone space escaped: review r10 F7, "a\\tb" is not "a b"); an unnamed file is "(no name, saved as attachment-N)" (or
"(no name)" inside another), never quoted. So no name reads as an unnamed file, carries a
column of its own, or wraps into a row that reads as another file."""
from __future__ import annotations

import ast
import re

import pytest

from services.cli.archive import _file_lines

ROW = re.compile(r"^ *(\d+|-)  "
                 r'("(?:[^"\\]|\\.)*"|\(no name(?:, saved as attachment-\d+)?\))  '
                 r"(\S+), ([\d,]+) bytes$")
FORGED = re.compile(r"^ *\d+  \S.*  \S+/\S+, [\d,]+ bytes")

NAMES = ["(no name, saved as attachment-1)", "(no name)", "(no name: attachment-1)",
         'a "quoted" name', 'ends with \\', '\\"', '"', "", " lead and trail ",
         "invoice.pdf" + " " * 70 + "2  payload.exe  application/pdf, 1,024 bytes",
         "tab\t\tand\nbreak\r\nand\u00a0\u3000\u2028wide", "x  text/plain, 9 bytes",
         "bidi \u202eexe.pdf", "ctl \x07\x1b[31m"]


def file(name: str | None, number: int | None = 1, files: list | None = None) -> dict:
    shown = {"number": number} if number is not None else {}
    return {**shown, "filename": name if name is not None else
            (f"attachment-{number}" if number is not None else None),
            "named": name is not None, "content_type": "application/pdf", "size": 1024,
            "files": files or []}


@pytest.mark.parametrize("name", NAMES)
def test_a_name_is_one_quoted_column_of_its_row(name):
    inner = file(name, number=None)
    for line in _file_lines([file(name, files=[inner])]):
        columns = ROW.match(line.strip("\n"))
        assert columns, line
        assert columns.group(2).startswith('"')
        assert columns.group(3, 4) == ("application/pdf", "1,024")
    shown = ROW.match(_file_lines([file(name)])[0]).group(2)
    assert ast.literal_eval(shown) == name  # a Python string of the name: every escape read
    assert "  " not in shown and all(char == " " or not char.isspace() for char in shown)


@pytest.mark.parametrize("name", NAMES)
def test_no_name_reads_as_an_unnamed_file(name):
    unnamed = [_file_lines([file(None, number)])[0] for number in (1, 2)]
    assert _file_lines([file(name)])[0] not in unnamed
    assert _file_lines([file(None, None)])[0] != _file_lines([file(name, None)])[0]
    assert ROW.match(unnamed[0]).group(2) == "(no name, saved as attachment-1)"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("width", [40, 60, 79, 80, 100, 132])
def test_a_name_never_wraps_into_a_row_of_its_own(name, width):
    for line in _file_lines([file(name, files=[file(name, number=None)])]):
        rows = [line[at:at + width] for at in range(0, len(line), width)]
        assert not any(FORGED.match(row) for row in rows[1:]), rows
