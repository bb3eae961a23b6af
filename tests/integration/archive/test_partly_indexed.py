"""A message whose text a limit cut (forwarded messages nested deeper than
MAX_NESTED_MESSAGES, a body or an attachment over the model's text cap)
is found by has:extraction-failure, and `archiver show` says what was cut and why; a
message within the limits is not flagged. Through the CLI, as an auditor uses it."""
from email.message import EmailMessage

import pytest

from services.archive.extract import MAX_NESTED_MESSAGES
from tests import search_output

pytestmark = pytest.mark.integration


def forward_chain(levels: int) -> bytes:
    """`levels` messages, each forwarding the one before as an attachment; the first (the
    deepest) holds the evidence: a body word and an attached file."""
    inner = EmailMessage()
    inner["From"], inner["To"], inner["Subject"] = "a@example.com", "b@example.com", "original"
    inner.set_content("the deepest evidence: smokinggunword\n")
    inner.add_attachment(b"ledger", maintype="application", subtype="octet-stream",
                         filename="ledgerfile.bin")
    for level in range(1, levels):
        outer = EmailMessage()
        outer["From"], outer["To"] = "a@example.com", "b@example.com"
        outer["Subject"] = f"fwd level {level}"
        outer.set_content(f"forwarding level {level}\n")
        outer.add_attachment(inner)
        inner = outer
    return inner.as_bytes()


def plain(subject: str, body: str, attachment: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", subject
    message.set_content(body)
    if attachment is not None:
        message.add_attachment(attachment, filename="long.txt")
    return message.as_bytes()


def search(archiver, data, query) -> set[str]:
    done = archiver("search", query, "--data", data, "--json", "--limit", 1000, check=0)
    return {hit["subject"] for hit in search_output.hits(done.stdout)}


def shown(archiver, data, subject) -> list[str]:
    done = archiver("search", f'subject:"{subject}"', "--data", data, "--json", check=0)
    (digest,) = search_output.digests(done.stdout)
    return archiver("show", digest, "--data", data, check=0).stdout.splitlines()


def test_text_cut_by_a_limit_is_flagged_and_shown(archiver, tmp_path):
    data, mail = tmp_path / "data", tmp_path / "mail"
    mail.mkdir()
    deep = MAX_NESTED_MESSAGES + 3
    cap = 256 * 1024  # model 150's attachment_text_kb
    messages = {
        "chain.eml": forward_chain(deep),
        "shallow.eml": forward_chain(MAX_NESTED_MESSAGES),  # the deepest one is read whole
        "bigbody.eml": plain("big body", "start " + "filler " * (cap // 7 + 10)
                             + "beyondthelimit\n"),
        "bigattachment.eml": plain("big attachment", "see attached",
                                   "begin " + "padding " * (cap // 8 + 10) + "pastthecap\n"),
        "small.eml": plain("small", "all of it is indexed", "short attachment text"),
    }
    for name, raw in messages.items():
        (mail / name).write_bytes(raw)
    archiver("import", "--data", data, "--model", "150", mail, check=0)

    # What the limits cut is not found (the limits stay)...
    assert search(archiver, data, "smokinggunword") == {"fwd level 4"}  # only the shallow
    assert search(archiver, data, "beyondthelimit") == set()
    assert search(archiver, data, "pastthecap") == set()
    # ...but the messages it was cut from are, and nothing else is.
    assert search(archiver, data, "has:extraction-failure") == {
        f"fwd level {deep - 1}", "big body", "big attachment"}

    chain = [line for line in shown(archiver, data, f"fwd level {deep - 1}")
             if line.startswith("cut:")]
    assert chain == [f"cut:          message/rfc822: partly indexed: a forwarded message nested "
                     f"deeper than {MAX_NESTED_MESSAGES} levels: only its From, To and Subject "
                     "are indexed, not its body, its attachments or the messages it forwards"]
    (body,) = [line for line in shown(archiver, data, "big body") if line.startswith("cut:")]
    assert body.startswith(f"cut:          partly indexed: body text cut at {cap} bytes, the "
                           "text cap (attachment_text_kb), of "), body
    (text,) = [line for line in shown(archiver, data, "big attachment")
               if line.startswith("cut:")]
    assert text == (f"cut:          long.txt: partly indexed: text cut at {cap} bytes, the "
                    "attachment text cap (attachment_text_kb); the rest is not indexed")
    assert not [line for line in shown(archiver, data, "small")
                if line.startswith(("cut:", "unreadable:"))]
