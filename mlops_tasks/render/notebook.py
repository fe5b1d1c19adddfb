"""A self-contained HTML rendering of an executed notebook, for auditors. Pure.

The page is inert whatever the notebook printed (restored runs and notebooks from others are
untrusted input): HTML outputs pass a strict allow-list (no script, event handler, frame,
form, external load or `javascript:` link survives), SVG is shown as an image (a browser
runs nothing and loads nothing inside an image), other rich types are escaped text, and a
Content-Security-Policy forbids scripts and every load but data: images as a second wall."""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*m")
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
.cell{margin:1rem 0;border-left:3px solid #ddd;padding-left:.75rem}
.code pre{background:#f6f8fa;padding:.5rem;overflow:auto}
.prompt{color:#888;font:12px monospace}
.out pre{margin:.25rem 0;overflow:auto}
.out table{border-collapse:collapse}
.out th,.out td{border:1px solid #ddd;padding:.15rem .4rem}
.err pre{background:#fff0f0;color:#900}
.omitted{color:#777;font-style:italic}
.md{line-height:1.5}
.md pre,.rich pre{white-space:pre-wrap}
img{max-width:100%}
header{border-bottom:1px solid #ddd;margin-bottom:1rem}
"""



def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


# The HTML an output may keep: formatting, lists, tables (pandas), links and data: images
KEPT = _names(
    "a abbr b bdi bdo blockquote br caption center cite code col colgroup dd del details dfn "
    "div dl dt em figcaption figure font h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre "
    "q s samp small span strike strong sub summary sup table tbody td tfoot th thead time tr "
    "tt u ul var wbr")
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                  "param", "source", "track", "wbr"})  # never closed, so never skipped into
# Dropped with everything inside them: what they hold is code, not text for a reader
DROPPED = _names(
    "applet audio base embed form frame frameset head iframe link math meta noembed noframes "
    "noscript object picture script select source style svg template textarea title track "
    "video xmp")
ATTRIBUTES = _names(
    "align alt border cellpadding cellspacing class color colspan dir face headers height "
    "lang rowspan scope size span start style summary title type valign width")
LINKS = ("http://", "https://", "mailto:", "#")
IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}",
                   re.IGNORECASE)
CSS_FUNCTION = re.compile(r"([A-Za-z_-][\w-]*)\s*\(")
CSS_FUNCTIONS = frozenset({"rgb", "rgba", "hsl", "hsla"})
URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")


def safe_style(value: str) -> bool:
    """An inline style that can load nothing: no url(), @import, escape or odd function."""
    if re.search(r"[\\@<>&]|/\*|expression|url|image|behavior|binding", value, re.IGNORECASE):
        return False
    return all(f.lower() in CSS_FUNCTIONS for f in CSS_FUNCTION.findall(value))


def safe_attribute(tag: str, name: str, value: str) -> str | None:
    """The value to keep for one attribute, or None to drop it. Pure."""
    if tag == "a" and name == "href":
        url = URL_NOISE.sub("", value)
        return url if url.lower().startswith(LINKS) else None
    if tag == "img" and name == "src":
        data = URL_NOISE.sub("", value)
        return data if IMAGE.fullmatch(data) else None
    if name not in ATTRIBUTES:
        return None
    if name == "style":
        return value if safe_style(value) else None
    return value


class Sanitiser(HTMLParser):
    """Re-writes HTML with the allow-list: the output is always this parser's own markup
    (kept tags, checked attributes, escaped text), never a byte of the input as it came."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.skipping: list[str] = []  # dropped elements we are inside

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED or (self.skipping and tag == self.skipping[0]):
            if tag not in VOID:  # counted, so that its own end tag ends the skipping
                self.skipping.append(tag)
            return
        if self.skipping:
            return
        if tag not in KEPT:
            return
        kept = [(n, v) for n, v in ((n, safe_attribute(tag, n, v or "")) for n, v in attrs)
                if v is not None]
        if tag == "a":
            kept.append(("rel", "noopener noreferrer"))
        if tag == "img" and not any(n == "src" for n, _ in kept):
            self.out.append('<span class="omitted">[image not shown: only data: images '
                            "are kept]</span>")
            return
        self.out.append(f"<{tag}" + "".join(f' {n}="{html.escape(v, quote=True)}"'
                                            for n, v in kept) + ">")
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag in self.skipping:
                while self.skipping.pop() != tag:
                    pass
            return
        if tag in self.open:
            while self.open:
                closing = self.open.pop()
                self.out.append(f"</{closing}>")
                if closing == tag:
                    break

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(html.escape(data, quote=False))

    def result(self) -> str:
        self.close()
        return "".join(self.out) + "".join(f"</{t}>" for t in reversed(self.open))


def sanitise(markup: str) -> str:
    """HTML from a notebook output, kept readable and made inert. Pure."""
    parser = Sanitiser()
    parser.feed(markup)
    return parser.result()


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _image(mime: str, payload: Any) -> str | None:
    """A data: image, if the payload is base64 (the only thing a src may carry)."""
    data = URL_NOISE.sub("", _text(payload))
    if mime == "image/svg+xml":
        data = base64.b64encode(_text(payload).encode("utf-8")).decode("ascii")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return f'<img alt="output" src="data:{mime};base64,{data}">' if data else None


def _rich(data: Mapping[str, Any]) -> str:
    """The one representation of a display output shown, in order of preference."""
    for mime in ("image/png", "image/jpeg", "image/gif", "image/svg+xml"):
        if mime in data:
            shown = _image(mime, data[mime])
            return shown or f'<p class="omitted">[{mime} output not shown: not valid data]</p>'
    if "text/html" in data:
        return sanitise(_text(data["text/html"]))
    for mime in ("text/markdown", "text/latex", "text/plain"):
        if mime in data:
            return f'<pre class="rich">{html.escape(_text(data[mime]))}</pre>'
    if "application/json" in data:
        return f"<pre>{html.escape(str(data['application/json']))}</pre>"
    kinds = ", ".join(sorted(str(m) for m in data))
    return f'<p class="omitted">[output not shown: {html.escape(kinds) or "empty"}]</p>'


def _output(out: Mapping[str, Any]) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        text = html.escape(ANSI.sub("", _text(out.get("text"))))
        return f'<div class="out"><pre>{text}</pre></div>'
    if kind == "error":
        trace = ANSI.sub("", "\n".join(str(t) for t in out.get("traceback", [])))
        return f'<div class="err"><pre>{html.escape(trace)}</pre></div>'
    data = out.get("data")
    return f'<div class="out">{_rich(data if isinstance(data, Mapping) else {})}</div>'


def notebook_html(nb: Mapping[str, Any], title: str, header: Mapping[str, str]) -> str:
    """Code, markdown (as preformatted text) and outputs, with a header of audit facts."""
    facts = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>"
                    for k, v in header.items())
    parts = [f"<!doctype html><html><head><meta charset='utf-8'>"
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><header>"
             f"<h1>{html.escape(title)}</h1><ul>{facts}</ul></header>"]
    for cell in nb.get("cells", []):
        source = html.escape(_text(cell.get("source")))
        if cell.get("cell_type") == "code":
            count = cell.get("execution_count")
            tags = cell.get("metadata", {}).get("tags", [])
            label = f"In [{count if count is not None else ' '}]" + (
                f" {' '.join(str(t) for t in tags)}" if tags else "")
            outputs = "".join(_output(o) for o in cell.get("outputs", []))
            parts.append(f'<div class="cell code"><div class="prompt">{html.escape(label)}'
                         f"</div><pre>{source}</pre>{outputs}</div>")
        else:
            parts.append(f'<div class="cell md"><pre>{source}</pre></div>')
    parts.append("</body></html>")
    return "\n".join(parts)
