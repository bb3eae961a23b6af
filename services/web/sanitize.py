"""HTML mail made safe to show: sanitized on the server with bleach (an allow-list of
tags, attributes, URL schemes and CSS properties), then shown in a sandboxed iframe under
a Content-Security-Policy that allows no script and no remote load (frame_policy). Each
layer alone would stop script; together they also stop what gives a sender a signal that
the mail was read (remote images, CSS that loads, prefetches, forms, meta refresh).

Steps, each on a tree, never on text with regular expressions:
  1. html5lib parses the mail's HTML as a browser would; elements that are never shown
     (script, style, svg, math, object, iframe, form controls, head...) are removed with
     their content, and the text of its <style> elements is kept aside;
  2. bleach cleans what is left against the allow-lists (unknown tags are dropped, their
     text kept; attributes, URL schemes and inline CSS checked);
  3. the result is parsed again and images and links are settled: cid: images become
     data: URLs of the message's own parts, remote images lose their address until the
     reader asks for them, links open outside the frame without a referrer; the query's
     words are marked;
  4. the <style> text is cut into rules with tinycss2; rules keep only allowed properties
     whose values load nothing (no url(), image(), @import, @font-face).
"""
from __future__ import annotations

import base64
import html
import re
import warnings
from dataclasses import dataclass, field

import bleach
import html5lib
import lxml.html
import tinycss2
from html5lib.constants import DataLossWarning
from bleach.css_sanitizer import ALLOWED_CSS_PROPERTIES, CSSSanitizer
from lxml import etree

from services.archive.highlight import Highlighter

# Removed with everything inside them: never content, often script or a load.
DROPPED = ("script", "style", "noscript", "template", "object", "embed", "applet", "iframe",
           "frame", "frameset", "svg", "math", "title", "head", "audio", "video", "canvas",
           "input", "button", "select", "textarea", "option", "datalist", "link", "meta",
           "base", "param", "source", "track", "map", "area", "portal", "dialog")
