"""Raw (not RFC 2047 encoded) header bytes in legacy charsets: subjects, From display names
and attachment filenames are read in the charset the message declares for its text (its
Content-Type, or its first text part's), alike by the store's metadata at put
(services.archive.metadata) and by the indexer's reading (services.archive.extract), and
found by subject:/from:/filename: words."""
from __future__ import annotations

import pytest

from services.archive import extract, metadata, mime

# (label sent, Python codec, subject, display name, filename stem)
CASES = [
    ("Shift_JIS", "cp932", "見積書の送付について", "山田太郎", "申込書"),
    ("EUC-JP", "euc_jp", "見積書の送付について", "山田太郎", "申込書"),
    ("ISO-2022-JP", "iso2022_jp", "見積書の送付について", "山田太郎", "申込書"),
    ("GB2312", "gb2312", "会议纪要和报告", "王小明", "报价单"),
    ("GBK", "gbk", "会议纪要和报告", "王小明", "报价单"),
    ("Big5", "big5", "會議記錄與報告", "陳大文", "報價單"),
    ("EUC-KR", "euc_kr", "회의록 안내 드립니다", "김철수", "견적서"),
    ("KOI8-R", "koi8_r", "Отчёт за март месяц", "Иван Петров", "отчёт"),
    ("windows-1251", "cp1251", "Отчёт за март месяц", "Иван Петров", "отчёт"),
    ("ISO-8859-2", "iso8859_2", "Zażółć gęślą jaźń raport", "Łukasz Żółw", "sprawozdanie_łódź"),
    ("windows-1250", "cp1250", "Přehled účtů za září", "Jiří Šťastný", "účtenka_září"),
    ("ISO-8859-7", "iso8859_7", "Αναφορά του μηνός", "Γιώργος Παπαδόπουλος", "αναφορά"),
    ("windows-1256", "cp1256", "تقرير الشهر الماضي", "محمد علي", "تقرير"),
]


def message(codec: str, label: str | None, subject: str, name: str, filename: str,
            body_codec: str | None = None, multipart: bool = True) -> bytes:
    """A message whose Subject, From display name and attachment filename are raw bytes in
    `codec`, its text labelled `label` (None: no charset) and written in body_codec."""
    def raw(text: str) -> bytes:
        return text.encode(codec)
    body = f"{subject}\n{name}\n".encode(body_codec or codec) * 8
    charset = f"; charset={label}" if label else ""
    head = (b"From: " + raw(name) + b" <sender@example.jp>\r\nTo: b@example.org\r\n"
            b"Subject: " + raw(subject) + b"\r\nDate: Tue, 05 Mar 2024 10:00:00 +0000\r\n"
            b"Message-ID: <x@example.jp>\r\nMIME-Version: 1.0\r\n")
    if not multipart:
        return head + f"Content-Type: text/plain{charset}\r\n\r\n".encode() + body
    return (head + b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
            + f"Content-Type: text/plain{charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            .encode() + body + b"\r\n--b1\r\nContent-Type: application/pdf\r\n"
            b'Content-Disposition: attachment; filename="' + raw(filename) + b'.pdf"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n")


def read(raw: bytes):
    summary = extract.extract(raw, 65536).summary
    stored = metadata.header_metadata(raw, None, 0.0)
    return summary, stored


@pytest.mark.parametrize("label,codec,subject,name,filename", CASES,
                         ids=[case[0] for case in CASES])
@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "single"])
def test_labelled(label, codec, subject, name, filename, multipart):
    summary, stored = read(message(codec, label, subject, name, filename,
                                   multipart=multipart))
    assert summary.subject == stored["subject"] == subject
    assert summary.from_addrs == [f"{name} <sender@example.jp>"]
    assert stored["from"] == f"{name} <sender@example.jp>"
    if multipart:
        assert summary.attachment_names == [f"{filename}.pdf"]


