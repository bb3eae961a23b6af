"""Receiving DATA into a spool (RFC 5321 4.1.1.4, 4.5.2): byte-exact for every shape of
line, whatever pieces the bytes arrive in, with at most IN_MEMORY_BYTES in memory."""
import asyncio
import random

import pytest

from services.intake.smtp_data import (IN_MEMORY_BYTES, LINE_START, READ_LIMIT_BYTES, DataSpool,
                                       receive_data)

LIMIT = READ_LIMIT_BYTES


def stuffed(message: bytes) -> bytes:
    """The message as a client sends it after DATA: a dot doubled at each line start (after
    CR LF only), CR LF added if missing, then the lone dot."""
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line
                        for line in lines[:-1]) + b"\r\n.\r\n"


def received(wire: bytes, tmp_path, pieces: int = 1, limit=None, seed=0, after=b""):
    """What receive_data spools from `wire` fed in random pieces; also what it left unread."""
    async def run():
        reader = asyncio.StreamReader(limit=LIMIT)
        spool = DataSpool(tmp_path)
        heard = []
        receiving = asyncio.create_task(receive_data(reader, spool, limit,
                                                     lambda: heard.append(1)))
        cuts = sorted(random.Random(seed).sample(range(1, len(wire)), min(pieces - 1, len(wire) - 1)))
        for start, end in zip([0, *cuts], [*cuts, len(wire)]):
            reader.feed_data(wire[start:end])  # as the network delivers it: the reader
            await asyncio.sleep(0)             # sees each piece before the next arrives
        reader.feed_data(after)
        reader.feed_eof()
        result = await receiving
        assert heard  # every piece counts as hearing from the client
        try:
            return result, spool.take(), await reader.read()
        finally:
            spool.close()
    return asyncio.run(run())


def corpus() -> list[bytes]:
    """Messages of awkward shapes: dots, long lines around the read limit, bare CR and LF,
    8-bit bytes, a terminator-like sequence that is not at a line start."""
    rng = random.Random(14)
    shapes = [b".", b"..", b"...x", b".\r", b"x.\r\n", b"\n.\r\n", b"\r.\r\n", b"a\rb", b"a\nb",
              b"\xff\xfe 8-bit \xe4", b"", b" .", b"-- \r",
              b"\r", b"\r\r", b".\r\r", b"..\r", b"\r\n.\r", b"x\r\n.\rx", b"a.", b"ab"]
    long = [b"y" * n for n in (LIMIT - 2, LIMIT - 1, LIMIT, LIMIT + 1, 2 * LIMIT + 3, 5 * LIMIT)]
    long += [b"." * n for n in (LIMIT - 1, LIMIT + 1, 3 * LIMIT)]  # a piece of one starts a "line"
    messages = [b"Subject: plain\r\n\r\nbody\r\n", b"no line end at all",
                b".starts with a dot\r\n..two\r\n.\r\nx\r\n", b"a\r\n" * 3 + b".",
                b"\r\n".join(long) + b"\r\n", b"." + b"z" * (3 * LIMIT) + b"\r\n.\r\n."]
    for _ in range(25):
        parts = [rng.choice(shapes + long) for _ in range(rng.randint(1, 12))]
        messages.append(b"\r\n".join(parts) + rng.choice([b"", b"\r\n", b"\r", b"\n"]))
    return messages


@pytest.mark.parametrize("number", range(len(corpus())))
def test_every_shape_of_message_comes_back_byte_exact_in_any_pieces(tmp_path, number):
    message = corpus()[number]
    expected = message if message.endswith(b"\r\n") else message + b"\r\n"
    for pieces, seed in ((1, 0), (7, number), (200, number + 1)):
        result, spooled, rest = received(stuffed(message), tmp_path, pieces, seed=seed,
                                         after=b"QUIT\r\n")
        assert spooled == expected and result.size == len(expected)
        assert not result.too_big and rest == b"QUIT\r\n"  # the next command is left alone


def test_only_cr_lf_dot_cr_lf_ends_the_data(tmp_path):
    wire = b"one\n.\ntwo\r.\r\nthree.\r\n\r\n.\r\n"
    result, spooled, _ = received(wire, tmp_path, pieces=9)
    assert spooled == b"one\n.\ntwo\r.\r\nthree.\r\n\r\n"


def test_past_the_size_limit_the_rest_is_read_and_dropped(tmp_path):
    message = b"x" * 100 + b"\r\n" + b"y" * (3 * LIMIT) + b"\r\n"
    result, spooled, rest = received(stuffed(message), tmp_path, pieces=5, limit=1000,
                                     after=b"NOOP\r\n")
    assert result.too_big and result.size == len(message)
    assert len(spooled) <= 1000 and rest == b"NOOP\r\n"


