"""Mail for the review tests: a hostile HTML mail whose every trick would call a listener
(`hostile_html(origin)`), an HTML newsletter with an inline (cid:) logo and a remote
image, and a forwarded message with a PDF, an image and a text file inside it."""
from __future__ import annotations

import io
from email.message import EmailMessage

from PIL import Image, ImageDraw

from services.archive.store import Envelope

MARKER = "pwned"  # what any script of the hostile mail sets, wherever it can


def png(width: int = 120, height: int = 40, colour=(31, 95, 168), text: str = "LOGO") -> bytes:
    image = Image.new("RGB", (width, height), colour)
    ImageDraw.Draw(image).text((8, 12), text, fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pdf(pages: list[str]) -> bytes:
    """A valid PDF (cross-reference table and all) with one line of text a page."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None,
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 24 Tf 40 300 Td ({text}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 400] "
                       f"/Contents {len(objects)} 0 R /Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    start = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{start}\n"
            "%%EOF\n").encode()
    return bytes(out)


def hostile_html(origin: str) -> str:
    """Every way an HTML mail could run script or load something from `origin`."""
    o = origin
    return f"""<html><head>
<meta http-equiv="refresh" content="0;url={o}/meta-refresh">
<base href="{o}/base/">
<link rel="stylesheet" href="{o}/link.css"><link rel="prefetch" href="{o}/prefetch">
<link rel="dns-prefetch" href="{o}/dns"><link rel="icon" href="{o}/icon.png">
<style>
@import url({o}/import.css);
@import "{o}/import2.css";
@font-face {{ font-family: x; src: url({o}/font.woff); }}
body {{ background: url({o}/style-bg.png); color: #222; }}
p.lead {{ font-weight: bold; background-image: u\\72l({o}/escaped.png); }}
@media screen {{ .box {{ border: 1px solid red; background: url('{o}/media.png'); }} }}
.list li {{ list-style-image: url({o}/bullet.png); }}
div.cursor {{ cursor: url({o}/cursor.cur), auto; }}
.x::before {{ content: url({o}/before.png); }}
</style>
<script>document.documentElement.dataset.{MARKER} = "head"; fetch("{o}/script");</script>
</head>
<body background="{o}/body-background.png" onload="fetch('{o}/onload'); document.body.dataset.{MARKER}='onload'">
<p class="lead" onclick="fetch('{o}/onclick')" onmouseover="fetch('{o}/hover')" style="color: navy; background-image: url({o}/inline-style.png)">Quarterly hostile newsletter for Müller</p>
<div class="box" style="background:url({o}/inline-bg.png)">boxed text</div>
<ul class="list"><li>item</li></ul><div class="cursor x">cursor</div>
<img src="{o}/remote-image.png" alt="tracker" width="1" height="1">
<img src="x" onerror="fetch('{o}/onerror'); document.body.dataset.{MARKER}='onerror'">
<img srcset="{o}/srcset.png 2x" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<picture><source srcset="{o}/source.png"><img src="{o}/picture.png"></picture>
<a href="javascript:fetch('{o}/js-link')" id="jslink">a javascript: link</a>
<a href="{o}/plain-link" id="plainlink">a plain link</a>
<form action="{o}/form" method="post"><input name="q" value="x"><input type="image" src="{o}/input-image.png"><button formaction="{o}/formaction">Send</button></form>
<svg width="10" height="10" onload="fetch('{o}/svg-onload')"><script>fetch("{o}/svg-script")</script><image href="{o}/svg-image.png" width="10" height="10"/><a href="javascript:fetch('{o}/svg-link')"><text>t</text></a></svg>
<math><mtext><table><mglyph><style><img src=x onerror="fetch('{o}/mxss')"></style></mglyph></table></mtext></math>
<iframe src="{o}/iframe"></iframe><iframe srcdoc="<script>fetch('{o}/srcdoc')</script>"></iframe>
<object data="{o}/object"></object><embed src="{o}/embed">
<video src="{o}/video.mp4" poster="{o}/poster.png" autoplay></video><audio src="{o}/audio.mp3" autoplay></audio>
<table background="{o}/table-background.png"><tr><td background="{o}/td-background.png">cell</td></tr></table>
<noscript><img src="{o}/noscript.png"></noscript>
<template><img src="{o}/template.png"></template>
<isindex action="{o}/isindex"><keygen>
<div style="width: expression(fetch('{o}/expression'))">ie</div>
<!--[if IE]><img src="{o}/conditional.png"><![endif]-->
<p>The end of the hostile mail.</p>
</body></html>"""


def html_mail(subject: str, to: str, html: str, related: dict[str, tuple[str, bytes]] | None = None,
              sender: str = "newsletter@example.org", text: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Date"] = "Mon, 08 Jan 2024 10:00:00 +0000"
    message["Message-ID"] = f"<{abs(hash(subject))}@example.org>"
    message["X-Mailer"] = "Review test mailer"
    message.set_content(text or "The plain-text alternative of this newsletter.")
    message.add_alternative(html, subtype="html")
    html_part = message.get_payload()[1]
    for content_id, (filename, data) in (related or {}).items():
        html_part.add_related(data, maintype="image", subtype="png", cid=f"<{content_id}>",
                              filename=filename)
    return message.as_bytes()


def forwarded_mail(to: str) -> bytes:
    """A message forwarding another one, which carries a PDF, an image and a text file."""
    inner = EmailMessage()
    inner["From"], inner["To"] = "Carol Jones <carol@example.com>", to
    inner["Subject"], inner["Date"] = "Signed contract", "Tue, 09 Jan 2024 09:00:00 +0000"
    inner["Message-ID"] = "<signed.contract@example.com>"
    inner.set_content("Please find the signed contract attached.")
    inner.add_attachment(pdf(["Contract page one", "Contract page two"]),
                         maintype="application", subtype="pdf", filename="contract.pdf")
    inner.add_attachment(png(200, 80, (168, 38, 31), "SIGNATURE"), maintype="image",
                         subtype="png", filename="signature.png")
    inner.add_attachment("Clause 7: the parties agree on the merger terms.\n",
                         filename="notes.txt")
    outer = EmailMessage()
    outer["From"], outer["To"] = "Dave <dave@example.com>", to
    outer["Subject"], outer["Date"] = "Fwd: Signed contract", "Wed, 10 Jan 2024 09:00:00 +0000"
    outer["Message-ID"] = "<fwd.signed.contract@example.com>"
    outer.set_content("Forwarding the contract, see below.")
    outer.add_attachment(inner)
    return outer.as_bytes()


def review_mails(listener_origin: str) -> dict:
    """{name: (raw, Envelope)} for build_archive: all of them to alice."""
    logo = png()
    newsletter = html_mail(
        "March newsletter", "alice@example.com",
        '<h1 style="color:#1f5fa8">March news</h1><p>Our <b>merger</b> is done.</p>'
        '<p><img src="cid:logo@example.org" alt="logo"></p>'
        f'<p><img src="{listener_origin}/newsletter-tracker.png" alt="tracker"></p>'
        '<table style="border:1px solid #ccc"><tr><td style="padding:4px">A table cell</td>'
        '</tr></table>', {"logo@example.org": ("logo.png", logo)})
    hostile = html_mail("Hostile newsletter", "alice@example.com", hostile_html(listener_origin),
                        sender="mallory@evil.example")
    return {"newsletter": (newsletter, None), "hostile": (hostile, None),
            "forwarded": (forwarded_mail("alice@example.com"),
                          Envelope("dave@example.com", ["alice@example.com"]))}