@pytest.mark.parametrize("label,codec,subject,name,filename", CASES,
                         ids=[case[0] for case in CASES])
def test_header_only_parse_agrees(label, codec, subject, name, filename):
    """The store at put parses the header block alone; the text part's label is found all
    the same, so the listing and the index read the same subject."""
    raw = message(codec, label, subject, name, filename)
    assert mime.summarize_headers(raw).subject == subject
    assert mime.declared_charsets(raw) != ()


@pytest.mark.parametrize("label,codec,subject,name,filename", CASES,
                         ids=[case[0] for case in CASES])
def test_label_lies_utf8(label, codec, subject, name, filename):
    """Headers in UTF-8 under a legacy label: UTF-8 wins (RFC 6532)."""
    summary, stored = read(message("utf-8", label, subject, name, filename, body_codec=codec
                                   if codec != "iso2022_jp" else "utf-8"))
    assert summary.subject == stored["subject"] == subject
    assert summary.attachment_names == [f"{filename}.pdf"]


# (label, charset the text really is in, subject): labels the header bytes do not read as
# text in; the message's body (in the real charset) gives it away.
LIES = [("Shift_JIS", "cp1251", "Отчёт за март месяц"), ("EUC-KR", "cp1251", "Отчёт за март месяц"),
        ("KOI8-R", "cp1251", "Отчёт за март месяц"), ("ISO-8859-1", "cp1251", "Отчёт за март месяц")]


@pytest.mark.parametrize("label,codec,subject", LIES, ids=[f"{l}-{c}" for l, c, _ in LIES])
def test_label_lies(label, codec, subject):
    summary, stored = read(message(codec, label, subject, "Иван", "отчёт", body_codec=codec))
    assert summary.subject == stored["subject"] == subject
    assert summary.attachment_names == ["отчёт.pdf"]


# Charset detection on the body finds these where nothing is labelled (not EUC-KR nor
# ISO-8859-2 on this short text: detection's limit, left to the old guess).
UNLABELLED = [case for case in CASES if case[0] not in ("EUC-KR", "ISO-8859-2")]


@pytest.mark.parametrize("label,codec,subject,name,filename", UNLABELLED,
                         ids=[case[0] for case in UNLABELLED])
@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "single"])
def test_unlabelled(label, codec, subject, name, filename, multipart):
    summary, stored = read(message(codec, None, subject, name, filename, multipart=multipart))
    assert summary.subject == stored["subject"] == subject
    assert summary.from_addrs == [f"{name} <sender@example.jp>"] == [stored["from"]]
    if multipart:
        assert summary.attachment_names == [f"{filename}.pdf"]


def test_ascii_headers_never_look_for_charsets(monkeypatch):
    """The put path's cost for ordinary mail is unchanged: no scan, no detection."""
    monkeypatch.setattr(mime, "declared_charsets", lambda raw: pytest.fail("scanned"))
    monkeypatch.setattr(mime, "body_sample", lambda raw: pytest.fail("sampled"))
    raw = message("ascii", "Shift_JIS", "plain subject", "Plain Name", "plain")
    _, stored = read(raw)
    assert stored["subject"] == "plain subject"


def test_the_body_is_scanned_for_a_charset_only_when_no_declared_one_fits():
    """Detection in the body costs milliseconds a message (at SMTP intake too): a raw
    header the declared charset reads needs none."""
    from services.archive.mime import _Declared, decode_raw
    guesses = []

    def guess():
        guesses.append(1)
        return ("cp1251",)
    subject = "Отчёт".encode("koi8-r").decode("utf-8", "surrogateescape")
    assert decode_raw(subject, _Declared(lambda: ("koi8_r",), guess)) == "Отчёт"
    assert guesses == []
    lying = "Отчёт".encode("cp1251").decode("utf-8", "surrogateescape")
    assert decode_raw(lying, _Declared(lambda: ("shift_jis",), guess)) == "Отчёт"
    assert guesses == [1]