def test_a_large_message_is_spooled_to_an_unnamed_file(tmp_path):
    big = (b"line of text\r\n" * (2 * IN_MEMORY_BYTES // 14))
    spool = DataSpool(tmp_path)
    spool.write(big)
    spool.flush()
    assert spool._file._rolled  # past IN_MEMORY_BYTES the bytes are on disk
    assert list(tmp_path.iterdir()) == []  # the file never has a name
    assert spool.take() == big
    with pytest.raises(ValueError):  # taken means closed
        spool.take()


def test_a_spool_that_cannot_be_written_says_why_and_takes_no_more(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_bytes(b"")
    spool = DataSpool(not_a_directory)
    spool.write(b"x" * (2 * IN_MEMORY_BYTES))
    spool.flush()
    assert isinstance(spool.error, OSError)
    spool.write(b"more")
    assert spool.size == 2 * IN_MEMORY_BYTES + 4
    spool.close()


@pytest.mark.parametrize("piece_size", [LIMIT, 2 * LIMIT + 5])
def test_a_piece_boundary_inside_cr_lf_or_before_a_dot_still_unstuffs(tmp_path, piece_size):
    """A line longer than the read limit is taken in pieces; wherever a cut falls (between
    CR and LF, between LF and a line's dot), the dot at the next line start goes."""
    for length in range(LIMIT - 6, LIMIT + 6):
        message = b"y" * length + b"\r\n.dot\r\n..\r\n.\r\nlast\r\n"
        result, spooled, rest = received(stuffed(message), tmp_path, pieces=1,
                                         after=b"QUIT\r\n")
        assert spooled == message and rest == b"QUIT\r\n", length
    big = (b"z" * (piece_size - 1) + b"\r\n.\r\n") * 3  # ".\r\n" lines around each cut
    assert received(stuffed(big), tmp_path, pieces=3)[1] == big


def test_prose_whose_lines_end_in_a_dot_is_read_in_few_pieces(tmp_path):
    """Pieces end only where a line starts with a dot (stuffed, or the end): a message of
    sentences, every line ending in ".", costs a few steps of the event loop, not one
    per line."""
    message = b"Subject: minutes\r\n\r\n" + b"We met and agreed on the plan.\r\n" * 200
    async def run():
        reader, spool, heard = asyncio.StreamReader(limit=LIMIT), DataSpool(tmp_path), []
        reader.feed_data(stuffed(message) + b"QUIT\r\n")
        result = await receive_data(reader, spool, None, lambda: heard.append(1))
        assert spool.take() == message and result.size == len(message)
        return len(heard)
    assert asyncio.run(run()) <= 3


def test_a_sender_of_many_tiny_lines_lets_other_sessions_in(tmp_path):
    """Lines that each start with a dot or are empty are read a few bytes at a time; the
    reading yields to the event loop now and then, so it never holds the others up for
    the whole of its buffered bytes."""
    message = b".\r\n\r\n" * (READ_LIMIT_BYTES // 6)
    async def run():
        reader, spool = asyncio.StreamReader(limit=LIMIT), DataSpool(tmp_path)
        reader.feed_data(stuffed(message))  # all of it already there: reading it never waits
        others_ran = []
        async def other_session():
            others_ran.append(receiving.done())
        receiving = asyncio.create_task(receive_data(reader, spool, None, lambda: None))
        await asyncio.sleep(0)  # the reading starts
        other = asyncio.create_task(other_session())
        result = await receiving
        await other
        assert spool.take() == message and result.size == len(message)
        return others_ran
    assert asyncio.run(run()) == [False]  # the other session ran before the reading ended


def test_any_wire_ends_at_the_first_cr_lf_dot_cr_lf_and_leaves_the_rest(tmp_path):
    """Also from senders that do not stuff: wires of CR, LF, dots and text around the
    lone dot's line end exactly where CR LF . CR LF first appears (the CR LF that ends
    DATA's command line counts), whatever the pieces, and what follows is left unread."""
    rng = random.Random(5321)
    alphabet = [b"\r", b"\n", b".", b"x", b"\r\n", b"\r\n.", b".\r\n", b"\r\n.\r"]
    for number in range(300):
        wire = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        wire += b"\r\n.\r\n" + b"MAIL FROM:<a@example.org>\r\n"
        whole = LINE_START + wire
        end = whole.find(b"\r\n.\r\n")
        expected = whole[:end + 2].replace(b"\r\n.", LINE_START)[len(LINE_START):]
        for pieces in (1, 4, 40):
            result, spooled, rest = received(wire, tmp_path, pieces, seed=number)
            assert (spooled, rest) == (expected, whole[end + 5:]), wire
            assert result.size == len(expected)
