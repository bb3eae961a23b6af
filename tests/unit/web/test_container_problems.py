"""A container's problem as a whole -- a zip that cannot be opened at all (no zip, its
central directory cut short, an end record that lies), a TNEF stream or an S/MIME
signed-data object its tool cannot read, one past the limits the indexer lists ("N members;
the first 500 are listed", the message's containers over their budget of members) -- is
said by every view in the indexer's words (its extraction failure of that file): the
API's and `show --json`'s "container_problem", `show`'s line, the message page's tree and
the line its template writes. Generated over the kind, at the top and inside a forwarded
message; the expected words are the indexer's (extract), never written here."""
from __future__ import annotations

import base64
import io
import random
import re
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from services.archive import containers
from services.archive.extract import extract
from services.cli.archive import _file_lines
from services.common.terminal import name_safe
from services.web import forwarded, mail_view, message_tree, ui
from tests import reading_corpus as corpus
from tests.unit.web.test_file_listing_costs import message

CAP = 1 << 20
BUDGET_SPENT = "too many members in this message's containers; the rest are not listed"
KINDS = ("garbage", "cut", "lying end", "many", "readable", "all encrypted", "tnef garbage",
         "signed garbage")


def a_zip(rng: random.Random, members: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for at in range(members):
            archive.writestr(f"f{at}.txt", rng.randbytes(rng.randrange(1, 20)))
    return out.getvalue()


def container(rng: random.Random, kind: str, tag: str) -> tuple[str, str, bytes]:
    """(file name, declared type, content) of a container of `kind`."""
    if kind == "garbage":
        return f"{tag}.zip", "application/zip", rng.randbytes(rng.randrange(0, 300))
    if kind == "cut":  # the central directory or the end record cut short
        whole = a_zip(rng, rng.randrange(1, 8))
        return f"{tag}.zip", "application/zip", whole[:len(whole) - rng.randrange(1, 40)]
    if kind == "lying end":  # the end record says the directory is elsewhere
        whole = bytearray(a_zip(rng, 3))
        whole[-6:-2] = rng.randrange(len(whole), 1 << 31).to_bytes(4, "little")
        return f"{tag}.zip", "application/x-zip-compressed", bytes(whole)
    if kind == "many":
        return f"{tag}.zip", "application/zip", a_zip(
            rng, containers.MAX_MEMBERS + rng.randrange(1, 30))
    if kind == "all encrypted":
        return f"{tag}.zip", "application/zip", corpus.zip_archive(
            [(f"s{at}.txt", b"secret") for at in range(3)], password=b"pw")
    if kind == "tnef garbage":
        return f"{tag}.dat", "application/ms-tnef", rng.randbytes(rng.randrange(10, 200))
    if kind == "signed garbage":
        return f"{tag}.p7m", "application/pkcs7-mime; smime-type=signed-data", \
            rng.randbytes(rng.randrange(10, 200))
    return f"{tag}.zip", "application/zip", a_zip(rng, rng.randrange(1, 5))


def part(name: str, declared: str, data: bytes) -> bytes:
    return (f'Content-Type: {declared}; name="{name}"\nContent-Disposition: attachment; '
            f'filename="{name}"\nContent-Transfer-Encoding: base64\n\n').encode() \
        + base64.encodebytes(data)


def generated() -> list[tuple[str, bytes]]:
    rng, found = random.Random(20261207), []
    for case in range(24):
        kinds = [KINDS[case % len(KINDS)]] + rng.sample(KINDS, rng.randrange(0, 3))
        parts = [part(*container(rng, kind, f"c{case}-{at}")) for at, kind in enumerate(kinds)]
        if case % 3 == 2:  # inside a forwarded message
            parts = [b"Content-Type: message/rfc822\n\n" + message(f"in{case}", parts)]
        found.append((f"c{case}-{kinds[0]}", message(f"c{case}", parts)))
    # the message's containers over their budget of members (4 x MAX_MEMBERS in all)
    whole = [part(*container(rng, "many", f"budget-{at}")) for at in range(5)]
    found.append(("budget", message("budget", whole)))
    return found


MESSAGES = generated()


def indexed_problems(raw: bytes) -> dict[str, str | None]:
    """The indexer's failure of each container (their members are .txt), by its name."""
    return {entry.filename: entry.error for entry in extract(raw, CAP).attachments
            if entry.filename and entry.filename.endswith((".zip", ".dat", ".p7m"))}


def every_file(files: list[dict]):
    for file in files:
        yield file
        yield from every_file(file["files"])


def node_html(node: message_tree.Part) -> str:
    """The page's line of `node`, as message.html's `node` macro writes it."""
    source = Path(ui.__file__).with_name("templates").joinpath("message.html").read_text()
    macro = re.search(r"{% macro node\(part\) %}.*?{% endmacro %}", source, re.S).group(0)
    template = ui.TEMPLATES.from_string('{% set base = "/message/d" %}{% set q = "" %}'
                                        + macro + "{{ node(part) }}")
    return template.render(m=SimpleNamespace(numbered={}), part=node)


@pytest.mark.parametrize("label, raw", MESSAGES, ids=[case[0] for case in MESSAGES])
def test_a_containers_problem_is_said_in_every_view_in_the_indexers_words(label, raw):
    indexed = indexed_problems(raw)
    assert indexed
    listed = mail_view.view(raw).as_json()["attachments"]
    shown = {file["filename"]: file for file in every_file(listed) if file["filename"] in indexed}
    assert set(shown) == set(indexed)
    lines = _file_lines(listed)
    tree = message_tree.tree(forwarded.parse(raw), None)
    nodes = {node.filename: node for node in tree.walk() if node.filename in indexed}
    for name, problem in indexed.items():
        if problem == BUDGET_SPENT and shown[name].get("not_opened"):
            # (the view, on the same budget, opens it not at all and says so: not_opened)
            assert nodes[name].not_opened == shown[name]["not_opened"] and not shown[name]["files"]
            continue
        assert shown[name].get("container_problem") == problem, name
        assert nodes[name].container_problem == problem, name
        [line] = [line for line in lines if f'"{name}"' in line]
        html = node_html(nodes[name])
        if problem is None:
            assert "container_problem" not in shown[name]
            assert "container-problem" not in html
            continue
        assert line.endswith(f"; {name_safe(problem)}")
        assert shown[name]["size"] is not None  # (the file itself stays downloadable)
        assert "container-problem" in html and str(ui.formatting.named(problem)) in html
        if problem.startswith(("ValueError", "ToolFailed")):  # not opened: no files
            assert shown[name]["files"] == [] and not nodes[name].children


def test_the_generated_kinds_reach_each_problem():
    """The corpus holds each kind of problem the indexer records (else the test above
    would compare nothing)."""
    problems = [problem for _, raw in MESSAGES for problem in indexed_problems(raw).values()]
    for words in ("not a readable zip archive", "the first 500 are listed", "ToolFailed",
                  "too many members in this message's containers"):
        assert any(problem and words in problem for problem in problems), words
    assert None in problems
