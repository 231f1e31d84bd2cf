"""What recognition produces, as plain records: ``Reading``, ``Character``, ``TextLine``, ``RecognizedPage``, the
submission row.

A recognised page (one item of :meth:`~kuzu_lightning.Recognizer.recognize_batch`'s output) is a dict of ``image_id``,
``size`` (width, height), ``error`` (why the page could not be read, else None) and its characters as ``boxes``
(xyxy), ``codes``, ``scores`` and ``probabilities``, best detection first, with each one's ``alternatives`` (code
points, best first) and ``alternative_probabilities``. :func:`recognized_page` turns it into a
:class:`RecognizedPage`: its characters, and its lines in reading order (:mod:`kuzu_lightning.reading_order`). Every
coordinate is in original-scan pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kuzu_lightning.data.formats import code_to_char, format_predictions
from kuzu_lightning.geometry import box_centres
from kuzu_lightning.reading_order import page_text, reading_order


@dataclass(frozen=True)
class Reading:
    """One reading of a character: its ``code`` point, the character ``char`` and the classifier's ``probability``."""

    code: str
    char: str
    probability: float


@dataclass(frozen=True)
class Character:
    """One recognised character; coordinates in original-scan pixels."""

    code: str  # code point, "U+3042"
    char: str  # the character, "あ"
    x: float  # centre
    y: float
    box: tuple[float, float, float, float]  # x1 y1 x2 y2
    score: float  # detection score
    probability: float  # the classifier's probability of ``code``
    line: int  # its line, an index into the page's ``lines`` (reading order)
    position: int  # its place in that line, from the top
    alternatives: tuple[Reading, ...] = ()  # its most probable readings, best first (``code`` the first)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TextLine:
    """One line (a column) of a recognised page: ``characters``, indices into the page's characters, top to bottom;
    ``box`` xyxy around them (original-scan pixels); ``text``; ``gloss``: a side gloss (furigana), kept out of the
    main text, beside the line ``parent`` (an index into the page's lines), after its character at ``anchor``."""

    characters: tuple[int, ...]
    box: tuple[float, float, float, float]
    text: str
    gloss: bool = False
    parent: int | None = None
    anchor: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RecognizedPage:
    """A recognised page: ``characters`` best detection first, ``lines`` in reading order, ``text`` the main lines
    (glosses in ``《》`` after the character they stand beside), one per line of the string."""

    image_id: str
    width: int
    height: int
    error: str | None
    characters: tuple[Character, ...]
    lines: tuple[TextLine, ...]

    @property
    def text(self) -> str:
        return "".join(line.text + "\n" for line in self.lines if not line.gloss)

    def parts(self) -> list[tuple[str, list[int]]]:
        """The page's text in two parts, each only when it has lines: ``("main", ...)`` and ``("glosses", ...)``, the
        indices of their lines in reading order."""
        parts = [(name, [j for j, line in enumerate(self.lines) if line.gloss == gloss])
                 for name, gloss in (("main", False), ("glosses", True))]
        return [(name, lines) for name, lines in parts if lines]

    def characters_of(self, line: TextLine) -> str:
        """The characters of ``line`` as read, top to bottom, without the glosses beside it."""
        return "".join(self.characters[i].char for i in line.characters)

    def to_dict(self) -> dict:
        """The page's JSON object: ``image_id``, ``width``, ``height``, ``error``, ``text``, ``characters`` and
        ``lines``."""
        return {"image_id": self.image_id, "width": self.width, "height": self.height, "error": self.error,
                "text": self.text, "characters": [c.to_dict() for c in self.characters],
                "lines": [line.to_dict() for line in self.lines]}


def recognized_page(page: dict) -> RecognizedPage:
    """The :class:`RecognizedPage` of one item of :meth:`~kuzu_lightning.Recognizer.recognize_batch`'s output."""
    boxes = page["boxes"].reshape(-1, 4).float()
    found = reading_order(boxes.numpy())
    chars = [code_to_char(code) for code in page["codes"]]
    centres = box_centres(boxes).tolist()
    alternatives = [tuple(Reading(code, code_to_char(code), p) for code, p in zip(codes, probabilities))
                    for codes, probabilities in zip(page["alternatives"], page["alternative_probabilities"].tolist())]
    characters = tuple(Character(code, char, x, y, tuple(box), score, probability, line, position, readings)
                       for code, char, box, (x, y), score, probability, line, position, readings
                       in zip(page["codes"], chars, boxes.tolist(), centres, page["scores"].tolist(),
                              page["probabilities"].tolist(), found.line_of, found.position, alternatives))
    texts = iter(page_text(chars, found))
    lines = tuple(TextLine(line.indices, line.box, "".join(chars[i] for i in line.indices) if line.gloss else next(texts),
                           line.gloss, line.parent, line.anchor) for line in found.lines)
    width, height = page["size"]
    return RecognizedPage(page["image_id"], int(width), int(height), page["error"], characters, lines)


def submission_labels(page: dict) -> str:
    """The ``labels`` string of one recognised page: ``U+XXXX x y ...`` (centres), best first."""
    return format_predictions(page["codes"], box_centres(page["boxes"]))
