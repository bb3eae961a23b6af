"""mboxrd quoting and unquoting hold no more than a small multiple of the message (review
127): both ran re.sub over the whole message, which builds a list of pieces per match, so
exporting one 52 MB message of 8.7 million "From " lines as mbox took 2.08 GB (40 times
the message), in the web process too. They now go a match at a time (finditer) and write
the bytes between matches in bounded pieces; the bytes written are those re.sub wrote."""
import io
import random
import re
import tracemalloc

import pytest

from services.archive import mbox

# What the writer and reader did before: the definition of the output.
OLD_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
OLD_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
LINES = 500_000  # "From " lines: a 3 MB message, some 120 MB traced the old way
BOUND = 3  # times the message's size


def old_quoted(raw: bytes) -> bytes:
    return OLD_QUOTE.sub(rb">\1", raw) if b"From " in raw else raw


def old_unquoted(raw: bytes) -> bytes:
    return OLD_UNQUOTE.sub(rb"\1", raw) if b">From " in raw else raw


def old_written(raws: list[bytes]) -> bytes:
    return b"".join(mbox.from_line_for(raw) + mbox.with_final_line_ending(old_quoted(raw))
                    + b"\n" for raw in raws)


class Sink:
    """An output that keeps the length of what it was given, not the bytes."""

    def __init__(self):
        self.size = 0

    def write(self, data: bytes) -> int:
        assert isinstance(data, bytes)
        self.size += len(data)
        return len(data)


def peak_of(call) -> int:
    """The peak of Python's allocations during call(), beyond what was allocated before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


# --- memory -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def many_from_lines() -> bytes:
    return (b"Message-ID: <q@x>\nFrom: q@y\nSubject: many\n\n" + b"From \n" * LINES)


def test_quoting_a_message_of_many_from_lines_takes_a_small_multiple_of_it(many_from_lines):
    raw = many_from_lines
    results = []
    peak = peak_of(lambda: results.append(mbox.quote_from_lines(raw)))
    assert peak < BOUND * len(raw), f"quoting took {peak / len(raw):.1f} times the message"
    assert results[0] == old_quoted(raw)


def test_writing_a_message_of_many_from_lines_holds_no_copy_of_it(many_from_lines):
    raw, sink = many_from_lines, Sink()
    peak = peak_of(lambda: mbox.write_entries([("q", raw)], sink))
    assert peak < len(raw), f"writing took {peak / len(raw):.1f} times the message"
    assert sink.size == len(old_written([raw]))


def test_unquoting_a_message_of_many_quoted_lines_takes_a_small_multiple_of_it():
    raw = b"Subject: many\n\n" + b">From \n" * LINES
    results = []
    peak = peak_of(lambda: results.append(mbox.unquote_from_lines(raw)))
    assert peak < BOUND * len(raw), f"unquoting took {peak / len(raw):.1f} times the message"
    assert results[0] == old_unquoted(raw)


def test_reading_an_mbox_of_many_quoted_lines_takes_a_small_multiple_of_it():
    """The reader keeps the mbox's buffer, the message and its unquoted copy (it held the
    re.sub's list of pieces, some 40 times the message, on top of these before)."""
    data = b"From a Sat Jan  1 00:00:00 2000\nSubject: many\n\n" + b">From \n" * LINES
    entries = []
    peak = peak_of(lambda: entries.extend(mbox.read_entries(io.BytesIO(data), len(data))))
    assert peak < 6 * len(data), f"reading took {peak / len(data):.1f} times the mbox"
    assert entries[0].raw == b"Subject: many\n\n" + b"From \n" * LINES


# --- the bytes are those re.sub gave --------------------------------------------------------

SHAPES = [b"From ", b">From ", b">>From ", b">>>From ", b"From", b">From", b"From x", b">",
          b" From ", b"from ", b"FROM ", b"xFrom ", b">x>From ", b"From \r", b"", b"body",
          b"From MAILER-DAEMON Sat Jan  1 00:00:00 2000", b"\xffFrom ", b"From \xff"]
ENDINGS = [b"\n", b"\r\n", b"\r", b""]


def corpus(seed: int = 127, count: int = 3000) -> list[bytes]:
    """Messages of From_-line shapes: quoted to any depth or not, at the start, in the
    middle or at the end without a line ending, LF, CRLF or a lone CR, a line made of
    several shapes; and some over the pieces' size, so pieces join mid-line."""
    rng = random.Random(seed)
    found = [b"", b"From ", b">From ", b"From \n", b">From \r\n", b"\n", b"\r\n", b"x"]
    for _ in range(count):
        lines = [b"".join(rng.choice(SHAPES) for _ in range(rng.randint(1, 3)))
                 + rng.choice(ENDINGS) for _ in range(rng.randint(1, 12))]
        found.append(b"".join(lines))
    long_line = b"y" * (mbox._PIECE + 7)
    found += [b"From \n" * (mbox._PIECE // 3) + b">From end",  # pieces of many matches
              b"From " + long_line + b"\r\n>From " + long_line + b"\nFrom ",
              long_line + b"\nFrom \n" + long_line]
    return found


def test_quoting_writes_what_re_sub_wrote():
    for raw in corpus():
        assert mbox.quote_from_lines(raw) == old_quoted(raw), raw
        output = io.BytesIO()
        mbox.write_quoted(raw, output)
        assert output.getvalue() == old_quoted(raw), raw


def test_unquoting_gives_what_re_sub_gave():
    for raw in corpus():
        assert mbox.unquote_from_lines(raw) == old_unquoted(raw), raw
        assert mbox.unquote_from_lines(old_quoted(raw)) == raw, raw


def test_an_mbox_is_written_as_before_and_reads_back(monkeypatch):
    # An undated message's From_ line has the time of export: one time for both writes
    # (they straddled a second once, and the lines differed by it).
    real_gmtime = mbox.time.gmtime
    monkeypatch.setattr(mbox.time, "gmtime", lambda secs=None: real_gmtime(
        1_700_000_000 if secs is None else secs))
    raws = corpus(seed=4155, count=400)
    output = io.BytesIO()
    assert mbox.write_entries([(str(n), raw) for n, raw in enumerate(raws)], output) == len(raws)
    assert output.getvalue() == old_written(raws)
    back = [entry.raw for entry in mbox.read_entries(io.BytesIO(output.getvalue()), 2**30)]
    assert back == [mbox.with_final_line_ending(raw) if raw else b"\n" for raw in raws]
