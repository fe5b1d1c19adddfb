"""The rendered notebook HTML is inert: whatever a cell printed, opening the page runs no
script and loads nothing from anywhere, and it stays readable (text, tables, data: images)."""

from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
import threading
import zlib
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlops_tasks.render.notebook import CSP, notebook_html, safe_attribute, sanitise

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TITLE = "eval: notebooks/eval.ipynb"
LOADERS = {"script", "iframe", "frame", "object", "embed", "link", "style", "base", "meta",
           "form", "svg", "audio", "video", "source", "math", "template", "noscript"}


def png(width: int, height: int, rgb: tuple[int, int, int]) -> str:
    """A solid-colour PNG, base64, made with the standard library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    raw = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                             0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return base64.b64encode(raw).decode("ascii")


def hostile_notebook(port: int) -> dict:
    """Outputs that would run code or load from 127.0.0.1:port if rendered as they came,
    next to the ordinary ones an auditor must still be able to read."""
    server = f"http://127.0.0.1:{port}"
    ran = "document.body.insertAdjacentHTML('beforeend','<p id=ran-{0}>');document.title='{0}'"
    html_outputs = [
        f"<script>{ran.format('script')}</script><b>bold survives</b>",
        f'<img src=x onerror="{ran.format("onerror")}">',
        f"<iframe src={server}/frame></iframe>",
        f"<img src={server}/x.png alt=remote>",
        f"<link rel=stylesheet href={server}/style.css>",
        f"<style>@import url({server}/import.css); body{{background:url({server}/bg.png)}}"
        "</style>",
        f'<div style="background-image:url({server}/div.png)">styled div</div>',
        f"<object data={server}/object></object><embed src={server}/embed>",
        f'<a href="java&#9;script:{ran.format("link")}" id=evil>a javascript: link</a>',
        f'<svg><image href="{server}/svg.png"/><script>{ran.format("svg")}</script></svg>',
        f'<noscript><p title="</noscript><img src=x onerror={ran.format("mxss")}>"></noscript>',
        '<table border="1" class="dataframe"><thead><tr style="text-align: right;"><th></th>'
        "<th>accuracy</th></tr></thead><tbody><tr><th>0</th><td>0.93</td></tr></tbody></table>",
    ]
    outputs = [{"output_type": "display_data", "metadata": {}, "data": {"text/html": h}}
               for h in html_outputs]
    outputs += [
        {"output_type": "display_data", "metadata": {},
         "data": {"application/javascript": ran.format("js"), "text/plain": "<JS object>"}},
        {"output_type": "display_data", "metadata": {},
         "data": {"text/javascript": ran.format("textjs")}},
        {"output_type": "display_data", "metadata": {},
         "data": {"text/markdown": f"<script>{ran.format('md')}</script> *markdown*"}},
        {"output_type": "display_data", "metadata": {},
         "data": {"image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" width="60" '
                  f'height="20"><script><![CDATA[{ran.format("svgout")}]]></script><image href='
                  f'"{server}/svgout.png" width="10" height="10"/><rect width="60" height='
                  '"20" fill="teal"/></svg>'}},
        {"output_type": "display_data", "metadata": {},
         "data": {"image/png": f'x" onerror="{ran.format("png")}'}},
        {"output_type": "display_data", "metadata": {},
         "data": {"image/png": png(120, 40, (200, 30, 30)), "text/plain": "<Figure>"}},
        {"output_type": "stream", "name": "stdout", "text": "plain <b>stdout</b> text\n"},
    ]
    return {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Eval\n<script>x()</script>"},
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": "show()",
         "outputs": outputs}]}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def dangers(page: str) -> list[str]:
    """Every tag, attribute or style in the page that could run code or load a resource."""
    parser = Tags()
    parser.feed(page)
    found = []
    head = page.split("<body>", 1)[0]
    for tag, attrs in parser.tags:
        if tag in LOADERS and not (tag in {"style", "meta"} and f"<{tag}" in head):
            found.append(f"<{tag}>")
        for name, value in attrs.items():
            cleaned = re.sub(r"[\x00-\x20]", "", value).lower()
            if name.startswith("on") or cleaned.startswith(("javascript:", "vbscript:")):
                found.append(f"{tag} {name}={value}")
            if name in {"src", "srcset", "data", "background", "poster", "action"} and not (
                    name == "src" and cleaned.startswith("data:image/")):
                found.append(f"{tag} {name}={value}")
            if name == "style" and re.search(r"url|@import|expression|\\", cleaned):
                found.append(f"{tag} style={value}")
    return found


def test_hostile_outputs_are_rendered_inert():
    page = notebook_html(hostile_notebook(9), TITLE, {"run": "r1"})
    assert dangers(page) == []
    assert "127.0.0.1:9" not in page.split("<body>", 1)[1]
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert page.index("Content-Security-Policy") < page.index("<body>")


def test_what_an_auditor_reads_is_kept():
    page = notebook_html(hostile_notebook(9), TITLE, {"run": "r1"})
    assert "<b>bold survives</b>" in page and "styled div" in page
    assert '<table border="1" class="dataframe">' in page and "<td>0.93</td>" in page
    assert '<tr style="text-align: right;">' in page
    assert "a javascript: link</a>" in page
    assert "&lt;JS object&gt;" in page  # the javascript output's plain-text form
    assert "*markdown*" in page  # markdown output as text
    assert f'src="data:image/png;base64,{png(120, 40, (200, 30, 30))}"' in page
    assert 'src="data:image/svg+xml;base64,' in page  # SVG shown as an image: inert there
    assert "plain &lt;b&gt;stdout&lt;/b&gt; text" in page
    assert "[output not shown: text/javascript]" in page
    assert "[image/png output not shown: not valid data]" in page


@pytest.mark.parametrize(("tag", "name", "value", "kept"), [
    ("a", "href", "https://mlflow.example/#/runs/1", "https://mlflow.example/#/runs/1"),
    ("a", "href", " JaVa\nScRiPt:alert(1)", None),
    ("a", "href", "data:text/html,<script>", None),
    ("a", "href", "//evil.example/x", None),
    ("img", "src", "data:image/png;base64,iVBORw0KGgo=", "data:image/png;base64,iVBORw0KGgo="),
    ("img", "src", "data:text/html;base64,PHNjcmlwdD4=", None),
    ("img", "src", "http://127.0.0.1/x.png", None),
    ("div", "onclick", "x()", None),
    ("div", "style", "color: rgb(1, 2, 3); text-align: right", "color: rgb(1, 2, 3); "
     "text-align: right"),
    ("div", "style", "background: u\\72l(http://x)", None),
    ("div", "style", "background: image-set('http://x' 1x)", None),
    ("div", "style", "width: calc(100% - env(x))", None),
    ("td", "colspan", "2", "2"),
])
def test_attributes_are_allow_listed(tag, name, value, kept):
    assert safe_attribute(tag, name, value) == kept


def test_open_tags_cannot_swallow_the_rest_of_the_page():
    assert sanitise("<table><tr><td><a href='#x'>cell") == (
        '<table><tr><td><a href="#x" rel="noopener noreferrer">cell</a></td></tr></table>')
    assert sanitise("<b>a</i>b</b></div>c") == "<b>ab</b>c"
    assert sanitise("<iframe>\n<p>gone</p></iframe>kept") == "kept"
    assert sanitise("<embed src=http://x>kept") == "kept"  # a void element skips nothing


class Counter(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"loaded")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={profile}", "--virtual-time-budget=3000",
         *args, page.as_uri()],
        capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_no_script_runs_and_nothing_loads_in_a_browser(tmp_path):
    Counter.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        # the control: the same browser does run a script and load from the server
        control = tmp_path / "control.html"
        control.write_text(f"<title>t</title><img src=http://127.0.0.1:{port}/control.png>"
                           "<script>document.title='control ran'</script>", encoding="utf-8")
        shown = browse(control, tmp_path / "profile-control", "--dump-dom")
        assert "<title>control ran</title>" in shown.stdout, shown.stderr[-2000:]
        assert "/control.png" in Counter.seen
        Counter.seen.clear()
        page = tmp_path / "eval.html"
        page.write_text(notebook_html(hostile_notebook(port), TITLE, {"run": "r1"}),
                        encoding="utf-8")
        dom = browse(page, tmp_path / "profile", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "notebook-hostile-outputs.png"
        made = browse(page, tmp_path / "profile-shot", "--window-size=1000,1400",
                      f"--screenshot={shot}")
        assert made.returncode == 0 and shot.stat().st_size > 10_000, made.stderr[-2000:]
    finally:
        server.shutdown()
        server.server_close()
    assert f"<title>{TITLE}</title>" in dom.stdout  # every payload would have changed it
    assert 'id="ran-' not in dom.stdout
    assert Counter.seen == []
    assert "<td>0.93</td>" in dom.stdout and "bold survives" in dom.stdout
