"""Reading order of a page of vertical text: a plain function of character boxes.

Classical Japanese books are written in vertical lines (columns), read top to bottom, the columns
right to left. :func:`reading_order` takes the characters' boxes (xyxy, any one pixel frame: true
boxes or recognised ones) and returns its :class:`ReadingOrder`: the lines, each a column's
characters top to bottom, in reading order, and the order of the characters of the main text.

How:

1. **Columns.** Characters are chained top to bottom: each joins the column whose last characters
   are above it and overlap it horizontally (by at least ``JOIN_OVERLAP`` of the narrower extent),
   unless the gap between them is above ``MAX_GAP`` character heights; otherwise it starts a column.
   Columns may slant and wobble; a gap (a picture, a paragraph break) ends one.
2. **Small characters** (longest side below ``SMALL`` times the page's median) are part of the
   column they stand in. Two small characters or more in a column of their own, standing beside a
   main column, within its height, are a **side gloss** (furigana, a reading or note written beside
   the text): kept out of the main text, marked ``gloss``, and listed right after the column it
   glosses. A single small character beside a column is text written aside (a cramped kana, an
   insertion): it takes its place in that column by height. A small column beside no main column is
   a line of the text.
   Characters side by side (level with each other, apart horizontally) are never consecutive in a
   column: a column that splits in two sub-columns (notes in two lines, *warichu*) is read right
   sub-column first.
3. **Blocks.** The main columns are ordered by recursive XY cuts: where a horizontal band of the
   page at least ``REGISTER_GAP`` character heights high crosses no character, with characters of
   two columns or more above and below it, the part above is read before the part below (a page in
   two registers, a heading block; columns are cut there); otherwise the widest vertical gap that
   crosses no column's box splits the page into two slabs, read right to left (so blocks side by
   side are split before their columns are). A group that no cut divides (columns whose boxes
   overlap) is read by columns right to left, each column's pieces top to bottom. A stray character
   between columns is a line of its own, read in its place between them.

Sizes are relative to the page's median character, so the result does not depend on the scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

JOIN_OVERLAP = 0.3
"""Two characters can be consecutive in a column when their horizontal extents overlap by at least this share
of the narrower one."""
MAX_GAP = 2.5
"""The largest vertical gap inside a column, in median character heights."""
SMALL = 0.6
"""A character whose longest side is below this share of the page's median longest side is small (a gloss
candidate)."""
MIN_WIDTH = 0.75
"""Every horizontal extent compared is widened about its centre to at least this many median character widths, so
that a narrow stroke off a column's axis neither leaves nor breaks it."""
REGISTER_GAP = 1.0
"""A horizontal band crossing no character, at least this many median character heights high, with two columns
or more above and below, divides a page into registers."""
BESIDE = 0.75
"""A small column glosses a main column that lies within this many median character widths of it."""


@dataclass(frozen=True)
class Line:
    """One column of characters.

    ``indices``: its characters (indices into the boxes given), top to bottom; ``box``: xyxy around
    them, in the boxes' frame; ``gloss``: a side gloss, kept out of the main text; for a gloss,
    ``parent`` is the index (in :attr:`ReadingOrder.lines`) of the line it stands beside and ``anchor``
    the place in that line of the last character it stands beside (else both are None).
    """

    indices: tuple[int, ...]
    box: tuple[float, float, float, float]
    gloss: bool = False
    parent: int | None = None
    anchor: int | None = None


@dataclass(frozen=True)
class ReadingOrder:
    """The reading order of a page.

    ``lines``: the main lines in reading order, each gloss right after the line it glosses;
    ``order``: the characters of the main text in reading order (glosses left out);
    ``line_of`` and ``position``: per character (indices of the boxes given), the index of its
    line in ``lines`` and its place in that line.
    """

    lines: tuple[Line, ...]
    order: tuple[int, ...]
    line_of: tuple[int, ...]
    position: tuple[int, ...]


