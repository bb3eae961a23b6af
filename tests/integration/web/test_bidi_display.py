"""What a sender writes in a Subject, a display name or an attachment's file name is shown
by the web UI as text: each bidirectional control (UAX #9) as a marked "U+202E", never
applied, and each field isolated (<bdi>), so "invoice \\u202efdp.exe" cannot read
"invoice exe.pdf" in the results or on the message page, nor turn the next column around.
The page's <title> (no HTML there) holds the escapes the CLI prints ("\\u202e"). Other
characters (accents, right-to-left scripts, no-break spaces, joiners) show as they are;
the JSON API keeps the text itself."""
from __future__ import annotations

import html
import json
import re
from email.message import EmailMessage

import pytest

from services.common.terminal import BIDI_CONTROLS
from services.web.ui import TEMPLATES
from tests.integration.web import browser
from tests.integration.web.fixtures import PASSWORD, Client, mail, message
from tests.integration.web.test_ui import logged_in

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

SUBJECT = "invoice \u202efdp.exe " + "".join(sorted(BIDI_CONTROLS - {"\u202e"})) + " bidiword"
SENDER = "Eve \u202eevil"
FILE_NAME = "report\u202efdp.exe"
HEBREW = "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd bidiword"  # "shalom olam"
AS_IS = "caf\u00e9\u00a0\U0001F468\u200d\U0001F469 \u05e9\u05dc\u05d5\u05dd"


def bidi_mail() -> bytes:
    outer = message(f"{SENDER} <eve@example.org>", "alice@example.com", SUBJECT,
                    "see the bidiword attached", attachment=(FILE_NAME, b"MZ"))
    inner = EmailMessage()
    inner["From"], inner["Subject"] = "x@example.org", "Inner \u202eevil"
    inner.set_content("inside")
    outer.add_attachment(inner)  # message/rfc822, part 3
    return outer.as_bytes()


def hebrew_mail() -> bytes:
    return mail(f"{AS_IS} <dan@example.org>", "alice@example.com", HEBREW, "shalom",
                date="Sat, 16 Mar 2024 09:00:00 +0000")


@pytest.fixture(scope="module")
def extra_mails():
    return {"bidi": (bidi_mail(), None), "hebrew": (hebrew_mail(), None)}


def marker(char: str) -> str:
    return f"U+{ord(char):04X}</span>"


def raw_controls(page: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in BIDI_CONTROLS if c in page]


def test_results_show_the_controls_of_subject_and_sender_marked_and_isolated(site):
    page = logged_in(site, "audrey").get("/search?q=bidiword").body.decode()
    assert raw_controls(page) == []
    row = re.search(r'<tr>\s*<td class="pick">.*?invoice.*?</tr>', page, re.S).group()
    assert '<td class="from" title="Eve \\u202eevil &lt;eve@example.org&gt;">' \
           '<bdi>Eve <span class="bidi-control"' in row
    assert 'aria-label="choose invoice \\u202efdp.exe ' in row  # no HTML in an attribute
    assert '<bdi>invoice <span class="bidi-control" title="U+202E RIGHT-TO-LEFT ' \
           'OVERRIDE: a bidirectional control in the mail, shown here, not applied">' \
           'U+202E</span>fdp.exe ' in row
    assert all(marker(c) in row for c in BIDI_CONTROLS)
    # a right-to-left subject, accents, no-break spaces and joiners as they are
    assert f"<bdi>{HEBREW}</bdi></a>" in page and f"<bdi>{AS_IS} &lt;dan" in page


