"""A message as the web UI shows it, and the exact addresses a user's access rests on."""
from email.message import EmailMessage

from services.archive.index import addresses_of
from services.archive.mime import summarize_headers
from services.web.mail_view import attachment, view


def test_html_only_mail_is_shown_as_its_text_without_script():
    message = EmailMessage()
    message["From"], message["Subject"] = "a@example.com", "=?utf-8?q?Gr=C3=BC=C3=9Fe?="
    message.set_content("<html><head><style>p{}</style></head><body><p>Hello <b>you</b>"
                        "</p><script>alert(1)</script></body></html>", subtype="html")
    shown = view(message.as_bytes())
    assert shown.body.strip() == "Hello you"
    assert ("Subject", "Grüße") in shown.headers
    assert shown.attachments == []


def test_attachments_are_numbered_and_downloadable_attached_messages_too():
    inner = EmailMessage()
    inner["Subject"] = "inner"
    inner.set_content("forwarded text")
    message = EmailMessage()
    message["From"] = "a@example.com"
    message.set_content("see attached")
    message.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf",
                           filename="a.pdf")
    message.add_attachment(inner)
    shown = view(message.as_bytes())
    assert shown.body.strip() == "see attached"
    assert [(a.number, a.filename, a.content_type) for a in shown.attachments] == [
        (1, "a.pdf", "application/pdf"), (2, "attachment-2", "message/rfc822")]
    assert attachment(message.as_bytes(), 1)[1] == b"%PDF-1.4 data"
    assert b"forwarded text" in attachment(message.as_bytes(), 2)[1]


def test_addresses_are_exact_and_lowercased():
    raw = (b"From: Alice <Alice@Example.com>\r\nTo: bob.alice@example.com, \"X, Y\" <x@y.org>\r\n"
           b"Cc: carol@example.com\r\nBcc: dave@example.com\r\nSubject: s\r\n\r\nbody\r\n")
    found = addresses_of(summarize_headers(raw), ["Erin@Example.com"])
    assert found == {"alice@example.com", "bob.alice@example.com", "x@y.org",
                     "carol@example.com", "dave@example.com", "erin@example.com"}
