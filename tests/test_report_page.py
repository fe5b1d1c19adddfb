"""The pipeline report page: every stage with its state and run link, self-contained (no
request leaves the file), rewritten after a run, rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from mlops_tasks.pipeline.report import reason_words, run_metrics
from mlops_tasks.project.spec import Stage
from mlops_tasks.render.report_page import StageView, page
from mlops_tasks.run import record

from .helpers import forked_doit, make_project

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def external_references(text: str) -> list[str]:
    """Anything the page would load from elsewhere (links to follow are not loads)."""
    found = re.findall(r"<(?:script|img|link|iframe|source|video|audio)\b[^>]*>", text)
    found += re.findall(r"url\((?!#)[^)]*\)|@import", text)
    return found


def test_the_page_shows_every_stage_and_loads_nothing():
    stages = [
        StageView("prep", "up-to-date", run_id="r1", run_url="http://mlflow:5000/#/x/r1",
                  parameters={"n": 1, "cfg": {"a": [1, 2]}}, metrics={"acc": 0.9},
                  notebook_href="../runs/prep/r1/prep.html", python="3.11.7",
                  freeze="idna==3.6\n", drift=["idna: 3.6 -> 3.7"]),
        StageView("train", "stale", reason="execute: parameters: n: 1 -> 2",
                  upstream=("prep",), run_id="r2", run_store="sqlite:///x/mlflow.db"),
        StageView("eval", "failed", reason="failed: code cell 3: ZeroDivisionError",
                  upstream=("train",)),
        StageView("side", "never-run", reason="no run yet"),
        StageView("cached", "restored", upstream=("prep",), run_id="r5", restored_from="r0"),
    ]
    text = page("demo <pipeline>", "2026-11-27T12:00:00+00:00", "http://mlflow:5000", stages,
                [["prep", "side"], ["train", "cached"], ["eval"]])
    assert external_references(text) == []
    assert "demo &lt;pipeline&gt;" in text
    for label in ("up to date", "stale", "failed", "never run", "restored from cache"):
        assert f"{label}</text>" in text  # in the graph, in words, not only in colour
    assert 'href="http://mlflow:5000/#/x/r1"' in text and "MLflow run r2 in sqlite" in text
    assert 'href="#stage-train"' in text and 'id="stage-train"' in text
    assert "execute: parameters: n: 1 -&gt; 2" in text
    assert '{&quot;a&quot;: [1, 2]}' in text  # nested parameters as JSON
    assert text.count("marker-end") == 3  # prep->train, train->eval, prep->cached


EXAMPLE = [StageView("data_prep", "up-to-date"),
           StageView("feature_eng", "up-to-date", upstream=("data_prep",)),
           StageView("train", "stale", upstream=("feature_eng",)),
           StageView("eval", "never-run", upstream=("train", "feature_eng"))]
EXAMPLE_WAVES = [["data_prep"], ["feature_eng"], ["train"], ["eval"]]


def boxes_and_edges(svg: str) -> tuple[dict[str, tuple[float, ...]], list[list[tuple[float, ...]]]]:
    """The graph's boxes by stage, and each edge as the points its path passes through
    (a curve stays within the polygon of its control points)."""
    boxes = {name: tuple(float(v) for v in box) for name, *box in re.findall(
        r'<a href="#stage-([^"]+)".*?<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" '
        r'height="([\d.]+)"', svg)}
    edges = [[tuple(float(v) for v in point) for point in re.findall(r"([\d.]+),([\d.]+)", d)]
             for d in re.findall(r'<path d="(M[^"]+)"[^>]*marker-end', svg)]
    return boxes, edges


def crosses(points: list[tuple[float, ...]], box: tuple[float, ...]) -> bool:
    x, y, w, h = box
    for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
        for step in range(101):
            px, py = x1 + (x2 - x1) * step / 100, y1 + (y2 - y1) * step / 100
            if x + 1 < px < x + w - 1 and y + 1 < py < y + h - 1:
                return True
    return False


def test_an_edge_that_skips_a_wave_passes_no_box():
    text = page("example", "now", "here", EXAMPLE, EXAMPLE_WAVES)
    boxes, edges = boxes_and_edges(text)
    assert set(boxes) == {"data_prep", "feature_eng", "train", "eval"} and len(edges) == 4
    for points in edges:
        assert not [name for name, box in boxes.items() if crosses(points, box)], points
    skip = [p for p in edges if p[0][0] == boxes["feature_eng"][0] + boxes["feature_eng"][2]
            and p[-1][0] > boxes["train"][0]]
    assert len(skip) == 1  # feature_eng -> eval, drawn under train, not through it
    train_bottom = boxes["train"][1] + boxes["train"][3]
    assert max(y for _, y in skip[0]) > train_bottom
    height = float(re.search(r'<svg[^>]* height="([\d.]+)"', text).group(1))
    assert max(y for _, y in skip[0]) < height  # inside the picture


def test_the_page_forbids_scripts_and_loads():
    text = page("example", "now", "here", EXAMPLE, EXAMPLE_WAVES)
    head = text.split("<body>", 1)[0]
    assert ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "img-src data:; style-src 'unsafe-inline'\">") in head
    assert "<script" not in text


def test_a_reproduction_that_could_not_run_shows_why_on_one_line(tmp_path):
    """The reason `doit reproduce` recorded, as `remember()` writes it, reaches the page
    escaped and on one line."""
    import json

    from mlops_tasks.pipeline.report import reproductions_of

    why = ("the tracking store at http://ci:***@mlflow:5000 cannot be reached\n"
           "  (ConnectionError: <refused>); start the server & try again")
    listed = tmp_path / ".mlops" / "reports" / "reproductions.json"
    listed.parent.mkdir(parents=True)
    listed.write_text(json.dumps({"r1": [
        {"when": "2026-12-03T10:00:00+00:00", "verdict": "could not reproduce", "run": None,
         "reason": why, "tracking_uri": "http://ci:***@mlflow:5000"}]}), encoding="utf-8")
    found = reproductions_of(tmp_path, "r1", "1")
    assert [(r.verdict, r.reason) for r in found] == [("could not reproduce", why)]
    view = StageView("train", "up-to-date", run_id="r1", reproductions=found)
    text = page("example", "now", "here", [view], [["train"]])
    row = text[text.index("Reproductions of this run"):].split("</table>", 1)[0]
    assert ("<td>could not reproduce</td><td>no run</td><td class=\"reason\">the tracking "
            "store at http://ci:***@mlflow:5000 cannot be reached (ConnectionError: "
            "&lt;refused&gt;); start the server &amp; try again</td>") in row
    assert "<refused>" not in text


def test_doit_reasons_in_words():
    class Check:
        def __repr__(self) -> str:
            return "<parameters: n: 1 -> 2>"

    reasons = {"uptodate_false": [(Check(), [], {})], "missing_target": ["out/a.txt"]}
    assert reason_words(reasons) == "parameters: n: 1 -> 2; missing: out/a.txt"


def logged_run(**extra: object) -> record.LogRecord:
    return record.LogRecord(stage="train", run_id="r1", logged="now", tracking_uri="here",
                            local_copy=".mlops/runs/train/r1", log_seconds=0.1,
                            env_drift=None, **extra)  # type: ignore[arg-type]


def test_metrics_from_the_files_and_from_the_logged_run(tmp_path):
    stage = Stage("train", "env_specs/train.yaml", "n.ipynb", ".venvs/train", "k",
                  metrics=("out/m.json", "out/missing.json"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "m.json").write_text('{"rows": 10, "acc": 0.5, "note": "x"}')
    assert run_metrics(tmp_path, stage, None) == {"rows": 10.0, "acc": 0.5}
    assert run_metrics(tmp_path, stage, logged_run()) == {"rows": 10.0, "acc": 0.5}

    class Logged:  # a log record that holds the run's metrics
        metrics = {"acc": 0.75, "cv_accuracy_mean": 0.9, "flag": True}

    assert run_metrics(tmp_path, stage, Logged()) == {  # type: ignore[arg-type]
        "rows": 10.0, "acc": 0.75, "cv_accuracy_mean": 0.9}


class Trap:
    """A proxy that answers nothing and records every request Chromium sends it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(1024))
                except OSError:
                    self.seen.append(b"? unknown")

    def hosts(self) -> set[str]:
        """The hosts asked for (CONNECT host:443, or GET http://host/...)."""
        found = set()
        for request in self.seen:
            words = request.split(b"\r\n")[0].split(b" ")
            if len(words) < 2:  # a connection opened ahead and closed unused asks for nothing
                continue
            target = words[1].decode(errors="replace")
            found.add(re.sub(r"^\w+://", "", target).split("/")[0].split(":")[0])
        return found

    def close(self) -> None:
        self.sock.close()


