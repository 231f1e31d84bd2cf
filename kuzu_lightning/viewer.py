"""The run's pages in a web browser (``--html``): a static site beside the outputs, opened from disk, no server.

- ``index.html`` (at the output folder's top): every page of the run in order, with its characters, how many are
  doubtful, their mean probability and the error of a page that could not be read.
- ``{key}.html`` per page: the scan (``{key}.view.jpg``, at most :data:`VIEW_LONGEST_SIDE` px, as browsers show no
  TIFF or PDF) with every character's box, beside the transcription, its lines in reading order set vertically,
  right to left, side glosses small beside their line. Hovering a character, in the text or on the scan, lights
  both; clicking one shows its readings with their probabilities. Characters read with a probability below
  :data:`DOUBTFUL` are coloured.
- ``viewer.css`` and ``viewer.js``, which every page shares.

Boxes are drawn in original-scan pixels (an SVG whose ``viewBox`` is the scan's size). Everything the page shows
comes from its JSON; each file is written through a temporary name.
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from kuzu_lightning.atomic import atomic_file
from kuzu_lightning.data.images import PageDecodeError, decode_page, read_image_size, resize_longest_side
from kuzu_lightning.outputs import scan_of

log = logging.getLogger(__name__)

VIEW_LONGEST_SIDE = 1600
"""The longest side of the scan as the viewer shows it, in pixels."""
DOUBTFUL = 0.5
"""Characters read with a probability below are coloured as doubtful."""

CSS = """\
body { margin: 0; font-family: sans-serif; color: #222; }
nav { padding: 6px 12px; background: #f3f3f3; border-bottom: 1px solid #ccc; }
main { display: flex; gap: 16px; padding: 12px; align-items: flex-start; }
.scan { flex: 1 1 55%; margin: 0; }
.scan svg { width: 100%; height: auto; max-height: 92vh; }
.box { fill: rgba(30, 100, 220, 0.06); stroke: rgb(30, 100, 220); stroke-width: 0.15%; }
.box.doubtful { fill: rgba(220, 60, 30, 0.10); stroke: rgb(220, 60, 30); }
.box.hover, .box.selected { fill: rgba(255, 200, 0, 0.45); stroke: rgb(200, 140, 0); stroke-width: 0.4%; }
.text { flex: 1 1 35%; writing-mode: vertical-rl; font-size: 22px; line-height: 1.8; max-height: 92vh;
        overflow-x: auto; font-family: serif; }
.line { margin: 0 0 0 6px; }
.char { cursor: pointer; border-radius: 3px; }
.char.doubtful { background: rgba(220, 60, 30, 0.18); color: rgb(170, 30, 10); }
.char.hover, .char.selected { background: rgba(255, 200, 0, 0.6); }
.gloss { font-size: 11px; }
#alternatives { position: fixed; right: 16px; bottom: 16px; background: #fff; border: 1px solid #888;
                box-shadow: 0 2px 8px rgba(0, 0, 0, 0.3); padding: 8px 12px; font-size: 15px; }
#alternatives td { padding: 1px 8px; }
#alternatives .reading { font-family: serif; font-size: 22px; }
.error { color: rgb(170, 30, 10); }
table.pages { border-collapse: collapse; margin: 12px; }
table.pages td, table.pages th { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: right; }
table.pages td:first-child, table.pages th:first-child { text-align: left; }
"""

JS = """\
// Hover: light a character's box and its place in the text; click: show its readings with their probabilities.
function parts(i) { return document.querySelectorAll('[data-i="' + i + '"]'); }
function target(event) { return event.target.closest ? event.target.closest("[data-i]") : null; }
document.addEventListener("mouseover", function (event) {
  var t = target(event); if (t) parts(t.dataset.i).forEach(function (e) { e.classList.add("hover"); });
});
document.addEventListener("mouseout", function (event) {
  var t = target(event); if (t) parts(t.dataset.i).forEach(function (e) { e.classList.remove("hover"); });
});
document.addEventListener("click", function (event) {
  var t = target(event); if (!t) return;
  document.querySelectorAll(".selected").forEach(function (e) { e.classList.remove("selected"); });
  parts(t.dataset.i).forEach(function (e) { e.classList.add("selected"); });
  var character = document.querySelector('.char[data-i="' + t.dataset.i + '"]');
  var panel = document.getElementById("alternatives");
  var title = document.createElement("div"), table = document.createElement("table");
  title.textContent = "character " + t.dataset.i + ", line " + character.closest(".line").dataset.line;
  JSON.parse(character.dataset.alternatives).forEach(function (reading) {
    var row = table.insertRow();
    [reading[0], reading[1], (100 * reading[2]).toFixed(1) + " %"].forEach(function (text, n) {
      var cell = row.insertCell(); cell.textContent = text; if (n === 0) cell.className = "reading";
    });
  });
  panel.replaceChildren(title, table);
  panel.hidden = false;
});
"""


def _href(target: Path, start: Path) -> str:
    """The URL of ``target`` relative to the folder ``start``."""
    return quote(Path(os.path.relpath(target, start)).as_posix())


def _doubtful(character: dict) -> str:
    return " doubtful" if character["probability"] < DOUBTFUL else ""


def _char_span(i: int, character: dict) -> str:
    readings = [[r["char"], r["code"], round(r["probability"], 4)] for r in character.get("alternatives") or
                [{"char": character["char"], "code": character["code"], "probability": character["probability"]}]]
    return (f'<span class="char{_doubtful(character)}" data-i="{i}" title="{html.escape(character["code"])}" '
            f'data-alternatives="{html.escape(json.dumps(readings, ensure_ascii=False))}">'
            f'{html.escape(character["char"])}</span>')


def page_html(page: dict, key: str, out: Path, image: str | None) -> str:
    """The viewer's page of ``page`` (a page's JSON, as a dict) keyed ``key`` under ``out``; ``image``: the scan's
    URL relative to the page, or None."""
    here = (out / f"{key}.html").parent
    characters, width, height = page["characters"], page["width"], page["height"]
    boxes = "".join(f'<rect id="b{i}" class="box{_doubtful(c)}" data-i="{i}" x="{c["box"][0]:.1f}" '
                    f'y="{c["box"][1]:.1f}" width="{c["box"][2] - c["box"][0]:.1f}" '
                    f'height="{c["box"][3] - c["box"][1]:.1f}"/>' for i, c in enumerate(characters))
    lines = []
    for j, line in enumerate(page["lines"]):
        if line["gloss"]:
            continue
        spans = [_char_span(i, characters[i]) for i in line["characters"]]
        for gloss in (g for g in page["lines"] if g["gloss"] and g["parent"] == j):
            spans[gloss["anchor"]] += ('<span class="gloss">' + "".join(_char_span(i, characters[i])
                                                                         for i in gloss["characters"]) + "</span>")
        lines.append(f'<p class="line" data-line="{j}">{"".join(spans)}</p>')
    doubtful = sum(c["probability"] < DOUBTFUL for c in characters)
    scan = (f'<svg viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
            f'<image href="{image}" x="0" y="0" width="{width}" height="{height}"/>{boxes}</svg>' if image else "")
    error = f'<p class="error">this page could not be read: {html.escape(page["error"])}</p>' if page["error"] else ""
    return f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>{html.escape(key)}</title>
<link rel="stylesheet" href="{_href(out / "viewer.css", here)}"></head>
<body>
<nav><a href="{_href(out / "index.html", here)}">all pages</a> · <b>{html.escape(key)}</b> ·
{len(characters)} characters, {doubtful} doubtful (probability below {DOUBTFUL:g})</nav>
{error}<main><figure class="scan">{scan}</figure>
<section class="text">{"".join(lines)}</section></main>
<aside id="alternatives" hidden></aside>
<script src="{_href(out / "viewer.js", here)}"></script>
</body></html>
"""


