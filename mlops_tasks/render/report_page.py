"""The pipeline report: one self-contained HTML page (no script, font or style from
elsewhere) with the stage graph as SVG coloured by state, and per stage its last run,
parameters, metrics, environment and links. Pure: it renders what it is given."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"  # a second wall
STATES = {  # state -> (label, fill, text colour); the label is always written, not only coloured
    "up-to-date": ("up to date", "#d9f2e3", "#0b5d2a"),
    "restored": ("restored from cache", "#dbe9fb", "#0b3d7a"),
    "stale": ("stale", "#fdf0cf", "#6b4a00"),
    "failed": ("failed", "#fbdcdc", "#8a1010"),
    "never-run": ("never run", "#ececec", "#3b3b3b"),
}

STYLE = """
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1d;
 background:#fafafa;line-height:1.45}
header,main{max-width:72rem;margin:0 auto;padding:0 1rem}
header{padding-top:1.25rem}
h1{font-size:1.5rem;margin:.2rem 0}
h2{font-size:1.2rem;margin:0 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .3rem}
.meta{color:#4a4a4a;margin:.2rem 0 1rem;overflow-wrap:anywhere}
.graph{overflow-x:auto;background:#fff;border:1px solid #ddd;border-radius:8px;padding:.5rem}
.graph svg{display:block;max-width:100%;height:auto}
.graph a:focus rect{stroke:#000;stroke-width:3}
.legend{display:flex;flex-wrap:wrap;gap:.5rem 1rem;padding:0;list-style:none;margin:.5rem 0}
.legend span{display:inline-block;width:.9rem;height:.9rem;border:1px solid #777;
 vertical-align:-2px;margin-right:.3rem;border-radius:3px}
.stage{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}
.state{display:inline-block;font-weight:600;border-radius:999px;padding:.1rem .6rem;
 font-size:.9rem}
.reason{margin:.4rem 0}
table{border-collapse:collapse;width:100%;max-width:40rem}
th,td{text-align:left;border-bottom:1px solid #eee;padding:.25rem .5rem .25rem 0;
 vertical-align:top;overflow-wrap:anywhere}
th{font-weight:600;width:12rem}
pre{background:#f4f4f4;padding:.5rem;overflow:auto;max-height:20rem;font-size:.85rem}
a{color:#0645ad}
a:focus{outline:3px solid #1a73e8;outline-offset:2px}
@media (max-width:40rem){th{width:auto;white-space:nowrap}.stage{padding:.75rem}}
"""


@dataclass(frozen=True)
class Reproduction:
    """One `doit reproduce` of a stage's shown run, as .mlops/reports/reproductions.json
    keeps it."""

    when: str
    verdict: str
    run: str | None  # the reproduction's own run (None: it made none)
    url: str | None  # that run in the tracking server's UI
    reason: str = ""  # why it could not reproduce, or what differs


@dataclass(frozen=True)
class StageView:
    """What the page shows of one stage."""

    name: str
    state: str  # a key of STATES
    reason: str = ""  # in words: why stale, why failed
    upstream: tuple[str, ...] = ()
    run_id: str | None = None
    run_url: str | None = None  # the MLflow UI, when tracking is a server
    run_store: str = ""  # where the run is recorded (redacted URI)
    when: str = ""
    duration_s: float | None = None
    commit: str = ""
    by: str = ""  # user@host
    notebook_href: str | None = None  # the executed notebook as HTML, relative to the page
    restored_from: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    python: str = ""
    freeze: str = ""
    drift: Sequence[str] = ()
    reproductions: Sequence[Reproduction] = ()  # `doit reproduce` of the shown run


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 190, 58, 70, 22, 12
LANE_GAP = 14  # between the lanes under the boxes that carry edges skipping a wave
EDGE = 'fill="none" stroke="#666" stroke-width="1.5" marker-end="url(#arrow)"'


def graph_edges(stages: Sequence[StageView], place: Mapping[str, tuple[int, int]],
                column: Mapping[str, int], bottom: int) -> tuple[list[str], int]:
    """Each edge as an SVG path d, and how many lanes they take. Between neighbouring waves:
    a curve through the gap. An edge that skips a wave runs in its own lane under every box
    (a straight line would pass under the boxes between its ends and read as a chain through
    them). Pure."""
    paths, lane = [], 0
    for stage in stages:
        for up in stage.upstream:
            if up not in place or stage.name not in place:
                continue
            (x1, y1), (x2, y2) = place[up], place[stage.name]
            sx, sy, ex, ey = x1 + BOX_W, y1 + BOX_H / 2, x2, y2 + BOX_H / 2
            if column[stage.name] - column[up] <= 1:
                mid = (sx + ex) / 2
                paths.append(f"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex - 6},{ey}")
                continue
            ly, shift, r = bottom + 18 + lane * LANE_GAP, 14 + (lane % 4) * 12, 8
            down, up_x = sx + shift, ex - shift
            paths.append(f"M{sx},{sy} L{down - r},{sy} Q{down},{sy} {down},{sy + r} "
                         f"L{down},{ly - r} Q{down},{ly} {down + r},{ly} L{up_x - r},{ly} "
                         f"Q{up_x},{ly} {up_x},{ly - r} L{up_x},{ey + r} "
                         f"Q{up_x},{ey} {up_x + r},{ey} L{ex - 6},{ey}")
            lane += 1
    return paths, lane


def graph_svg(stages: Sequence[StageView], waves: Sequence[Sequence[str]]) -> str:
    """The stage graph, left to right by wave; each node links to its stage's section."""
    place: dict[str, tuple[int, int]] = {}
    column: dict[str, int] = {}
    for col, wave in enumerate(waves):
        for row, name in enumerate(wave):
            place[name] = (PAD + col * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
            column[name] = col
    total_w = PAD * 2 + max(len(waves), 1) * (BOX_W + GAP_X) - GAP_X
    bottom = PAD + max((len(w) for w in waves), default=1) * (BOX_H + GAP_Y) - GAP_Y
    paths, lanes = graph_edges(stages, place, column, bottom)
    total_h = bottom + PAD + (18 + lanes * LANE_GAP if lanes else 0)
    by_name = {s.name: s for s in stages}
    edges = [f'<path d="{d}" {EDGE}/>' for d in paths]
    nodes = []
    for name, (x, y) in place.items():
        found = by_name.get(name)
        label, fill, ink = STATES[found.state if found else "never-run"]
        nodes.append(
            f'<a href="#stage-{_e(name)}" aria-label="{_e(name)}: {_e(label)}">'
            f"<title>{_e(name)}: {_e(label)}</title>"
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
            f'stroke="{ink}" stroke-width="1.5"/>'
            f'<text x="{x + 12}" y="{y + 24}" font-size="15" font-weight="600" '
            f'fill="#111">{_e(name)}</text>'
            f'<text x="{x + 12}" y="{y + 44}" font-size="13" fill="{ink}">{_e(label)}</text>'
            "</a>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total_w} {total_h}" '
            f'width="{total_w}" height="{total_h}" role="group" '
            'aria-label="Stage graph: each stage with its state; arrows point downstream">'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            'fill="#666"/></marker></defs>' + "".join(edges) + "".join(nodes) + "</svg>")


def _rows(items: Mapping[str, Any]) -> str:
    return "".join(f"<tr><th scope=\"row\">{_e(k)}</th><td>{_e(_value(v))}</td></tr>"
                   for k, v in items.items())


def one_line(text: str, limit: int = 300) -> str:
    """A recorded message on one line, cut at `limit` characters. Pure."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def _reproductions(found: Sequence[Reproduction]) -> str:
    rows = []
    for one in found:
        what = (f'<a href="{_e(one.url)}">run {_e(one.run)}</a>' if one.run and one.url else
                f"run {_e(one.run)}" if one.run else "no run")
        rows.append(f"<tr><td>{_e(one.when)}</td><td>{_e(one.verdict)}</td><td>{what}</td>"
                    f'<td class="reason">{_e(one_line(one.reason))}</td></tr>')
    return ("<h3>Reproductions of this run</h3><table><tr><th scope=\"col\">when</th>"
            "<th scope=\"col\">verdict</th><th scope=\"col\">new run</th>"
            "<th scope=\"col\">why</th></tr>" + "".join(rows) + "</table>")


def _stage_section(stage: StageView) -> str:
    label, fill, ink = STATES[stage.state]
    parts = [f'<section class="stage" id="stage-{_e(stage.name)}" '
             f'aria-labelledby="h-{_e(stage.name)}">',
             f'<h2 id="h-{_e(stage.name)}">{_e(stage.name)} '
             f'<span class="state" style="background:{fill};color:{ink}">{_e(label)}</span>'
             "</h2>"]
    if stage.reason:
        parts.append(f'<p class="reason">{_e(stage.reason)}</p>')
    if stage.run_id:
        link = (f'<a href="{_e(stage.run_url)}">MLflow run {_e(stage.run_id)}</a>'
                if stage.run_url else f"MLflow run {_e(stage.run_id)} in {_e(stage.run_store)}")
        run: dict[str, Any] = {"run": None, "when": stage.when}
        if stage.duration_s is not None:
            run["duration"] = f"{stage.duration_s:.1f} s"
        run.update({"commit": stage.commit, "by": stage.by, "Python": stage.python})
        if stage.restored_from:
            run["restored from"] = (f"run {stage.restored_from} (stage cache; the notebook "
                                    "did not run)")
        rows = "".join(f"<tr><th scope=\"row\">{_e(k)}</th><td>{_e(v)}</td></tr>"
                       for k, v in run.items() if v and k != "run")
        notebook = (f'<tr><th scope="row">notebook</th><td><a href="{_e(stage.notebook_href)}">'
                    f"the executed notebook of {_e(stage.name)}</a></td></tr>"
                    if stage.notebook_href else "")
        parts.append(f"<h3>Last run</h3><table><tr><th scope=\"row\">run</th><td>{link}</td>"
                     f"</tr>{rows}{notebook}</table>")
    if stage.reproductions:
        parts.append(_reproductions(stage.reproductions))
    if stage.parameters:
        parts.append(f"<h3>Parameters</h3><table>{_rows(stage.parameters)}</table>")
    if stage.metrics:
        parts.append(f"<h3>Metrics</h3><table>{_rows(stage.metrics)}</table>")
    if stage.drift:
        drift = "".join(f"<li>{_e(line)}</li>" for line in stage.drift)
        parts.append(f"<h3>Environment drift since the previous run</h3><ul>{drift}</ul>")
    if stage.freeze:
        parts.append(f"<details><summary>Environment: pip freeze</summary>"
                     f"<pre>{_e(stage.freeze)}</pre></details>")
    parts.append("</section>")
    return "".join(parts)


def page(title: str, generated: str, tracking: str, stages: Sequence[StageView],
         waves: Sequence[Sequence[str]]) -> str:
    counts: dict[str, int] = {}
    for stage in stages:
        counts[stage.state] = counts.get(stage.state, 0) + 1
    summary = ", ".join(f"{n} {STATES[s][0]}" for s, n in counts.items())
    legend = "".join(f'<li><span style="background:{fill};border-color:{ink}"></span>'
                     f"{_e(label)}</li>" for label, fill, ink in STATES.values())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}: pipeline report</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{_e(title)}: pipeline report</h1>"
        f'<p class="meta">{len(stages)} stages: {_e(summary)}. Written {_e(generated)}; '
        f"runs recorded in {_e(tracking)}.</p></header><main>"
        '<section aria-labelledby="graph-h"><h2 id="graph-h">Stage graph</h2>'
        f'<div class="graph">{graph_svg(stages, waves)}</div>'
        f'<ul class="legend" aria-label="States">{legend}</ul></section>'
        + "".join(_stage_section(s) for s in stages) + "</main></body></html>\n")
