"""`archiver run` takes hostile mail from a stranger over real SMTP and keeps indexing;
`archiver reindex` and `archiver import` go through the same mail to the end."""
import hashlib
import json
import smtplib

import pytest

from services.archive.archive import Archive
from services.archive.extraction_memo import ExtractionMemo
from tests import search_output
from tests.integration.archive.hostile import (STALL_XLSX, XLSX_TYPE, corpus, long_address,
                                              message, normal)
from tests.integration.archive.hostile import attachment
from tests.integration.processes import ArchiverService, models_file

pytestmark = pytest.mark.integration
TIMEOUT_S = 2
LOOP_REASON = f"stall.xlsx: attachment extraction used more than {TIMEOUT_S} s of CPU"
LONG = long_address("é")  # 185 times "é" before "@example.com": the example


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def looping(n: int) -> bytes:
    return message(f"loopcopy{n}", parts=[attachment(STALL_XLSX, XLSX_TYPE,
                                                     'filename="stall.xlsx"')])


def send(port: int, raw: bytes, recipients: list[str]) -> bool:
    """Hand in one message as a stranger would; True when it was acknowledged (250)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("stranger.example.net")
        try:
            client.sendmail("stranger@example.net", recipients, raw,
                            mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        except smtplib.SMTPException:
            return False
    return True


@pytest.fixture
def service(tmp_path):
    models = models_file(tmp_path, extraction={"timeout_s": TIMEOUT_S})
    config = {"smtp": {"local_domains": ["example.com"]}}  # 127.0.0.1 is no trusted server
    running = ArchiverService(tmp_path, config, command=("run",), models=models).start()
    yield running
    running.stop()


def test_archiver_run_stays_up_and_indexes_past_hostile_mail(service):
    # The examples first: a long address in the To header, then in the envelope.
    examples = [(message("issueheader", {"To": f"<{LONG}>"}), ["rcpt@example.com"]),
                (message("issueenvelope"), [LONG])]
    assert all(send(service.smtp_port, raw, rcpts) for raw, rcpts in examples)
    acknowledged = [raw for raw, _ in examples]
    for case in corpus():
        recipients = [r for r in case.recipients if r.endswith("@example.com")][:50]
        if send(service.smtp_port, case.raw, recipients or ["rcpt@example.com"]):
            acknowledged.append(case.raw)
    loops = [looping(n) for n in range(3)]
    after = [normal(n).raw for n in range(5)]
    for raw in loops + after:
        assert send(service.smtp_port, raw, ["rcpt@example.com"])
    acknowledged += loops + after

    service.wait_until_indexed(len(set(acknowledged)), timeout=300)
    assert service.process.poll() is None, service.log.read_text()[-3000:]
    assert set(service.search("")) == {digest(raw) for raw in acknowledged}
    assert set(service.search("afterword*")) == {digest(raw) for raw in after}
    assert set(service.search("issueheader OR issueenvelope")) == {digest(r) for r, _ in examples}
    assert {digest(raw) for raw in loops} <= set(service.search("has:extraction-failure"))
    shown = service.cli("show", digest(loops[2]))
    assert f"unreadable:   {LOOP_REASON}" in shown.stdout, shown.stdout
    assert service.stop() == 0

    # The memo is in the store: a reindex pays stall.xlsx's time no more (the reason is the
    # one remembered) and gets through everything.
    archive = Archive(service.data, 450)
    assert ExtractionMemo(archive.store).failure(hashlib.sha256(STALL_XLSX).hexdigest()) == \
        LOOP_REASON.split(": ", 1)[1]
    archive.close()
    done = service.cli("reindex", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["indexed"] == len(set(acknowledged))
    assert set(service.search("afterword*")) == {digest(raw) for raw in after}
    assert json.loads(service.cli("show", digest(loops[0]), "--json").stdout)[
        "extraction_failures"] == [LOOP_REASON]


def test_archiver_import_goes_through_hostile_files_to_the_end(tmp_path, archiver):
    models = models_file(tmp_path, extraction={"timeout_s": TIMEOUT_S})
    folder = tmp_path / "mail"
    folder.mkdir()
    cases = [case for n, bad in enumerate(corpus()) for case in (bad, normal(n))]
    for n, case in enumerate(cases):
        (folder / f"{n:03d}-{case.name}.eml").write_bytes(case.raw)
    env = {"ARCHIVER_MODELS": str(models)}
    done = archiver("import", folder, "--json", "--data", tmp_path / "data", "--model", 450,
                    env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["imported"], summary["indexed"], summary["failed"]) == (
        len(cases), len(cases), 0)
    found = archiver("search", "afterword*", "--json", "--limit", 1000, "--data",
                     tmp_path / "data", "--model", 450, env=env, check=0)
    assert len(search_output.hits(found.stdout)) == len(corpus())
