"""The intake gate: why intake must wait (services.intake.gate)."""
import random

from firmware.models import load_models
from services.archive.store import RESERVE_BYTES, Store
from services.intake.gate import IntakeGate
from tests.integration.processes import models_file

MiB = 1024 * 1024


def profile(tmp_path, **intake):
    return load_models(models_file(tmp_path, intake=intake)).get(450)


def test_a_store_past_its_capacity_makes_intake_wait_and_a_low_one_does_not(tmp_path):
    store = Store(tmp_path / "store", map_size=64 * MiB)
    for n in range(30):
        store.put(random.Random(n).randbytes(100_000))
    used = 64 * MiB - RESERVE_BYTES - store.space_left()
    store.close()
    # The same store under a smaller capacity (say another model's): what it holds is more
    # than the capacity, so it is full; under a capacity with 1 MiB left it is only low.
    for capacity, expected in ((MiB, "the archive store is full"), (used + MiB, None)):
        store = Store(tmp_path / "store", map_size=RESERVE_BYTES + capacity)
        try:
            gate = IntakeGate(store, profile(tmp_path, min_free_disk_mb=2), tmp_path)
            assert gate._check() == expected
            assert (store.space_left() <= 0) == (expected is not None)
        finally:
            store.close()


def test_a_data_disk_below_the_models_threshold_makes_intake_wait_with_the_numbers(tmp_path):
    store = Store(tmp_path / "store", map_size=64 * MiB)
    try:
        reason = IntakeGate(store, profile(tmp_path, min_free_disk_mb=10**9), tmp_path)._check()
        assert reason.startswith("the data disk is low on space (")
        assert reason.endswith(" free, 953.7 TiB needed)")
    finally:
        store.close()
