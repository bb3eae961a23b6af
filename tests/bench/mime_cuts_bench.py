"""Time and memory of extract.extract on the shapes services.archive.mime_parts cuts: a
message that is itself a delivery status of 600,000 blocks (short ones, and three-line
per-recipient ones), tests.many_parts' chain of nested multiparts (some 22 MB), the same
with 250,000 header lines in its top block (header_blocks cuts it: mime_parts walks twice),
a chain of message/rfc822 parts in multiparts (some 21 MB), and the shapes where the
parser's work once outgrew what mime_parts let through: a too deep subtree of 400,000
multiparts under 48 levels (25 MB), 5 million delimiter lines in a row, a million
delimiter lines in an epilogue under 46 levels, a text part of 1.3 million lines under
46 levels (and of 6.5 million), 10,100 parts under a header block of 250,000 lines; the
"-unclosed" ones without the outermost close delimiter, which the fast parser refuses
(the feedparser, line by line, parses them); and 20 parts whose Content-Type fields are
16 KB of escaped parentheses in a comment, the shape a backtracking reading of the type
took seconds a field on (review 175 F1), and 3,000 parts (49 MB) whose Content-Type fields
are 8,150 sibling comments "()" before the type, the shape a reader of every comment took
49 s on (review 181 F1). One fresh process a
shape, so each peak is its own; JSON lines on stdout (seconds of wall and CPU time,
megabytes of peak resident set before and after extraction).

    python -m tests.bench.mime_cuts_bench [SHAPE...]

Run it from an older checkout (PYTHONPATH) to compare. Timing is only ever measured here
or by hand, never asserted in tests (the test machine is shared).
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

STATUS_HEAD = (b"From: a@example.org\r\nTo: b@example.com\r\nSubject: report\r\n"
               b"Content-Type: message/delivery-status\r\n\r\n"
               b"Reporting-MTA: dns; firstword.example\r\n\r\n")


def status(block: bytes, count: int = 600_000) -> bytes:
    return STATUS_HEAD + block * count + b"Final-Recipient: rfc822; lastword@example.org\r\n"


def multipart_chain() -> bytes:
    from tests.many_parts import chain
    return chain(19_000_000)


def padded_chain() -> bytes:
    return multipart_chain().replace(b"Subject: many parts\r\n", b"Subject: many parts\r\n"
                                     + b"X:y\r\n" * 250_000, 1)


def rfc822_chain(size: int = 19_000_000) -> bytes:
    pieces = [b"From: a@example.org\r\nSubject: chain\r\n"
              b"Content-Type: multipart/mixed; boundary=m0\r\n\r\n--m0\r\n\r\nfirstword\r\n"]
    level, written = 0, 0
    while written < size:
        piece = (b"--m%d\r\nContent-Type: message/rfc822\r\n\r\nSubject: level %d\r\n"
                 b"Content-Type: multipart/mixed; boundary=m%d\r\n\r\n" % (level, level, level + 1))
        pieces.append(piece)
        written += len(piece)
        level += 1
    pieces.append(b"--m%d\r\n\r\nlastword\r\n" % level)
    pieces += [b"--m%d--\r\n" % n for n in reversed(range(level + 1))]
    return b"".join(pieces)


def _nest(levels: int, inner: bytes) -> bytes:
    """`inner` (a part: header block and body) as the only part of `levels` nested
    multiparts (the message the outermost; boundaries o0, o1...)."""
    head = (b"From: a@example.org\r\nSubject: nested\r\n"
            b"Content-Type: multipart/mixed; boundary=o0\r\n\r\n--o0\r\n"
            b"Content-Type: text/plain\r\n\r\nfirstword\r\n")
    opening = b"".join(b"--o%d\r\nContent-Type: multipart/mixed; boundary=o%d\r\n\r\n"
                       b"--o%d\r\nContent-Type: text/plain\r\n\r\nlevel\r\n"
                       % (n, n + 1, n + 1) for n in range(levels - 1))
    closing = b"".join(b"--o%d--\r\n" % n for n in reversed(range(levels)))
    return head + opening + b"--o%d\r\n" % (levels - 1) + inner + closing


def deep_subtree(count: int = 400_000) -> bytes:
    """48 nested multiparts; the part at depth 49 a multipart of `count` small multiparts."""
    unit = (b"--c\r\nContent-Type: multipart/mixed; boundary=d\r\n\r\n--d\r\n\r\nx\r\n"
            b"--d--\r\n")
    return _nest(48, b"Content-Type: multipart/mixed; boundary=c\r\n\r\n" + unit * count
                 + b"--c\r\n\r\nlastword\r\n--c--\r\n")


def delimiter_run(count: int = 5_000_000) -> bytes:
    """A multipart of boundary b: a part, `count` delimiter lines "--b" in a row, a part."""
    from tests.many_parts import empty_boundaries
    return empty_boundaries(count * 5)


def epilogue_delimiters(count: int = 1_000_000) -> bytes:
    """A multipart nested under 46 others whose epilogue is `count` "--b" lines."""
    return _nest(46, b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
                 b"lastword\r\n--b--\r\n" + b"--b\r\n" * count)


def deep_text(count: int = 1_300_000) -> bytes:
    """A text part of `count` short lines under 46 nested multiparts."""
    return _nest(46, b"Content-Type: text/plain\r\n\r\n" + b"w\r\n" * count
                 + b"lastword\r\n")


def unclosed(raw: bytes) -> bytes:
    """`raw` without its outermost close delimiter: the fast parser refuses it (the
    feedparser records a defect), and the feedparser parses it, line by line."""
    return raw[:raw.rindex(b"--o0--")]


def padded_many_parts(count: int = 10_100) -> bytes:
    """A multipart of `count` parts under a top header block of 250,000 lines."""
    from tests.many_parts import flat
    return flat(count * 10).replace(b"Subject: many parts\r\n", b"Subject: many parts\r\n"
                                     + b"X:y\r\n" * 250_000, 1)


def _typed_parts(field: bytes, parts: int) -> bytes:
    """A multipart of `parts` text parts, each with the Content-Type field `field`."""
    body = b"".join(b"--o\r\n" + field + b"\r\n\r\nword%d\r\n" % n for n in range(parts))
    return (b"From: a@example.org\r\nSubject: comments\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=o\r\n\r\n" + body + b"--o--\r\n")


def content_type_comments(parts: int = 20) -> bytes:
    """Each part typed "text/plain (" and 8,190 escaped parentheses (16 KB, the parser's
    limit of a field)."""
    return _typed_parts(b"Content-Type: text/plain (" + b"\\(" * 8_190, parts)


def content_type_sibling_comments(parts: int = 3_000) -> bytes:
    """Each part typed 8,150 comments "()" (16 KB) then "multipart/mixed; boundary=q"."""
    return _typed_parts(b"Content-Type: " + b"()" * 8_150 + b" multipart/mixed; boundary=q",
                        parts)


SHAPES = {
    "status-short-blocks": lambda: status(b"A:b\r\n\r\n"),
    "status-recipient-blocks": lambda: status(
        b"Final-Recipient: rfc822; u@example.org\r\nAction: failed\r\nStatus: 5.0.0\r\n\r\n"),
    "multipart-chain": multipart_chain,
    "multipart-chain-padded-header": padded_chain,
    "rfc822-chain": rfc822_chain,
    "deep-subtree": deep_subtree,
    "delimiter-run": delimiter_run,
    "epilogue-delimiters": epilogue_delimiters,
    "deep-text": deep_text,
    "padded-many-parts": padded_many_parts,
    "deep-subtree-unclosed": lambda: unclosed(deep_subtree()),
    "epilogue-delimiters-unclosed": lambda: unclosed(epilogue_delimiters()),
    "deep-text-unclosed": lambda: unclosed(deep_text()),
    "deep-text-25mb-unclosed": lambda: unclosed(deep_text(6_500_000)),
    "content-type-comments": content_type_comments,
    "content-type-sibling-comments": content_type_sibling_comments,
}


def _peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10


def measure(shape: str) -> dict:
    """Extracts one shape in this process; what it cost."""
    from services.archive import extract
    raw = SHAPES[shape]()
    before, cpu = _peak_mb(), time.process_time()
    started = time.perf_counter()
    result = extract.extract(raw, 100_000)
    return {"shape": shape, "mb": len(raw) >> 20, "wall_s": round(time.perf_counter() - started, 2),
            "cpu_s": round(time.process_time() - cpu, 2), "peak_mb_before": before,
            "peak_mb": _peak_mb(), "failed": result.failed, "cut": result.cut}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        print(json.dumps(measure(argv[1])), flush=True)
        return
    for shape in argv or SHAPES:
        subprocess.run([sys.executable, "-m", "tests.bench.mime_cuts_bench", "--one", shape],
                       check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
