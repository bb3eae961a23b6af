"""The first index of a fresh data folder, asked for by many processes at once, as every
service does at an appliance's first boot: all of them get the same live index, and no
other index directory is left. Before, each made one and swapped it in, removing the one
another process had just swapped in (and was writing to)."""
import multiprocessing
import threading

import pytest

from services.archive import compaction
from services.archive.archive import Archive

pytestmark = pytest.mark.integration
PROCESSES, TRIALS = 12, 12


def _ask_for_the_index(data_dir, barrier, answers) -> None:
    barrier.wait()
    try:
        answers.put(str(Archive(data_dir, 450).index_dir()))
    except Exception as exc:  # noqa: BLE001 - the test reports it
        answers.put(f"raised {exc!r}")


def test_processes_asking_at_once_get_one_index(tmp_path):
    context = multiprocessing.get_context("fork")
    for trial in range(TRIALS):
        data_dir = tmp_path / f"data{trial}"
        barrier, answers = context.Barrier(PROCESSES), context.Queue()
        processes = [context.Process(target=_ask_for_the_index,
                                     args=(data_dir, barrier, answers))
                     for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        got = {answers.get(timeout=60) for _ in processes}
        for process in processes:
            process.join(60)
        live = Archive(data_dir, 450).index_link.resolve()
        assert got == {str(live)} and live.is_dir(), (trial, got)
        assert sorted(path.name for path in data_dir.glob("index.*")) == [live.name]


def test_strays_are_not_removed_while_a_first_index_is_being_made(tmp_path):
    """compaction.remove_strays removes index directories that are not live: the one being
    made first is not live until swapped in, so removal waits for the lock it is made
    under."""
    archive = Archive(tmp_path / "data", 450)
    live = archive.index_dir()
    being_made = archive.new_index_dir()
    removed = threading.Event()

    def remove_strays():
        compaction.remove_strays(Archive(tmp_path / "data", 450))
        removed.set()

    with archive.first_index_lock():
        remover = threading.Thread(target=remove_strays)
        remover.start()
        assert not removed.wait(0.5) and being_made.is_dir()
    remover.join(30)
    assert removed.is_set() and not being_made.exists() and live.is_dir()
