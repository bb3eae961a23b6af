"""GroupCommitter: callers are answered only once the batch holding their item is applied;
what comes in while a batch is being applied goes into the next one, whole."""
import threading

import pytest

from services.archive.group_commit import GroupCommitter


class GatedBatches:
    """apply_batch that records each batch and waits for `release` before it returns."""

    def __init__(self):
        self.batches, self.release, self.started = [], threading.Event(), threading.Event()

    def __call__(self, items):
        self.batches.append(list(items))
        self.started.set()
        assert self.release.wait(10)
        return [item if not isinstance(item, str) else ValueError(item) for item in items]


def test_submit_future_answers_once_applied_and_what_came_meanwhile_is_one_batch():
    apply = GatedBatches()
    committer = GroupCommitter(apply)
    try:
        first = committer.submit_future(1)
        assert apply.started.wait(10)
        waiting = [committer.submit_future(n) for n in (2, 3, 4)]  # while batch 1 is applied
        assert not first.done() and not any(f.done() for f in waiting)  # nothing answered yet
        answered_in = []
        first.add_done_callback(lambda _: answered_in.append(threading.current_thread().name))
        apply.release.set()
        assert [f.result(timeout=10) for f in [first, *waiting]] == [1, 2, 3, 4]
        assert apply.batches == [[1], [2, 3, 4]]
        assert answered_in == ["group-commit"]  # told from the committing thread itself
    finally:
        apply.release.set()
        committer.close()


def test_an_item_that_fails_fails_alone_and_a_batch_that_fails_fails_everyone():
    """(A batch that fails for every item, e.g. a full disk, fails every caller.)"""
    apply = GatedBatches()
    apply.release.set()
    committer = GroupCommitter(apply)
    try:
        with pytest.raises(ValueError, match="bad"):
            committer.submit("bad")
        assert committer.submit(7) == 7
    finally:
        committer.close()

    def broken(items):
        raise OSError("no room")
    committer = GroupCommitter(broken)
    try:
        futures = [committer.submit_future(n) for n in range(3)]
        for future in futures:
            with pytest.raises(OSError, match="no room"):
                future.result(timeout=10)
    finally:
        committer.close()


def test_an_item_that_fails_the_whole_batch_is_refused_alone_and_the_rest_applied():
    """One item raising inside the batch's transaction (a store merge that met metadata of
    another shape) aborted the batch: innocent mail committed with it got 451 too."""
    gate, applied = threading.Event(), []

    def poisoned(items):
        assert gate.wait(10)
        if "poison" in items:
            raise TypeError("'<' not supported between instances of 'str' and 'int'")
        applied.append(list(items))
        return list(items)

    committer = GroupCommitter(poisoned)
    try:
        first = committer.submit_future("first")
        futures = {item: committer.submit_future(item) for item in ("a", "poison", "b")}
        gate.set()
        assert first.result(timeout=10) == "first"
        with pytest.raises(TypeError):
            futures["poison"].result(timeout=10)
        assert [futures[item].result(timeout=10) for item in ("a", "b")] == ["a", "b"]
        assert ["a", "poison", "b"] not in applied and ["a"] in applied and ["b"] in applied
    finally:
        gate.set()
        committer.close()
