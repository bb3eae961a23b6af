"""Reading a message's summary and building its Xapian document give what they gave before
the address and part readings were made cheaper (BEFORE, unpacked from git's history with
`git archive`): the same MessageSummary, pickled byte for byte (so the same fields, order and
values, the shape a kept reading holds), the same header-only summary, and the same
document (every term with its wdf and positions, the data, every value) from
build_document, for extract() and for extract.fallback().

The inputs: a generated corpus of address shapes (RFC 2047 display names, quoted names,
comments, groups, Unicode and raw 8-bit names, repeated fields, Resent- fields, malformed
entries, empty fields, long lists, uppercase, IDN and one-label domains) and of part shapes
(attachments named by filename=, name= and RFC 2231, inline parts, nested message/rfc822),
and the bench corpus (tests.bench.corpus). Both trees run in subprocesses of their own with
the same script, so no module of one is loaded beside the other's.

`python -m tests.unit.archive.test_summary_document_as_before DIR...` compares every file
under the given folders the same way (a Maildir, a folder of .eml files)."""
from __future__ import annotations

import base64
import random
import sys
import tempfile
from pathlib import Path


from tests.unit.archive.history import ROOT, columns_differing, results_with, services_at

BEFORE = "1d32d0e"  # h2's base: summarize_message and add_address before this work

# Run in each tree (PYTHONPATH=tree): reads the paths listed in argv[1], pickles what each
# message gives into argv[2].
READ = r'''
import hashlib, pickle, sys
import services
from services.archive import mime
from services.archive.extract import extract, fallback
from services.archive.index import build_document
assert services.__file__.startswith(sys.argv[3]), services.__file__

def document(digest, meta, extracted):
    doc = build_document(digest, meta, extracted)
    return ([(t.term, t.wdf, list(t.positer)) for t in doc.termlist()], doc.get_data(),
            [(v.num, v.value) for v in doc.values()])

results = []
for n, path in enumerate(open(sys.argv[1], encoding="utf-8").read().splitlines()):
    raw = open(path, "rb").read()
    digest = hashlib.sha256(raw).hexdigest()
    meta = {"number": n + 1, "size": len(raw), "received": 1.7e9, "sent_date": 1.7e9,
            "recipients": [["audit@example.org"], ["Audit@Example.ORG", " bob@example.com"],
                           []][n % 3], "source": "import", "origin": "node1"}
    if n % 4 == 1:  # as the store records them at intake: what a bare summary falls back on
        meta |= {"from": "Stored Sender <stored@example.net>", "subject": "Stored subject"}
    extracted = extract(raw, 256 * 1024)
    cut = fallback(raw, "a reason")
    results.append((path, pickle.dumps(extracted.summary), pickle.dumps(cut.summary),
                    pickle.dumps(mime.summarize_headers(raw)),
                    pickle.dumps(mime.summarize_origin(mime.parse_headers(raw))),
                    document(digest, meta, extracted), document(digest, meta, cut)))
with open(sys.argv[2], "wb") as out:
    pickle.dump(results, out)
'''


def differences(paths: list[Path], work: Path) -> list[str]:
    """The paths whose readings differ between BEFORE and this tree, with what differs."""
    return columns_differing(BEFORE, READ, paths, work,
                             ("summary", "fallback summary", "header summary", "origin",
                              "document", "fallback document"))


# --- the generated corpus -------------------------------------------------------------

def encoded(text: str, charset: str = "utf-8", encoding: str = "B") -> str:
    data = text.encode(charset)
    if encoding == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    quoted = "".join(chr(b) if chr(b).isalnum() else f"={b:02X}" for b in data)
    return f"=?{charset}?Q?{quoted}?="


ADDRESSES = [
    "alice@example.com", "Bob.Smith@Example.COM", "carol@localhost", "dave@xn--bcher-kva.example",
    "erin@bücher.example", "frank@mail.sub.example.org", "\"john doe\"@example.net",
    "grace+tag@example.co.uk", "HEIDI@EXAMPLE.ORG", "ivan@[192.0.2.1]", "jü@例え.jp",
]
NAMES = [
    "", "Alice Example", '"Smith, Bob"', encoded("Jürgen Müller"),
    encoded("Zoë", "iso-8859-1", "Q"),
    encoded("会議 担当", "iso-2022-jp"), '"Quoted \\"Nick\\" Name"', "Ünïcödé Nàme",
    encoded("split ß") + " " + encoded("word"), "O'Brien", "=?bogus?Q?broken=ZZ?=",
    "bob@example.com", "Name\twith\ttabs", "Dr. Who",
]


