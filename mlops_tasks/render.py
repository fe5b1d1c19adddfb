"""A self-contained HTML rendering of an executed notebook, for auditors. Pure."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
.cell{margin:1rem 0;border-left:3px solid #ddd;padding-left:.75rem}
.code pre{background:#f6f8fa;padding:.5rem;overflow:auto}
.prompt{color:#888;font:12px monospace}
.out pre{margin:.25rem 0;overflow:auto}
.err pre{background:#fff0f0;color:#900}
.md{line-height:1.5}
.md pre{white-space:pre-wrap}
img{max-width:100%}
header{border-bottom:1px solid #ddd;margin-bottom:1rem}
"""


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _output(out: Mapping[str, Any]) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        text = html.escape(ANSI.sub("", _text(out.get("text"))))
        return f'<div class="out"><pre>{text}</pre></div>'
    if kind == "error":
        trace = ANSI.sub("", "\n".join(out.get("traceback", [])))
        return f'<div class="err"><pre>{html.escape(trace)}</pre></div>'
    data = out.get("data", {})
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            payload = _text(data[mime]).replace("\n", "")
            return f'<div class="out"><img alt="output" src="data:{mime};base64,{payload}"></div>'
    if "image/svg+xml" in data:
        return f'<div class="out">{_text(data["image/svg+xml"])}</div>'
    if "text/html" in data:
        return f'<div class="out">{_text(data["text/html"])}</div>'
    if "text/plain" in data:
        return f'<div class="out"><pre>{html.escape(_text(data["text/plain"]))}</pre></div>'
    return ""


def notebook_html(nb: Mapping[str, Any], title: str, header: Mapping[str, str]) -> str:
    """Code, markdown (as preformatted text) and outputs, with a header of audit facts."""
    facts = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>"
                    for k, v in header.items())
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{STYLE}</style></head><body><header><h1>{html.escape(title)}"
             f"</h1><ul>{facts}</ul></header>"]
    for cell in nb.get("cells", []):
        source = html.escape(_text(cell.get("source")))
        if cell.get("cell_type") == "code":
            count = cell.get("execution_count")
            tags = cell.get("metadata", {}).get("tags", [])
            label = f"In [{count if count is not None else ' '}]" + (
                f" {' '.join(tags)}" if tags else "")
            outputs = "".join(_output(o) for o in cell.get("outputs", []))
            parts.append(f'<div class="cell code"><div class="prompt">{html.escape(label)}'
                         f"</div><pre>{source}</pre>{outputs}</div>")
        else:
            parts.append(f'<div class="cell md"><pre>{source}</pre></div>')
    parts.append("</body></html>")
    return "\n".join(parts)
