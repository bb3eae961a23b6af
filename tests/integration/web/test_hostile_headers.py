"""Messages whose header fields name charsets no charset has, or carry 8-bit bytes where
text is decoded (tests.integration.archive.hostile), on the web: each one's page opens,
and so do the result pages that list them; so does a message whose metadata an older
release stored with lone surrogates in it (which UTF-8 cannot carry: the page failed)."""
from __future__ import annotations

import json

import pytest
import xapian

from services.archive import shards
from services.archive.index import id_term
from services.archive.store import Envelope, _key
from tests.integration.archive.hostile import (charset_labels, eight_bit_headers, message,
                                              surrogate_texts)
from tests.integration.web.test_ui import logged_in

pytestmark = pytest.mark.integration
CASES = charset_labels() + eight_bit_headers() + surrogate_texts()
OLDER = "olderreleasesurrogates"


@pytest.fixture(scope="module")
def extra_mails() -> dict:
    mails = {case.name: (case.raw, Envelope("x@example.org", ["alice@example.com"]))
             for case in CASES}
    mails[OLDER] = (message(OLDER), Envelope("x@example.org", ["alice@example.com"]))
    return mails


@pytest.fixture(scope="module")
def older_release(site):
    """The OLDER message's metadata and index document as an older release wrote them for
    a Subject and From with 8-bit bytes in a malformed encoded-word."""
    digest, store = site.digests[OLDER], site.archive.store
    meta = {**store.meta(digest), "subject": f"{OLDER} hi\udcff", "from": "\udcf1\udc82@x"}
    with store.env.begin(write=True) as txn:
        store._write_meta(txn, _key(digest), meta)
    for path in shards.shard_dirs(site.archive.index_dir()):
        database = xapian.WritableDatabase(str(path))
        for match in database.postlist(id_term(digest)):
            document = database.get_document(match.docid)
            data = json.loads(document.get_data())
            document.set_data(json.dumps({**data, "subject": meta["subject"],
                                          "from": meta["from"]}))
            database.replace_document(match.docid, document)
        database.commit()
        database.close()
    return digest


def test_each_message_page_opens(site):
    admin = logged_in(site, "admin")
    for case in CASES:
        reply = admin.get(f"/message/{site.digests[case.name]}")
        assert reply.status == 200, case.name
        assert case.word in reply.body.decode(), case.name


def test_the_results_that_list_them_open(site):
    alice = logged_in(site, "alice")
    for prefix in ("hostlabel*", "host8bit*", "hostsurrogate*"):
        reply = alice.get(f"/search?q={prefix}")
        assert reply.status == 200
        assert sum(case.word in reply.body.decode() for case in CASES) > 20, prefix


def test_metadata_an_older_release_stored_with_lone_surrogates_is_shown(site, older_release):
    alice = logged_in(site, "alice")
    results = alice.get(f"/search?q={OLDER}")
    assert results.status == 200 and f"{OLDER} hi" in results.body.decode()
    assert alice.get(f"/message/{older_release}").status == 200