def write_page_view(out: Path, key: str, page: dict, image: np.ndarray | None) -> None:
    """``{key}.view.jpg`` (``image``, the scan as RGB ``uint8``, made smaller) and ``{key}.html`` under ``out``."""
    view = out / f"{key}.view.jpg"
    view.unlink(missing_ok=True)  # an earlier run's, of the scan as it was
    if image is not None:
        small = resize_longest_side(image, VIEW_LONGEST_SIDE) if max(image.shape[:2]) > VIEW_LONGEST_SIDE else image
        encoded, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        if encoded:
            view.parent.mkdir(parents=True, exist_ok=True)
            view.write_bytes(data.tobytes())
        else:
            log.warning("page %s: its scan could not be encoded for the viewer", key)
    with atomic_file(out / f"{key}.html") as handle:
        handle.write(page_html(page, key, out, _href(view, view.parent) if view.exists() else None))


def write_site(out: Path, keys: Sequence[str]) -> Path:
    """``index.html``, ``viewer.css`` and ``viewer.js`` under ``out`` for the pages keyed ``keys``, in order, and the
    viewer's page of each page done whose page is missing (read by a run without ``--html``: its scan is decoded
    again). Returns the index."""
    rows = []
    for key in keys:
        path = out / f"{key}.json"
        if not path.is_file():
            rows.append(f"<tr><td>{html.escape(key)}</td><td colspan=3></td><td class=error>not read</td></tr>")
            continue
        page = json.loads(path.read_text(encoding="utf-8"))
        if not (out / f"{key}.html").is_file():
            image = None
            if not page["error"] and page.get("source"):
                try:
                    scan = scan_of(page["source"])
                    image = decode_page(scan, min(VIEW_LONGEST_SIDE, max(read_image_size(scan))))
                except PageDecodeError as error:
                    log.warning("page %s: its scan cannot be shown (%s)", key, error)
            write_page_view(out, key, page, image)
        characters = page["characters"]
        mean = f"{np.mean([c['probability'] for c in characters]):.3f}" if characters else ""
        doubtful = sum(c["probability"] < DOUBTFUL for c in characters)
        rows.append(f'<tr><td><a href="{_href(out / f"{key}.html", out)}">{html.escape(key)}</a></td>'
                    f"<td>{len(characters)}</td><td>{doubtful}</td><td>{mean}</td>"
                    f'<td class=error>{html.escape(page["error"] or "")}</td></tr>')
    for name, text in (("viewer.css", CSS), ("viewer.js", JS)):
        with atomic_file(out / name) as handle:
            handle.write(text)
    with atomic_file(out / "index.html") as handle:
        handle.write(f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>{len(keys)} pages</title>
<link rel="stylesheet" href="viewer.css"></head>
<body><nav>{len(keys)} pages</nav>
<table class="pages"><tr><th>page</th><th>characters</th><th>doubtful</th><th>mean probability</th><th></th></tr>
{"".join(rows)}
</table></body></html>
""")
    return out / "index.html"