TAGS = frozenset((
    "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big",
    "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del",
    "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins", "kbd", "li",
    "main", "mark", "nav", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp",
    "section", "small", "span", "strike", "strong", "sub", "summary", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr"))
COMMON_ATTRIBUTES = ("align", "valign", "dir", "lang", "title", "class", "id", "style",
                     "width", "height", "bgcolor")
ATTRIBUTES = {
    "*": list(COMMON_ATTRIBUTES),
    "a": ["href", "name"], "img": ["src", "alt", "border", "hspace", "vspace"],
    "table": ["border", "cellpadding", "cellspacing", "summary"],
    "td": ["colspan", "rowspan", "nowrap"], "th": ["colspan", "rowspan", "nowrap", "scope"],
    "col": ["span"], "colgroup": ["span"], "font": ["color", "face", "size"],
    "ol": ["start", "type", "reversed"], "ul": ["type"], "li": ["value", "type"],
    "time": ["datetime"], "details": ["open"], "hr": ["size", "noshade"],
}
PROTOCOLS = ("http", "https", "mailto", "cid", "data")
# CSS that lays out and colours; none of it can name a URL once values are checked.
CSS_PROPERTIES = frozenset(ALLOWED_CSS_PROPERTIES | {
    "background", "border", "border-top", "border-right", "border-bottom", "border-left",
    "border-width", "border-style", "border-radius", "border-spacing",
    "border-top-width", "border-right-width", "border-bottom-width", "border-left-width",
    "border-top-style", "border-right-style", "border-bottom-style", "border-left-style",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "max-width", "min-width", "max-height", "min-height", "text-transform",
    "word-break", "word-wrap", "overflow-wrap", "word-spacing", "table-layout",
    "list-style", "list-style-type", "list-style-position", "opacity", "visibility",
    "box-sizing", "text-overflow", "font-stretch", "caption-side", "empty-cells"}
    - {"cursor"})
# CSS functions that load something or compute a URL; a value with one is dropped.
LOADING_FUNCTIONS = frozenset(("url", "image", "image-set", "-webkit-image-set",
                               "cross-fade", "element", "expression", "src", "paint"))
RASTER_IMAGES = frozenset(("image/png", "image/jpeg", "image/gif", "image/webp",
                           "image/bmp", "image/x-icon"))
DATA_IMAGE = re.compile(r"data:(image/(?:png|jpeg|gif|webp|bmp));base64,[A-Za-z0-9+/=\s]*\Z",
                        re.IGNORECASE)
HTML_LIMIT = 4 * 1024 * 1024  # characters of an HTML part shown; its text has the rest
INLINE_IMAGE_BYTES = 8 * 1024 * 1024  # cid: images made data: URLs, per message, at most
REMOTE = re.compile(r"(?:https?:)?//", re.IGNORECASE)
CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
BASE_STYLE = ("body{font:14px/1.45 system-ui,sans-serif;margin:10px;color:#1d2733;"
              "overflow-wrap:break-word}img{max-width:100%;height:auto}"
              "img.remote-blocked{display:inline-block;border:1px dashed #a0a8b3;"
              "padding:2px 4px;color:#5f6b7a;font-size:12px;min-width:2em;min-height:1em}"
              "mark.hit{background:#ffe066;color:inherit}")
_SANITIZER_ERRORS = (etree.ParserError, etree.XMLSyntaxError, ValueError)


@dataclass
class Sanitized:
    """The document to serve in the frame, and what was done to it."""
    document: str
    remote_images: int = 0        # remote images (blocked, or shown when asked)
    inline_images: int = 0        # cid: images shown from the message's parts
    missing_images: list[str] = field(default_factory=list)  # cid: references not found


def frame_policy(remote_images: bool) -> str:
    """The CSP of the frame's document: nothing but its own inline styles and data:
    images (and remote images once the reader asks); sandboxed, no scripts, no forms.
    (No frame-ancestors: under `sandbox` the document's own origin is opaque, so 'self'
    would refuse our own page; X-Frame-Options: SAMEORIGIN says who may frame it.)"""
    images = "data: http: https:" if remote_images else "data:"
    return (f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; "
            "form-action 'none'; base-uri 'none'; "
            "sandbox allow-popups allow-popups-to-escape-sandbox")


def sanitize(mail_html: str, images: dict[str, tuple[str, bytes]], remote_images: bool,
             highlighter: Highlighter | None = None) -> Sanitized:
    """The whole document for the frame, from the text of an HTML part. `images`: the
    message's parts by Content-ID (without <>, lowercased) -> (MIME type, bytes).
    Never raises on bad HTML: what cannot be parsed is shown as empty."""
    styles, body = _without_dropped(mail_html)
    cleaned = _CLEANER.clean(body)
    result = Sanitized("")
    fragment = _settled(cleaned, images, remote_images, highlighter, result)
    style = sanitize_stylesheet("\n".join(styles))
    result.document = (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<style>{BASE_STYLE}</style>" + (f"<style>{style}</style>" if style else "")
        + f"</head><body>{fragment}</body></html>")
    return result


def sanitize_stylesheet(css: str) -> str:
    """The rules of a style sheet that only lay out and colour: qualified rules with their
    allowed declarations, @media with its own rules; every other at-rule (@import,
    @font-face, @namespace...) dropped. "<" is escaped, so the text cannot end its
    <style> element."""
    kept = []
    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if rule.type == "qualified-rule":
            declarations = _CSS.sanitize_css(tinycss2.serialize(rule.content))
            if declarations:
                kept.append(f"{tinycss2.serialize(rule.prelude).strip()}{{{declarations}}}")
        elif rule.type == "at-rule" and rule.lower_at_keyword == "media" and rule.content:
            inner = sanitize_stylesheet(tinycss2.serialize(rule.content))
            if inner:
                kept.append(f"@media {tinycss2.serialize(rule.prelude).strip()}{{{inner}}}")
    return "\n".join(kept).replace("<", "\\3c ")


class _LoadFreeCSS(CSSSanitizer):
    """bleach's CSS sanitizer (allowed properties only), less every declaration whose
    value could load something."""

    def sanitize_css(self, style: str) -> str:
        allowed = super().sanitize_css(style)
        if not allowed:
            return ""
        kept = []
        for token in tinycss2.parse_declaration_list(allowed, skip_comments=True,
                                                     skip_whitespace=True):
            if token.type == "declaration" and not _loads(token.value):
                important = " !important" if token.important else ""
                kept.append(f"{token.lower_name}:{tinycss2.serialize(token.value).strip()}"
                            f"{important}")
        return ";".join(kept)


def _loads(tokens) -> bool:
    for token in tokens:
        if token.type == "url" or (token.type == "function"
                                   and token.lower_name in LOADING_FUNCTIONS):
            return True
        if token.type == "at-keyword":
            return True
        if getattr(token, "arguments", None) and _loads(token.arguments):
            return True
        if getattr(token, "content", None) and token.type.endswith("block") \
                and _loads(token.content):
            return True
    return False


_CSS = _LoadFreeCSS(allowed_css_properties=CSS_PROPERTIES, allowed_svg_properties=())
_CLEANER = bleach.sanitizer.Cleaner(tags=TAGS, attributes=ATTRIBUTES, protocols=PROTOCOLS,
                                    strip=True, strip_comments=True, css_sanitizer=_CSS)


def _without_dropped(mail_html: str) -> tuple[list[str], str]:
    """(the texts of its <style> elements, the body's HTML without DROPPED elements,
    comments or foreign (SVG, MathML) content), parsed as browsers parse HTML."""
    # Control characters mean nothing in HTML (browsers replace NUL) and lxml refuses them.
    mail_html = CONTROLS.sub("", mail_html[:HTML_LIMIT])
    if not mail_html.strip():
        return [], ""
    with warnings.catch_warnings():  # a tag name XML cannot hold is renamed: so be it
        warnings.simplefilter("ignore", DataLossWarning)
        document = html5lib.parse(mail_html, treebuilder="lxml", namespaceHTMLElements=False)
    root = document.getroot()
    styles, doomed = [], []
    for element in root.iter():
        if not isinstance(element.tag, str) or element.tag.startswith("{"):
            doomed.append(element)  # a comment, a processing instruction, SVG or MathML
        elif element.tag.lower() in DROPPED:
            if element.tag.lower() == "style":
                styles.append(element.text or "")
            doomed.append(element)
    for element in doomed:
        _remove(element)
    body = root.find("body")
    container = body if body is not None else root
    inner = html.escape(container.text or "", quote=False)
    inner += "".join(etree.tostring(child, method="html", encoding="unicode")
                     for child in container)
    return styles, inner


def _remove(element) -> None:
    """Take `element` and what is inside it out of the tree; the text after it stays."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _settled(cleaned: str, images, remote_images: bool, highlighter, result: Sanitized) -> str:
    if not cleaned.strip():
        return ""
    try:
        wrapper = lxml.html.fragment_fromstring(cleaned, create_parent="div")
    except _SANITIZER_ERRORS:
        return ""
    budget = [INLINE_IMAGE_BYTES]
    for image in wrapper.iter("img"):
        _settle_image(image, images, remote_images, result, budget)
    for link in wrapper.iter("a"):
        _settle_link(link)
    if highlighter:
        _mark(wrapper, highlighter)
    leading = html.escape(wrapper.text or "", quote=False)
    return leading + "".join(lxml.html.tostring(child, encoding="unicode") for child in wrapper)


def _settle_image(image, images, remote_images: bool, result: Sanitized, budget: list) -> None:
    source = (image.get("src") or "").strip()
    if source.lower().startswith("cid:"):
        _inline_cid(image, source[4:], images, result, budget)
    elif DATA_IMAGE.match(source):
        pass  # raster data, shown as it is
    elif REMOTE.match(source):
        result.remote_images += 1
        if not remote_images:
            image.attrib.pop("src")
            image.set("class", "remote-blocked")
            image.set("alt", f"[remote image blocked: {_host(source)}]")
            image.set("title", source[:300])
    else:
        image.attrib.pop("src", None)  # relative, or a scheme that shows nothing safe


def _inline_cid(image, content_id: str, images, result: Sanitized, budget: list) -> None:
    found = images.get(_content_id(content_id))
    image.attrib.pop("src", None)
    if found is None:
        result.missing_images.append(content_id)
        image.set("alt", f"[image {content_id[:80]} is not in the message]")
        return
    mime_type, data = found
    if mime_type not in RASTER_IMAGES or len(data) > budget[0]:
        image.set("alt", "[inline image: see the attachments]")
        return
    budget[0] -= len(data)
    result.inline_images += 1
    image.set("src", f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}")


def _settle_link(link) -> None:
    target = (link.get("href") or "").strip()
    if target.startswith("#"):
        return
    if not re.match(r"(?:https?|mailto):", target, re.IGNORECASE):
        link.attrib.pop("href", None)
        return
    link.set("target", "_blank")
    link.set("rel", "noopener noreferrer nofollow")
    link.set("title", target[:500])


def _mark(root, highlighter: Highlighter) -> None:
    """Wrap the query's words in <mark class="hit"> in every text of the tree."""
    for element in list(root.iter()):
        if element.text:
            _mark_text(element, highlighter, as_tail=False)
        if element is not root and element.tail:
            _mark_text(element, highlighter, as_tail=True)


def _mark_text(element, highlighter: Highlighter, as_tail: bool) -> None:
    text = element.tail if as_tail else element.text
    segments = highlighter.segments(text)
    if not any(marked for _, marked in segments) or "".join(s for s, _ in segments) != text:
        return
    parent = element.getparent() if as_tail else element
    at = parent.index(element) + 1 if as_tail else 0
    first, *rest = segments
    leading = "" if first[1] else first[0]
    if as_tail:
        element.tail = leading
    else:
        element.text = leading
    if first[1]:
        rest = [first] + rest
    previous = None
    for piece, marked in rest:
        if marked:
            mark = etree.Element("mark")
            mark.set("class", "hit")
            mark.text = piece
            parent.insert(at, mark)
            at += 1
            previous = mark
        elif previous is not None:
            previous.tail = (previous.tail or "") + piece
        elif as_tail:
            element.tail += piece
        else:
            element.text += piece


def _content_id(value: str) -> str:
    return value.strip().strip("<>").lower()


def content_id_key(header_value: str) -> str:
    """A Content-ID header's value as `images` in sanitize() is keyed."""
    return _content_id(header_value)


def _host(url: str) -> str:
    rest = REMOTE.sub("", url, count=1)
    return re.split(r"[/?#]", rest, 1)[0][:100]
