"""A container's tool process (openssl for S/MIME signed-data, tnef for winmail.dat) runs
once per content (containers.TOOL_MEMO), for the indexer's extraction and the web's
listing alike (review r9 F4: 1,100 copies of one signed-data object ran openssl 1,000 times
a message, 12 s to index it and 25-50 s a view). Tool runs are counted around the real
tool, never timed."""
from __future__ import annotations

import random

import pytest

from services.archive import containers, tools
from services.archive.extract import extract
from tests import reading_corpus as corpus
from tests.unit.archive.test_extract import CAP, mail


@pytest.fixture
def runs(monkeypatch):
    """The tool processes started, by tool name; the memo empty at the start."""
    monkeypatch.setattr(containers, "TOOL_MEMO", containers.ToolMemo(containers.TOOL_MEMO_BYTES))
    started: list[str] = []
    real = tools.run_in  # (tools.run starts its process through it)

    def counted(directory, argv, *args, **kwargs):
        started.append(argv[0])
        return real(directory, argv, *args, **kwargs)
    monkeypatch.setattr(tools, "run_in", counted)
    return started


def signed(entity_words: str) -> bytes:
    return corpus.smime_signed_data(
        f"Content-Type: text/plain\r\n\r\n{entity_words}\r\n".encode())


def winmail(tag: str, files: int) -> bytes:
    return corpus.tnef([(f"{tag}-{at}.txt", f"words of {tag} {at}".encode())
                        for at in range(files)], body=f"body of {tag}")


CASES = [(copies, distinct) for copies in (2, 7, 40) for distinct in (1, 3)]


@pytest.mark.parametrize("copies,distinct", CASES)
def test_copies_of_one_signed_object_run_openssl_once_each_and_all_are_read(
        runs, copies, distinct):
    objects = [signed(f"signedword{k}") for k in range(distinct)]
    rng = random.Random(copies * 10 + distinct)
    order = [rng.randrange(distinct) for _ in range(copies * distinct)]
    attachments = [(objects[k], "application/pkcs7-mime", f"smime{at}.p7m")
                   for at, k in enumerate(order)]
    result = extract(mail(attachments=attachments).as_bytes(), CAP)
    # Each object's DER form is tried first and read: one openssl run per distinct object.
    assert runs.count("openssl") == len(set(order))
    read = "\n".join([result.body] + [a.text for a in result.attachments])
    for k in set(order):  # every copy's entity read, as when each copy ran its own openssl
        assert read.count(f"signedword{k}\r\n") == order.count(k)


@pytest.mark.parametrize("copies,distinct", CASES)
def test_copies_of_one_winmail_dat_run_tnef_once_each_and_every_copy_lists_its_files(
        runs, copies, distinct):
    objects = [winmail(f"w{k}", k + 1) for k in range(distinct)]
    order = [at % distinct for at in range(copies * distinct)]
    attachments = [(objects[k], "application/ms-tnef", "winmail.dat") for k in order]
    result = extract(mail(attachments=attachments).as_bytes(), CAP)
    assert runs.count("tnef") == distinct
    names = [a.filename for a in result.attachments]
    for k in range(distinct):  # every copy's files, as when each copy ran its own tnef
        for at in range(k + 1):
            assert names.count(f"w{k}-{at}.txt") == order.count(k)


def test_a_container_the_tool_cannot_read_fails_every_time_but_runs_once(runs):
    garbage = b"0\x82\x01\x00" + bytes(range(256)) * 3
    for _ in range(5):
        with pytest.raises(tools.ToolFailed):
            containers.signed_content(garbage)
    assert runs.count("openssl") == 2  # DER, then PEM, once


def test_the_members_budget_is_spent_by_every_copy_as_before(runs):
    """The memo saves the process, not the budget: copies past the message's members stop
    being listed where they always did."""
    data = winmail("m", 3)
    budget = containers.ReadBudget(0, members=7)
    listed = [containers.tnef_read(data, budget) for _ in range(4)]
    assert [len(files) for _, files, _ in listed] == [3, 3, 0, 0]
    assert listed[2][2] == listed[3][2] and "too many members" in listed[2][2]
    assert runs.count("tnef") == 1


def test_the_memo_keeps_at_most_its_bytes_least_recently_used_first():
    memo = containers.ToolMemo(max_bytes=1000)
    made = []

    def maker(size):
        def make():
            made.append(size)
            return b"x" * size
        return make
    for key in range(10):  # 10 x 90 bytes: all kept
        memo.result(key, maker(90), len)
    memo.result(0, maker(90), len)  # 0 used last: 1 is now the oldest
    memo.result("x", maker(95), len)
    memo.result("y", maker(95), len)  # over 1000 in all: the oldest go first
    assert memo.held_bytes <= 1000
    made.clear()
    memo.result(0, maker(90), len)
    memo.result(1, maker(90), len)
    assert made == [90]  # 0 was kept, 1 had to go
    memo.result("huge", maker(101), len)  # over a tenth of the memo: never kept
    memo.result("huge", maker(101), len)
    assert made.count(101) == 2


@pytest.mark.parametrize("files", [containers.MAX_MEMBERS + 1, containers.MAX_MEMBERS + 37])
def test_a_winmail_dat_of_too_many_files_says_how_many_it_holds(runs, files):
    data = corpus.tnef([(f"f{at}.txt", b"f") for at in range(files)])
    for _ in range(2):  # read by tnef, then from the memo: the same answer
        _, listed, problem = containers.tnef_read(data, containers.ReadBudget(0))
        assert len(listed) == containers.MAX_MEMBERS
        assert problem == f"{files} files; the first {containers.MAX_MEMBERS} are listed"
    assert runs.count("tnef") == 1
