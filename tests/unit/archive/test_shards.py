"""services.archive.shards: the layout of an index in shards, and the id mapping the indexer
writes by, checked against Xapian's own interleaving of a stub's databases."""
import pytest
import xapian

from services.archive import shards


def test_the_indexers_mapping_is_xapians_interleaving(tmp_path):
    """Documents added through the stub (Xapian's mapping) sit where shard_of and local_id
    say, for 1 to 4 shards."""
    for count in range(1, 5):
        index_dir = tmp_path / f"n{count}"
        for shard in shards.create(index_dir, count, 0):
            shard.close()
        combined = xapian.WritableDatabase(str(index_dir))
        for docid in range(1, 30):
            document = xapian.Document()
            document.set_data(str(docid))
            combined.replace_document(docid, document)
        combined.commit()
        combined.close()
        for k, path in enumerate(shards.shard_dirs(index_dir)):
            shard = xapian.Database(str(path))
            for posting in shard.postlist(""):
                docid = int(shard.get_document(posting.docid).get_data())
                assert (shards.shard_of(docid, count), shards.local_id(docid, count)) == \
                    (k, posting.docid)


def test_layouts_are_told_apart(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert shards.shard_dirs(empty) == []
    single = tmp_path / "single"
    xapian.WritableDatabase(str(single), xapian.DB_CREATE_OR_OPEN).close()
    assert shards.shard_dirs(single) == [single]
    sharded = tmp_path / "sharded"
    opened = shards.create(sharded, 2, 0)
    assert shards.shard_dirs(sharded) == [sharded / "shard0", sharded / "shard1"]
    opened[0].set_metadata("key", "first")
    for shard in opened:
        shard.commit()
    assert xapian.Database(str(sharded)).get_metadata("key") == b"first"
    assert shards.revision(sharded) == xapian.Database(str(sharded / "shard0")).get_revision()
    assert shards.revision(single) == xapian.Database(str(single)).get_revision()
    with pytest.raises(xapian.DatabaseOpeningError):
        shards.revision(empty)


@pytest.mark.parametrize("line", ["honey shard0", "glass /etc/elsewhere", "glass ../up",
                                  "remote :localhost:1234"])
def test_a_stub_this_code_did_not_write_is_refused(tmp_path, line):
    (tmp_path / shards.STUB).write_text(f"glass shard0\n{line}\n")
    with pytest.raises(ValueError, match="is not 'glass shardK'"):
        shards.shard_dirs(tmp_path)


def test_files_of_reaches_the_shards_files(tmp_path):
    for shard in shards.create(tmp_path, 2, 0):
        shard.commit()
        shard.close()
    found = {path.relative_to(tmp_path).as_posix() for path in shards.files_of(tmp_path)}
    assert {"XAPIANDB", "shard0/iamglass", "shard1/iamglass"} <= found
