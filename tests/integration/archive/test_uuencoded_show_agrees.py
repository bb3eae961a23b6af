"""`archiver show` and the web's list agree on a message's uuencoded files (review 199 F1):
messages of the web test's generated corpus (tests.unit.web.test_uuencoded_views: bodies
sent x-uuencode on text types and none, blocks inline under every transfer encoding,
several, cut and undecodable ones, multiparts) imported through the CLI; what `show
--json` lists for each is the files the web's API lists (mail_view), numbered alike (review
r5 F5), and its "attachment_names" (the indexer's stored names) their names, in that order
(a nameless file is "attachment-N" there and no name stored)."""
import hashlib
import json
import subprocess

import pytest

from services.cli.main import main
from services.web import mail_view
from tests.conftest import ARCHIVER
from tests.unit.web.test_uuencoded_views import CORPUS

pytestmark = pytest.mark.integration

# every 7th message of the corpus (153 imports), each kind of body among them
SAMPLE = {case.id: case.raw for at, case in enumerate(CORPUS)
          if at % 7 == 0 and case.files is not None}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("uu-show")
    folder = root / "mail"
    folder.mkdir()
    for at, raw in enumerate(SAMPLE.values()):
        (folder / f"{at}.eml").write_bytes(raw)
    done = subprocess.run([str(ARCHIVER), "import", "--data", str(root / "data"), "--json",
                           str(folder)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["indexed"], summary["failed"]) == (len(set(SAMPLE.values())), 0)
    return root / "data"


def test_show_lists_the_files_the_web_lists(data, capsys):
    differing = []
    for case_id, raw in SAMPLE.items():
        assert main(["show", hashlib.sha256(raw).hexdigest(), "--data", str(data),
                     "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        listed = mail_view.view(raw).attachments
        names = [a.filename for a in listed if a.named]
        if shown["attachments"] != [a.as_json() for a in listed] \
                or shown["attachment_names"] != names:
            differing.append(f"{case_id}: show {shown['attachments']} "
                             f"{shown['attachment_names']}, web {listed}")
    assert not differing, "\n".join(differing)
