"""A large TNEF (winmail.dat) or S/MIME signed-data attachment, now read through a
Base64File (tnef fed the prepared stream a chunk at a time, an attachment's data over the
read limit given to it as a token; openssl given signed-data with its eContent replaced by
a token, the content read out of the file), is read as BEFORE read it decoded whole: the
same entries (names, types, text, problems, cuts), the same body text and the same cut of
the message, over a generated corpus of whole and damaged objects (cut short, trailing
bytes, bytes changed in headers and lengths, lengths lied about, wrong tags).

An error of openssl's names the thread that met it (a number of each run, never the same):
that number is left out. Both trees run the same script in processes of their own
(history.columns_differing), with LARGE_FILE_BYTES and HELD_ASCII_BYTES at 1 KiB so that
objects of some KiB take the large route (in BEFORE they are decoded whole all the same),
and, in this tree, files tnef writes of 512 bytes or more read when asked
(READ_WHEN_ASKED_BYTES) and the text all attachments of a message share at BEFORE's 8 caps
for the files inside containers (MESSAGE_ATTACHMENT_TEXT_CAPS): what its budget cut is the
same."""
from __future__ import annotations

import random
import subprocess
from pathlib import Path

from tests import reading_corpus as corpus
from tests.integration.archive.test_large_attachment_memory import message_with as message
from tests.unit.archive.history import columns_differing

BEFORE = "d0cc3fb"  # h21's base: TNEF and signed-data decoded whole

READ = r'''
import pickle, re, sys
import services
from services.archive import containers, extract, mimetree
assert services.__file__.startswith(sys.argv[3]), services.__file__
extract.LARGE_FILE_BYTES = mimetree.HELD_ASCII_BYTES = 1024
containers.READ_WHEN_ASKED_BYTES = 512  # (this tree's alone)
extract.MESSAGE_ATTACHMENT_TEXT_CAPS = 8  # (this tree's: BEFORE's files in containers shared 8)

def entry(found):
    error = found.error and re.sub("[0-9A-F]{16}:error:", "(thread):error:", found.error)
    return (found.filename, found.mime_type, found.text, error, found.cut,
            found.encrypted, found.container, found.declared_type)

results = []
for path in open(sys.argv[1], encoding="utf-8").read().splitlines():
    containers.TOOL_MEMO = containers.ToolMemo(containers.TOOL_MEMO_BYTES)
    read = extract.extract(open(path, "rb").read(), 4096)
    results.append((path, [entry(found) for found in read.attachments], read.body,
                    read.cut))
with open(sys.argv[2], "wb") as out:
    pickle.dump(results, out)
'''


def damaged(data: bytes, rng: random.Random) -> bytes:
    """`data` with one kind of damage, chosen by `rng`."""
    at = rng.randrange(len(data))
    kind = rng.randrange(5)
    if kind == 0:
        return data[:at]
    if kind == 1:
        return data + rng.randbytes(rng.randint(1, 40))
    if kind == 2:  # bytes changed: mostly in the headers, which come first
        at = rng.randrange(min(len(data), 600))
        return data[:at] + rng.randbytes(rng.randint(1, 4)) + data[at + 4:]
    if kind == 3:  # a byte one more or less (a length, a tag, a count)
        return data[:at] + bytes([(data[at] + rng.choice((1, 255))) % 256]) + data[at + 1:]
    return data[:at] + data[at + rng.randint(1, 64):]  # bytes taken out


def winmail(rng: random.Random) -> bytes:
    """A TNEF of a body, and files of some bytes to 3 KiB (text: their words are read)."""
    files = [(f"f{at}.txt", (f"words of file {at} " * rng.randint(1, 200)).encode())
             for at in range(rng.randint(1, 5))]
    return corpus.tnef(files, body="the body of the winmail")


def signed(rng: random.Random, tmp_path: Path) -> bytes:
    """Opaque signed-data of an entity of a text part and a file: DER (cryptography's, every
    length definite) or BER streamed by openssl (constructed eContent, indefinite lengths)."""
    entity = (b"Content-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\n"
              b"Content-Type: text/plain\r\n\r\nthe signed words\r\n--in\r\n"
              b"Content-Type: text/plain; name=n.txt\r\nContent-Disposition: attachment\r\n"
              b"\r\n" + b"inner file words " * rng.randint(1, 600) + b"\r\n--in--\r\n")
    if rng.random() < 0.5:
        return corpus.smime_signed_data(entity)
    return streamed_signed_data(entity, tmp_path)


def streamed_signed_data(entity: bytes, tmp_path: Path) -> bytes:
    """Opaque signed-data as `openssl cms -sign -stream` writes it (BER, in 4 KiB chunks)."""
    key, certificate = tmp_path / "key.pem", tmp_path / "certificate.pem"
    if not key.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(key), "-out", str(certificate), "-subj",
                        "/emailAddress=signer@example.com", "-days", "3650"],
                       check=True, capture_output=True)
    return subprocess.run(["openssl", "cms", "-sign", "-stream", "-binary", "-nodetach",
                           "-signer", str(certificate), "-inkey", str(key), "-outform", "DER"],
                          input=entity, check=True, capture_output=True).stdout


def corpus_of(tmp_path: Path, count: int) -> list[Path]:
    """`count` messages of each kind, a quarter whole, the rest damaged."""
    paths = []
    for seed in range(count):
        rng = random.Random(seed)
        for kind, data, mime_type, name in (
                ("tnef", winmail(rng), "application/ms-tnef", "winmail.dat"),
                ("signed", signed(rng, tmp_path), "application/pkcs7-mime", "smime.p7m")):
            if seed % 4:
                data = damaged(data, rng)
            path = tmp_path / f"{kind}-{seed}.eml"
            path.write_bytes(message(data, mime_type, name))
            paths.append(path)
    return paths


def test_large_tnef_and_signed_data_are_read_as_before(tmp_path):
    (tmp_path / "corpus").mkdir()
    paths = corpus_of(tmp_path / "corpus", 160)
    assert columns_differing(BEFORE, READ, paths, tmp_path / "work",
                             ("attachments", "body text", "cut")) == []