def address_entries(rng: random.Random) -> list[str]:
    entries = []
    for _ in range(rng.randrange(1, 6)):
        name, address = rng.choice(NAMES), rng.choice(ADDRESSES)
        shape = rng.randrange(6)
        if shape == 0 or not name:
            entries.append(address)
        elif shape == 1:
            entries.append(f"{address} ({name.strip(chr(34))})")  # a comment for the name
        elif shape == 2:
            entries.append(f"{name} <{address}> (a comment)")
        else:
            entries.append(f"{name} <{address}>")
    return entries


MALFORMED = ["<unclosed@example.com", "two@example.com three@example.com", "junk <a@b.c> after",
             "(only a comment)", "\"unclosed quote <q@example.com>", "@example.com", "plain text",
             "a@b@c", "team: x@example.com, y@example.com;", "outer: inner: z@example.com;;",
             "undisclosed-recipients:;", "<>", ",,,", "@relay1,@relay2:routed@example.com"]


def address_value(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return ""
    if kind == 1:
        return " \t "
    if kind == 2:  # a long list, folded
        return ",\r\n ".join(f"Person {n} <p{n}@EXAMPLE{n % 7}.org>"
                             for n in range(rng.randrange(50, 400)))
    entries = address_entries(rng)
    if kind in (3, 4):
        entries.insert(rng.randrange(len(entries) + 1), rng.choice(MALFORMED))
    if kind == 5:
        entries = [f"group {rng.randrange(9)}: " + ", ".join(entries) + ";"]
    return (";" if rng.random() < 0.1 else ",").join(entries)


def header_lines(rng: random.Random) -> list[bytes]:
    lines = []
    for name in ("From", "To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc",
                 "Resent-From"):
        repeats = [0, 1, 1, 2] if name == "From" else [0, 1, 1, 1, 2, 3]
        for _ in range(rng.choice(repeats)):
            spelled = rng.choice([name, name.upper(), name.lower()])
            value = address_value(rng).encode("utf-8")
            if rng.random() < 0.15:  # raw 8-bit names, not UTF-8 (RFC 6532 says UTF-8)
                value = ("Jos\xe9 Mart\xednez <jose@example.es>, " if rng.random() < 0.5 else
                         "\xc7a\xf0r\xfd <c@example.tr>, ").encode("latin-1") + value
            lines.append(spelled.encode() + b": " + value)
    lines.append(b"Subject: " + rng.choice([
        b"Plain subject", encoded("Gr\xfc\xdfe aus K\xf6ln").encode(), b"Caf\xe9 raw latin-1",
        "Grüße UTF-8".encode(), b"", b"=?utf-8?Q?broken?"]))
    lines.append(b"Message-ID: <m" + str(rng.randrange(10**6)).encode() + b"@example.com>")
    if rng.random() < 0.8:
        lines.append(b"Date: Wed, 02 Jan 2019 06:14:17 +0000")
    rng.shuffle(lines)
    return lines


def filename_parameters(rng: random.Random, stem: str) -> tuple[str, str]:
    """(Content-Type parameters, Content-Disposition value) naming a file one way or another."""
    ways = [("", f'attachment; filename="{stem}.pdf"'),
            (f'; name="{stem}.txt"', ""),
            (f'; name="{stem}.csv"', "inline"),
            ("", f"attachment; filename*=UTF-8''{stem}%C3%BC.tar.gz"),
            ("", f"attachment; filename*0*=iso-8859-1''{stem}%E9; filename*1=.docx"),
            ("", f'attachment; filename="{encoded(stem + " Überblick.xlsx")}"'),
            ("", "attachment"),
            ("", "inline; filename=\"inline-" + stem + ".png\""),
            ("; NAME=Upper.TXT", ""),
            ("", f"attachment; filename*=bogus-charset''{stem}%FF.bin")]
    return rng.choice(ways)


def part(rng: random.Random, depth: int) -> bytes:
    kind = rng.randrange(7 if depth < 2 else 5)
    if kind == 0:
        return 'Content-Type: text/plain; charset="utf-8"\n\nBody text Grüße\n'.encode()
    if kind == 1:
        return b"Content-Type: text/html; charset=iso-8859-1\n\n<p>Caf\xe9 html</p>\n"
    if kind in (2, 3, 4):
        parameters, disposition = filename_parameters(rng, f"file{rng.randrange(99)}")
        media = rng.choice(["application/octet-stream", "text/plain", "image/png", "text/csv"])
        head = f"Content-Type: {media}{parameters}\n"
        if disposition:
            head += f"Content-Disposition: {disposition}\n"
        return head.encode() + b"Content-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQ=\n"
    if kind == 5:  # a forwarded message
        inner = message(rng, depth + 1)
        return b"Content-Type: message/rfc822\nContent-Disposition: inline\n\n" + inner
    return multipart(rng, depth + 1)


def multipart(rng: random.Random, depth: int) -> bytes:
    boundary = f"b{depth}x{rng.randrange(10**6)}".encode()
    subtype = rng.choice([b"mixed", b"alternative", b"related"])
    body = b"".join(b"--" + boundary + b"\n" + part(rng, depth) + b"\n"
                    for _ in range(rng.randrange(1, 4)))
    return (b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\n\n'
            + body + b"--" + boundary + b"--\n")


def message(rng: random.Random, depth: int = 0) -> bytes:
    head = b"\n".join(header_lines(rng)) + b"\nMIME-Version: 1.0\n"
    if rng.random() < 0.4:
        return head + b"Content-Type: text/plain; charset=iso-8859-1\n\nPlain body caf\xe9\n"
    return head + multipart(rng, depth)


def generated(folder: Path, count: int, seed: int = 7) -> list[Path]:
    rng, paths = random.Random(seed), []
    for n in range(count):
        raw = message(rng)
        if n % 5 == 0:
            raw = raw.replace(b"\n", b"\r\n")
        path = folder / f"{n:04d}.eml"
        path.write_bytes(raw)
        paths.append(path)
    return paths


def files_under(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in Path(folder).rglob("*")
                  if path.is_file())


# --- tests ----------------------------------------------------------------------------

def test_generated_address_and_part_shapes_read_as_before(tmp_path):
    (tmp_path / "mail").mkdir()
    paths = generated(tmp_path / "mail", 150)
    assert differences(paths, tmp_path) == []


def test_bench_corpus_reads_as_before(tmp_path):
    from tests.bench import corpus
    corpus.generate(tmp_path / "mail", 150, attachments=True)
    corpus.generate(tmp_path / "plain", 150, seed=2, attachments=False)
    paths = files_under(tmp_path / "mail", tmp_path / "plain")
    assert len(paths) == 300
    assert differences(paths, tmp_path) == []


def test_the_reference_is_not_this_tree(tmp_path):
    """The comparison can fail: READ run with BEFORE's services reads a changed module of
    its own differently (here: every display name blanked)."""
    before = services_at(BEFORE, tmp_path / "before")
    mime_py = before / "services" / "archive" / "mime.py"
    mime_py.write_text(mime_py.read_text().replace(
        "return [(decode_header_text(mailbox.display_name), mailbox.address)",
        "return [(\"\", mailbox.address)"))
    (tmp_path / "mail").mkdir()
    paths = generated(tmp_path / "mail", 20)
    (tmp_path / "now").mkdir()
    changed = results_with(before, READ, paths, tmp_path / "now")
    assert [row[1:] for row in changed] != [row[1:] for row in results_with(ROOT, READ, paths, tmp_path)]


def main(folders: list[str]) -> int:
    paths = files_under(*map(Path, folders))
    with tempfile.TemporaryDirectory() as work:
        found = differences(paths, Path(work))
    print("\n".join(found) or f"{len(paths)} files: the same summaries and documents")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