def chromium(page_file: Path | str, trap: Trap, *args: str
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-default-apps", "--disable-extensions",
         f"--proxy-server=http://127.0.0.1:{trap.port}", "--proxy-bypass-list=<-loopback>",
         *args, page_file if isinstance(page_file, str) else page_file.as_uri()],
        capture_output=True, text=True, timeout=120)


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_the_report_in_a_browser(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse)
    forked_doit(root)
    report = root / ".mlops" / "reports" / "index.html"
    assert report.is_file()  # written by the run
    spec = root / "env_specs" / "make.yaml"
    spec.write_text(spec.read_text().replace("greeting: hi", "greeting: hello"))
    proc = forked_doit(root, "report")
    assert "report: .mlops/reports/index.html" in proc.stdout
    text = report.read_text(encoding="utf-8")
    assert external_references(text) == []
    # Chromium itself calls a few Google hosts whatever it shows: those, seen on a blank
    # page, are the baseline; the report must add none
    baseline = Trap()
    try:
        chromium("about:blank", baseline, "--dump-dom")
    finally:
        baseline.close()
    trap = Trap()
    try:
        dom = chromium(report, trap, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        ARTIFACTS.mkdir(exist_ok=True)
        for size, name in (("1280,800", "report-1280x800.png"), ("390,844", "report-phone.png")):
            shot = ARTIFACTS / name
            made = chromium(report, trap, f"--window-size={size}", f"--screenshot={shot}")
            assert made.returncode == 0 and shot.stat().st_size > 10_000, made.stderr[-2000:]
    finally:
        trap.close()
    assert trap.hosts() <= baseline.hosts() | {"www.google.com", "accounts.google.com",
                                               "clients2.google.com"}  # none from the page
    rendered = dom.stdout
    assert 'id="stage-make"' in rendered and 'id="stage-use"' in rendered
    assert re.search(r"make: stale", rendered) and "greeting" in rendered
    assert "use: up to date" in rendered or "use: stale" in rendered
    run_ids = re.findall(r"MLflow run ([0-9a-f]{32})", rendered)
    assert len(set(run_ids)) == 2
    assert "the executed notebook of make" in rendered
    notebook = re.search(r'href="(\.\./runs/make/[^"]+\.html)"', rendered)
    assert notebook and (report.parent / notebook.group(1)).is_file()
    assert "length" in rendered  # use's metric
    assert "runs recorded in the local store .mlops/mlflow.db" in rendered


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_the_graph_in_a_browser(tmp_path):
    """A picture to look at (test-artifacts/report-graph.png): the example's feature_eng ->
    eval edge runs under train; a wider graph keeps its lanes apart."""
    wide = [*EXAMPLE, StageView("report", "failed", upstream=("data_prep", "eval")),
            StageView("side", "restored", upstream=("data_prep",))]
    ARTIFACTS.mkdir(exist_ok=True)
    trap = Trap()
    try:
        for name, stages, waves in (
                ("report-graph.png", EXAMPLE, EXAMPLE_WAVES),
                ("report-graph-wide.png", wide, [["data_prep"], ["feature_eng", "side"],
                                                 ["train"], ["eval"], ["report"]])):
            source = tmp_path / f"{name}.html"
            source.write_text(page("example", "now", "here", stages, waves), encoding="utf-8")
            shot = ARTIFACTS / name
            made = chromium(source, trap, "--window-size=1400,900", f"--screenshot={shot}")
            assert made.returncode == 0 and shot.stat().st_size > 10_000, made.stderr[-2000:]
    finally:
        trap.close()
