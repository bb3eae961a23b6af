"""A message whose attachment is a large zip is imported within the model 450's memory bound
(#20: 256 MB whatever the input): a 96 MiB message carrying a stored zip of seven 10 MiB
files took 340 MB, the extraction worker holding the message, the zip decoded whole and
every member read out of it at once. The worker now reads the zip through a seekable file
that decodes the piece of base64 zipfile asks for (transfer_encoding.Base64File), and one
member at a time (containers.zip_members): 215 MB, and the text member is still found."""
from __future__ import annotations

import base64
import io
import json
import random
import subprocess
import zipfile

from tests.conftest import ARCHIVER
from tests.integration.archive.test_review_r25 import BOUND_MB, ENV, run_import

MiB = 1 << 20


def zip_message(rng: random.Random) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for at in range(7):
            archive.writestr(f"f{at}.bin", rng.randbytes(10 * MiB))
        archive.writestr("notes.txt", b"the quarterly zipword is inside the large zip\n")
    encoded = base64.encodebytes(out.getvalue()).replace(b"\n", b"\r\n")
    return (b"From: a@example.org\r\nSubject: large zip\r\nMessage-ID: <zip@example.org>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=sep\r\n\r\n"
            b"--sep\r\nContent-Type: text/plain\r\n\r\nsee the zip\r\n--sep\r\n"
            b"Content-Type: application/zip; name=z.zip\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=z.zip\r\n\r\n" + encoded
            + b"--sep--\r\n")


def test_a_message_with_a_70_mib_zip_is_imported_within_the_bound_and_its_members_found(
        tmp_path):
    maildir = tmp_path / "mail"
    for folder in ("cur", "new", "tmp"):
        (maildir / folder).mkdir(parents=True)
    (maildir / "new" / "1.eml").write_bytes(zip_message(random.Random(7)))
    measured, _ = run_import(tmp_path, maildir)
    assert measured.exit_code == 0, measured.stderr
    counts = json.loads(measured.stdout.decode().strip().splitlines()[-1])
    assert (counts["imported"], counts["indexed"]) == (1, 1)
    assert measured.tree_pss_peak_mb < BOUND_MB, measured.tree_roles_at_pss_peak
    found = subprocess.run([str(ARCHIVER), "search", "zipword", "--data", str(tmp_path / "data"),
                            "--json"], capture_output=True, text=True, env=ENV, timeout=120)
    assert found.returncode == 0, found.stderr
    hits = [json.loads(line) for line in found.stdout.splitlines() if '"digest"' in line]
    assert [hit["attachments"] for hit in hits] == [9]  # the zip and its eight members
