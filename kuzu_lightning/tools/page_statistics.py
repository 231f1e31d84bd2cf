"""The layout statistics of labelled pages, to compare synthetic pages with real ones.

    kuzu statistics [--real_data DIR] [--synthetic DIR] [--pages 24] [--picture PNG]

prints, for the labelled real pages (:func:`~kuzu_lightning.data.real_pages.labelled_real_pages`, but for
``codh-sample/``: the generator's layout is chosen against these figures, and those five books are kept as a check
that nothing was chosen on) and for synthetic pages (those of ``--synthetic``, a Kaggle-layout folder, or
``--pages`` freshly generated), a Markdown table of the distributions that shape a page: character size relative to
the page, aspect ratio, column pitch and gap, characters per column and page, the share of small
characters, and how often consecutive characters of a column touch or overlap. Its last line is JSON.

Columns are found from the boxes alone (:func:`columns`), so the figures do not depend on the
order the labels come in. Boxes are xyxy in pixels of the page image.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kuzu_lightning.data.images import decode_page
from kuzu_lightning.data.kaggle import Page, load_train_pages
from kuzu_lightning.data.real_pages import labelled_real_pages, real_data_dir
from kuzu_lightning.geometry import box_centres
from kuzu_lightning.viz import draw_boxes, side_by_side, write_png

SMALL = 0.6
"""A character is small when its height is below this share of its page's median character height."""


def columns(boxes: np.ndarray) -> list[np.ndarray]:
    """Vertical columns of xyxy ``boxes``, right to left, each the indices of its boxes top to bottom.

    Boxes are ordered by horizontal centre; a new column starts where the centre moves left by more
    than half the median character width.
    """
    if len(boxes) == 0:
        return []
    centres = box_centres(boxes)
    by_x = np.argsort(-centres[:, 0], kind="stable")
    gap = 0.5 * float(np.median(boxes[:, 2] - boxes[:, 0]))
    breaks = np.nonzero(-np.diff(centres[by_x, 0]) > gap)[0] + 1
    return [group[np.argsort(centres[group, 1], kind="stable")] for group in np.split(by_x, breaks)]


def page_measures(boxes: np.ndarray, width: int, height: int) -> dict[str, list[float]]:
    """Per-character, per-pair, per-column and per-page measures of one page (lists to pool over pages)."""
    sizes = boxes[:, 2:] - boxes[:, :2]
    groups = columns(boxes)
    measures: dict[str, list[float]] = {
        "height / page height": (sizes[:, 1] / height).tolist(),
        "width / page width": (sizes[:, 0] / width).tolist(),
        "aspect (w / h)": (sizes[:, 0] / sizes[:, 1]).tolist(),
        "small characters": (sizes[:, 1] < SMALL * np.median(sizes[:, 1])).astype(float).tolist(),
        "characters per page": [float(len(boxes))],
        "characters per column": [float(len(group)) for group in groups],
        "gap to next / height": [], "touch or overlap next": [],
        "column pitch / page width": [], "column gap / page width": [],
    }
    for group in groups:
        above, below = boxes[group[:-1]], boxes[group[1:]]
        gaps = (below[:, 1] - above[:, 3]) / np.maximum(sizes[group[:-1], 1], 1)
        measures["gap to next / height"] += gaps.tolist()
        measures["touch or overlap next"] += (gaps <= 0).astype(float).tolist()
    for right, left in zip(groups, groups[1:]):
        centre = lambda group: float(np.median(box_centres(boxes[group])[:, 0]))  # noqa: E731
        measures["column pitch / page width"].append((centre(right) - centre(left)) / width)
        measures["column gap / page width"].append(float(boxes[right, 0].min() - boxes[left, 2].max()) / width)
    return measures


def statistics(pages: Sequence[Page]) -> dict[str, dict[str, float]]:
    """Pooled measures of ``pages`` (with sizes): median, 10th and 90th percentile, or the mean of a share."""
    pooled: dict[str, list[float]] = {}
    for page in pages:
        if len(page):
            for name, values in page_measures(page.boxes, page.width, page.height).items():
                pooled.setdefault(name, []).extend(values)
    result = {}
    for name, values in pooled.items():
        values = np.asarray(values, np.float64)
        if name in ("small characters", "touch or overlap next"):
            result[name] = {"share": round(float(values.mean()), 3)} if len(values) else {}
        elif len(values):
            p10, median, p90 = np.percentile(values, [10, 50, 90])
            result[name] = {"median": round(float(median), 3), "p10": round(float(p10), 3), "p90": round(float(p90), 3)}
    return result


def _cell(summary: dict[str, float]) -> str:
    if "share" in summary:
        return f"{summary['share']:.2f}"
    return f"{summary['median']:.3g} ({summary['p10']:.3g} - {summary['p90']:.3g})" if summary else "-"


def markdown_table(named: dict[str, dict[str, dict[str, float]]]) -> str:
    """A Markdown table, a row per measure and a column per named set of statistics."""
    names = list(named)
    rows = [f"| measure: median (10th - 90th percentile) or share | {' | '.join(names)} |",
            "| --- |" + " --- |" * len(names)]
    for measure in next(iter(named.values())):
        rows.append(f"| {measure} | {' | '.join(_cell(named[n].get(measure, {})) for n in names)} |")
    return "\n".join(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--real_data", help="the real data folder (default: $KUZU_REAL_DATA)")
    parser.add_argument("--synthetic", type=Path, help="a Kaggle-layout folder of synthetic pages (default: generated)")
    parser.add_argument("--pages", type=int, default=24, help="synthetic pages to generate without --synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--picture", type=Path, help="also write a PNG: the first and last real pages beside the "
                        "first two synthetic pages, each with its boxes")


def run(args: argparse.Namespace) -> dict:
    from kuzu_lightning.synthetic.generator import generate

    real = labelled_real_pages(real_data_dir(args.real_data), codh_sample=False)
    with tempfile.TemporaryDirectory() as out:
        folder = args.synthetic or generate(out, pages=args.pages, test_pages=0, seed=args.seed)
        synthetic = load_train_pages(folder)
        if args.picture:
            write_png(args.picture, side_by_side([draw_boxes(decode_page(page.image_path), page.boxes, [], None)
                                                  for page in (real[0], real[-1], *synthetic[:2])]))
    named = {f"real ({len(real)} pages)": statistics(real), f"synthetic ({len(synthetic)} pages)": statistics(synthetic)}
    print(markdown_table(named))
    result = {"real": named[f"real ({len(real)} pages)"], "synthetic": named[f"synthetic ({len(synthetic)} pages)"]}
    print(json.dumps(result))
    return result
