"""The export spool folder (DATA/spool) belongs to the store's owner, whoever makes it."""
import os

import pytest

from services.archive.store import Store
from services.policy.exports import spool_folder


@pytest.mark.skipif(os.geteuid() != 0, reason="making files another user's takes root")
def test_a_spool_folder_root_makes_belongs_to_the_stores_owner(tmp_path):
    store = Store(tmp_path / "data" / "store", map_size=1 << 26)
    try:
        os.chown(store.path, 4321, 4321)  # as the services' own user owns it
        folder = spool_folder(store)
        assert (folder.stat().st_uid, folder.stat().st_gid) == (4321, 4321)
        assert folder.stat().st_mode & 0o777 == 0o700
        assert spool_folder(store) == folder  # made once, then used as it is
    finally:
        store.close()