def reading_order(boxes: np.ndarray | Sequence[Sequence[float]]) -> ReadingOrder:
    """The :class:`ReadingOrder` of the characters whose boxes (``N x 4``, xyxy) are given; see the module docstring."""
    boxes = np.asarray(boxes, np.float64)
    if boxes.size == 0:
        return ReadingOrder((), (), (), ())
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be an N x 4 array of x1 y1 x2 y2, not one of shape {boxes.shape}")
    widths = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    longest = np.maximum(widths, heights)
    unit_width, unit_height = float(np.median(widths)), float(np.median(heights))
    small = longest < SMALL * np.median(longest)
    columns = _chain(boxes, unit_width, unit_height)
    main = [column for column in columns if not small[column].all()]
    main_boxes = np.array([_box(boxes, column) for column in main]).reshape(-1, 4)
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    glosses = []
    for column in (column for column in columns if small[column].all()):
        beside = _beside(boxes, column, main_boxes, unit_width)
        if beside is None:
            main.append(column)
            main_boxes = np.vstack([main_boxes, _box(boxes, column)])
        elif len(column) == 1:  # a small character written beside its column: text, in its place
            main[beside] = sorted([*main[beside], *column], key=lambda i: centre_y[i])
            main_boxes[beside] = _box(boxes, main[beside])
        else:  # kept with the main character nearest its middle, whose line it glosses after a register cut too
            middle = (boxes[column, 1].min() + boxes[column, 3].max()) / 2
            glosses.append((min(main[beside], key=lambda i: abs(centre_y[i] - middle)), column))
    lines: list[Line] = []
    for column in _xy_order(boxes, main, REGISTER_GAP * unit_height):
        lines.append(Line(tuple(column), _box(boxes, column)))
        parent = len(lines) - 1
        for gloss in (gloss for member, gloss in glosses if member in column):
            bottom = _box(boxes, gloss)[3]
            anchor = max(int(np.sum(centre_y[column] <= bottom)) - 1, 0)
            lines.append(Line(tuple(gloss), _box(boxes, gloss), True, parent, anchor))
    line_of, position = np.zeros(len(boxes), int), np.zeros(len(boxes), int)
    for n, line in enumerate(lines):
        line_of[list(line.indices)] = n
        position[list(line.indices)] = np.arange(len(line.indices))
    order = tuple(i for line in lines if not line.gloss for i in line.indices)
    return ReadingOrder(tuple(lines), order, tuple(line_of.tolist()), tuple(position.tolist()))


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The overlap of two horizontal extents, as a share of the narrower one."""
    return (min(a[1], b[1]) - max(a[0], b[0])) / max(min(a[1] - a[0], b[1] - b[0]), 1.0)


def _chain(boxes: np.ndarray, unit_width: float, unit_height: float) -> list[list[int]]:
    """Chain the characters into columns, top to bottom (step 1 of the module docstring).

    A column's extent at its end is that of its last two characters (at least ``MIN_WIDTH`` wide). Of two
    characters side by side, the right one continues the column and the left one starts a column of its own.
    Each character is weighed against every column at once (arrays of each column's last three characters), so a
    page costs one pass over its characters.
    """
    x1, y1, x2, y2 = boxes.T
    centre_y = (y1 + y2) / 2
    min_width = MIN_WIDTH * unit_width
    n = len(boxes)
    last = np.full((3, n), -1)  # per column: its last, second-last and third-last characters (-1: none)
    length = np.zeros(n, int)
    columns: list[list[int]] = []
    for i in sorted(range(n), key=lambda i: (centre_y[i], -x2[i])):
        count = len(columns)
        if count:
            tail, before, third = last[0, :count], last[1, :count], last[2, :count]
            beside = _side_by_side(boxes, i, tail)
            # beside the column's last: the right one of the two continues the column, its body without that last
            blocked = beside & ((x1[i] + x2[i] < x1[tail] + x2[tail]) | (length[:count] < 2))
            end, end_before = np.where(beside, before, tail), np.where(beside, third, before)
            reach_x1 = np.where(end_before >= 0, np.minimum(x1[end], x1[end_before]), x1[end])
            reach_x2 = np.where(end_before >= 0, np.maximum(x2[end], x2[end_before]), x2[end])
            overlap = _overlaps(_widened(x1[i], x2[i], min_width), _widened(reach_x1, reach_x2, min_width))
            gap = y1[i] - y2[end]
            joins = ~blocked & (overlap >= JOIN_OVERLAP) & (gap <= MAX_GAP * unit_height) & (centre_y[end] < centre_y[i])
        if not count or not joins.any():
            columns.append([i])
            last[:, count], length[count] = (i, -1, -1), 1
            continue
        score = np.where(joins, overlap - 0.25 * np.maximum(gap, 0.0) / unit_height, -np.inf)
        best = int(np.argmax(score))  # the first of equal scores
        if beside[best]:  # the left one starts the left sub-column
            columns.append([columns[best].pop()])
            last[:, count], length[count] = (tail[best], -1, -1), 1
            last[:, best], length[best] = (i, before[best], third[best]), length[best]
        else:
            last[:, best] = (i, tail[best], before[best])
            length[best] += 1
        columns[best].append(i)
    return columns


def _widened(x1, x2, min_width: float) -> tuple:
    """Horizontal extents ``x1..x2`` widened about their centres to at least ``min_width``."""
    pad = np.maximum(min_width - (x2 - x1), 0.0) / 2
    return x1 - pad, x2 + pad


def _overlaps(a: tuple, b: tuple):
    """:func:`_overlap` of extents given as arrays ``(starts, ends)``."""
    return (np.minimum(a[1], b[1]) - np.maximum(a[0], b[0])) / np.maximum(np.minimum(a[1] - a[0], b[1] - b[0]), 1.0)


def _side_by_side(boxes: np.ndarray, i: int, others) -> np.ndarray | bool:
    """Whether character ``i`` and each of ``others`` (an index or an array of them) stand side by side: level with
    each other over most of the taller one's height, their horizontal extents apart."""
    level = np.minimum(boxes[i, 3], boxes[others, 3]) - np.maximum(boxes[i, 1], boxes[others, 1])
    taller = np.maximum(boxes[i, 3] - boxes[i, 1], boxes[others, 3] - boxes[others, 1])
    apart = _overlaps((boxes[i, 0], boxes[i, 2]), (boxes[others, 0], boxes[others, 2])) < JOIN_OVERLAP
    return (level > 0.5 * taller) & apart


def _beside(boxes: np.ndarray, column: list[int], main_boxes: np.ndarray, unit_width: float) -> int | None:
    """The index in ``main_boxes`` (the main columns' boxes, xyxy) of the column that the small ``column`` stands
    beside (the nearest, within its height and ``BESIDE`` median widths; the last of equals), or None."""
    x1, y1, x2, y2 = _box(boxes, column)
    centre_y = (y1 + y2) / 2
    distance = np.maximum(np.maximum(main_boxes[:, 0] - x2, x1 - main_boxes[:, 2]), 0.0)
    near = (main_boxes[:, 1] <= centre_y) & (centre_y <= main_boxes[:, 3]) & (distance <= BESIDE * unit_width)
    if not near.any():
        return None
    candidates = np.flatnonzero(near)
    nearest = candidates[distance[candidates] == distance[candidates].min()]
    return int(nearest[-1])


def _box(boxes: np.ndarray, indices: Sequence[int]) -> tuple[float, float, float, float]:
    part = boxes[list(indices)]
    return (float(part[:, 0].min()), float(part[:, 1].min()), float(part[:, 2].max()), float(part[:, 3].max()))


def _register_cut(boxes: np.ndarray, columns: list[list[int]], min_band: float) -> float | None:
    """The top of the first horizontal band at least ``min_band`` high that crosses no character of ``columns``,
    with characters of two columns or more above it and below it; None if there is none."""
    chars = np.array(sorted((i for column in columns for i in column), key=lambda i: boxes[i, 1]))
    tops = boxes[chars, 1]
    reach = np.concatenate([[-np.inf], np.maximum.accumulate(boxes[chars, 3])[:-1]])  # lowest bottom above each
    first_bottoms = np.array([boxes[column, 3].min() for column in columns])
    last_tops = np.array([boxes[column, 1].max() for column in columns])
    for k in np.flatnonzero(tops - reach >= min_band):
        if (first_bottoms <= reach[k]).sum() >= 2 and (last_tops >= tops[k]).sum() >= 2:
            return float(reach[k])
    return None


def _split(boxes: np.ndarray, columns: list[list[int]]) -> tuple[list[list[int]], list[list[int]]] | None:
    """``columns`` divided at the widest vertical gap that crosses none of their boxes: ``(left, right)``, or None."""
    extents = sorted(((boxes[c, 0].min(), boxes[c, 2].max(), c) for c in columns), key=lambda e: e[0])
    reach, widest, at = extents[0][1], 0.0, None
    for k, (x1, x2, _) in enumerate(extents[1:], 1):
        if x1 >= reach and (at is None or x1 - reach > widest):
            widest, at = x1 - reach, k
        reach = max(reach, x2)
    if at is None:
        return None
    return [c for *_, c in extents[:at]], [c for *_, c in extents[at:]]


def _xy_order(boxes: np.ndarray, columns: list[list[int]], min_band: float) -> list[list[int]]:
    """The ``columns`` (characters top to bottom) as lines in reading order, by recursive XY cuts (step 3)."""
    if len(columns) <= 1:
        return columns
    cut = _register_cut(boxes, columns, min_band)
    if cut is not None:
        above = [[i for i in column if boxes[i, 3] <= cut] for column in columns]
        below = [[i for i in column if boxes[i, 3] > cut] for column in columns]
        return [line for part in (above, below) for line in _xy_order(boxes, [c for c in part if c], min_band)]
    split = _split(boxes, columns)
    if split is not None:
        return [line for part in reversed(split) for line in _xy_order(boxes, part, min_band)]
    boxed = sorted(((_box(boxes, column), column) for column in columns), key=lambda b: -(b[0][0] + b[0][2]))
    groups: list[list[tuple]] = []  # columns right to left, the pieces of each top to bottom
    for box, column in boxed:
        if groups and _overlap((box[0], box[2]), (groups[-1][-1][0][0], groups[-1][-1][0][2])) >= 0.5:
            groups[-1].append((box, column))
        else:
            groups.append([(box, column)])
    return [column for group in groups for _, column in sorted(group, key=lambda b: b[0][1])]


def page_text(chars: Sequence[str], reading: ReadingOrder) -> list[str]:
    """The text of a page, one string per main line in reading order, from each character's text ``chars`` (in the
    order of the boxes given to :func:`reading_order`). A gloss is written in ``《》`` after the last character it
    stands beside, as Aozora Bunko writes ruby: ``漢字《かんじ》``."""
    lines = []
    for n, line in enumerate(reading.lines):
        if line.gloss:
            continue
        text = [chars[i] for i in line.indices]
        for gloss in (g for g in reading.lines if g.parent == n):
            text[gloss.anchor] += "《" + "".join(chars[i] for i in gloss.indices) + "》"
        lines.append("".join(text))
    return lines


def successor_accuracy(order: Sequence[int], truth: Sequence[int]) -> tuple[int, int]:
    """How many characters of the true reading order ``truth`` have, in ``order``, their true successor: ``(right,
    total)`` where ``total`` is ``len(truth) - 1``. Characters missing from ``order`` (glosses) have no successor."""
    following = dict(zip(order, order[1:]))
    right = sum(following.get(a) == b for a, b in zip(truth, truth[1:]))
    return right, max(len(truth) - 1, 0)


def edit_distance(text: Sequence[str], reference: Sequence[str]) -> int:
    """The Levenshtein distance between two sequences of characters (insertions, deletions, substitutions)."""
    previous = list(range(len(reference) + 1))
    for i, a in enumerate(text, 1):
        current = [i]
        for j, b in enumerate(reference, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]
