"""A Maildir folder of many messages is walked in name order holding a bounded chunk of
its entries at a time (services.archive.mailtree.LISTING_CHUNK), whatever its size."""
import os
import tracemalloc

from services.archive import mailtree


def maildir(root, names):
    for part in ("cur", "new", "tmp"):
        (root / part).mkdir(parents=True)
    for name in names:
        (root / "cur" / name).write_bytes(b"Subject: x\n\nx\n")
    return root


def walked_names(root):
    return [found.path.name for found in mailtree.walk([root]) if not found.error]


def test_chunked_walk_gives_every_message_once_in_name_order(tmp_path, monkeypatch):
    # Names of several lengths and odd orders, and hidden files that are not messages.
    names = [f"{n * 7919 % 1000}.{n}:2,S" for n in range(50)] + ["z", "A", "1"]
    root = maildir(tmp_path / "Mail", names)
    (root / "cur" / ".hidden").write_bytes(b"")
    whole = walked_names(root)
    monkeypatch.setattr(mailtree, "LISTING_CHUNK", 7)
    assert walked_names(root) == whole == sorted(names)


def test_a_chunk_of_the_size_of_the_folder_ends_the_walk(tmp_path, monkeypatch):
    root = maildir(tmp_path / "Mail", [f"m{n:02d}" for n in range(14)])
    monkeypatch.setattr(mailtree, "LISTING_CHUNK", 7)
    assert walked_names(root) == [f"m{n:02d}" for n in range(14)]


def bytes_held_halfway(root) -> int:
    """What the walk's own code holds (tracemalloc, allocated in mailtree.py and heapq)
    once half of the folder is walked."""
    tracemalloc.start()
    try:
        walking = mailtree.walk([root])
        for _ in range(5_000):
            next(walking)
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, mailtree.__file__), tracemalloc.Filter(True, "*heapq*")])
        return sum(statistic.size for statistic in snapshot.statistics("filename"))
    finally:
        tracemalloc.stop()


def test_walking_a_large_folder_holds_a_chunk_of_its_entries_not_all(tmp_path, monkeypatch):
    root = maildir(tmp_path / "Mail", [])
    for n in range(10_000):
        os.close(os.open(root / "cur" / f"{n:08d}.M{n}P1.host:2,S", os.O_CREAT | os.O_WRONLY))
    monkeypatch.setattr(mailtree, "LISTING_CHUNK", 10_000)  # all at once, as before
    whole = bytes_held_halfway(root)
    monkeypatch.setattr(mailtree, "LISTING_CHUNK", 500)
    chunked = bytes_held_halfway(root)
    assert whole > 1_000_000  # 10,000 entries: some 150 bytes each
    assert chunked < 200_000  # 500 of them