def test_the_message_page_shows_them_marked_and_isolated(site):
    alice, digest = logged_in(site, "alice"), site.digests["bidi"]
    page = alice.get(f"/message/{digest}").body.decode()
    assert raw_controls(page) == []
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert html.unescape(title).startswith("invoice \\u202efdp.exe \\u061c")
    assert "<span" not in title
    h1 = re.search(r"<h1>(.*?)</h1>", page, re.S).group(1)
    assert h1.startswith("<bdi>invoice ") and h1.endswith("bidiword</bdi>")
    assert all(marker(c) in h1 for c in BIDI_CONTROLS)
    headers = page[page.index('<table class="headers">'):page.index("</table>")]
    assert "<td><bdi>Eve " + '<span class="bidi-control"' in headers
    assert f'href="/message/{digest}/attachment/1"><bdi>report<span class="bidi-control"' in page
    assert re.search(r'attachment/1"><bdi>report<span [^>]*>U\+202E</span>fdp\.exe</bdi></a>', page)
    hebrew = alice.get(f"/message/{site.digests['hebrew']}").body.decode()
    assert f"<h1><bdi>{HEBREW}</bdi></h1>" in hebrew and f"<title>{HEBREW} · " in hebrew
    assert AS_IS in hebrew and "bidi-control" not in hebrew


def test_an_attached_message_and_its_breadcrumb(site):
    alice, digest = logged_in(site, "alice"), site.digests["bidi"]
    outer = alice.get(f"/message/{digest}").body.decode()
    # named as `show` names it, its subject beside (review r9 F6), each marked
    assert re.search(r'part=3"><bdi>\(no name, saved as attachment-\d+\)</bdi></a>', outer)
    assert re.search(r'; subject <bdi>Inner <span [^>]*>U\+202E</span>evil</bdi>', outer)
    inner = alice.get(f"/message/{digest}?part=3").body.decode()
    assert raw_controls(inner) == []
    crumb = re.search(r'<p class="breadcrumb">(.*?)</p>', inner, re.S).group(1)
    assert re.search(r'"><bdi>invoice <span [^>]*>U\+202E</span>fdp\.exe .*bidiword</bdi></a> '
                     r'› attached message \(part 3\)$', crumb), crumb
    assert re.search(r"<h1><bdi>Inner <span [^>]*>U\+202E</span>evil</bdi></h1>", inner)
    assert "<title>Inner \\u202eevil · Archiver</title>" in inner


def test_the_json_api_keeps_the_text_itself(site):
    api, digest = Client(site.url, basic=("audrey", PASSWORD)), site.digests["bidi"]
    meta = api.get(f"/api/messages/{digest}").json()
    assert SUBJECT in json.dumps(meta, ensure_ascii=False) and "U+202E" not in str(meta)


def test_the_retention_preview_marks_and_isolates_them():
    page = TEMPLATES.get_template("retention_preview.html").render(
        user=None, flash=None, navigation=[], current="/retention", csrf_token="t",
        timezone="UTC", change={"kind": "global", "enabled": True, "global_days": 30},
        proposed={"enabled": True},
        preview={"unusable_policies": {}, "off": False, "count": 1, "held": 0,
                 "not_indexed": 0, "sample": [{"sent_date": 1.7e9, "received": 1.7e9,
                                               "from": SENDER, "subject": SUBJECT}]})
    assert raw_controls(page) == []
    assert '<td><bdi>Eve <span class="bidi-control"' in page
    assert "<td><bdi>invoice <span" in page and all(marker(c) in page for c in BIDI_CONTROLS)


@pytest.mark.browser
def test_a_browser_shows_the_marker_in_the_results_row(page, site):
    browser.log_in(page, site.url, "audrey")
    page.goto(site.url + "/search?q=bidiword")
    row = page.locator("table.hits tbody tr", has_text="invoice")
    text = row.inner_text()
    assert "invoice U+202Efdp.exe" in text and "Eve U+202Eevil" in text, text
    assert row.locator("td.subject bdi").evaluate(
        "e => getComputedStyle(e).unicodeBidi") == "isolate"
    hebrew = page.locator("table.hits tbody td.subject bdi", has_text=HEBREW[:4])
    assert hebrew.inner_text() == HEBREW  # as it is, and right to left in its cell
    assert hebrew.evaluate("e => getComputedStyle(e).direction") == "rtl"
