"""Hostile mail archived on one appliance is copied to its peer, and neither stops indexing."""
import pytest

from tests import search_output
from tests.integration.archive.hostile import corpus, normal
from tests.integration.mirror_nodes import Node, wait_searchable
from tests.integration.netns import Lab
from tests.integration.processes import models_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_hostile_corpus_is_copied_and_indexed_on_both_peers(tmp_path):
    models = models_file(tmp_path, extraction={"timeout_s": 2})
    cases = [case for n, bad in enumerate(corpus()) for case in (bad, normal(n))]
    folder = tmp_path / "in"
    folder.mkdir()
    for n, case in enumerate(cases):
        (folder / f"{n:03d}.eml").write_bytes(case.raw)
    with Lab(["a", "b"]) as lab:
        env = {"ARCHIVER_MODELS": str(models)}
        a, b = Node(lab, "a", tmp_path, env=env), Node(lab, "b", tmp_path, env=env)
        a.join(b), b.join(a)
        try:
            a.start(), b.start()
            a.cli("import", "--no-index", "--json", folder)
            wait_searchable(a, len(cases)), wait_searchable(b, len(cases))
            assert a.process.poll() is None and b.process.poll() is None
            assert a.digests() == b.digests() and len(a.digests()) == len(cases)
            for node in (a, b):
                found = node.cli("search", "afterword*", "--json", "--limit", "1000").stdout
                assert len(search_output.hits(found)) == len(corpus())
        finally:
            a.stop(), b.stop()
